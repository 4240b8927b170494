"""The official `openai` SDK against the real graph (serve_config.local.yaml, real Whisper, Gemma,
piper, resemblyzer + WORLD), with API keys on: every transcription format on real French and English
speech, streamed deltas, translation to English, speech in every format that Whisper hears back as
the input, a user's cloned voice measurably closer to that user than the built-in voice, models, and
a wrong key as `AuthenticationError`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from serve_app.audio import PCM_RATE, decode_audio, resample
from serve_app.security.keys import key_digest
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav
from tests.integration.local_graph import LocalGraph
from tests.integration.test_graph_http import embed, wer, words

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ADMIN_KEY = "openai-admin-key-0123456789"
ALICE_KEY = "openai-alice-key-0123456789"  # role user, user_id "alice"
ENGLISH = "Hello, I will be late tonight. See you in front of the cinema at eight."
SPOKEN = "Good morning. The weather is lovely today."
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


@dataclass
class KeyedGraph:
    url: str
    french: Path
    english: Path
    alice_voice: Path

    def client(self, key: str = ADMIN_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def graph(
    ray_cluster: RayCluster,
    tmp_path_factory: pytest.TempPathFactory,
    graph_extra_settings: dict[str, Any],
    _local_graph_state: dict[str, LocalGraph],
) -> Iterator[KeyedGraph]:
    """The local graph with keys required (one admin, one `user` key for alice); the shared graph is
    put back afterwards if this session had deployed it."""
    tmp = tmp_path_factory.mktemp("openai-graph")
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps([
        {"name": "ops", "sha256": key_digest(ADMIN_KEY), "role": "admin"},
        {"name": "alice-app", "sha256": key_digest(ALICE_KEY), "role": "user", "user_id": "alice"},
    ]))
    settings = {**graph_extra_settings, "auth": "required", "api_keys_file": str(keys_file)}
    ray_cluster.deploy(ROOT / "serve_config.local.yaml", tmp, settings=settings)
    ray_cluster.wait_running()
    url = f"http://127.0.0.1:{ray_cluster.http_port}"
    wait_http_ready(url)
    alice_text = " ".join([FRENCH_5S, "Il fait beau aujourd'hui, nous irons nous promener au parc.", FRENCH_5S])
    try:
        yield KeyedGraph(
            url=url,
            french=espeak_wav(FRENCH_5S, tmp / "fr.wav"),
            english=espeak_wav(ENGLISH, tmp / "en.wav", voice="en-us"),
            alice_voice=espeak_wav(alice_text, tmp / "alice.wav", voice="fr+f2", pitch=70),
        )
    finally:
        local = _local_graph_state.get("graph")
        if local is not None:
            local.deploy()


def times(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(\d\d:\d\d:\d\d[,.]\d{3}) --> (\d\d:\d\d:\d\d[,.]\d{3})", text)


def heard(whisper, audio: bytes, fmt: str) -> str:
    if fmt == "pcm":
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
        samples = resample(samples, PCM_RATE, 16_000)
    else:
        samples = decode_audio(audio, sample_rate=16_000, max_seconds=120).samples
    return whisper.transcribe(samples, language="en").text


def test_transcription_in_every_format(graph: KeyedGraph) -> None:
    client = graph.client()
    with graph.english.open("rb") as f:
        english = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert wer(ENGLISH, english.text) <= 0.35, english.text
    audio = convert(graph.french, "m4a")
    text = client.audio.transcriptions.create(model="whisper-1", file=("note.m4a", audio), response_format="text")
    assert {"retard", "soir"} & set(words(text)), text
    srt = client.audio.transcriptions.create(model="whisper-1", file=("note.m4a", audio), response_format="srt")
    vtt = client.audio.transcriptions.create(model="whisper-1", file=("note.m4a", audio), response_format="vtt")
    assert srt.strip().startswith("1\n") and times(srt), srt
    assert vtt.startswith("WEBVTT") and times(vtt), vtt
    for start, end in times(srt) + times(vtt):
        assert start < end <= "00:00:10"
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("note.m4a", audio), response_format="verbose_json", language="fr",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "fr" and 3.0 < verbose.duration < 10.0
    assert verbose.segments and verbose.words and len(verbose.words) >= 8
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in verbose.words)
    assert {"retard", "soir"} & set(words(" ".join(w.word for w in verbose.words)))


def test_streamed_transcription_deltas_make_the_text(graph: KeyedGraph) -> None:
    with graph.english.open("rb") as f:
        stream = graph.client().audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        events = list(stream)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e.text for e in events if e.type == "transcript.text.done"]
    assert deltas and done and "".join(deltas) == done[0]
    assert wer(ENGLISH, done[0]) <= 0.35, done[0]


def test_translation_to_english(graph: KeyedGraph) -> None:
    with graph.french.open("rb") as f:
        result = graph.client().audio.translations.create(model="whisper-1", file=f)
    found = set(words(result.text))
    assert found & {"late", "tonight", "evening", "cinema", "movie", "eight", "meet", "see"}, result.text
    assert not found & {"retard", "soir", "cinéma"}, result.text


@pytest.mark.parametrize("fmt", SPEECH_FORMATS)
def test_speech_in_every_format_says_the_input(graph: KeyedGraph, whisper, fmt: str) -> None:
    response = graph.client().audio.speech.create(model="tts-1", voice="alloy", input=SPOKEN,
                                                  response_format=fmt, extra_body={"language": "en"})  # type: ignore[arg-type]
    said = heard(whisper, response.read(), fmt)
    assert wer(SPOKEN, said) <= 0.25, (fmt, said)


def test_speech_in_a_users_cloned_voice_is_closer_to_that_user(graph: KeyedGraph, encoder) -> None:
    import httpx

    with httpx.Client(base_url=graph.url, headers={"Authorization": f"Bearer {ALICE_KEY}"}, timeout=300) as http:
        http.delete("/api/v1/voice/profiles/alice")
        created = http.post("/api/v1/voice/profiles/alice",
                            files={"audio": ("alice.wav", graph.alice_voice.read_bytes(), "audio/wav")})
    assert created.status_code == 201, created.text
    alice = graph.client(ALICE_KEY)
    cloned = alice.audio.speech.create(model="tts-1", voice="alice", input=SPOKEN, response_format="wav",
                                       extra_body={"language": "en"}).read()
    built_in = alice.audio.speech.create(model="tts-1", voice="alloy", input=SPOKEN, response_format="wav",
                                         extra_body={"language": "en"}).read()
    reference = embed(encoder, graph.alice_voice.read_bytes())
    cloned_sim = float(np.dot(reference, embed(encoder, cloned)))
    base_sim = float(np.dot(reference, embed(encoder, built_in)))
    assert cloned_sim > base_sim + 0.02, (cloned_sim, base_sim)
    with pytest.raises(openai.PermissionDeniedError):  # a user key may not speak as another user
        alice.audio.speech.create(model="tts-1", voice="bob", input=SPOKEN)


def test_models_list(graph: KeyedGraph) -> None:
    ids = [m.id for m in graph.client().models.list()]
    assert "whisper-1" in ids and "tts-1" in ids and any(i.startswith("whisper-") and i != "whisper-1" for i in ids)
    assert graph.client().models.retrieve("whisper-1").object == "model"


def test_wrong_key_is_an_authentication_error(graph: KeyedGraph) -> None:
    with pytest.raises(openai.AuthenticationError):
        graph.client("wrong-key").models.list()
    with pytest.raises(openai.AuthenticationError), graph.english.open("rb") as f:
        graph.client("wrong-key").audio.transcriptions.create(model="whisper-1", file=f)
