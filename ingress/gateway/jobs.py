"""Async voice jobs (`voice_translate_async`): status, progress, cancel, history, and webhooks.

Job records live in the job store (`serve_app.stores.job_store`: Redis, MongoDB or files), results
apart with their own TTL, so status answers from any replica and after a restart, and no replica
keeps a finished job's audio. The replica running a job holds its task and renews its lease; a job
whose lease runs out (its replica died) is claimed by another and reported failed
(`job_interrupted`) like any failed job: the final event on PUB and the webhook. A webhook, when
given, is POSTed the final event, signed (Standard Webhooks), through the outbound guard, with
bounded retries.

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
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from serve_app.errors import NotFoundError, ServiceError
from serve_app.security.outbound import (
    OutboundFailedError,
    OutboundRefusedError,
    outbound_client,
    redact_url,
    vet_url,
)
from serve_app.settings import GatewaySettings
from serve_app.stores.job_store import JobRecord, JobStore

log = logging.getLogger(__name__)

VoiceJobRecord = JobRecord  # the record as stored (serve_app.stores.job_store)


class JobRegistry:
    """This replica's side of the job store: the jobs it runs (their tasks and latest records, kept
    only while they run) and their leases. Everything a status query reads comes from the store."""

    def __init__(self, store: JobStore, lease_s: float, instance_id: str | None = None) -> None:
        self.store = store
        self.lease_s = lease_s
        self.instance_id = instance_id or f"zmq-{uuid.uuid4().hex[:16]}"
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.running: dict[str, JobRecord] = {}
        # Finished here but not yet saved (the store failed): saved again, and kept leased, until it takes
        # them, so a job that already had its final event is never reported interrupted as well.
        self.unsaved: dict[str, JobRecord] = {}
        self.stopping = False  # the replica is closing: its jobs stay running in the store, for the lease to expire

    async def start(self) -> None:
        """A store that does not answer now is logged, not fatal: job requests get its 503 until it does."""
        try:
            await self.store.start()
        except ServiceError as exc:
            log.error("job store (%s) unavailable at start: %s", self.store.backend, exc.message)

    async def create(self, task_id: str, user_id: str | None, targets: list[str], webhook_url: str | None,
                     callback_metadata: dict[str, Any] | None) -> tuple[JobRecord, bool]:
        """The new job, or the one already submitted with this taskId by this user: (job, created)."""
        job = JobRecord(jobId=f"vjob_{uuid.uuid4().hex[:16]}", taskId=task_id, userId=user_id,
                        targetLanguages=targets, webhookUrl=webhook_url, callbackMetadata=callback_metadata,
                        owner=self.instance_id, leaseUntil=time.time() + self.lease_s)
        stored, created = await self.store.create(job)
        if created:
            self.running[job.jobId] = job
        return stored, created

    async def get(self, job_id: str, user_id: str | None = None) -> JobRecord:
        """From the store (any replica's job); someone else's job is as unknown as a missing one."""
        try:
            job = await self.store.get(job_id)
        except ServiceError:
            job = self.running.get(job_id)
            if job is None:
                raise
        if job is None or (job.userId is not None and job.userId != user_id):
            raise NotFoundError(f"no voice job {job_id!r} (unknown, or finished long ago)")
        return job

    async def result(self, job: JobRecord) -> dict[str, Any] | None:
        return await self.store.get_result(job.jobId) if job.hasResult else None

    async def update(self, job: JobRecord, **changes: Any) -> bool:
        """Apply and save; False when the job is no longer this replica's (another replica reported it
        interrupted): its runner stops without a second final event. A store that fails here is logged
        and the job goes on as ours (a final state is saved again later, `renew_leases`)."""
        job.apply(**changes)
        if not job.running:
            self.running.pop(job.jobId, None)
        try:
            owned = await self.store.save(job)
        except ServiceError as exc:
            log.warning("job %s: state %s not saved: %s", job.jobId, job.status, exc.message)
            if not job.running:
                self.unsaved[job.jobId] = job
            return True
        self.unsaved.pop(job.jobId, None)
        if not owned:
            log.warning("job %s is no longer this replica's (it was reported interrupted); dropping it", job.jobId)
            self.running.pop(job.jobId, None)
        return owned

    async def finish(self, job: JobRecord, result: dict[str, Any]) -> bool:
        """Completed: the result goes to the store apart from the record (no replica keeps it)."""
        stored = False
        try:
            await self.store.put_result(job.jobId, result)
            stored = True
        except ServiceError as exc:
            log.error("job %s: result not stored: %s", job.jobId, exc.message)
        return await self.update(job, status="completed", progress=100, currentStep="completed", hasResult=stored)

    def attach(self, job: JobRecord, task: asyncio.Task[Any]) -> None:
        self.tasks[job.jobId] = task

        def done(_: asyncio.Task[Any]) -> None:
            self.tasks.pop(job.jobId, None)
            if not self.stopping:
                self.running.pop(job.jobId, None)

        task.add_done_callback(done)

    async def cancel(self, job_id: str, user_id: str | None = None) -> tuple[JobRecord, bool]:
        """Cancels a job running in this replica and marks its record: (job, cancelled)."""
        job = await self.get(job_id, user_id)
        task = self.tasks.get(job_id)
        local = self.running.get(job_id)
        if not job.running or task is None or local is None:
            return job, False
        task.cancel()
        await self.update(local, status="cancelled", currentStep="cancelled")
        return local, True

    async def renew_leases(self) -> None:
        """Save what the store missed, then extend the leases of every job still ours."""
        for job in list(self.unsaved.values()):
            await self.store.save(job)  # False: it was taken meanwhile, nothing more to save either way
            self.unsaved.pop(job.jobId, None)
        mine = [*self.running, *self.unsaved]
        if mine:
            await self.store.renew(self.instance_id, mine, time.time() + self.lease_s)

    async def claim_orphans(self) -> list[JobRecord]:
        """Jobs whose replica is gone (their lease ran out), now marked failed for this replica to report."""
        return await self.store.claim_orphans(time.time())

    def counts(self) -> dict[str, int]:
        """The jobs running in this replica, by state."""
        out: dict[str, int] = {}
        for job in self.running.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out

    def close(self) -> None:
        """Stop the jobs without marking them: their leases run out and the next replica reports them."""
        self.stopping = True
        for task in list(self.tasks.values()):
            task.cancel()
        try:
            closing = asyncio.get_running_loop().create_task(self.store.close())
        except RuntimeError:  # no loop (a replica torn down from __del__): the process ends anyway
            return
        self._closing = closing  # held until done, so the task is not collected mid-way


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
