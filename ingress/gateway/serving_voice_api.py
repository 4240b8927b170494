"""The voice API (JSON only, camelCase): translate, analyze, compare, feedback, and the service's
health, figures and languages.

Handlers return the `result` as JSON, built from the gateway's own types (`protocol.results`); the
router wraps it in `voice_api_success` (with processingTimeMs) or, on failure, `voice_api_error`
with the API's own codes. Audio comes as base64 (or a path/URL), never as binary frames. `ping`
sits here too: like voice_health and voice_stats it reports the pipeline's readiness and the door's
own figures, but it answers with its own `pong` event, which a busy translator still sends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ingress.gateway.audio_sources import decode_base64, voice_api_audio
from ingress.gateway.context import Call, GatewayState
from ingress.gateway.jobs import JobRegistry
from ingress.gateway.protocol.events import SERVICE_VERSION, Pong
from ingress.gateway.protocol.requests import (
    PingRequest,
    VoiceApiRequest,
    VoiceAudioRequest,
    VoiceCompareRequest,
    VoiceFeedbackRequest,
    VoiceStatsRequest,
    VoiceTranslateRequest,
)
from ingress.gateway.protocol.results import VoiceFeedbackRecorded, VoiceSystemMetrics, VoiceUserStats
from ingress.gateway.rendering import (
    health_status,
    history_entry,
    models_loaded,
    supported_languages,
    voice_analyze_result,
    voice_compare_result,
    voice_translation_result,
)
from ingress.gateway.voice_inputs import voice_job
from serve_app.domain.profiles import iso_utc
from serve_app.errors import as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)
Json = dict[str, Any] | list[Any]


class ProcessMeter:
    """CPU (percent of one core since the previous reading) and resident memory of this process."""

    def __init__(self) -> None:
        self.last = (time.monotonic(), self._cpu_s())

    @staticmethod
    def _cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def cpu_percent(self) -> float:
        now, cpu = time.monotonic(), self._cpu_s()
        then, before = self.last
        self.last = (now, cpu)
        return round(100.0 * (cpu - before) / (now - then), 1) if now > then else 0.0

    @staticmethod
    def memory_mb() -> float:
        try:
            with open("/proc/self/statm", encoding="ascii") as fh:
                pages = int(fh.read().split()[1])
            return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
        except (OSError, ValueError, IndexError):  # not Linux: peak RSS instead
            import resource

            return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class ServingVoiceApi:
    def __init__(self, pipeline: VoicePipeline, settings: Settings, state: GatewayState, jobs: JobRegistry) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.state = state
        self.jobs = jobs
        self.meter = ProcessMeter()

    async def ping(self, req: PingRequest, call: Call) -> None:
        cache: dict[str, Any] | None = None
        available = True
        try:
            stats = await asyncio.wait_for(self.pipeline.stats(), 2.0)
            cache = stats.get("cache")
            available = bool(stats.get("ready", True))
        except Exception as exc:  # noqa: BLE001 - a pong is always sent; it says what it knows
            log.warning("ping: pipeline stats unavailable: %s", exc)
            available = False
        await call.publish(
            Pong(translator_port_pub=self.settings.zmq_pub_port, translator_port_pull=self.settings.zmq_pull_port,
                 audio_pipeline_available=available, cache=cache, in_flight=self.state.in_flight()),
            (),
        )

    async def translate(self, req: VoiceTranslateRequest, call: Call) -> Json:
        job = await voice_job(req, self.settings)
        try:
            result = voice_translation_result(await self.pipeline.run_voice(job), req.userId)
        except Exception:
            self.state.history.record_failure()
            raise
        self.state.history.record(history_entry(result, job.target_languages, req.type))
        return result.to_wire()

    async def analyze(self, req: VoiceAudioRequest, call: Call) -> Json:
        analysis = await self.pipeline.profile_analyze(await voice_api_audio(req, self.settings), user_id=req.userId)
        return voice_analyze_result(analysis).to_wire()

    async def compare(self, req: VoiceCompareRequest, call: Call) -> Json:
        comparison = await self.pipeline.compare_voices(
            decode_base64(req.audioBase64_1, self.settings, "audioBase64_1"),
            decode_base64(req.audioBase64_2, self.settings, "audioBase64_2"),
        )
        return voice_compare_result(comparison).to_wire()

    async def feedback(self, req: VoiceFeedbackRequest, call: Call) -> Json:
        recorded = await self.pipeline.record_feedback(req.model_dump(exclude={"type"}))
        self.state.history.record_feedback(req.userId, req.translationId, req.rating)
        return VoiceFeedbackRecorded(success=True, feedbackId=recorded["feedbackId"],
                                     recorded=bool(recorded.get("recorded", True))).to_wire()

    async def languages(self, req: VoiceApiRequest, call: Call) -> Json:
        """The result is the array itself (VoiceSupportedLanguage[]), as the gateway reads it."""
        health = await self.pipeline.health()
        return [lang.to_wire() for lang in supported_languages(health.get("components") or {})]

    async def health(self, req: VoiceApiRequest, call: Call) -> Json:
        health, stats = await asyncio.gather(self.pipeline.health(), self.pipeline.stats())
        store_ready = bool((stats.get("profiles") or {}).get("ready"))
        return health_status(health, store_ready, {"inFlight": self.state.in_flight()}).to_wire()

    async def stats(self, req: VoiceStatsRequest, call: Call) -> Json:
        """The user's VoiceUserStats over the period (this door's transport counters beside them)."""
        user_id = req.userId or ""
        now = time.time()
        since = self.state.history.period_start(req.period, now)
        profile_count = 0
        if user_id:
            try:
                await self.pipeline.profile_get(user_id)
                profile_count = 1
            except Exception as exc:  # noqa: BLE001 - no profile (404), or the figures stand without the store
                err = as_service_error(exc)
                if err.status != 404:
                    log.warning("voice_stats: profile store unavailable: %s", err.message)
        return VoiceUserStats(
            userId=user_id, **self.state.history.user_stats(user_id, since),  # type: ignore[arg-type]
            profileCount=profile_count, periodStart=iso_utc(since), periodEnd=iso_utc(now), period=req.period,
            zmq=self.state.transport_stats(),
        ).to_wire()

    async def admin_metrics(self, req: VoiceApiRequest, call: Call) -> Json:
        health, stats = await asyncio.gather(self.pipeline.health(), self.pipeline.stats())
        counts = self.jobs.counts()
        completed, failed = self.state.history.today(time.time())
        return VoiceSystemMetrics(
            activeJobs=counts.get("processing", 0), queuedJobs=counts.get("pending", 0),
            completedToday=completed, failedToday=failed,
            averageProcessingTimeMs=self.state.history.average_processing_ms(),
            cpuUsage=self.meter.cpu_percent(), memoryUsageMb=self.meter.memory_mb(),
            modelsLoaded=models_loaded(health.get("components") or {}),
            uptime=round(time.time() - self.state.started_at, 1), version=SERVICE_VERSION,
            zmq=self.state.transport_stats(), health=health, cache=stats.get("cache"), profiles=stats.get("profiles"),
        ).to_wire()
