"""`voice-translator translate | transcribe | say` against the HTTP door on a loopback socket (the real
pipeline over fake stages, keys on): files written where asked, what is printed, and the exit codes
for a refused key, a service that is down, a missing file and a language that fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.assembly.cli import main
from serve_app.audio import decode_audio
from serve_app.client.service import EXIT_AUTH, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from tests.fixtures.fake_stages import FakeStages
from tests.fixtures.http_door import SERVICE_KEY, door_settings, served_http_door
from tests.fixtures.ports import free_port
from tests.fixtures.speech import espeak_wav

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def door_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_http_door(door_settings(tmp_path_factory.mktemp("cli-door"))) as served:
        yield served.base_url


@pytest.fixture(scope="module")
def message(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav("Bonjour, je serai en retard.", tmp_path_factory.mktemp("cli-speech") / "message.wav")


def cli(url: str, *args: str, key: str | None = SERVICE_KEY) -> int:
    return main([args[0], *args[1:], "--url", url, *(["--api-key", key] if key else [])])


def test_translate_writes_one_file_per_language(door_url: str, message: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli(door_url, "translate", str(message), "--to", "en,es,de", "--out", str(out)) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["message.de.mp3", "message.en.mp3", "message.es.mp3"]
    for path in out.iterdir():
        assert decode_audio(path.read_bytes()).duration_s > 0.1  # a real mp3, decodable
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == "transcript\tfr\tbonjour"
    assert f"es\t{out / 'message.es.mp3'}\tbonjour->es" in stdout


def test_translate_format_and_env_vars(door_url: str, message: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_TRANSLATOR_URL", door_url)
    monkeypatch.setenv("VOICE_TRANSLATOR_API_KEY", SERVICE_KEY)
    assert main(["translate", str(message), "--to", "es", "--format", "wav", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "message.es.wav").read_bytes()[:4] == b"RIFF"


def test_transcribe_prints_the_text(door_url: str, message: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(door_url, "transcribe", str(message)) == 0
    assert capsys.readouterr().out.strip() == "bonjour"
    assert cli(door_url, "transcribe", str(message), "--json") == 0
    assert '"language": "fr"' in capsys.readouterr().out


def test_say_writes_the_audio_where_asked(door_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hola.wav"
    assert cli(door_url, "say", "Hola, ¿qué tal?", "--lang", "es", "--out", str(out)) == 0
    assert out.read_bytes()[:4] == b"RIFF" and decode_audio(out.read_bytes()).duration_s > 0.1
    assert capsys.readouterr().out.strip() == str(out)


def test_wrong_key_is_a_clear_error(door_url: str, message: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(door_url, "translate", str(message), "--to", "en", "--out", str(tmp_path), key="nope") == EXIT_AUTH
    assert "refused the API key" in capsys.readouterr().err
    assert cli(door_url, "transcribe", str(message), key=None) == EXIT_AUTH
    assert list(tmp_path.iterdir()) == []


def test_service_down_is_a_clear_error(message: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    for args in (("translate", str(message), "--to", "en", "--out", str(tmp_path)), ("transcribe", str(message)),
                 ("say", "hello", "--lang", "en", "--out", str(tmp_path / "x.mp3"))):
        assert cli(down, *args) == EXIT_UNREACHABLE
        err = capsys.readouterr().err
        assert "cannot reach the service" in err and down in err
    assert list(tmp_path.iterdir()) == []


def test_bad_usage_and_refused_input(door_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(door_url, "translate", str(tmp_path / "missing.m4a"), "--to", "en") == EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"not audio at all" * 10)
    assert cli(door_url, "translate", str(junk), "--to", "en", "--out", str(tmp_path)) == EXIT_FAILED
    assert "invalid_audio" in capsys.readouterr().err
    assert cli(door_url, "translate", str(junk.with_name("x.wav")), "--to", "xx") == EXIT_USAGE


def test_a_failed_language_is_reported_and_the_others_delivered(message: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "door").mkdir()
    with served_http_door(door_settings(tmp_path / "door"), FakeStages(fail_tts_for="es")) as served:
        out = str(tmp_path / "out")
        assert cli(served.base_url, "translate", str(message), "--to", "en,es", "--out", out) == EXIT_FAILED
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["message.en.mp3"]
    assert "failed" in capsys.readouterr().err
