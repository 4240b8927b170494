"""Async voice jobs in MongoDB (motor): the job store when ``MONGODB_URL`` is set and ``REDIS_URL`` is not.

``voice_jobs`` holds one document per job (``_id`` the job id, a unique ``taskKey`` for idempotent
submission, ``expiresAt`` once finished), ``voice_job_results`` the results (``expiresAt`` too). TTL
indexes let the server delete expired documents, and reads ignore expired ones until it has. An
orphan is claimed by a conditional update (still running, lease still expired), which MongoDB
applies atomically, so exactly one replica reports it. Driver timeouts are small and every call has
an overall deadline (mongo_calls.py, shared with the profile store): an unreachable server is a 503, never a hang.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

from serve_app.stores.errors import StoreUnavailableError
from serve_app.stores.job_store import FINISHED, RUNNING, JobRecord, task_key
from serve_app.stores.mongo_calls import call_deadline_s, mongo_guard, motor_client

JOBS_COLLECTION = "voice_jobs"
RESULTS_COLLECTION = "voice_job_results"


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class MongoJobStore:
    backend = "mongodb"

    def __init__(self, url: str, database: str = "voice_translator", *, max_jobs: int, record_ttl_s: int,
                 result_ttl_s: int, timeout_ms: int = 2000) -> None:
        self._deadline_s = call_deadline_s(timeout_ms)
        self._client = motor_client(url, timeout_ms)
        db = self._client[database]
        self._db = db
        self._jobs = db[JOBS_COLLECTION]
        self._results = db[RESULTS_COLLECTION]
        self.max_jobs = max_jobs
        self.record_ttl_s = record_ttl_s
        self.result_ttl_s = result_ttl_s

    def _guard(self, what: str) -> contextlib.AbstractAsyncContextManager[None]:
        return mongo_guard(self._deadline_s, "job store", what)

    async def start(self) -> None:
        async with self._guard("start"):
            await self._db.command("ping")
            await self._jobs.create_index("taskKey", unique=True)
            await self._jobs.create_index([("status", ASCENDING), ("leaseUntil", ASCENDING)])
            await self._jobs.create_index("createdAt")
            for collection in (self._jobs, self._results):
                with contextlib.suppress(OperationFailure):  # reads ignore expired documents anyway
                    await collection.create_index("expiresAt", expireAfterSeconds=0)

    def _document(self, job: JobRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {**job.model_dump(), "_id": job.jobId, "taskKey": task_key(job.userId, job.taskId)}
        if job.status in FINISHED:
            doc["expiresAt"] = _at((job.completedAt or job.updatedAt) + self.record_ttl_s)
        return doc

    @staticmethod
    def _live(doc: dict[str, Any] | None) -> JobRecord | None:
        if not doc:
            return None
        expires = doc.get("expiresAt")
        if expires is not None and expires <= datetime.now(UTC):
            return None
        return JobRecord.model_validate(doc)

    async def create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        key = task_key(job.userId, job.taskId)
        for _ in range(3):
            try:
                async with self._guard("create"):
                    await self._jobs.insert_one(self._document(job))
                await self._trim()
                return job, True
            except DuplicateKeyError:
                async with self._guard("create"):
                    doc = await self._jobs.find_one({"taskKey": key})
                existing = self._live(doc)
                if existing is not None:
                    return existing, False
                if doc is not None:  # expired but not yet deleted by the server: take the key over
                    async with self._guard("create"):
                        await self._jobs.delete_one({"_id": doc["_id"]})
        raise StoreUnavailableError("job store is busy with this task id; retry shortly")

    async def _trim(self) -> None:
        async with self._guard("trim"):
            excess = await self._jobs.count_documents({}) - self.max_jobs
            if excess <= 0:
                return
            cursor = self._jobs.find({"status": {"$in": list(FINISHED)}}, {"_id": True}).sort("createdAt", ASCENDING)
            ids = [d["_id"] for d in await cursor.limit(excess).to_list(length=excess)]
            if ids:
                await self._jobs.delete_many({"_id": {"$in": ids}})
                await self._results.delete_many({"_id": {"$in": ids}})

    async def get(self, job_id: str) -> JobRecord | None:
        async with self._guard("get"):
            doc = await self._jobs.find_one({"_id": job_id})
        return self._live(doc)

    async def save(self, job: JobRecord) -> bool:
        async with self._guard("save"):
            still_ours = {"_id": job.jobId, "owner": job.owner, "status": {"$in": list(RUNNING)}}
            result = await self._jobs.replace_one(still_ours, self._document(job))
        return result.matched_count == 1

    async def put_result(self, job_id: str, result: dict[str, Any]) -> None:
        doc = {"_id": job_id, "result": result, "expiresAt": _at(datetime.now(UTC).timestamp() + self.result_ttl_s)}
        async with self._guard("put_result"):
            await self._results.replace_one({"_id": job_id}, doc, upsert=True)

    async def get_result(self, job_id: str) -> dict[str, Any] | None:
        async with self._guard("get_result"):
            doc = await self._results.find_one({"_id": job_id})
        if not doc or doc["expiresAt"] <= datetime.now(UTC):
            return None
        result = doc.get("result")
        return result if isinstance(result, dict) else None

    async def renew(self, owner: str, job_ids: list[str], until: float) -> None:
        if job_ids:
            async with self._guard("renew"):
                mine = {"_id": {"$in": job_ids}, "owner": owner, "status": {"$in": list(RUNNING)}}
                await self._jobs.update_many(mine, {"$set": {"leaseUntil": until}})

    async def claim_orphans(self, now: float, limit: int = 100) -> list[JobRecord]:
        expired = {"status": {"$in": list(RUNNING)}, "leaseUntil": {"$lt": now}}
        async with self._guard("claim"):
            docs = await self._jobs.find(expired).limit(limit).to_list(length=limit)
        claimed: list[JobRecord] = []
        for doc in docs:
            job = JobRecord.model_validate(doc).interrupted()
            update = {k: v for k, v in self._document(job).items() if k != "_id"}
            async with self._guard("claim"):
                result = await self._jobs.update_one({"_id": job.jobId, **expired}, {"$set": update})
            if result.modified_count == 1:
                claimed.append(job)
        return claimed

    async def close(self) -> None:
        self._client.close()
