"""The `/v1` routes driven by the official `openai` SDK against the HTTP door on a loopback server,
over the real `VoicePipeline` on fake stages: every transcription format, streaming, translations,
speech in every format (decoded with PyAV), cloned-voice trust rules, models, and OpenAI's error shape."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest

from tests.fixtures.fake_stages import TIMED_SEGMENTS, FakeStages
from tests.fixtures.http_door import ADMIN_KEY, ALICE_KEY, BOB_KEY, ServedDoor, door_settings, served_http_door
from tests.fixtures.speech import sine_wav_bytes

AUDIO = sine_wav_bytes(1.0)
FULL_TEXT = " ".join(t for t, _, _ in TIMED_SEGMENTS)
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


class Door:
    def __init__(self, served: ServedDoor) -> None:
        self.served, self.url = served, served.base_url

    def client(self, key: str = ADMIN_KEY) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with served_http_door(door_settings(tmp_path), FakeStages()) as served:
        yield Door(served)


def decode(data: bytes) -> tuple[int, float]:
    """(sample rate, seconds) of an encoded clip, read back with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.rate, samples / stream.rate


def sse_payloads(text: str) -> list[dict[str, Any]]:
    """The JSON of every `data:` line of an OpenAI-style event stream, in order."""
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def srt_times(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(\d\d:\d\d:\d\d[,.]\d{3}) --> (\d\d:\d\d:\d\d[,.]\d{3})", text)


async def test_transcription_json_and_text(door: Door) -> None:
    client = door.client()
    result = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), language="fr")
    assert result.text == FULL_TEXT
    text = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format="text")
    assert text.strip() == FULL_TEXT


async def test_transcription_srt_and_vtt_parse(door: Door) -> None:
    client = door.client()
    srt = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format="srt")
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert [b.splitlines()[0] for b in blocks] == ["1", "2"]
    assert [b.splitlines()[2] for b in blocks] == [t for t, _, _ in TIMED_SEGMENTS]
    assert srt_times(srt) == [("00:00:00,000", "00:00:01,400"), ("00:00:01,600", "00:00:02,900")]
    vtt = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    assert srt_times(vtt) == [("00:00:00.000", "00:00:01.400"), ("00:00:01.600", "00:00:02.900")]
    assert TIMED_SEGMENTS[1][0] in vtt


