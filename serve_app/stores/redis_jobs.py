"""Async voice jobs in Redis: the shared job store when ``REDIS_URL`` is set.

Keys (prefix ``voicejob:``): ``rec:<id>`` the record (JSON), ``res:<id>`` the result (JSON, its own
TTL), ``task:<key>`` the idempotency key of a submission, ``running`` a sorted set of running jobs
scored by lease expiry, ``all`` every job scored by creation (to keep at most ``max_jobs``),
``owners`` the replica running each running job.

Every command runs under a short deadline and a circuit breaker: a dead Redis is a
`StoreUnavailableError` (503) in about a second, then at once while the breaker is open. An orphan
is claimed by a server-side script that removes it from ``running`` only if its lease has run out,
so two replicas never both report the same job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.errors import StoreUnavailableError, store_failure
from serve_app.stores.job_store import JobRecord, task_key

T = TypeVar("T")
PREFIX = "voicejob:"
RUNNING_KEY = PREFIX + "running"
ALL_KEY = PREFIX + "all"
OWNERS_KEY = PREFIX + "owners"
CLAIM_KEYS = [RUNNING_KEY, OWNERS_KEY]
# Remove ARGV[1] from the running set only if its lease (the score) is before ARGV[2]: the claim.
_CLAIM = """
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if lease and tonumber(lease) < tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""
# Save a record (ARGV[1], JSON) only while its job is still owned by ARGV[2]; ARGV[3] = TTL when finished.
# KEYS: the record, the owners hash, the running set, the task key; ARGV[4] the job id.
_SAVE_IF_OWNED = """
if redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[2] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('HDEL', KEYS[2], ARGV[4])
end
return 1
"""
# Extend the lease of the ids (ARGV[3..]) still running and owned by ARGV[1] to ARGV[2].
_RENEW = """
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
  end
end
return 0
"""


def _rec(job_id: str) -> str:
    return f"{PREFIX}rec:{job_id}"


def _res(job_id: str) -> str:
    return f"{PREFIX}res:{job_id}"


def _task(key: str) -> str:
    return f"{PREFIX}task:{key}"


