"""The stores through the real graph: Redis cache and MongoDB-wire voice profiles behind both doors.

The shared graph runs with the session's real `redis-server` and `secantusd` (conftest), reached by
the real `redis` asyncio client and the real `motor` driver. Tests that kill a server come last.
"""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import redis

from serve_app.audio import decode_audio
from tests.fixtures import gateway_shapes as shapes
from tests.fixtures.gateway_client import GatewayClient, connected_client, new_id
from tests.fixtures.servers import ServerProcess
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

FRENCH_12S = (
    "Salut Claire, je voulais te dire que la réunion de demain est déplacée à quinze heures. "
    "Pense à apporter les documents du projet et préviens aussi Marc, il n'a pas encore répondu."
)


@pytest.fixture(scope="module")
def http(local_graph: LocalGraph) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_graph.http_url, timeout=300) as client:
        yield client


@pytest.fixture
async def gateway(local_graph: LocalGraph) -> AsyncIterator[GatewayClient]:
    client = await connected_client(local_graph.zmq_pull_port, local_graph.zmq_pub_port)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def long_m4a(speech_dir: Path) -> bytes:
    wav = espeak_wav(FRENCH_12S, speech_dir / "stores_12s.wav")
    return convert(wav, "m4a")


@pytest.fixture(scope="module")
def short_m4a(speech_dir: Path) -> bytes:
    wav = espeak_wav(FRENCH_5S, speech_dir / "stores_5s.wav")
    return convert(wav, "m4a")


@pytest.fixture(scope="module")
def mongo_db(graph_mongo: ServerProcess) -> Iterator[Any]:
    client = pymongo.MongoClient(graph_mongo.url, serverSelectionTimeoutMS=5000)
    yield client["voice_translator"]
    client.close()


def translator_batches(http: httpx.Client) -> int:
    """How many model calls the Translator replica has run (its own counter, from /health)."""
    health = http.get("/health").json()
    assert "components" in health, health
    return int(health["components"]["translator"]["batches"])


_DAYS = itertools.count(uuid.uuid4().int % 28)


def unique_sentence() -> str:
    """A new sentence on each of a run's first 28 calls (the module makes 4; a random day could repeat, and
    1 in 28 made a cache test flaky)."""
    return f"Nous partons en vacances le {next(_DAYS) % 28 + 1} juillet avec les enfants."


