"""`voice-translator translate | transcribe | say` as a user runs them (a subprocess), against the real
graph (serve_config.local.yaml, real models): files written where asked and decodable, the French
words Whisper heard printed, and a clear error with its exit code when the service is down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serve_app.audio import decode_audio
from serve_app.client.service import EXIT_UNREACHABLE, EXIT_USAGE
from tests.fixtures.ports import free_port
from tests.fixtures.ray_cluster import ROOT
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
FRENCH_WORDS = {"bonjour", "retard", "soir", "cinéma", "heures", "retrouve"}


def voice_translator(url: str, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOICE_TRANSLATOR_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("VOICE_TRANSLATOR_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "serve_app.assembly.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def heard(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) & FRENCH_WORDS


@pytest.fixture(scope="module")
def message_m4a(speech_dir: Path) -> Path:
    wav = espeak_wav(FRENCH_5S, speech_dir / "cli_fr.wav")
    path = speech_dir / "message.m4a"
    path.write_bytes(convert(wav, "m4a"))
    return path


def test_translate_writes_each_language(local_graph: LocalGraph, message_m4a: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = voice_translator(local_graph.http_url, "translate", str(message_m4a), "--to", "en,es", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["message.en.mp3", "message.es.mp3"]
    for path in out.iterdir():
        assert decode_audio(path.read_bytes()).duration_s > 0.5, path
    lines = run.stdout.splitlines()
    assert lines[0].startswith("transcript\tfr\t") and heard(lines[0]), run.stdout
    texts = {line.split("\t")[0]: line.split("\t")[2] for line in lines[1:]}
    assert sorted(texts) == ["en", "es"] and all(t.strip() for t in texts.values()), run.stdout


def test_transcribe_prints_what_was_said(local_graph: LocalGraph, message_m4a: Path) -> None:
    run = voice_translator(local_graph.http_url, "transcribe", str(message_m4a))
    assert run.returncode == 0, run.stderr
    assert len(heard(run.stdout)) >= 2, run.stdout


def test_say_writes_speech(local_graph: LocalGraph, tmp_path: Path) -> None:
    out = tmp_path / "hola.wav"
    run = voice_translator(local_graph.http_url, "say", "Hola, nos vemos mañana.", "--lang", "es", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:4] == b"RIFF" and decode_audio(out.read_bytes()).duration_s > 0.5


def test_service_down_and_missing_file(message_m4a: Path, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    run = voice_translator(down, "translate", str(message_m4a), "--to", "en", "--out", str(tmp_path), timeout_s=60)
    assert run.returncode == EXIT_UNREACHABLE and "cannot reach the service" in run.stderr and down in run.stderr
    run = voice_translator(down, "transcribe", str(tmp_path / "nope.m4a"), timeout_s=60)
    assert run.returncode == EXIT_USAGE and "no such file" in run.stderr
    assert list(tmp_path.iterdir()) == []
