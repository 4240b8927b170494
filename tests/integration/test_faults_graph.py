"""Faults injected into the real graph: every request gets exactly one terminal answer within its
deadline, whatever dies, and the graph serves again once Serve has replaced the broken replica.

Each of the four model deployments is, in turn, killed (SIGKILL) and frozen (SIGSTOP, a hang) while
a voice message is in flight on both doors (HTTP and ZMQ) — and, for the Translator, a text
translation too. Each test speaks its own sentence, so no cache answers for the stage under test.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from serve_app.deadlines import StageDeadlines
from serve_app.settings import Settings
from tests.fixtures.gateway_client import Event, GatewayClient, connected_client, new_id
from tests.fixtures.replica_faults import MODEL_DEPLOYMENTS, ReplicaFaults
from tests.fixtures.speech import convert, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = pytest.mark.integration

# What each door may take, at most, for a ~6 s message with one stage lost: the Pipeline's worst case
# when every stage uses its whole deadline (serve_app/deadlines.py), plus slack for a busy 2-core box.
VOICE_DEADLINE_S = StageDeadlines(Settings()).worst_voice_message_s(6.0) + 30.0
TEXT_DEADLINE_S = 30.0  # the gateway's own per-try timeout for a text translation
# When to strike after the request is sent: while the stage under test is working on it.
STRIKE_AFTER_S = {"Transcriber": 0.5, "VoiceCloner": 0.5, "Translator": 3.0, "Synthesizer": 6.0}
SENTENCES = {
    "Transcriber": "Je t'appelle demain matin pour le rendez-vous chez le dentiste.",
    "Translator": "Il faut acheter du pain et du lait en rentrant du travail.",
    "Synthesizer": "La réunion de jeudi est déplacée à quinze heures trente.",
    "VoiceCloner": "Mon train a vingt minutes de retard, ne m'attends pas pour dîner.",
}
KNOWN_CODES = {"stage_timeout", "pipeline_unavailable", "transcription_failed", "translation_failed", "tts_failed",
               "voice_clone_failed", "processing_failed", "busy"}


@pytest.fixture(scope="module")
def faults(local_graph: LocalGraph) -> ReplicaFaults:
    return ReplicaFaults(local_graph.cluster.address, local_graph.cluster.status)


def _voice_audio(tmp_path: Path, tag: str) -> bytes:
    text = SENTENCES[tag.split(":")[0]]
    wav = espeak_wav(f"{text} ({tag.split(':')[1]})" if ":" in tag else text, tmp_path / "sender.wav")
    return convert(wav, "m4a")


async def _http_voice(base_url: str, audio: bytes) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=VOICE_DEADLINE_S + 60) as client:
        response = await client.post(
            "/api/v1/voice/translate",
            files={"audio": ("note.m4a", audio, "audio/mp4")},
            data={"target_languages": "en,es", "source_language": "fr", "generate_voice_clone": "true"},
        )
    return time.monotonic() - started, response


async def _zmq_voice(gateway: GatewayClient, audio: bytes) -> tuple[float, list[Event]]:
    """An audio_process and every event for it, up to its one final event (then 1 s more: no second one)."""
    message = new_id("m")
    body = {
        "type": "audio_process", "taskId": new_id(), "messageId": message, "attachmentId": new_id("a"),
        "conversationId": "c1", "senderId": "u-faults", "audioUrl": "", "audioMimeType": "audio/mp4",
        "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4", "audioSize": len(audio)},
        "audioDurationMs": 5000, "userLanguage": "fr", "targetLanguages": ["en", "es"], "generateVoiceClone": True,
        "timestamp": int(time.time() * 1000),
    }
    started = time.monotonic()
    await gateway.send(body, audio)
    events = await gateway.events_for(
        body["taskId"], lambda e: e.type in ("audio_process_completed", "audio_process_error"), VOICE_DEADLINE_S
    )
    elapsed = time.monotonic() - started
    events += await gateway.no_event_for(body["taskId"], 1.0)
    return elapsed, events


async def _zmq_text(gateway: GatewayClient, text: str, targets: list[str]) -> tuple[float, list[Event]]:
    task = new_id()
    started = time.monotonic()
    await gateway.send({"type": "translation", "taskId": task, "messageId": f"665f{new_id('')}", "text": text,
                        "sourceLanguage": "fr", "targetLanguages": targets, "conversationId": "c1",
                        "modelType": "basic", "timestamp": int(time.time() * 1000)})
    events = [await gateway.wait_for(lambda e: e.get("taskId") == task, TEXT_DEADLINE_S + 15) for _ in targets]
    elapsed = time.monotonic() - started
    events += await gateway.no_event_for(task, 1.0)
    return elapsed, events


def _check_http_voice(elapsed: float, response: httpx.Response) -> None:
    assert elapsed <= VOICE_DEADLINE_S, f"HTTP answered after {elapsed:.0f} s"
    body = response.json()
    if response.status_code == 200:
        failed = {f["target_language"] for f in body.get("failed_languages", [])}
        done = {t["target_language"] for t in body["translations"]}
        assert done | failed == {"en", "es"} and not done & failed, body
    else:
        assert 400 <= response.status_code < 600 and body.get("errorCode") in KNOWN_CODES, (response.status_code, body)


def _check_zmq_voice(elapsed: float, events: list[Event]) -> None:
    assert elapsed <= VOICE_DEADLINE_S, f"ZMQ answered after {elapsed:.0f} s"
    finals = [e for e in events if e.type in ("audio_process_completed", "audio_process_error")]
    assert len(finals) == 1, [e.type for e in events]  # exactly one terminal answer
    if finals[0].type == "audio_process_error":
        assert finals[0].get("errorCode") in KNOWN_CODES, finals[0].body


async def _voice_on_both_doors(local_graph: LocalGraph, audio: bytes, strike, deployment: str) -> None:
    """Send one voice message on each door, strike the deployment mid-flight, check both answers."""
    gateway = await connected_client(local_graph.zmq_pull_port, local_graph.zmq_pub_port, timeout_s=120)
    try:
        http = asyncio.create_task(_http_voice(local_graph.http_url, audio))
        zmq = asyncio.create_task(_zmq_voice(gateway, audio))
        await asyncio.sleep(STRIKE_AFTER_S[deployment])
        await asyncio.to_thread(strike)
        _check_http_voice(*await http)
        _check_zmq_voice(*await zmq)
    finally:
        gateway.close()


async def _serves_again(local_graph: LocalGraph, audio: bytes) -> None:
    """After recovery a voice message succeeds on both doors, every language translated."""
    elapsed, response = await _http_voice(local_graph.http_url, audio)
    assert response.status_code == 200 and not response.json()["failed_languages"], response.text
    gateway = await connected_client(local_graph.zmq_pull_port, local_graph.zmq_pub_port, timeout_s=120)
    try:
        _, events = await _zmq_voice(gateway, audio)
    finally:
        gateway.close()
    final = events[-1] if events[-1].type.startswith("audio_process") else events[-2]
    assert final.type == "audio_process_completed", final.body


@pytest.mark.parametrize("deployment", MODEL_DEPLOYMENTS)
async def test_killed_model_replica(local_graph: LocalGraph, faults: ReplicaFaults, tmp_path: Path,
                                    deployment: str) -> None:
    audio = _voice_audio(tmp_path, f"{deployment}:kill")
    killed: list[int] = []
    await _voice_on_both_doors(local_graph, audio, lambda: killed.append(faults.kill(deployment)), deployment)
    await asyncio.to_thread(faults.wait_healthy, deployment, set(killed))
    await _serves_again(local_graph, _voice_audio(tmp_path, f"{deployment}:after kill"))


@pytest.mark.parametrize("deployment", MODEL_DEPLOYMENTS)
async def test_hung_model_replica(local_graph: LocalGraph, faults: ReplicaFaults, tmp_path: Path,
                                  deployment: str) -> None:
    audio = _voice_audio(tmp_path, f"{deployment}:hang")
    frozen: list[int] = []
    try:
        await _voice_on_both_doors(local_graph, audio, lambda: frozen.append(faults.freeze(deployment)), deployment)
    finally:
        for pid in frozen:
            faults.thaw(pid)
    await asyncio.to_thread(faults.wait_healthy, deployment)
    await _serves_again(local_graph, _voice_audio(tmp_path, f"{deployment}:after hang"))


async def test_hung_translator_text_answers_within_the_gateway_timeout(
    local_graph: LocalGraph, faults: ReplicaFaults
) -> None:
    gateway = await connected_client(local_graph.zmq_pull_port, local_graph.zmq_pub_port, timeout_s=120)
    try:
        with faults.frozen("Translator"):
            elapsed, events = await _zmq_text(gateway, "Le chat dort sur le canapé du salon.", ["en", "de"])
            async with httpx.AsyncClient(base_url=local_graph.http_url, timeout=TEXT_DEADLINE_S + 30) as client:
                started = time.monotonic()
                response = await client.post("/translate", json={"text": "Le vélo est dans le garage.",
                                                                 "source_language": "fr", "target_language": "en"})
                http_elapsed = time.monotonic() - started
        assert elapsed <= TEXT_DEADLINE_S, f"ZMQ text answered after {elapsed:.0f} s"
        assert sorted(e.get("targetLanguage") for e in events) == ["de", "en"], [e.body for e in events]
        assert all(e.type == "translation_error" and e.get("errorCode") == "stage_timeout" for e in events), \
            [e.body for e in events]
        assert http_elapsed <= TEXT_DEADLINE_S, f"HTTP text answered after {http_elapsed:.0f} s"
        # Sent ~20 s into the hang: Serve's health check may have replaced the replica by then, and a
        # result from the replacement is as good a terminal answer as the timeout.
        body = response.json()
        assert (response.status_code, body.get("errorCode")) == (504, "stage_timeout") or (
            response.status_code == 200 and body["translated_text"].strip()), response.text
        await asyncio.to_thread(faults.wait_healthy, "Translator")
        _, events = await _zmq_text(gateway, "Le chat dort sur le canapé du salon.", ["en"])
        assert [e.type for e in events] == ["translation_completed"], [e.body for e in events]
    finally:
        gateway.close()