# ---- cache ----
def test_same_text_twice_over_http_comes_from_the_cache_without_a_model_call(http: httpx.Client) -> None:
    body = {"text": unique_sentence(), "source_language": "fr", "target_language": "en"}
    first = http.post("/translate", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["from_cache"] is False
    batches = translator_batches(http)
    second = http.post("/translate", json=body)
    assert second.status_code == 200 and second.json()["from_cache"] is True
    assert second.json()["translated_text"] == first.json()["translated_text"]
    assert translator_batches(http) == batches  # no model call for the cached answer
    stats = http.get("/stats").json()["cache"]
    assert stats["hits"] >= 1 and 0 < stats["hit_rate"] <= 1 and stats["backend"] == "redis"


async def test_same_text_twice_over_zmq_and_only_uncached_languages_reach_the_model(
    gateway: GatewayClient, http: httpx.Client, graph_redis: ServerProcess
) -> None:
    text = unique_sentence()
    first_id = new_id()
    await gateway.send({"type": "translation", "taskId": first_id, "messageId": "m-cache", "text": text,
                        "sourceLanguage": "fr", "targetLanguages": ["en", "es"]})
    first = [
        await gateway.wait_for(lambda e, t=t: e.get("taskId") == first_id and e.get("targetLanguage") == t, 180)
        for t in ("en", "es")
    ]
    assert all(e.type == "translation_completed" and e["result"]["fromCache"] is False for e in first), [
        e.body for e in first]
    batches = translator_batches(http)

    second_id = new_id()
    await gateway.send({"type": "translation", "taskId": second_id, "messageId": "m-cache", "text": text,
                        "sourceLanguage": "fr", "targetLanguages": ["en", "es", "de"]})
    events = {t: await gateway.wait_for(lambda e, t=t: e.get("taskId") == second_id
                                        and e.get("targetLanguage") == t, 180) for t in ("en", "es", "de")}
    assert {t: e["result"]["fromCache"] for t, e in events.items()} == {"en": True, "es": True, "de": False}
    assert events["en"]["result"]["translatedText"] == first[0]["result"]["translatedText"]
    # de alone went to the model: exactly one more batch
    assert translator_batches(http) == batches + 1
    # the translations are in Redis itself, not only in the replica's memory
    keys = redis.Redis.from_url(graph_redis.url).keys("translation:v1:*")
    assert len(keys) >= 3
    pong = await gateway.ping_until_pong()
    assert pong["cache"]["hits"] >= 2 and "hit_rate" in pong["cache"]


# ---- voice profiles ----
async def audio_process(gateway: GatewayClient, audio: bytes, sender: str, attachment: str) -> dict[str, Any]:
    message_id = new_id("m")
    await gateway.send({
        "type": "audio_process", "messageId": message_id, "attachmentId": attachment, "senderId": sender,
        "targetLanguages": ["en"], "generateVoiceClone": True,
        "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4", "audioSize": len(audio)},
    }, audio)
    done = await gateway.wait_for(lambda e: e.get("messageId") == message_id and e.type in (
        "audio_process_completed", "audio_process_error"), 600)
    assert done.type == "audio_process_completed", done.body
    audio_ref = done.body["binaryFrames"]["audio_en"]
    assert decode_audio(done.binaries[audio_ref["index"] - 1]).duration_s > 0.5  # playable
    return done.body


