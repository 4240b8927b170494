"""Stores against real servers: redis-server with redis.asyncio, secantusd (MongoDB wire) with motor.

Nothing here is mocked: servers are subprocesses on private ports (tests/fixtures/servers.py),
killed and restarted for the outage tests.  The file store runs the same lifecycle scenarios.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis

from serve_app.settings import Settings
from serve_app.stores import (
    CachedTranslation,
    CircuitBreaker,
    FileVoiceProfileStore,
    MongoVoiceProfileStore,
    NewSample,
    ProfileExistsError,
    StoreUnavailableError,
    TranslationCache,
    VoiceProfileManager,
    build_translation_cache,
    translation_key,
)
from serve_app.stores.translation_cache import audio_digest
from serve_app.stores.voice_profiles import utcnow
from tests.fixtures.ports import free_port
from tests.fixtures.profiles import Clock, vec
from tests.fixtures.servers import (  # noqa: F401 - pytest fixtures
    ServerProcess,
    mongo_process,
    mongo_server,
    redis_process,
    redis_server,
)

pytestmark = pytest.mark.integration

VALUE = CachedTranslation(
    translated_text="Good evening", source_language="fr", target_language="en", model="gemma", confidence=0.8
)




def sample(attachment: str, seconds: float, seed: int = 0) -> NewSample:
    return NewSample(attachment_id=attachment, duration_ms=int(seconds * 1000), language="fr", embedding=vec(seed))


# -- Redis ------------------------------------------------------------------------------------------


async def test_redis_round_trip_ttl_and_backfill(redis_server: str) -> None:  # noqa: F811
    plain = Redis.from_url(redis_server, decode_responses=True)
    writer = TranslationCache.from_url(redis_server, translation_ttl_s=60, transcription_ttl_s=1)
    reader = TranslationCache.from_url(redis_server)  # another replica: empty LRU
    try:
        text = f"Bonsoir {uuid.uuid4()}"
        await writer.put(text, "fr", "en", "gemma", VALUE)
        key = translation_key(text, "fr", "en", "gemma")
        assert CachedTranslation.model_validate_json(await plain.get(key)) == VALUE
        assert 0 < await plain.ttl(key) <= 60
        assert await reader.get(text, "fr", "en", "gemma") == VALUE  # from Redis ...
        await plain.delete(key)
        assert await reader.get(text, "fr", "en", "gemma") == VALUE  # ... and backfilled into the LRU
        assert reader.stats().backend == "redis" and reader.stats().hits == 2

        attachment = f"att-{uuid.uuid4()}"
        digest = audio_digest(b"the attachment's pcm")
        await writer.put_transcription(attachment, digest, {"text": "Bonsoir", "language": "fr"})
        tkey = f"audio:transcription:{attachment}:{digest[:32]}"
        assert json.loads(await plain.get(tkey))["text"] == "Bonsoir"
        assert await reader.get_transcription(attachment, digest) == {"text": "Bonsoir", "language": "fr"}
        assert await reader.get_transcription(attachment, audio_digest(b"other audio")) is None  # not its audio
        await asyncio.sleep(1.2)
        assert await plain.get(tkey) is None  # its own (short) TTL
    finally:
        await writer.close()
        await reader.close()
        await plain.aclose()


async def test_build_translation_cache_uses_redis_url(redis_server: str) -> None:  # noqa: F811
    cache = build_translation_cache(Settings().model_copy(update={"redis_url": redis_server}))
    try:
        await cache.put("Salut", "fr", "en", "gemma", VALUE)
        assert cache.stats().backend == "redis" and cache.stats().redis_errors == 0
    finally:
        await cache.close()


async def test_redis_killed_then_restarted(redis_process: ServerProcess) -> None:  # noqa: F811
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1.0)
    cache = TranslationCache.from_url(redis_process.url, breaker=breaker)
    try:
        await cache.put("avant", "fr", "en", "gemma", VALUE)
        assert cache.stats().breaker_state == "closed"

        redis_process.kill()
        for i in range(6):
            start = time.monotonic()
            await cache.put(f"pendant {i}", "fr", "en", "gemma", VALUE)
            assert await cache.get(f"pendant {i}", "fr", "en", "gemma") == VALUE  # served by the LRU
            assert await cache.get("avant", "fr", "en", "gemma") == VALUE
            assert await cache.get(f"absent {i}", "fr", "en", "gemma") is None
            assert time.monotonic() - start < 1.0
        stats = cache.stats()
        assert stats.breaker_state == "open" and stats.backend == "memory" and stats.redis_errors == 3

        redis_process.start()  # same port, empty (no persistence)
        await asyncio.sleep(1.1)  # cooldown over: the next call probes Redis
        assert cache.stats().breaker_state == "half_open"
        await cache.put("après", "fr", "en", "gemma", VALUE)
        assert cache.stats().breaker_state == "closed" and cache.stats().backend == "redis"
        plain = Redis.from_url(redis_process.url, decode_responses=True)
        try:
            stored = await plain.get(translation_key("après", "fr", "en", "gemma"))
            assert CachedTranslation.model_validate_json(stored) == VALUE
        finally:
            await plain.aclose()
    finally:
        await cache.close()


# -- voice profiles on both stores ------------------------------------------------------------------


@pytest.fixture(params=["mongo", "file"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "mongo":
        url = request.getfixturevalue("mongo_server")
        store: Any = MongoVoiceProfileStore(url, f"test_{uuid.uuid4().hex[:12]}", timeout_ms=2000)
    else:
        store = FileVoiceProfileStore(tmp_path / "profiles")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def raw_profile(store: Any, user_id: str) -> dict[str, Any] | None:
    """The profile as persisted, read without the store: plain motor, or the JSON file itself."""
    if isinstance(store, MongoVoiceProfileStore):
        client = AsyncIOMotorClient(store._url, serverSelectionTimeoutMS=2000)
        try:
            return await client[store._db.name]["user_voice_models"].find_one({"userId": user_id})
        finally:
            client.close()
    path = store._profile_path(user_id)
    return json.loads(path.read_text()) if path.exists() else None


async def test_profile_lifecycle(store: Any) -> None:
    clock = Clock()
    manager = VoiceProfileManager(store, Settings(), clock=clock)
    assert (await manager.observe("u1", sample("a1", 6, seed=1))).action == "pending"
    created = await manager.observe("u1", sample("a2", 6, seed=2))
    assert created.action == "created" and created.profile.version == 1
    assert (await manager.observe("u1", sample("a3", 6, seed=3))).action == "reused"

    clock.now += timedelta(days=31)
    improved = await manager.observe("u1", sample("a4", 6, seed=4))
    assert improved.action == "improved"
    doc = await raw_profile(store, "u1")
    assert doc["version"] == 2 and doc["audioCount"] == 3 and doc["totalDurationMs"] == 18_000
    assert [s["attachmentId"] for s in doc["trainingAudioSamples"]] == ["a1", "a2", "a4"]
    assert doc["profileId"].startswith("vfp_") and doc["fingerprint"]["signatureShort"]
    if isinstance(store, MongoVoiceProfileStore):
        assert isinstance(doc["embedding"], bytes) and len(doc["embedding"]) == 1024  # BSON binary
        assert isinstance(doc["nextRecalibrationAt"], datetime)
    assert await store.get("u1") == improved.profile
    assert await store.pending_samples("u1") == []
    assert await store.count() == 1


async def test_unique_user_and_indexes(store: Any) -> None:
    manager = VoiceProfileManager(store, Settings())
    profile = await manager.create_from_sample("u1", sample("a1", 10))
    with pytest.raises(ProfileExistsError):
        await store.create(profile.model_copy(update={"profileId": "vfp_0000000000000000"}))
    if isinstance(store, MongoVoiceProfileStore):
        client = AsyncIOMotorClient(store._url, serverSelectionTimeoutMS=2000)
        try:
            db = client[store._db.name]
            indexes = await db["user_voice_models"].index_information()
            assert indexes["userId_1"]["unique"] and indexes["profileId_1"]["unique"]
            assert "nextRecalibrationAt_1" in indexes
            assert (await db["user_voice_samples"].index_information())["userId_1_attachmentId_1"]["unique"]
            with pytest.raises(DuplicateKeyError):
                await db["user_voice_models"].insert_one({"userId": "u1", "profileId": "vfp_other"})
        finally:
            client.close()


async def test_optimistic_version_check(store: Any) -> None:
    manager = VoiceProfileManager(store, Settings())
    profile = await manager.create_from_sample("u1", sample("a1", 10))
    newer = profile.model_copy(update={"version": 2, "qualityScore": 0.9})
    assert await store.replace(newer, expected_version=1)
    assert not await store.replace(profile.model_copy(update={"version": 2}), expected_version=1)
    assert (await store.get("u1")).qualityScore == 0.9


async def test_concurrent_updates_lose_no_sample(store: Any) -> None:
    settings = Settings(voice_profile_max_age_days=0)  # every observe improves
    first, second = VoiceProfileManager(store, settings), VoiceProfileManager(store, settings)
    await first.create_from_sample("u1", sample("a0", 10))
    outcomes = await asyncio.gather(
        *((first if i % 2 else second).observe("u1", sample(f"a{i}", 2, seed=i)) for i in range(1, 9))
    )
    assert {o.action for o in outcomes} == {"improved"}
    doc = await raw_profile(store, "u1")
    assert sorted(s["attachmentId"] for s in doc["trainingAudioSamples"]) == sorted(f"a{i}" for i in range(9))
    assert doc["version"] == 9 and doc["audioCount"] == 9


async def test_concurrent_first_samples_lose_no_sample(store: Any) -> None:
    managers = [VoiceProfileManager(store, Settings()) for _ in range(2)]
    outcomes = await asyncio.gather(*(managers[i % 2].observe("new", sample(f"s{i}", 2.5, seed=i)) for i in range(8)))
    profile = await store.get("new")
    kept = {s.attachmentId for s in profile.trainingAudioSamples}
    kept |= {p.attachmentId for p in await store.pending_samples("new")}
    assert kept == {f"s{i}" for i in range(8)}
    assert sum(o.action == "created" for o in outcomes) == 1


async def test_training_samples_are_bounded(store: Any) -> None:
    manager = VoiceProfileManager(store, Settings(voice_profile_max_training_samples=3))
    await manager.create_from_sample("u1", sample("a0", 10))
    for i in range(1, 6):
        await manager.update_from_sample("u1", sample(f"a{i}", 10, seed=i))
    doc = await raw_profile(store, "u1")
    assert [s["attachmentId"] for s in doc["trainingAudioSamples"]] == ["a3", "a4", "a5"]
    assert (doc["audioCount"], doc["totalDurationMs"], doc["version"]) == (6, 60_000, 6)
    assert doc["qualityScore"] == pytest.approx(1.0)  # from the lifetime totals


async def test_mongo_pending_samples_expire(mongo_server: str) -> None:  # noqa: F811
    """A TTL index on addedAt at start-up (retuned when the setting changes), reads that ignore
    expired samples before the server's TTL pass has run, and the maintenance sweep."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    clock = Clock()
    clock.now = utcnow()  # the server's own TTL pass runs on real time: start from it
    store = MongoVoiceProfileStore(mongo_server, database, timeout_ms=2000, pending_ttl=timedelta(days=30),
                                   clock=clock)
    client = AsyncIOMotorClient(mongo_server, serverSelectionTimeoutMS=2000)
    try:
        await store.start()
        pending = client[database]["user_voice_samples"]
        ttl = (await pending.index_information())["pending_ttl"]
        assert ttl["key"] == [("addedAt", 1)] and ttl["expireAfterSeconds"] == 30 * 86400

        manager = VoiceProfileManager(store, Settings(), clock=clock)
        assert (await manager.observe("u1", sample("old", 6, seed=1))).action == "pending"
        clock.now += timedelta(days=31)
        assert await store.pending_samples("u1") == []  # ignored even if the server kept it
        outcome = await manager.observe("u1", sample("new", 6, seed=2))
        assert outcome.action == "pending"  # the expired 6 s do not make 10 s with the new 6 s
        assert await store.purge_expired_pending() == 1  # "old" is 31 days old on our clock only
        assert [d["attachmentId"] async for d in pending.find({"userId": "u1"})] == ["new"]

        restarted = MongoVoiceProfileStore(mongo_server, database, timeout_ms=2000, pending_ttl=timedelta(days=2))
        try:
            await restarted.start()  # an existing index with another lifetime is retuned, not an error
            assert (await pending.index_information())["pending_ttl"]["expireAfterSeconds"] == 2 * 86400
        finally:
            await restarted.close()
    finally:
        client.close()
        await store.close()


