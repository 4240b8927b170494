"""The page at `/` in headless Chromium against the real graph (serve_config.local.yaml, real models):
a fake microphone plays a French voice message, the page shows what Whisper heard, then English and
Spanish texts with audio the browser decodes and the measured voice similarity. The screenshot is
kept in tests/artifacts/ (docs/page.png in the README is one of these)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.fixtures.browser import browser_page, use_page
from tests.fixtures.speech import FRENCH_5S, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def test_page_against_the_real_graph(local_graph: LocalGraph, speech_dir: Path) -> None:
    url = local_graph.http_url
    page_response = httpx.get(url + "/", timeout=30)
    assert page_response.status_code == 200 and "default-src 'none'" in page_response.headers["content-security-policy"]
    wav = espeak_wav(FRENCH_5S, speech_dir / "page_fr.wav")
    shot = ROOT / "tests" / "artifacts" / "page_real_graph.png"
    with browser_page(wav) as page:
        outcome = use_page(page, url, None, ["en", "es"], record_s=6, timeout_s=600, screenshot=shot)
    heard = set(re.findall(r"\w+", outcome.transcript.lower()))
    assert heard & {"bonjour", "retard", "soir", "cinéma", "heures"}, outcome.transcript
    by_language = {lang.language: lang for lang in outcome.languages}
    assert sorted(by_language) == ["en", "es"], outcome
    for lang in by_language.values():
        assert lang.text.strip() and lang.text != "Working…", lang
        assert lang.audio_ready_state >= 1 and lang.audio_duration_s > 0.5, lang  # Chromium decoded the audio
        assert "Voice similarity to you" in lang.meta, lang
    assert outcome.status.startswith("Done in")
    assert outcome.console_errors == []  # nothing blocked by the CSP under Serve's proxy, nothing thrown
    assert shot.stat().st_size > 10_000
