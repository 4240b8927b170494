"""The page at `/` in headless Chromium against the HTTP door on a loopback socket (fake stages),
with keys on: the key is entered in the page, a fake microphone plays French speech, and the page
shows both translations with playable audio. Plus the page's own HTTP surface (no key, CSP)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.browser import CHROMIUM, browser_page, use_page
from tests.fixtures.http_door import ALICE_KEY, door_settings, served_http_door
from tests.fixtures.speech import FRENCH_5S, espeak_wav, sine_wav_bytes

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def door_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_http_door(door_settings(tmp_path_factory.mktemp("page-door"))) as served:
        yield served.base_url


def test_page_files_load_without_a_key_under_a_strict_csp(door_url: str) -> None:
    page = httpx.get(door_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script src=\"/static/app.js\"" in page.text and "<script>" not in page.text  # no inline script
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        r = httpx.get(door_url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    assert httpx.get(door_url + "/static/secret.txt").status_code in (401, 404)
    # everything the page calls still needs the key
    assert httpx.get(door_url + "/languages").status_code == 401
    assert httpx.get(door_url + "/languages", headers={"Authorization": f"Bearer {ALICE_KEY}"}).status_code == 200


@pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
                    reason="Debian chromium missing: run `make setup`")
def test_page_records_and_shows_both_translations_with_playable_audio(door_url: str, tmp_path: Path) -> None:
    wav = espeak_wav(FRENCH_5S, tmp_path / "fr.wav")
    shot = ARTIFACTS / "page_fake_pipeline.png"
    with browser_page(wav) as page:
        outcome = use_page(page, door_url, ALICE_KEY, ["en", "es"], screenshot=shot)
    by_language = {lang.language: lang for lang in outcome.languages}
    assert sorted(by_language) == ["en", "es"]
    assert outcome.transcript == "bonjour"  # the fake Whisper's text: the recording reached the pipeline
    assert by_language["en"].text == "bonjour->en" and by_language["es"].text == "bonjour->es"
    for lang in by_language.values():
        assert lang.audio_ready_state >= 1 and lang.audio_duration_s > 0.2, lang  # the browser decoded it
        assert "70%" in lang.meta  # the measured voice similarity is shown
    assert outcome.status.startswith("Done in")
    # nothing blocked by the CSP, nothing thrown (the 401 is /languages asked before the key was entered)
    assert [e for e in outcome.console_errors if "status of 401" not in e] == []
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium missing: run `make setup`")
def test_page_without_the_key_says_so(door_url: str, tmp_path: Path) -> None:
    with browser_page(espeak_wav("Bonjour", tmp_path / "fr.wav")) as page:
        page.goto(door_url)
        page.get_by_text("needs a valid API key").wait_for(timeout=10_000)
        page.get_by_label("Key", exact=True).fill("wrong-key")
        page.get_by_role("button", name="Use this key").click()
        page.get_by_text("needs a valid API key").wait_for(timeout=10_000)
        assert page.locator("input[name=language]").count() == 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium missing: run `make setup`")
def test_profile_panel_shows_and_deletes_my_profile(door_url: str, tmp_path: Path) -> None:
    alice = {"Authorization": f"Bearer {ALICE_KEY}"}
    created = httpx.post(door_url + "/api/v1/voice/profiles/alice", headers=alice, timeout=30,
                         files={"audio": ("me.wav", sine_wav_bytes(12.0), "audio/wav")})
    assert created.status_code == 201, created.text
    with browser_page(espeak_wav("Bonjour", tmp_path / "fr.wav")) as page:
        page.goto(door_url)
        page.get_by_label("Key", exact=True).fill(ALICE_KEY)
        page.keyboard.press("Enter")  # the key form submits from the keyboard
        page.get_by_label("Your user id", exact=False).fill("alice")
        page.get_by_role("button", name="Show my profile").click()
        page.locator("#profile-quality").filter(has_text="%").wait_for(timeout=10_000)
        assert page.locator("#profile-samples").text_content() == "1"
        assert page.locator("#profile-quality").text_content() == f"{round(created.json()['qualityScore'] * 100)}%"
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete my profile").click()
        page.get_by_text("Your voice profile is deleted.").wait_for(timeout=10_000)
    assert httpx.get(door_url + "/api/v1/voice/profiles/alice", headers=alice).status_code == 404