async def test_transcription_verbose_json_has_segments_and_words_in_order(door: Door) -> None:
    result = await door.client().audio.transcriptions.create(
        model="whisper-1", file=("a.wav", AUDIO), response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    assert result.text == FULL_TEXT and result.language == "fr" and result.duration == pytest.approx(3.0)
    assert [s.text for s in result.segments or []] == [t for t, _, _ in TIMED_SEGMENTS]
    words = result.words or []
    assert " ".join(w.word for w in words) == FULL_TEXT
    starts = [w.start for w in words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(w.end > w.start for w in words)
    plain = await door.client().audio.transcriptions.create(
        model="whisper-1", file=("a.wav", AUDIO), response_format="verbose_json")
    assert plain.segments and plain.words is None  # words only when asked for


async def test_streamed_transcription_deltas_concatenate_to_the_text(door: Door) -> None:
    stream = await door.client().audio.transcriptions.create(
        model="whisper-1", file=("a.wav", AUDIO), stream=True)
    deltas, done = [], None
    async for event in stream:
        if event.type == "transcript.text.delta":
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
    assert len(deltas) == 2 and "".join(deltas) == done == FULL_TEXT


async def test_translation_to_english_and_to_another_language(door: Door) -> None:
    client = door.client()
    english = await client.audio.translations.create(model="whisper-1", file=("a.wav", AUDIO))
    assert english.text == f"{FULL_TEXT}->en"
    spanish = await client.audio.translations.create(
        model="whisper-1", file=("a.wav", AUDIO), response_format="text", extra_body={"target_language": "es"})
    assert spanish.strip() == f"{FULL_TEXT}->es"


@pytest.mark.parametrize("fmt", SPEECH_FORMATS)
async def test_speech_in_every_format_decodes(door: Door, fmt: str) -> None:
    response = await door.client().audio.speech.create(
        model="tts-1", voice="alloy", input="Hello there. How are you?", response_format=fmt)  # type: ignore[arg-type]
    data = response.read()
    if fmt == "pcm":
        assert len(data) == 2 * 24_000  # two fake sentences of 0.5 s, 16-bit at 24 kHz
        return
    rate, seconds = decode(data)
    assert rate > 0 and seconds == pytest.approx(1.0, abs=0.2)  # codec priming and padding per sentence


async def test_speech_speed_changes_the_duration(door: Door) -> None:
    response = await door.client().audio.speech.create(
        model="tts-1", voice="nova", input="One sentence.", response_format="wav", speed=2.0)
    assert decode(response.read())[1] == pytest.approx(0.25, abs=0.05)


async def test_speech_streams_sse_deltas(door: Door) -> None:
    async with httpx.AsyncClient(base_url=door.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        r = await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "One. Two. Three.",
                                                       "response_format": "mp3", "stream_format": "sse"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_payloads(r.text)
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 3 + ["speech.audio.done"]
    for event in events[:3]:
        assert decode(base64.b64decode(event["audio"]))[1] == pytest.approx(0.5, abs=0.1)
    assert events[-1]["usage"]["input_tokens"] == 3


async def _alice_profile(door: Door) -> None:
    await door.served.run(door.served.door.pipeline.profile_create("alice", sine_wav_bytes(11.0)))


async def test_speech_in_a_users_cloned_voice_follows_the_trust_rules(door: Door) -> None:
    await _alice_profile(door)
    own = await door.client(ALICE_KEY).audio.speech.create(
        model="tts-1", voice="alice", input="Hi.", response_format="wav")
    assert decode(own.read())[1] > 0
    by_id = await door.client(ADMIN_KEY).audio.speech.create(
        model="tts-1", voice={"id": "alice"}, input="Hi.", response_format="wav")
    assert decode(by_id.read())[1] > 0
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await door.client(BOB_KEY).audio.speech.create(model="tts-1", voice="alice", input="Hi.")
    assert refused.value.status_code == 403
    with pytest.raises(openai.NotFoundError):  # a user without a profile
        await door.client(BOB_KEY).audio.speech.create(model="tts-1", voice="bob", input="Hi.")


async def test_models_list_and_retrieve(door: Door) -> None:
    client = door.client()
    ids = [m.id async for m in client.models.list()]
    assert {"fake-whisper", "whisper-1", "tts-1", "tts-fake", "fake-translator"} <= set(ids)
    card = await client.models.retrieve("whisper-1")
    assert card.id == "whisper-1" and card.object == "model" and card.owned_by == "voice-translator"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-nothing")


async def test_wrong_key_is_an_authentication_error(door: Door) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await door.client("not-a-key").models.list()
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error" and body["code"] == "invalid_api_key"


async def test_errors_on_v1_have_openais_shape_and_the_rest_keeps_its_own(door: Door) -> None:
    async with httpx.AsyncClient(base_url=door.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        bad_audio = await http.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"not audio")},
                                    data={"model": "whisper-1"})
        missing = await http.post("/v1/audio/transcriptions", data={"model": "whisper-1"})
        bad_format = await http.post("/v1/audio/speech", json={"voice": "alloy", "input": "x", "response_format": "x"})
        unknown = await http.get("/v1/nothing")
        own = await http.post("/api/v1/audio/transcribe", files={"audio": ("a.wav", b"not audio")})
    for r, status in ((bad_audio, 422), (missing, 400), (bad_format, 400), (unknown, 404)):
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert bad_audio.json()["error"]["code"] == "invalid_audio"
    assert missing.json()["error"]["param"] == "file"
    assert own.status_code == 422 and own.json()["errorCode"] == "invalid_audio"  # the rest of the API unchanged
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await door.client().audio.transcriptions.create(model="whisper-1", file=("a.wav", b"not audio"))
    assert "audio" in caught.value.message


async def test_voice_translations_stream_one_voice_per_language(door: Door) -> None:
    async with httpx.AsyncClient(base_url=door.url, headers={"Authorization": f"Bearer {ALICE_KEY}"}) as http:
        r = await http.post("/v1/audio/voice-translations", files={"file": ("a.wav", AUDIO)},
                            data={"target_languages": "en,es", "response_format": "wav"})
        refused = await http.post("/v1/audio/voice-translations", files={"file": ("a.wav", AUDIO)},
                                  data={"target_languages": "en", "user_id": "bob"})
    assert r.status_code == 200, r.text
    events = sse_payloads(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "voice_translation.transcript" and kinds[-1] == "voice_translation.done"
    languages = {e["language"]: e for e in events if e["type"] == "voice_translation.language"}
    assert set(languages) == {"en", "es"}
    for lang, event in languages.items():
        assert event["text"] == f"bonjour->{lang}" and event["voice_cloned"] is True
        assert decode(base64.b64decode(event["audio"]))[1] > 0
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
