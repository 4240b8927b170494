"""Bounded growth in the stores: trainingAudioSamples keeps the most recent N (totals and quality
stay lifetime), pending samples expire (file store: ignored on read, dropped on write, swept; MongoDB:
a TTL index at start-up and a read filter), feedback texts are capped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from serve_app.errors import InvalidRequestError, TextTooLongError
from serve_app.settings import Settings
from serve_app.stores import FileVoiceProfileStore, MongoVoiceProfileStore, NewSample, VoiceProfileManager
from serve_app.stores.factory import build_profile_store
from serve_app.stores.feedback import MAX_ID_CHARS, FeedbackLog
from serve_app.stores.mongo_profiles import PENDING_TTL_INDEX
from serve_app.stores.voice_profiles import PENDING_COLLECTION
from tests.fixtures.profiles import Clock, vec

TTL = timedelta(days=30)


def sample(attachment: str, seconds: float, seed: int = 0) -> NewSample:
    return NewSample(attachment_id=attachment, duration_ms=int(seconds * 1000), language="fr", embedding=vec(seed))


async def file_store(tmp_path: Path, clock: Clock, ttl: timedelta | None = TTL) -> FileVoiceProfileStore:
    store = FileVoiceProfileStore(tmp_path / "profiles", pending_ttl=ttl, clock=clock)
    await store.start()
    return store


# -- training samples ------------------------------------------------------------------------------


async def test_training_samples_keep_the_most_recent_while_totals_stay_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    settings = Settings(voice_profile_max_training_samples=3)
    manager = VoiceProfileManager(await file_store(tmp_path, clock), settings, clock=clock)
    await manager.create_from_sample("u1", sample("a0", 10, seed=0))
    for i in range(1, 6):
        profile = await manager.update_from_sample("u1", sample(f"a{i}", 10, seed=i))
    assert [s.attachmentId for s in profile.trainingAudioSamples] == ["a3", "a4", "a5"]
    assert (profile.audioCount, profile.totalDurationMs, profile.version) == (6, 60_000, 6)
    assert profile.qualityScore == pytest.approx(1.0)  # 60 s -> 0.9, +0.1 for extra samples: from the totals
    assert await manager.get("u1") == profile

    clock.now += timedelta(days=31)
    assert await manager.recalibrate_due() == 1
    recalibrated = await manager.get("u1")
    assert len(recalibrated.trainingAudioSamples) == 3 and recalibrated.qualityScore == pytest.approx(1.0)
    assert (recalibrated.audioCount, recalibrated.totalDurationMs) == (6, 60_000)


async def test_a_profile_created_from_many_pending_samples_keeps_only_the_last_n(tmp_path: Path) -> None:
    clock = Clock()
    settings = Settings(voice_profile_max_training_samples=2)
    manager = VoiceProfileManager(await file_store(tmp_path, clock), settings, clock=clock)
    outcomes = [await manager.observe("u1", sample(f"p{i}", 2.5, seed=i)) for i in range(4)]
    assert [o.action for o in outcomes] == ["pending", "pending", "pending", "created"]
    profile = outcomes[-1].profile
    assert [s.attachmentId for s in profile.trainingAudioSamples] == ["p2", "p3"]
    assert (profile.audioCount, profile.totalDurationMs) == (4, 10_000)
    assert profile.qualityScore == pytest.approx(0.6)  # 10 s -> 0.5, +0.1 for 4 samples


async def test_recalibration_trims_a_profile_stored_before_the_bound(tmp_path: Path) -> None:
    clock = Clock()
    store = await file_store(tmp_path, clock)
    loose = VoiceProfileManager(store, Settings(voice_profile_max_training_samples=10), clock=clock)
    await loose.create_from_sample("u1", sample("a0", 10))
    for i in range(1, 4):
        await loose.update_from_sample("u1", sample(f"a{i}", 1, seed=i))
    strict = VoiceProfileManager(store, Settings(voice_profile_max_training_samples=2), clock=clock)
    clock.now += timedelta(days=31)
    assert await strict.recalibrate_due() == 1
    profile = await strict.get("u1")
    assert [s.attachmentId for s in profile.trainingAudioSamples] == ["a2", "a3"] and profile.audioCount == 4


# -- pending samples expire ------------------------------------------------------------------------


async def test_expired_pending_samples_are_ignored_then_dropped(tmp_path: Path) -> None:
    clock = Clock()
    store = await file_store(tmp_path, clock)
    manager = VoiceProfileManager(store, Settings(), clock=clock)
    assert (await manager.observe("u1", sample("old", 6, seed=1))).action == "pending"
    clock.now += TTL + timedelta(seconds=1)
    assert await store.pending_samples("u1") == []  # ignored on read
    assert store._pending_path("u1").exists()  # (a reader does not rewrite)
    outcome = await manager.observe("u1", sample("new", 6, seed=2))
    assert outcome.action == "pending"  # 6 s + an expired 6 s is not 10 s of speech
    on_disk = store._pending_path("u1").read_text()
    assert "new" in on_disk and "old" not in on_disk  # dropped on write


async def test_the_sweep_drops_expired_samples_of_users_who_never_came_back(tmp_path: Path) -> None:
    clock = Clock()
    store = await file_store(tmp_path, clock)
    manager = VoiceProfileManager(store, Settings(), clock=clock)
    await manager.observe("gone", sample("g1", 3))
    await manager.observe("both", sample("b1", 3))
    clock.now += timedelta(days=20)
    await manager.observe("both", sample("b2", 3))
    assert await store.purge_expired_pending() == 0
    clock.now += timedelta(days=15)  # g1 and b1 are 35 days old, b2 15
    assert await store.purge_expired_pending() == 2
    assert not store._pending_path("gone").exists()
    assert [p.attachmentId for p in await store.pending_samples("both")] == ["b2"]
    assert await FileVoiceProfileStore(tmp_path / "profiles").purge_expired_pending() == 0  # no TTL: no sweep


async def test_no_ttl_keeps_pending_samples(tmp_path: Path) -> None:
    clock = Clock()
    store = await file_store(tmp_path, clock, ttl=None)
    await VoiceProfileManager(store, Settings(), clock=clock).observe("u1", sample("a1", 3))
    clock.now += timedelta(days=3650)
    assert [p.attachmentId for p in await store.pending_samples("u1")] == ["a1"]


def test_the_factory_passes_the_pending_ttl(tmp_path: Path) -> None:
    store = build_profile_store(Settings(cache_dir=tmp_path, voice_profile_pending_ttl_days=2))
    assert isinstance(store, FileVoiceProfileStore) and store.pending_ttl == timedelta(days=2)
    mongo = build_profile_store(Settings(mongodb_url="mongodb://127.0.0.1:9", voice_profile_pending_ttl_days=3))
    assert isinstance(mongo, MongoVoiceProfileStore) and mongo.pending_ttl == timedelta(days=3)


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def sort(self, *_: Any) -> FakeCursor:
        return self

    async def to_list(self, _length: Any) -> list[dict[str, Any]]:
        return self.docs


class FakePending:
    def __init__(self, fail_with: int | None = None) -> None:
        self.indexes: list[tuple[Any, dict[str, Any]]] = []
        self.queries: list[dict[str, Any]] = []
        self.fail_with = fail_with

    async def create_index(self, keys: Any, **options: Any) -> str:
        if "expireAfterSeconds" in options and self.fail_with is not None:
            raise OperationFailure("an index with the same key exists", code=self.fail_with)
        self.indexes.append((keys, options))
        return "ok"

    def find(self, query: dict[str, Any], _projection: Any = None) -> FakeCursor:
        self.queries.append(query)
        return FakeCursor([])

    async def delete_many(self, query: dict[str, Any]) -> Any:
        self.queries.append(query)
        return type("Result", (), {"deleted_count": 5})()


class FakeDb:
    def __init__(self) -> None:
        self.commands: list[Any] = []

    async def command(self, command: Any) -> dict[str, Any]:
        self.commands.append(command)
        return {"ok": 1}


def mongo_with_fakes(pending: FakePending, clock: Clock) -> tuple[MongoVoiceProfileStore, FakeDb]:
    store = MongoVoiceProfileStore("mongodb://127.0.0.1:9", timeout_ms=100, pending_ttl=TTL, clock=clock)
    db = FakeDb()
    store._db, store._pending, store._profiles = db, pending, FakePending()  # type: ignore[assignment]
    return store, db


async def test_mongo_start_creates_the_pending_ttl_index_and_reads_filter_by_age() -> None:
    clock, pending = Clock(), FakePending()
    store, _ = mongo_with_fakes(pending, clock)
    await store.start()
    assert ("addedAt", {"name": PENDING_TTL_INDEX, "expireAfterSeconds": 30 * 86400}) in pending.indexes
    assert await store.pending_samples("u1") == []
    assert pending.queries[-1] == {"userId": "u1", "addedAt": {"$gte": clock.now - TTL}}
    assert await store.purge_expired_pending() == 5
    assert pending.queries[-1] == {"addedAt": {"$lt": clock.now - TTL}}
    await store.close()


async def test_mongo_changes_a_ttl_index_left_with_another_lifetime() -> None:
    store, db = mongo_with_fakes(FakePending(fail_with=85), Clock())
    await store.start()
    assert {"collMod": PENDING_COLLECTION,
            "index": {"name": PENDING_TTL_INDEX, "expireAfterSeconds": 30 * 86400}} in db.commands
    await store.close()


async def test_a_server_without_ttl_indexes_still_starts() -> None:
    store, db = mongo_with_fakes(FakePending(fail_with=2), Clock())
    await store.start()  # logged; reads and the sweep still enforce the TTL
    assert not any(isinstance(c, dict) and "collMod" in c for c in db.commands)
    await store.close()


# -- feedback --------------------------------------------------------------------------------------


async def test_feedback_texts_are_capped(tmp_path: Path) -> None:
    log = FeedbackLog(Settings(cache_dir=tmp_path, max_feedback_comment_chars=20))
    ok = {"userId": "u1", "translationId": "t1", "rating": 4, "comment": "x" * 20}
    assert (await log.record(ok))["recorded"] is True
    with pytest.raises(TextTooLongError) as info:
        await log.record({**ok, "comment": "x" * 21})
    assert info.value.status == 413 and isinstance(info.value, InvalidRequestError)
    with pytest.raises(TextTooLongError):
        await log.record({**ok, "note": "y" * 21})  # any free-text field
    assert (await log.record({**ok, "translationId": "t" * MAX_ID_CHARS}))["recorded"]  # ids: their own cap
    with pytest.raises(TextTooLongError):
        await log.record({**ok, "translationId": "t" * (MAX_ID_CHARS + 1)})
    with pytest.raises(InvalidRequestError, match="text or a number"):
        await log.record({**ok, "comment": {"nested": "x" * 10_000}})
    with pytest.raises(InvalidRequestError, match="fields"):
        await log.record({f"k{i}": i for i in range(40)})
    lines = (tmp_path / "voice_feedback.jsonl").read_text().splitlines()
    assert len(lines) == 2  # only the accepted ones were written