async def test_two_voice_messages_create_version_1_then_improve_to_version_2(
    gateway: GatewayClient, long_m4a: bytes, short_m4a: bytes, mongo_db: Any
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    first = await audio_process(gateway, long_m4a, user, "att-long")
    assert first["voiceProfileAction"] == "created"
    assert first["newVoiceProfile"]["version"] == 1 and first["newVoiceProfile"]["userId"] == user
    assert first["newVoiceProfile"]["profileId"].startswith("vfp_")
    doc = mongo_db.user_voice_models.find_one({"userId": user})
    assert doc["version"] == 1 and doc["audioCount"] == 1 and len(doc["embedding"]) == 256 * 4
    assert doc["embeddingDimension"] == 256 and doc["voiceCharacteristics"]["pitchMeanHz"] > 50
    assert {"userId_1"} <= set(mongo_db.user_voice_models.index_information())

    # A profile older than 30 days is improved by the next message (0.7 old / 0.3 new).
    mongo_db.user_voice_models.update_one(
        {"userId": user}, {"$set": {"updatedAt": datetime.now(UTC) - timedelta(days=31)}}
    )
    second = await audio_process(gateway, short_m4a, user, "att-short")
    assert second["voiceProfileAction"] == "improved" and second["newVoiceProfile"]["version"] == 2
    doc = mongo_db.user_voice_models.find_one({"userId": user})
    assert doc["version"] == 2 and doc["audioCount"] == 2
    assert [s["attachmentId"] for s in doc["trainingAudioSamples"]] == ["att-long", "att-short"]
    assert all(len(s["embedding"]) == 256 * 4 for s in doc["trainingAudioSamples"])
    assert second["translatedAudios"][0]["voiceCloned"] is True


async def test_profile_apis_over_zmq_and_http(
    gateway: GatewayClient, http: httpx.Client, long_m4a: bytes, short_m4a: bytes
) -> None:
    user = f"api-{uuid.uuid4().hex[:8]}"
    created = http.post(f"/api/v1/voice/profiles/{user}", files={"audio": ("a.m4a", long_m4a, "audio/mp4")})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and "embedding" not in created.json()
    too_short = http.post(f"/api/v1/voice/profiles/{user}-x", files={"audio": ("a.m4a", short_m4a, "audio/mp4")})
    assert too_short.status_code == 400

    task = new_id()
    await gateway.send({"type": "voice_profile_get", "taskId": task, "userId": user})
    got = await gateway.wait_for(lambda e: e.get("taskId") == task, 60)
    assert got.type == "voice_api_success" and got["result"]["userId"] == user
    assert got["result"]["profileId"] == got["result"]["id"] == created.json()["profileId"]
    shapes.check(got["result"], shapes.VOICE_PROFILE)  # the gateway's VoiceProfile
    assert got["result"]["sampleCount"] == 1 and got["result"]["averageQuality"] == created.json()["qualityScore"]

    b64 = base64.b64encode(long_m4a).decode()
    await gateway.send({"type": "voice_profile_analyze", "request_id": "rq-an", "user_id": user, "audio_data": b64,
                        "audio_format": "m4a", "include_transcription": True, "generate_previews": True,
                        "preview_languages": ["en"]})
    analyzed = await gateway.wait_for(lambda e: e.get("request_id") == "rq-an", 240)
    assert analyzed.type == "voice_profile_analyze_result" and analyzed["success"] is True, analyzed.body
    shapes.check(analyzed.body, shapes.required({k: v for k, v in shapes.VOICE_PROFILE_ANALYZE_RESULT.items()
                                                 if k not in ("fingerprint_id", "embedding_path", "error")}))
    assert analyzed["embedding_dimension"] == 256 and analyzed["audio_duration_ms"] >= 10_000
    assert analyzed["signature_short"] == analyzed["fingerprint"]["signatureShort"]
    assert analyzed["voice_characteristics"]["pitchMeanHz"] > 50
    transcription = analyzed["transcription"]  # VoiceProfileTranscription: snake_case, integer ms
    shapes.check(transcription, shapes.VOICE_PROFILE_TRANSCRIPTION, exact=True)
    assert transcription["language"] == "fr" and transcription["source"] == "whisper" and transcription["text"]
    assert abs(transcription["duration_ms"] - analyzed["audio_duration_ms"]) < 300
    assert transcription["processing_time_ms"] > 50  # ms: Whisper base on seconds of speech
    for seg in transcription.get("segments", []):
        assert 0 <= seg["start_ms"] <= seg["end_ms"] <= transcription["duration_ms"] + 300
    [preview] = analyzed["voice_previews"]  # VoicePreviewSampleZMQ
    shapes.check(preview, {**shapes.VOICE_PREVIEW_SAMPLE, "voice_cloned": bool, "voice_similarity": shapes.NUM},
                 exact=True)
    assert preview["language"] == "en" and preview["original_text"] == transcription["text"]
    assert preview["translated_text"].strip() and preview["audio_format"] == "mp3" and preview["voice_cloned"]
    played = decode_audio(base64.b64decode(preview["audio_base64"]), max_seconds=120)
    assert abs(played.duration_s * 1000 - preview["duration_ms"]) < 150
    datetime.fromisoformat(preview["generated_at"].replace("Z", "+00:00"))

    await gateway.send({"type": "voice_profile_verify", "request_id": "rq-ver", "user_id": user, "audio_data": b64})
    verified = await gateway.wait_for(lambda e: e.get("request_id") == "rq-ver", 180)
    assert verified.type == "voice_profile_verify_result" and verified["is_match"] is True
    assert verified["similarity_score"] >= 0.8 and verified["threshold"] == 0.8

    fp = analyzed["fingerprint"]
    await gateway.send({"type": "voice_profile_compare", "request_id": "rq-cmp", "fingerprint_a": fp,
                        "fingerprint_b": fp})
    compared = await gateway.wait_for(lambda e: e.get("request_id") == "rq-cmp", 60)
    assert compared["is_match"] is True and compared["similarity_score"] == pytest.approx(1.0, abs=1e-3)

    await gateway.send({"type": "voice_profile_analyze", "request_id": "rq-short", "user_id": user,
                        "audio_data": base64.b64encode(short_m4a).decode()})
    short = await gateway.wait_for(lambda e: e.get("request_id") == "rq-short", 180)
    assert short.type == "voice_profile_error" and "10 s" in short["error"]

    listed = http.get("/api/v1/voice/profiles", params={"limit": 500}).json()
    assert user in [p["userId"] for p in listed["profiles"]] and listed["total"] >= 1
    assert http.delete(f"/api/v1/voice/profiles/{user}").status_code == 200
    assert http.get(f"/api/v1/voice/profiles/{user}").status_code == 404
    task = new_id()
    await gateway.send({"type": "voice_profile_get", "taskId": task, "userId": user})
    gone = await gateway.wait_for(lambda e: e.get("taskId") == task, 60)
    assert gone.type == "voice_api_error" and gone["errorCode"] == "NOT_FOUND"


async def test_a_retried_attachment_is_not_transcribed_again(gateway: GatewayClient, short_m4a: bytes,
                                                              http: httpx.Client) -> None:
    attachment = f"att-{uuid.uuid4().hex[:8]}"
    before = http.get("/stats").json()["cache"]["transcription_hits"]
    task = new_id()
    for _ in range(2):
        await gateway.send({"type": "transcription_only", "taskId": task, "messageId": "m", "attachmentId": attachment,
                            "binaryFrames": {"audio": 1}}, short_m4a)
        done = await gateway.wait_for(lambda e: e.get("taskId") == task, 180)
        assert done.type == "transcription_completed" and done["transcription"]["text"]
    assert http.get("/stats").json()["cache"]["transcription_hits"] == before + 1


# ---- servers failing (last: they disturb the shared stores) ----
def test_redis_killed_mid_run_the_service_keeps_translating_then_uses_redis_again(
    http: httpx.Client, graph_redis: ServerProcess
) -> None:
    graph_redis.kill()
    try:
        body = {"text": unique_sentence(), "source_language": "fr", "target_language": "es"}
        started = time.monotonic()
        miss = http.post("/translate", json=body)
        assert miss.status_code == 200 and miss.json()["from_cache"] is False
        hit = http.post("/translate", json=body)
        assert hit.status_code == 200 and hit.json()["from_cache"] is True  # the in-process LRU answered
        assert time.monotonic() - started < 120
        stats = http.get("/stats").json()["cache"]
        assert stats["redis_errors"] >= 1 and stats["breaker_state"] in ("open", "half_open", "closed")
    finally:
        graph_redis.start()
    # After the breaker's cool-down, a new translation lands in Redis again.
    body = {"text": unique_sentence() + " Encore.", "source_language": "fr", "target_language": "en"}
    client = redis.Redis.from_url(graph_redis.url)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert http.post("/translate", json=body).status_code == 200
        if client.keys("translation:v1:*"):
            break
        body["text"] += " Oui."
        time.sleep(3)
    assert client.keys("translation:v1:*"), "Redis was never used again after it came back"
    assert http.get("/stats").json()["cache"]["breaker_state"] == "closed"


async def test_mongodb_down_during_requests_degrades_without_hanging(
    gateway: GatewayClient, http: httpx.Client, graph_mongo: ServerProcess, short_m4a: bytes
) -> None:
    user = f"down-{uuid.uuid4().hex[:8]}"
    graph_mongo.kill()
    try:
        started = time.monotonic()
        done = await audio_process(gateway, short_m4a, user, "att-down")
        assert done["newVoiceProfile"] is None and done["translatedAudios"][0]["voiceCloned"] is True
        profile = http.get(f"/api/v1/voice/profiles/{user}")
        assert profile.status_code == 503 and profile.json()["errorCode"] == "store_unavailable"
        assert time.monotonic() - started < 300
    finally:
        graph_mongo.start()
    assert http.get(f"/api/v1/voice/profiles/{user}").status_code == 404  # back, and nothing half-written
