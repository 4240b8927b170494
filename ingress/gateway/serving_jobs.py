"""Async voice jobs on the voice API: `voice_translate_async`, job status and cancel, the user's history.

The async request acks with a job id and returns: the job runs as its own task, bounded separately
(`zmq_max_in_flight` running jobs), so long jobs and their webhook retries never hold the request
slots that text translations need. The job reports `voice_job_progress`, then exactly one
`voice_translation_completed` / `voice_translation_failed` (a cancel included), which is also
POSTed to the webhook when one was given; its `result` is the same `VoiceTranslationResult` as
voice_translate's. Status (`TranslationJob`), cancel (`{success, message}`) and history
(`{history: TranslationHistoryEntry[], total}`) return their `result`; the router wraps it in
`voice_api_success`. Status and cancel find a user's job only when the request names that user
(`JobRegistry.get`); history needs a `userId` (its request model says so).

Records and results are in the job store, so status answers across restarts and from any replica;
cancel stops a job running in this replica. While the door runs it renews its jobs' leases and
reports jobs orphaned by a dead replica (`voice_translation_failed`, `job_interrupted`, webhook).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC
from typing import Any

from ingress.gateway.context import Call, Publish
from ingress.gateway.errors import voice_api_error_code
from ingress.gateway.history import VoiceHistory
from ingress.gateway.jobs import JobRegistry, VoiceJobRecord, deliver_webhook
from ingress.gateway.protocol.events import VoiceApiSuccess, VoiceJobFinished, VoiceJobProgress
from ingress.gateway.protocol.requests import VoiceHistoryRequest, VoiceJobRequest, VoiceTranslateAsyncRequest
from ingress.gateway.protocol.results import VoiceHistoryPage, VoiceJobAccepted, VoiceJobCancelResult
from ingress.gateway.rendering import history_entry, translation_job, voice_translation_result
from ingress.gateway.voice_inputs import voice_job
from serve_app.domain.voice import VoiceJob
from serve_app.errors import BusyError, ServiceError, as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)


class JobLost(Exception):
    """The job is no longer this replica's: another one claimed it as interrupted and reported it."""