# -- MongoDB outages --------------------------------------------------------------------------------


async def test_mongo_unreachable_at_start_fails_fast() -> None:
    store = MongoVoiceProfileStore(f"mongodb://127.0.0.1:{free_port()}", "nothing", timeout_ms=1000)
    try:
        for call in (store.start, lambda: store.get("u1")):
            start = time.monotonic()
            with pytest.raises(StoreUnavailableError) as info:
                await call()
            assert time.monotonic() - start < 4.0
            assert info.value.status == 503 and info.value.code == "store_unavailable"
    finally:
        await store.close()


async def test_mongo_killed_during_updates(mongo_process: ServerProcess) -> None:  # noqa: F811
    store = MongoVoiceProfileStore(mongo_process.url, "crash", timeout_ms=1000)
    await store.start()
    manager = VoiceProfileManager(store, Settings())
    await manager.create_from_sample("u1", sample("a0", 10))
    last_ok = 1

    async def keep_updating() -> None:
        nonlocal last_ok
        for i in range(1, 10_000):
            last_ok = (await manager.update_from_sample("u1", sample(f"a{i}", 1, seed=i))).version

    task = asyncio.create_task(keep_updating())
    await asyncio.sleep(0.3)
    mongo_process.kill()
    killed_at = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(task, timeout=10)
    assert time.monotonic() - killed_at < 4.0  # a clear error, not a hang
    assert last_ok > 1, "no update completed before the kill; the test proved nothing"

    mongo_process.start()  # same port, same data folder
    doc = await raw_profile(store, "u1")  # the same store object reconnects on its own
    assert doc is not None
    # Fully old or fully new: the counters agree with the samples, and at most the one write whose
    # reply was lost went through.
    # audioCount/totalDurationMs are lifetime totals; trainingAudioSamples keeps the most recent 50.
    assert doc["version"] in (last_ok, last_ok + 1)
    assert doc["audioCount"] == doc["version"]
    assert len(doc["trainingAudioSamples"]) == min(doc["version"], Settings().voice_profile_max_training_samples)
    assert doc["trainingAudioSamples"][-1]["attachmentId"] == f"a{doc['version'] - 1}"
    assert doc["totalDurationMs"] == 10_000 + 1_000 * (doc["version"] - 1)
    assert (await store.get("u1")).version == doc["version"]
    await store.close()
