"""Async voice jobs as JSON files: the job store when neither Redis nor MongoDB is configured.

``jobs/`` one record per job, ``results/`` the results (with their expiry), ``tasks/`` the
idempotency keys, all named by hashes (a client's job id is never a path). Writes are atomic
(temporary file, fsync, ``os.replace``) and every read-modify-write holds one ``FileLock`` for the
folder (Ray replicas share it) besides an ``asyncio.Lock``; the blocking work runs in a thread. An
unusable folder or a lock that cannot be had is a `StoreUnavailableError` (503), never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from pydantic import ValidationError

from serve_app.stores.errors import StoreUnavailableError, store_failure
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.job_store import JobRecord, task_key

T = TypeVar("T")
_write_atomic = FileVoiceProfileStore._write_atomic  # one atomic-write helper for every file store
_read = FileVoiceProfileStore._read


def _name(job_id: str) -> str:
    return hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:40] + ".json"


class FileJobStore:
    backend = "file"

    def __init__(self, directory: Path | str, *, max_jobs: int, record_ttl_s: int, result_ttl_s: int,
                 lock_timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.max_jobs = max_jobs
        self.record_ttl_s = record_ttl_s
        self.result_ttl_s = result_ttl_s
        self._lock_timeout_s = lock_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()

    def _job_path(self, job_id: str) -> Path:
        return self.directory / "jobs" / _name(job_id)

    def _result_path(self, job_id: str) -> Path:
        return self.directory / "results" / _name(job_id)

    def _task_path(self, user_id: str | None, task_id: str) -> Path:
        return self.directory / "tasks" / (task_key(user_id, task_id) + ".json")

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise store_failure(StoreUnavailableError, "job store is unavailable", exc,
                                detail=f"folder {self.directory}") from exc

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._io(self._prepare)
            file_lock = FileLock(str(self.directory / "jobs.lock"), thread_local=False)
            try:
                await asyncio.to_thread(file_lock.acquire, timeout=self._lock_timeout_s)
            except (Timeout, OSError) as exc:
                raise store_failure(StoreUnavailableError, "job store is busy, try again", exc,
                                    detail=f"file lock in {self.directory}") from exc
            try:
                yield
            finally:
                file_lock.release()

    def _prepare(self) -> None:
        for sub in ("jobs", "results", "tasks"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)

    # -- blocking helpers (run in a thread) -----------------------------------------------------

    def _expired(self, job: JobRecord) -> bool:
        return not job.running and (job.completedAt or job.updatedAt) + self.record_ttl_s <= self._clock()

    def _load(self, path: Path) -> JobRecord | None:
        text = _read(path)
        if text is None:
            return None
        try:
            return JobRecord.model_validate_json(text)
        except ValidationError:
            return None

    def _load_live(self, job_id: str) -> JobRecord | None:
        job = self._load(self._job_path(job_id))
        return None if job is None or self._expired(job) else job

    def _create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        task_path = self._task_path(job.userId, job.taskId)
        existing_id = _read(task_path)
        if existing_id:
            existing = self._load_live(existing_id.strip())
            if existing is not None:
                return existing, False
        _write_atomic(self._job_path(job.jobId), job.model_dump_json())
        _write_atomic(task_path, job.jobId)
        self._trim()
        return job, True

    def _all(self) -> list[tuple[Path, JobRecord]]:
        out = []
        for path in (self.directory / "jobs").glob("*.json"):
            job = self._load(path)
            if job is not None:
                out.append((path, job))
        return out

    def _trim(self) -> None:
        """Drop expired finished jobs, then the oldest finished beyond max_jobs (only when over the bound)."""
        if sum(1 for _ in (self.directory / "jobs").glob("*.json")) <= self.max_jobs:
            return
        jobs = sorted(self._all(), key=lambda item: item[1].createdAt)
        excess = len(jobs) - self.max_jobs
        for _path, job in jobs:
            if self._expired(job) or (excess > 0 and not job.running):
                self._forget(job)
                excess -= 1

    def _forget(self, job: JobRecord) -> None:
        for path in (self._job_path(job.jobId), self._result_path(job.jobId), self._task_path(job.userId, job.taskId)):
            path.unlink(missing_ok=True)

    def _save(self, job: JobRecord) -> bool:
        current = self._load(self._job_path(job.jobId))
        if current is None or current.owner != job.owner or not current.running:
            return False
        _write_atomic(self._job_path(job.jobId), job.model_dump_json())
        return True

    def _renew(self, owner: str, job_ids: list[str], until: float) -> None:
        for job_id in job_ids:
            job = self._load(self._job_path(job_id))
            if job is not None and job.running and job.owner == owner:
                _write_atomic(self._job_path(job_id), job.model_copy(update={"leaseUntil": until}).model_dump_json())

    def _claim(self, now: float, limit: int) -> list[JobRecord]:
        claimed: list[JobRecord] = []
        for path, job in self._all():
            if len(claimed) >= limit:
                break
            if job.running and job.leaseUntil < now:
                job = job.interrupted()
                _write_atomic(path, job.model_dump_json())
                claimed.append(job)
        return claimed

    def _get_result(self, job_id: str) -> dict[str, Any] | None:
        text = _read(self._result_path(job_id))
        if text is None:
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict) or float(doc.get("expiresAt", 0)) <= self._clock():
            return None
        result = doc.get("result")
        return result if isinstance(result, dict) else None

    # -- the interface ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._io(self._prepare)

    async def create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        async with self._locked():
            return await self._io(self._create, job)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._io(self._load_live, job_id)

    async def save(self, job: JobRecord) -> bool:
        async with self._locked():
            return await self._io(self._save, job)

    async def put_result(self, job_id: str, result: dict[str, Any]) -> None:
        payload = json.dumps({"expiresAt": self._clock() + self.result_ttl_s, "result": result}, ensure_ascii=False)
        await self._io(self._prepare)
        await self._io(_write_atomic, self._result_path(job_id), payload)

    async def get_result(self, job_id: str) -> dict[str, Any] | None:
        return await self._io(self._get_result, job_id)

    async def renew(self, owner: str, job_ids: list[str], until: float) -> None:
        if job_ids:
            async with self._locked():
                await self._io(self._renew, owner, job_ids, until)

    async def claim_orphans(self, now: float, limit: int = 100) -> list[JobRecord]:
        async with self._locked():
            return await self._io(self._claim, now, limit)

    async def close(self) -> None:
        return None