class ServingJobs:
    def __init__(self, pipeline: VoicePipeline, settings: Settings, jobs: JobRegistry, history: VoiceHistory) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.jobs = jobs
        self.voice_history = history
        self.maintenance: asyncio.Task[None] | None = None
        self.reports: set[asyncio.Task[None]] = set()

    async def start(self, publish: Publish) -> None:
        """Reach the job store, then keep this replica's leases fresh and report jobs orphaned by a
        replica that is gone (at once, then every third of a lease)."""
        await self.jobs.start()
        self.maintenance = asyncio.create_task(self._maintain(publish), name="voice-job-leases")

    def close(self) -> None:
        if self.maintenance is not None:
            self.maintenance.cancel()
        self.jobs.close()

    async def _maintain(self, publish: Publish) -> None:
        while True:
            try:
                await self.jobs.renew_leases()
                for job in await self.jobs.claim_orphans():
                    log.warning("voice job %s was interrupted (its replica %s is gone); reporting it failed",
                                job.jobId, job.owner)
                    report = asyncio.create_task(self._report_interrupted(job, publish))
                    self.reports.add(report)
                    report.add_done_callback(self.reports.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a store outage is retried at the next round
                log.warning("voice job leases: %s", as_service_error(exc).message)
            await asyncio.sleep(self.jobs.lease_s / 3)

    async def _report_interrupted(self, job: VoiceJobRecord, publish: Publish) -> None:
        """The same final event and webhook as any failed job."""
        self.voice_history.record_failure()
        final = VoiceJobFinished(type="voice_translation_failed", taskId=job.taskId, jobId=job.jobId,
                                 status="failed", userId=job.userId, error=job.error, errorCode=job.errorCode)
        await publish(final, ())
        await self._webhook(job, final)

    async def _webhook(self, job: VoiceJobRecord, final: VoiceJobFinished) -> None:
        if job.webhookUrl:
            await deliver_webhook(job.webhookUrl, {**final.to_wire(), "callbackMetadata": job.callbackMetadata or {}},
                                  self.settings, job.jobId)

    async def translate_async(self, req: VoiceTranslateAsyncRequest, call: Call) -> None:
        """Publishes its own ack (processingTimeMs 0) before the job's first progress event. The same
        taskId from the same user while its job is remembered is acked with that job, never run twice."""
        job_input = await voice_job(req, self.settings)  # a bad request fails now, before a job id is handed out
        if len(self.jobs.tasks) >= self.settings.zmq_max_in_flight:
            raise BusyError(f"{len(self.jobs.tasks)} voice jobs running; retry shortly")
        job, created = await self.jobs.create(req.taskId, req.userId, job_input.target_languages, req.webhookUrl,
                                              req.callbackMetadata)
        if created:
            self.jobs.attach(job, asyncio.create_task(self._job_task(req, job, job_input, call)))
        accepted = VoiceJobAccepted(jobId=job.jobId, status=job.status)
        await call.publish(VoiceApiSuccess(taskId=req.taskId, requestType=req.type, result=accepted.to_wire(),
                                           processingTimeMs=0), ())

    async def status(self, req: VoiceJobRequest, call: Call) -> dict[str, Any]:
        job = await self.jobs.get(req.jobId, req.userId)
        return translation_job(job, await self.jobs.result(job)).to_wire()

    async def cancel(self, req: VoiceJobRequest, call: Call) -> dict[str, Any]:
        job, cancelled = await self.jobs.cancel(req.jobId, req.userId)
        if cancelled:
            message = "the job was cancelled"
        elif job.running:
            message = "the job is running on another replica; it cannot be cancelled from this one"
        else:
            message = f"the job is already {job.status}; nothing to cancel"
        return VoiceJobCancelResult(success=cancelled, message=message, jobId=job.jobId, status=job.status).to_wire()

    async def history(self, req: VoiceHistoryRequest, call: Call) -> dict[str, Any]:
        """The user's translations, newest first."""
        since = req.startDate.replace(tzinfo=req.startDate.tzinfo or UTC).timestamp() if req.startDate else 0.0
        until = req.endDate.replace(tzinfo=req.endDate.tzinfo or UTC).timestamp() if req.endDate else float("inf")
        entries, total = self.voice_history.page(req.userId, req.limit, req.offset, since, until)
        return VoiceHistoryPage(history=entries, total=total, limit=req.limit, offset=req.offset).to_wire()

    async def _job_task(self, req: VoiceTranslateAsyncRequest, job: VoiceJobRecord, job_input: VoiceJob,
                        call: Call) -> None:
        try:
            final = await self._run_job(req, job, job_input, call)
        except JobLost:
            return  # another replica reported it interrupted: one terminal answer only
        except asyncio.CancelledError:
            if self.jobs.stopping:
                return  # the replica is going away: the job's lease runs out and the next replica reports it
            final = VoiceJobFinished(type="voice_translation_failed", taskId=req.taskId, jobId=job.jobId,
                                     status="cancelled", userId=req.userId, error="the job was cancelled",
                                     errorCode="CANCELLED")
            await call.publish(final, ())
            return  # the cancel is complete and reported
        await self._webhook(job, final)

    async def _run_job(self, req: VoiceTranslateAsyncRequest, job: VoiceJobRecord, job_input: VoiceJob,
                       call: Call) -> VoiceJobFinished:
        async def progress(value: int, step: str) -> None:
            if not await self.jobs.update(job, status="processing", progress=value, currentStep=step):
                raise JobLost
            await call.publish(VoiceJobProgress(taskId=req.taskId, jobId=job.jobId, progress=value,
                                                currentStep=step), ())

        n = len(job_input.target_languages)
        done = 0
        await progress(5, "transcribing")
        try:
            async for event in self.pipeline.process_voice(job_input):
                if event.kind == "transcription":
                    await progress(30, "translating")
                elif event.kind in ("language", "language_failed"):
                    done += 1
                    lang = (event.language or event.failure).target_language  # type: ignore[union-attr]
                    await progress(30 + int(65 * done / n), f"language {lang} done")
                elif event.kind == "completed" and event.result is not None:
                    translation = voice_translation_result(event.result, req.userId)
                    entry = history_entry(translation, job_input.target_languages, req.type, job.jobId)
                    self.voice_history.record(entry)
                    result = translation.to_wire()
                    if not await self.jobs.finish(job, result):
                        raise JobLost
                    final = VoiceJobFinished(type="voice_translation_completed", taskId=req.taskId, jobId=job.jobId,
                                             status="completed", userId=req.userId, result=result)
                    await call.publish(final, ())
                    return final
            raise ServiceError("the pipeline ended without a result")
        except (asyncio.CancelledError, JobLost):
            raise
        except Exception as exc:  # noqa: BLE001 - the job fails with its reason, the loop goes on
            err = as_service_error(exc)
            self.voice_history.record_failure()
            if not await self.jobs.update(job, status="failed", currentStep="failed", error=err.message,
                                          errorCode=voice_api_error_code(err)):
                raise JobLost from exc
            final = VoiceJobFinished(type="voice_translation_failed", taskId=req.taskId, jobId=job.jobId,
                                     status="failed", userId=req.userId, error=err.message,
                                     errorCode=voice_api_error_code(err))
            await call.publish(final, ())
            return final
