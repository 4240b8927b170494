"""The job store contract, the same tests on all three backends against real servers: Redis
(`redis-server`), MongoDB-wire (secantusdb through motor) and the JSON file store."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from serve_app.settings import Settings
from serve_app.stores import build_job_store
from serve_app.stores.errors import StoreUnavailableError
from serve_app.stores.file_jobs import FileJobStore
from serve_app.stores.job_store import INTERRUPTED_CODE, JobRecord, JobStore
from serve_app.stores.mongo_jobs import MongoJobStore
from serve_app.stores.redis_jobs import RedisJobStore
from tests.fixtures.servers import ServerProcess, mongo_server, start_server  # noqa: F401 - pytest fixture

pytestmark = pytest.mark.timeout(60)
BACKENDS = ["file", "redis", "mongodb"]


class Backend:
    """One backend for one test: `build` makes a store on it (several may share it, like replicas);
    `kill` makes it unreachable."""

    def __init__(self, kind: str, tmp_path: Path, mongo_url: str) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.server: ServerProcess | None = None
        self.database = f"jobs_{uuid.uuid4().hex[:8]}"
        self.mongo_url = mongo_url
        if kind == "redis":
            self.server = start_server("redis", tmp_path / "redis")
        self.stores: list[JobStore] = []

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"cache_dir": self.tmp_path, "redis_url": None, "mongodb_url": None,
                                  "mongodb_database": self.database, "mongodb_timeout_ms": 300,
                                  "redis_connect_timeout_s": 0.3, "redis_socket_timeout_s": 0.3}
        if self.kind == "redis":
            assert self.server is not None
            values["redis_url"] = self.server.url
        elif self.kind == "mongodb":
            values["mongodb_url"] = self.mongo_url
        return Settings(**{**values, **overrides})

    async def build(self, **overrides: Any) -> JobStore:
        store = build_job_store(self.settings(**overrides))
        await store.start()
        self.stores.append(store)
        return store

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()
        elif self.kind == "file":
            for store in self.stores:  # the folder becomes a plain file: every operation fails in the OS
                assert isinstance(store, FileJobStore)
                store.directory = self.tmp_path / "not-a-folder"
                store.directory.write_text("x")

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
        if self.server is not None:
            self.server.kill()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    mongo_url = request.getfixturevalue("mongo_server") if request.param == "mongodb" else ""
    b = Backend(request.param, tmp_path, mongo_url)
    try:
        yield b
    finally:
        await b.close()


def new_job(task_id: str | None = None, user_id: str | None = "u1", lease_s: float = 30.0, **fields: Any
            ) -> JobRecord:
    return JobRecord(jobId=f"vjob_{uuid.uuid4().hex[:16]}", taskId=task_id or uuid.uuid4().hex, userId=user_id,
                     owner="replica-a", leaseUntil=time.time() + lease_s, targetLanguages=["en", "fr"], **fields)


async def test_the_factory_picks_the_backend(backend: Backend) -> None:
    store = await backend.build()
    expected: dict[str, type[Any]] = {"file": FileJobStore, "redis": RedisJobStore, "mongodb": MongoJobStore}
    assert isinstance(store, expected[backend.kind]) and store.backend == backend.kind


async def test_create_get_and_progress(backend: Backend) -> None:
    store = await backend.build()
    job = new_job(webhookUrl="https://hooks.example/x", callbackMetadata={"orderId": 7})
    stored, created = await store.create(job)
    assert created and stored.jobId == job.jobId
    assert await store.get("vjob_unknown") is None
    got = await store.get(job.jobId)
    assert got is not None and got.status == "pending" and got.webhookUrl == "https://hooks.example/x"
    assert got.callbackMetadata == {"orderId": 7} and got.targetLanguages == ["en", "fr"] and got.owner == "replica-a"
    await store.save(got.changed(status="processing", progress=30, currentStep="translating"))
    later = await store.get(job.jobId)
    assert later is not None and (later.status, later.progress, later.currentStep) == ("processing", 30, "translating")
    assert later.startedAt is not None and later.completedAt is None


async def test_idempotent_create_per_owner_and_task(backend: Backend) -> None:
    store = await backend.build()
    first, created = await store.create(new_job("task-1"))
    again, created_again = await store.create(new_job("task-1"))
    assert created and not created_again and again.jobId == first.jobId
    other_user, created_other = await store.create(new_job("task-1", user_id="u2"))
    assert created_other and other_user.jobId != first.jobId
    # a second replica on the same backend sees the same job
    replica_b = await backend.build()
    seen, created_b = await replica_b.create(new_job("task-1"))
    assert not created_b and seen.jobId == first.jobId


async def test_result_is_stored_apart_with_its_ttl(backend: Backend) -> None:
    store = await backend.build(job_result_ttl_s=1)
    job, _ = await store.create(new_job())
    await store.put_result(job.jobId, {"translationId": "tr_1", "audio": "UklGRg=="})
    await store.save(job.changed(status="completed", progress=100, currentStep="completed", hasResult=True))
    assert await store.get_result(job.jobId) == {"translationId": "tr_1", "audio": "UklGRg=="}
    record = await store.get(job.jobId)
    assert record is not None and record.status == "completed" and record.hasResult
    assert "audio" not in record.model_dump_json()  # the record holds a reference, not the result
    deadline = time.monotonic() + 5
    while await store.get_result(job.jobId) is not None:
        assert time.monotonic() < deadline, "the result outlived its TTL"
        time.sleep(0.2)
    assert await store.get(job.jobId) is not None  # the record (status) outlives the result


async def test_finished_records_are_bounded(backend: Backend) -> None:
    store = await backend.build(max_jobs=3)
    running, _ = await store.create(new_job())
    finished = []
    for _ in range(4):
        job, _ = await store.create(new_job())
        await store.save(job.changed(status="completed"))
        finished.append(job)
    await store.create(new_job())
    assert await store.get(running.jobId) is not None  # running jobs are never dropped
    remembered = [await store.get(j.jobId) for j in finished]
    assert remembered[0] is None and remembered[-1] is not None
    assert sum(r is not None for r in remembered) <= 2


async def test_owner_is_stored_for_the_check(backend: Backend) -> None:
    """The ingress answers NOT_FOUND to anyone but the owner; the store keeps who that is."""
    store = await backend.build()
    job, _ = await store.create(new_job(user_id="alice"))
    got = await store.get(job.jobId)
    assert got is not None and got.userId == "alice"


async def test_orphans_are_claimed_once_and_marked_interrupted(backend: Backend) -> None:
    store_a, store_b = await backend.build(), await backend.build()
    live, _ = await store_a.create(new_job(lease_s=30))
    orphan, _ = await store_a.create(new_job(lease_s=-1, webhookUrl="https://hooks.example/y"))
    renewed, _ = await store_a.create(new_job(lease_s=-1))
    done, _ = await store_a.create(new_job(lease_s=-1))
    await store_a.save(done.changed(status="completed"))
    await store_a.renew("replica-a", [renewed.jobId], time.time() + 30)
    await store_a.renew("someone-else", [orphan.jobId], time.time() + 30)  # not theirs: no effect
    claims = [await store_b.claim_orphans(time.time()), await store_a.claim_orphans(time.time())]
    claimed = [job for batch in claims for job in batch]
    assert [job.jobId for job in claimed] == [orphan.jobId]  # once, by one replica
    assert claimed[0].status == "failed" and claimed[0].errorCode == INTERRUPTED_CODE
    assert claimed[0].webhookUrl == "https://hooks.example/y"
    stored = await store_a.get(orphan.jobId)
    assert stored is not None and stored.status == "failed" and stored.errorCode == INTERRUPTED_CODE
    for job_id, status in ((live.jobId, "pending"), (renewed.jobId, "pending"), (done.jobId, "completed")):
        other = await store_a.get(job_id)
        assert other is not None and other.status == status


async def test_a_claimed_job_is_no_longer_its_owners_to_save(backend: Backend) -> None:
    """The replica that lost a job (its lease ran out, another reported it) cannot overwrite that report."""
    owner, claimer = await backend.build(), await backend.build()
    job, _ = await owner.create(new_job(lease_s=-1))
    assert await owner.save(job.changed(status="processing", progress=30))  # still the owner's
    [claimed] = await claimer.claim_orphans(time.time())
    assert claimed.jobId == job.jobId
    assert await owner.save(job.changed(status="processing", progress=60)) is False
    assert await owner.save(job.changed(status="completed", progress=100)) is False
    await owner.renew("replica-a", [job.jobId], time.time() + 30)  # a late renewal does not take it back
    stored = await owner.get(job.jobId)
    assert stored is not None and (stored.status, stored.errorCode) == ("failed", INTERRUPTED_CODE)
    assert await claimer.claim_orphans(time.time() + 60) == []  # and it is never reported again


@pytest.mark.parametrize("backend", ["file", "redis", "mongodb"], indirect=True)
async def test_store_down_is_a_clear_error_not_a_hang(backend: Backend) -> None:
    if backend.kind == "mongodb":  # its own server, so killing it leaves the shared one alone
        backend.server = start_server("mongo", backend.tmp_path / "mongo")
        backend.mongo_url = backend.server.url
    store = await backend.build()
    job, _ = await store.create(new_job())
    backend.kill()
    calls: list[Callable[[], Any]] = [lambda: store.get(job.jobId), lambda: store.create(new_job()),
                                      lambda: store.save(job.changed(progress=50)),
                                      lambda: store.claim_orphans(time.time())]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            await call()
        assert info.value.status == 503 and info.value.code == "store_unavailable"
        assert time.monotonic() - started < 5
        assert "127.0.0.1" not in info.value.message and "not-a-folder" not in info.value.message