class RedisJobStore:
    backend = "redis"

    def __init__(self, url: str, *, max_jobs: int, record_ttl_s: int, result_ttl_s: int,
                 connect_timeout_s: float = 0.5, socket_timeout_s: float = 0.5,
                 breaker: CircuitBreaker | None = None) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis = Redis.from_url(url, socket_connect_timeout=connect_timeout_s, socket_timeout=socket_timeout_s,
                                     retry=Retry(NoBackoff(), 0), decode_responses=True)
        self._deadline_s = 2 * max(connect_timeout_s, socket_timeout_s)
        self.breaker = breaker or CircuitBreaker()
        self.max_jobs = max_jobs
        self.record_ttl_s = int(record_ttl_s)
        self.result_ttl_s = int(result_ttl_s)
        self._claim = self._redis.register_script(_CLAIM)
        self._save = self._redis.register_script(_SAVE_IF_OWNED)
        self._renew = self._redis.register_script(_RENEW)

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise StoreUnavailableError("job store unavailable (Redis failed recently); retry shortly")
        try:
            async with asyncio.timeout(self._deadline_s):
                result = await op()
        except Exception as exc:  # noqa: BLE001 - any Redis failure is the same clear 503
            self.breaker.record_failure()
            raise store_failure(StoreUnavailableError, "job store did not answer", exc,
                                detail=f"Redis {what}") from exc
        self.breaker.record_success()
        return result

    async def start(self) -> None:
        await self._call("ping", self._redis.ping)

    async def create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        key = _task(task_key(job.userId, job.taskId))
        for _ in range(3):
            if await self._call("create", lambda: self._redis.set(key, job.jobId, nx=True)):
                await self._write_new(job)
                await self._trim()
                return job, True
            existing_id = await self._call("create", lambda: self._redis.get(key))
            existing = await self.get(existing_id) if existing_id else None
            if existing is not None:
                return existing, False
            await self._call("create", lambda: self._redis.delete(key))  # its record expired: take the key over
        raise StoreUnavailableError("job store is busy with this task id; retry shortly")

    async def _write_new(self, job: JobRecord) -> None:
        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(_rec(job.jobId), job.model_dump_json())
                pipe.zadd(RUNNING_KEY, {job.jobId: job.leaseUntil})
                pipe.hset(OWNERS_KEY, job.jobId, job.owner)
                pipe.zadd(ALL_KEY, {job.jobId: job.createdAt})
                await pipe.execute()

        await self._call("create", write)

    async def _trim(self) -> None:
        """Beyond max_jobs, forget the oldest jobs that are not running."""
        excess = await self._call("trim", lambda: self._redis.zcard(ALL_KEY)) - self.max_jobs
        if excess <= 0:
            return
        oldest: list[str] = await self._call("trim", lambda: self._redis.zrange(ALL_KEY, 0, 2 * excess + 9))
        for job_id in oldest:
            if excess <= 0:
                break
            if await self._call("trim", lambda j=job_id: self._redis.zscore(RUNNING_KEY, j)) is not None:
                continue
            await self._forget(job_id)
            excess -= 1

    async def _forget(self, job_id: str) -> None:
        job = await self.get(job_id)

        async def delete() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(_rec(job_id), _res(job_id))
                pipe.zrem(ALL_KEY, job_id)
                pipe.hdel(OWNERS_KEY, job_id)
                if job is not None:
                    pipe.delete(_task(task_key(job.userId, job.taskId)))
                await pipe.execute()

        await self._call("forget", delete)

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._call("get", lambda: self._redis.get(_rec(job_id)))
        return JobRecord.model_validate_json(raw) if raw else None

    async def save(self, job: JobRecord) -> bool:
        keys = [_rec(job.jobId), OWNERS_KEY, RUNNING_KEY, _task(task_key(job.userId, job.taskId))]
        args = [job.model_dump_json(), job.owner, 0 if job.running else self.record_ttl_s, job.jobId]
        return bool(await self._call("save", lambda: self._save(keys=keys, args=args)))

    async def _write_finished(self, job: JobRecord) -> None:
        """The claimer's write of an interrupted job (no longer anyone's)."""
        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(_rec(job.jobId), job.model_dump_json(), ex=self.record_ttl_s)
                pipe.expire(_task(task_key(job.userId, job.taskId)), self.record_ttl_s)
                await pipe.execute()

        await self._call("claim", write)

    async def put_result(self, job_id: str, result: dict[str, Any]) -> None:
        payload = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        await self._call("put_result", lambda: self._redis.set(_res(job_id), payload, ex=self.result_ttl_s))

    async def get_result(self, job_id: str) -> dict[str, Any] | None:
        raw = await self._call("get_result", lambda: self._redis.get(_res(job_id)))
        value = json.loads(raw) if raw else None
        return value if isinstance(value, dict) else None

    async def renew(self, owner: str, job_ids: list[str], until: float) -> None:
        if job_ids:  # XX: a job already claimed (or finished) is not put back
            keys, args = [RUNNING_KEY, OWNERS_KEY], [owner, until, *job_ids]
            await self._call("renew", lambda: self._renew(keys=keys, args=args))

    async def claim_orphans(self, now: float, limit: int = 100) -> list[JobRecord]:
        expired: list[str] = await self._call(
            "claim", lambda: self._redis.zrangebyscore(RUNNING_KEY, "-inf", f"({now}", start=0, num=limit))
        claimed: list[JobRecord] = []
        for job_id in expired:
            if not await self._call("claim", lambda j=job_id: self._claim(keys=CLAIM_KEYS, args=[j, now])):
                continue  # another replica claimed it, or its owner renewed the lease meanwhile
            job = await self.get(job_id)
            if job is None or not job.running:
                continue
            job = job.interrupted()
            await self._write_finished(job)
            claimed.append(job)
        return claimed

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection must not fail shutdown
            pass
