"""Async voice jobs (`voice_translate_async`): status, progress, cancel, history, and webhooks.

Jobs live in the ZMQ ingress replica, bounded to the most recent `max_jobs`: the gateway polls a
job while it runs and receives its final event on PUB, so the record only has to outlive the job
by a little. A webhook, when given, is POSTed the final event with bounded retries (tenacity).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from serve_app.errors import NotFoundError

log = logging.getLogger(__name__)

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]


class VoiceJobRecord(BaseModel):
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
    result: dict[str, Any] | None = None
    error: str | None = None
    errorCode: str | None = None

    def public(self, include_result: bool = True) -> dict[str, Any]:
        return self.model_dump(exclude=None if include_result else {"result"})


class JobRegistry:
    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self.jobs: OrderedDict[str, VoiceJobRecord] = OrderedDict()
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def create(self, task_id: str, user_id: str | None, targets: list[str]) -> VoiceJobRecord:
        job = VoiceJobRecord(jobId=f"vjob_{uuid.uuid4().hex[:16]}", taskId=task_id, userId=user_id,
                             targetLanguages=targets)
        self.jobs[job.jobId] = job
        if len(self.jobs) > self.max_jobs:  # forget the oldest finished jobs; running ones are kept
            finished = [j for j, r in self.jobs.items() if r.status not in ("pending", "processing")]
            for old_id in finished[: len(self.jobs) - self.max_jobs]:
                self.jobs.pop(old_id)
        return job

    def get(self, job_id: str) -> VoiceJobRecord:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no voice job {job_id!r} (unknown, or finished long ago)")
        return job

    def update(self, job: VoiceJobRecord, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(job, key, value)
        job.updatedAt = time.time()
        if job.status != "pending" and job.startedAt is None:
            job.startedAt = job.updatedAt
        if job.status in ("completed", "failed", "cancelled") and job.completedAt is None:
            job.completedAt = job.updatedAt

    def attach(self, job: VoiceJobRecord, task: asyncio.Task[Any]) -> None:
        self.tasks[job.jobId] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.jobId, None))

    def cancel(self, job_id: str) -> VoiceJobRecord:
        job = self.get(job_id)
        task = self.tasks.get(job_id)
        if job.status in ("pending", "processing") and task is not None:
            task.cancel()
            self.update(job, status="cancelled", currentStep="cancelled")
        return job

    def history(self, user_id: str | None, limit: int = 50) -> list[dict[str, Any]]:
        jobs = [j for j in reversed(self.jobs.values()) if user_id is None or j.userId == user_id]
        return [j.public(include_result=False) for j in jobs[:limit]]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out


async def deliver_webhook(url: str, payload: dict[str, Any], attempts: int, timeout_s: float) -> bool:
    """POST the final event; retried with backoff on network errors and 5xx. Never raises."""
    if not url.startswith(("http://", "https://")):
        log.warning("webhook %r ignored: not an http(s) URL", url[:80])
        return False
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.5, max=5),
                retry=retry_if_exception_type(httpx.HTTPError),
                reraise=True,
            ):
                with attempt:
                    response = await client.post(url, json=payload)
                    if response.status_code >= 500:
                        response.raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning("webhook %s failed after %d attempts: %s", url, attempts, exc)
        return False
