"""`VoicePipeline`: the one API both doors call, Ray-free.

Its methods are grouped by area in mixins (text translation, single-audio operations, the voice
message flow, voice profiles); this class holds the shared state, the stores' lifecycle and the
readiness figures. The Pipeline deployment *is* a VoicePipeline over Ray handles
(`deployments.pipeline`); unit tests run the very same class over fake stages; the doors reach a
deployed one through `ingress.pipeline_client`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

from serve_app.errors import as_service_error
from serve_app.pipeline.audio_api import AudioApiOps
from serve_app.pipeline.deadline_stages import DeadlineStages
from serve_app.pipeline.latency import StageLatency
from serve_app.pipeline.profiles import ProfileOps
from serve_app.pipeline.speech import SpeechOps
from serve_app.pipeline.stages import Stages
from serve_app.pipeline.text import TextOps
from serve_app.pipeline.voice import VoiceMessageOps
from serve_app.settings import Settings
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.factory import build_profile_store, build_translation_cache
from serve_app.stores.feedback import FeedbackLog
from serve_app.stores.profile_lifecycle import VoiceProfileManager
from serve_app.stores.translation_cache import TranslationCache

log = logging.getLogger(__name__)
STORE_RETRY_S = 30.0
DECODING_GENERATION = 2
"""Bumped when the backends' default decoding changes what they output (2: issue 13's Gemma defaults:
repetition penalty, no-repeat n-grams, length bound), so Redis never serves text from older decoding."""
RUNTIME_ONLY_OPTIONS = frozenset({"intra_threads", "inter_threads", "max_batch_size", "compute_type"})
READINESS_TTL_S = 10.0


def translation_cache_model_key(settings: Settings) -> str:
    """The cache key's model part: backend, weights, decoding generation and the translator_options that
    change the text (thread and batch sizes don't), so a new model or decoding never serves stale text."""
    shaping = {k: v for k, v in sorted(settings.translator_options.items()) if k not in RUNTIME_ONLY_OPTIONS}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{settings.translator_backend}:{settings.translator_model or 'default'}:d{DECODING_GENERATION}:{digest}"


class VoicePipeline(TextOps, SpeechOps, VoiceMessageOps, ProfileOps, AudioApiOps):
    """`cache` and `profiles` are optional so the logic runs (and is unit tested) without stores.

    Every stage call goes through `DeadlineStages` (its own deadline, `stage_timeout` on expiry),
    whatever stages are given. A pipeline given a profile manager uses it at once; `from_settings`
    builds the configured stores and `start` joins the profile store only once it has answered
    (degraded mode until then).
    """

    def __init__(
        self,
        stages: Stages,
        settings: Settings,
        cache: TranslationCache | None = None,
        profiles: VoiceProfileManager | None = None,
    ) -> None:
        self.stages: Stages = DeadlineStages(stages, settings)
        self.settings = settings
        self.cache = cache
        self.profiles = profiles
        self.store_ready = profiles is not None
        self.feedback_log = FeedbackLog(settings)
        # A dead profile store must not add its timeout to every message: after 3 failures profiles
        # are skipped for a minute (messages are cloned from their own audio), then one probe.
        self.profile_breaker = CircuitBreaker(failure_threshold=3, cooldown_s=60.0, name="profile_store")
        self.model_key = translation_cache_model_key(settings)
        self.started_at = time.time()
        self.latency = StageLatency()
        self._ready: bool | None = None  # last readiness seen by stats(), re-checked every 10 s
        self._ready_checked = 0.0
        self._background: list[asyncio.Task[None]] = []

    def attach_stores(self) -> None:
        """The configured stores: Redis + LRU cache (LRU alone without REDIS_URL), MongoDB profiles
        (files without MONGODB_URL). Profiles wait for `start` before the voice flow uses them."""
        self.cache = build_translation_cache(self.settings)
        self.profiles = VoiceProfileManager(build_profile_store(self.settings), self.settings)
        self.store_ready = False

    async def start(self) -> None:
        """Join the profile store, then keep profiles recalibrated in the background."""
        await self._start_store()
        self._background.append(asyncio.create_task(self._maintain_profiles()))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self.profiles is not None:
            await self.profiles.store.close()
        if self.cache is not None:
            await self.cache.close()

    async def _start_store(self) -> None:
        """Indexes at start-up. An unreachable MongoDB must not keep the graph from serving text and
        voices: log it clearly, serve profile-less (each message cloned from its own audio), retry."""
        if self.profiles is None:
            return
        try:
            await self.profiles.store.start()
        except Exception as exc:  # noqa: BLE001 - degraded mode, reported in /health
            log.error("voice profile store unavailable at start (%s); profiles are skipped until it answers",
                      as_service_error(exc).message)
            return
        self.store_ready = True

    async def _maintain_profiles(self) -> None:
        while not self.store_ready:
            await asyncio.sleep(STORE_RETRY_S)
            await self._start_store()
        if self.profiles is not None:
            await self.profiles.run_recalibration_loop(self.settings.voice_profile_recalibration_interval_s)

    def check(self) -> dict[str, Any]:
        """What the deployment's health check asks: raises when this pipeline cannot serve (a background
        task died with an error, the stages are gone). A dead Redis or MongoDB does *not* fail it: the
        pipeline serves degraded by design, and a restart would not bring the store back; their
        breakers are reported instead."""
        if getattr(self.stages, "inner", None) is None:
            raise RuntimeError("pipeline has no stages")
        for task in self._background:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"pipeline background task died: {task.exception()!r}")
        asyncio.get_running_loop()  # raises when called outside a running loop
        return {
            "profile_store_ready": self.store_ready,
            "profile_breaker": self.profile_breaker.state,
            "cache": self.cache.stats().model_dump() if self.cache is not None else None,
        }

    async def health(self) -> dict[str, Any]:
        components = await self.stages.describe()
        ready = all(c.get("status") == "ready" for c in components.values())
        return {
            "status": "healthy" if ready else "degraded",
            "ready": ready,
            "uptime_s": round(time.time() - self.started_at, 1),
            "components": components,
            "latency_ms": self.latency.report(),
        }

    async def stats(self) -> dict[str, Any]:
        """Cheap figures for pongs and /health: readiness (re-checked at most every 10 s), cache, profiles."""
        if self._ready is None or time.monotonic() - self._ready_checked > READINESS_TTL_S:
            try:
                self._ready = (await asyncio.wait_for(self.health(), 5.0))["ready"]
            except Exception:  # noqa: BLE001 - unknown readiness is reported as not ready
                self._ready = False
            self._ready_checked = time.monotonic()
        store = type(self.profiles.store).__name__ if self.profiles is not None else None
        return {
            "ready": self._ready,
            "cache": self.cache.stats().model_dump() if self.cache is not None else None,
            "profiles": {"store": store, "ready": self.store_ready},
        }
