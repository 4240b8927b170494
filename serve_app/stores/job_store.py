"""Async voice jobs outside any replica's memory: the record every ZMQ ingress replica reads and writes.

Why a store: a job used to live in the replica that ran it, so a restart lost it silently (no final
event, no webhook, status NOT_FOUND) and a finished job kept its base64 audio in that replica. Now
the record (owner, state, progress, timestamps, the webhook to report to) is in Redis, MongoDB or
JSON files (`factory.build_job_store`), and the result (the audio) is stored apart under its own
TTL, so status answers from any replica and after a restart, and no replica holds results.

Interruption is found with a lease: the replica running a job refreshes `leaseUntil` every few
seconds; a pending/processing job whose lease has run out belongs to a replica that is gone.
`claim_orphans` marks such jobs failed (`job_interrupted`) atomically, so when several replicas
look at once exactly one of them reports each job (its final event and webhook).

Submission is idempotent per (userId, taskId): `create` returns the existing job while it is
remembered, so a re-pushed request never runs twice. Bounded: finished records expire after
`record_ttl_s`, results after `result_ttl_s`, and beyond `max_jobs` the oldest finished go first.
Values are JSON (pydantic), never pickle: a shared store is input.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
RUNNING: tuple[JobStatus, ...] = ("pending", "processing")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")
INTERRUPTED_CODE = "job_interrupted"
INTERRUPTED_MESSAGE = "the job was interrupted: the replica running it stopped before it finished"


class JobRecord(BaseModel):
    """One async voice job as stored (camelCase, like the wire's `TranslationJob`)."""

    jobId: str
    taskId: str
    userId: str | None = None
    status: JobStatus = "pending"
    progress: int = 0
    currentStep: str = "queued"
    createdAt: float = Field(default_factory=time.time)
    updatedAt: float = Field(default_factory=time.time)
    startedAt: float | None = None
    completedAt: float | None = None
    targetLanguages: list[str] = Field(default_factory=list)
    webhookUrl: str | None = None
    callbackMetadata: dict[str, Any] | None = None
    owner: str = Field(default="", description="Instance id of the replica running the job.")
    leaseUntil: float = 0.0
    hasResult: bool = Field(default=False, description="The result is stored apart (`JobStore.get_result`).")
    error: str | None = None
    errorCode: str | None = None

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    def apply(self, **changes: Any) -> JobRecord:
        """`changes` and the timestamps they imply (startedAt, completedAt, updatedAt), in place."""
        for key, value in changes.items():
            setattr(self, key, value)
        self.updatedAt = time.time()
        if self.status != "pending" and self.startedAt is None:
            self.startedAt = self.updatedAt
        if self.status in FINISHED and self.completedAt is None:
            self.completedAt = self.updatedAt
        return self

    def changed(self, **changes: Any) -> JobRecord:
        """A copy, with `apply(**changes)`."""
        return self.model_copy(deep=True).apply(**changes)

    def interrupted(self) -> JobRecord:
        return self.changed(status="failed", currentStep="failed", error=INTERRUPTED_MESSAGE,
                            errorCode=INTERRUPTED_CODE)


def task_key(user_id: str | None, task_id: str) -> str:
    """The idempotency key of a submission: the same taskId from the same user is the same job."""
    return hashlib.sha256(f"{user_id or ''}\x00{task_id}".encode()).hexdigest()[:40]


class JobStore(Protocol):
    """What the ZMQ ingress needs; each call either answers or raises `StoreUnavailableError` (503) /
    `StoreError` within the store's deadline, never hangs."""

    backend: str

    async def start(self) -> None:
        """Reach the server (or folder) and prepare it (indexes); fails fast if it is not there."""

    async def create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        """Store a new job, or return the one already stored for its (userId, taskId): (job, created)."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def save(self, job: JobRecord) -> bool:
        """Write the record of a job its owner still runs; a finished one starts its TTL and leaves the
        lease index. False (nothing written) when the job is no longer the owner's: another replica
        claimed it as interrupted (and reported it), or it already ended."""

    async def put_result(self, job_id: str, result: dict[str, Any]) -> None:
        """Store a finished job's result under its own TTL (`result_ttl_s`)."""

    async def get_result(self, job_id: str) -> dict[str, Any] | None:
        """The result, or None once it has expired."""

    async def renew(self, owner: str, job_ids: list[str], until: float) -> None:
        """Extend the lease of these running jobs of `owner` (others are left alone)."""

    async def claim_orphans(self, now: float, limit: int = 100) -> list[JobRecord]:
        """Running jobs whose lease ran out before `now`, marked failed (`job_interrupted`) and saved;
        each is returned to exactly one caller."""

    async def close(self) -> None: ...
