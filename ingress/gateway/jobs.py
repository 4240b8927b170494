"""Async voice jobs (`voice_translate_async`): status, progress, cancel, history, and webhooks.

Jobs live in the ZMQ ingress replica, bounded to the most recent `max_jobs`: the gateway polls a
job while it runs and receives its final event on PUB, so the record only has to outlive the job
by a little. A webhook, when given, is POSTed the final event, signed (Standard Webhooks), through the
outbound guard, with bounded retries.

A job started for a user belongs to that user: status and cancel must name the same `userId`, and
anyone else is told the job does not exist (the same NOT_FOUND as an unknown id, so a guessed job
id reveals nothing). History (`ingress/gateway/history.py`) lists one user's translations, never everyone's.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import httpx
from pydantic import BaseModel, Field
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from serve_app.errors import NotFoundError
from serve_app.observability.metrics import JOBS
from serve_app.security.outbound import (
    OutboundFailedError,
    OutboundRefusedError,
    outbound_client,
    redact_url,
    vet_url,
)
from serve_app.settings import GatewaySettings

log = logging.getLogger(__name__)

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
JOB_STATES: tuple[str, ...] = get_args(JobStatus)


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



class JobRegistry:
    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self.jobs: OrderedDict[str, VoiceJobRecord] = OrderedDict()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self._export_counts()  # every state from the start, at 0: a dashboard sees "no jobs", not "no data"

    def create(self, task_id: str, user_id: str | None, targets: list[str]) -> VoiceJobRecord:
        job = VoiceJobRecord(jobId=f"vjob_{uuid.uuid4().hex[:16]}", taskId=task_id, userId=user_id,
                             targetLanguages=targets)
        self.jobs[job.jobId] = job
        if len(self.jobs) > self.max_jobs:  # forget the oldest finished jobs; running ones are kept
            finished = [j for j, r in self.jobs.items() if r.status not in ("pending", "processing")]
            for old_id in finished[: len(self.jobs) - self.max_jobs]:
                self.jobs.pop(old_id)
        self._export_counts()
        return job

    def get(self, job_id: str, user_id: str | None = None) -> VoiceJobRecord:
        job = self.jobs.get(job_id)
        if job is None or (job.userId is not None and job.userId != user_id):
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
        if "status" in changes:
            self._export_counts()

    def attach(self, job: VoiceJobRecord, task: asyncio.Task[Any]) -> None:
        self.tasks[job.jobId] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.jobId, None))

    def cancel(self, job_id: str, user_id: str | None = None) -> VoiceJobRecord:
        job = self.get(job_id, user_id)
        task = self.tasks.get(job_id)
        if job.status in ("pending", "processing") and task is not None:
            task.cancel()
            self.update(job, status="cancelled", currentStep="cancelled")
        return job


    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out

    def _export_counts(self) -> None:
        counts = self.counts()
        for state in JOB_STATES:
            JOBS.set(counts.get(state, 0), state=state)


WEBHOOK_BACKOFF_S = 0.5  # first pause between attempts; doubled after each, at most WEBHOOK_BACKOFF_MAX_S
WEBHOOK_BACKOFF_MAX_S = 5.0


def _backoff_s(retry: int) -> float:
    return min(WEBHOOK_BACKOFF_S * 2**retry, WEBHOOK_BACKOFF_MAX_S)


def webhook_deadline_s(attempts: int, timeout_s: float) -> float:
    """The whole delivery: every attempt at its timeout plus every pause between them."""
    return attempts * timeout_s + sum(_backoff_s(retry) for retry in range(attempts - 1))


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


async def deliver_webhook(url: str, payload: dict[str, Any], settings: GatewaySettings, message_id: str) -> bool:
    """POST the final event, signed (Standard Webhooks); True only when the receiver answered 2xx. Never raises.

    `webhook-id` is `message_id` (the job id: the same on every attempt, so a receiver can de-duplicate),
    `webhook-timestamp` the attempt's time, `webhook-signature` `v1,<HMAC-SHA256 of id.timestamp.body>` with
    `webhook_secret`; no secret = not sent. The URL goes through the outbound guard on every attempt and
    redirects are not followed. Retried with backoff on 5xx, 429, timeouts and connection errors; any
    other answer is final. The whole delivery is bounded by `webhook_deadline_s`.
    """
    where = redact_url(url)
    if not settings.webhook_secret:
        log.warning("webhook %s for %s not sent: no webhook_secret is configured", where, message_id)
        return False
    try:
        signer = Webhook(settings.webhook_secret)
    except (ValueError, binascii.Error, EmptyWebhookSecretError):
        log.error("webhook %s for %s not sent: webhook_secret is not a valid whsec_<base64> secret", where, message_id)
        return False
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    attempts, timeout_s = settings.webhook_attempts, settings.webhook_timeout_s
    outcome = "no attempt"
    try:
        async with asyncio.timeout(webhook_deadline_s(attempts, timeout_s)), outbound_client(timeout_s) as client:
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(_backoff_s(attempt - 1))
                try:
                    async with asyncio.timeout(timeout_s):
                        target = await vet_url(url, settings.outbound_allowed_hosts, "webhookUrl")
                        now = datetime.now(tz=UTC)
                        headers = {
                            "content-type": "application/json",
                            "webhook-id": message_id,
                            "webhook-timestamp": str(int(now.timestamp())),
                            "webhook-signature": signer.sign(message_id, now, body),
                        }
                        response = await client.send(target.request(client, "POST", headers=headers,
                                                                     content=body.encode("utf-8")), stream=True)
                        await response.aclose()  # the receiver's body is not needed (nor read: it may be huge)
                except OutboundRefusedError as exc:
                    log.warning("webhook %s for %s not sent: %s", where, message_id, exc.message)
                    return False
                except (OutboundFailedError, httpx.TransportError, TimeoutError) as exc:
                    outcome = f"{type(exc).__name__}"
                    continue
                if 200 <= response.status_code < 300:
                    log.info("webhook %s for %s delivered (HTTP %d, attempt %d)", where, message_id,
                             response.status_code, attempt + 1)
                    return True
                outcome = f"HTTP {response.status_code}"
                if not _retryable_status(response.status_code):
                    log.warning("webhook %s for %s not delivered: the receiver answered %s (final)", where,
                                message_id, outcome)
                    return False
    except httpx.HTTPError as exc:  # anything else httpx raises: not delivered, and the job task goes on
        outcome = type(exc).__name__
    except TimeoutError:
        outcome = f"the delivery deadline ({webhook_deadline_s(attempts, timeout_s):g} s) passed after {outcome}"
    log.warning("webhook %s for %s not delivered after %d attempt(s): %s", where, message_id, attempts, outcome)
    return False
