"""Ray Serve deployment that composes the four model deployments into the voice pipeline.

It holds no model itself: `HandleStages` turns each stage call into a call on the matching
deployment handle, and `VoicePipeline` does the fan-out. Both ingresses call this deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.audio import MIME_TYPES, duration_ms, encode_audio, pcm_from_bytes, pcm_to_bytes
from serve_app.domain.speaker import SpeakerReference
from serve_app.domain.transcription import MobileTranscription, Transcription, from_mobile
from serve_app.domain.translation import TextTranslation, TranslationResult
from serve_app.domain.voice import ConvertedClip, PipelineEvent, SpeechClip, VoiceAnalysis, VoiceJob, VoiceResult
from serve_app.errors import as_service_error
from serve_app.languages import normalize_language
from serve_app.pipeline.profiles import VoiceProfileService
from serve_app.pipeline.voice_pipeline import WHISPER_RATE, VoicePipeline
from serve_app.settings import replica_settings
from serve_app.stores.factory import build_profile_store, build_translation_cache
from serve_app.stores.profile_lifecycle import VoiceProfileManager
from serve_app.voice_characteristics import measure_voice

log = logging.getLogger(__name__)
STAGE_NAMES = ("transcriber", "translator", "synthesizer", "voice_cloner")


class HandleStages:
    """`serve_app.stages.Stages` over Ray Serve deployment handles."""

    def __init__(
        self,
        transcriber: DeploymentHandle,
        translator: DeploymentHandle,
        synthesizer: DeploymentHandle,
        cloner: DeploymentHandle,
    ) -> None:
        self.handles = dict(zip(STAGE_NAMES, (transcriber, translator, synthesizer, cloner), strict=True))

    async def transcribe(self, pcm: bytes, language: str | None) -> Transcription:
        return await self.handles["transcriber"].transcribe.remote(pcm, language)

    async def translate(self, text: str, source: str, target: str) -> TranslationResult:
        return await self.handles["translator"].translate.remote(text, source, target)

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes:
        return await self.handles["voice_cloner"].speaker_reference.remote(pcm, sample_rate)

    async def synthesize(self, text: str, language: str) -> SpeechClip:
        return await self.handles["synthesizer"].synthesize.remote(text, language)

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        return await self.handles["voice_cloner"].convert.remote(clip, reference)

    async def detect_language(self, text: str) -> tuple[str, float]:
        return await self.handles["translator"].detect_language.remote(text)

    async def describe(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Ask every stage about itself; a stage that does not answer in time is reported down."""

        async def one(name: str) -> tuple[str, dict[str, Any]]:
            try:
                info = await asyncio.wait_for(self.handles[name].describe.remote(), timeout_s)
                return name, {"status": "ready", **info}
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return name, {"status": "unavailable", "error": as_service_error(exc).message}

        return dict(await asyncio.gather(*(one(n) for n in STAGE_NAMES)))


@serve.deployment(name="Pipeline")
class PipelineDeployment:
    async def __init__(
        self,
        transcriber: DeploymentHandle,
        translator: DeploymentHandle,
        synthesizer: DeploymentHandle,
        cloner: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings = replica_settings(settings_overrides)
        self.stages = HandleStages(transcriber, translator, synthesizer, cloner)
        # Stores: Redis + LRU cache (LRU only without REDIS_URL); MongoDB profiles (files without MONGODB_URL).
        self.cache = build_translation_cache(self.settings)
        self.profile_store = build_profile_store(self.settings)
        self.profiles = VoiceProfileManager(self.profile_store, self.settings)
        # Profiles join the pipeline once the store has answered (see _start_store).
        self.pipeline = VoicePipeline(self.stages, self.settings, cache=self.cache)
        self.profile_service = VoiceProfileService(
            self.profiles, self.analyze_voice, self.pipeline.speak_as, self.settings
        )
        self.started_at = time.time()
        self._ready: bool | None = None  # last readiness seen by stats(), re-checked every 10 s
        self._ready_checked = 0.0
        self.store_ready = False
        await self._start_store()
        self._background = [asyncio.create_task(self._maintain_profiles())]

    async def _start_store(self) -> None:
        """Indexes at start-up. An unreachable MongoDB must not keep the graph from serving text and
        voices: log it clearly, serve profile-less (each message cloned from its own audio), retry."""
        try:
            await self.profile_store.start()
        except Exception as exc:  # noqa: BLE001 - degraded mode, reported in /health
            log.error("voice profile store unavailable at start (%s); profiles are skipped until it answers",
                      as_service_error(exc).message)
            return
        self.store_ready = True
        self.pipeline.profiles = self.profiles

    async def _maintain_profiles(self) -> None:
        while not self.store_ready:
            await asyncio.sleep(30)
            await self._start_store()
        await self.profiles.run_recalibration_loop(self.settings.voice_profile_recalibration_interval_s)

    async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]:
        return await self.pipeline.translate_text(text, source, targets)

    async def process_voice(self, job: VoiceJob) -> AsyncIterator[PipelineEvent]:
        async for event in self.pipeline.process_voice(job):
            yield event

    async def run_voice(self, job: VoiceJob) -> VoiceResult:
        return await self.pipeline.run_voice(job)

    async def transcribe(
        self,
        audio: bytes,
        language: str | None = None,
        mobile: MobileTranscription | None = None,
        attachment_id: str | None = None,
    ) -> Transcription:
        decoded = await asyncio.to_thread(self.pipeline.decode, audio)
        if mobile is not None:
            return from_mobile(mobile, duration_ms(decoded.samples, WHISPER_RATE))
        hint = normalize_language(language) if language not in (None, "", "auto") else None
        return await self.pipeline.transcribe_cached(pcm_to_bytes(decoded.samples), hint, attachment_id)

    async def speak(self, text: str, language: str, fmt: str = "mp3") -> dict[str, Any]:
        """Plain TTS in the service's base voice; returns encoded audio and its measured duration."""
        self.pipeline.check_text(text)
        iso = normalize_language(language)
        try:
            clip = await self.stages.synthesize(text, iso)
        except Exception as exc:
            raise as_service_error(exc, "tts_failed") from exc
        samples = pcm_from_bytes(clip.pcm)
        audio = await asyncio.to_thread(encode_audio, samples, clip.sample_rate, fmt)
        return {
            "audio": audio,
            "mime_type": MIME_TYPES[fmt],
            "duration_ms": duration_ms(samples, clip.sample_rate),
            "backend": clip.backend,
            "language": iso,
        }

    async def detect_language(self, text: str) -> tuple[str, float]:
        self.pipeline.check_text(text)
        try:
            return await self.stages.detect_language(text)
        except Exception as exc:
            raise as_service_error(exc) from exc

    async def analyze_voice(self, audio: bytes, transcribe: bool = False) -> VoiceAnalysis:
        """Measure a voice sample: embedding and converter statistics, characteristics, optional text."""
        decoded = await asyncio.to_thread(self.pipeline.decode, audio)
        pcm = pcm_to_bytes(decoded.samples)
        text_task = asyncio.create_task(self.stages.transcribe(pcm, None)) if transcribe else None
        try:
            reference = await self.stages.speaker_reference(pcm, WHISPER_RATE)
        except Exception as exc:
            if text_task:
                text_task.cancel()
            raise as_service_error(exc, "voice_clone_failed") from exc
        transcription = None
        if text_task is not None:
            try:
                transcription = await text_task
            except Exception as exc:  # noqa: BLE001 - the analysis stands without the text
                log.warning("analysis transcription failed: %s", as_service_error(exc).message)
        characteristics = await asyncio.to_thread(
            measure_voice, decoded.samples, WHISPER_RATE, transcription.text if transcription else None
        )
        speaker = SpeakerReference.from_npz_bytes(reference)
        return VoiceAnalysis(
            duration_ms=duration_ms(decoded.samples, WHISPER_RATE),
            embedding=speaker.embedding.tolist(),
            embedding_model=speaker.embedding_model,
            speaker_reference=reference,
            characteristics=characteristics.model_dump(),
            transcription=transcription,
        )

    async def stats(self) -> dict[str, Any]:
        """Cheap figures for pongs and /health: readiness (re-checked at most every 10 s), cache, profiles."""
        if self._ready is None or time.monotonic() - self._ready_checked > 10:
            try:
                self._ready = (await asyncio.wait_for(self.health(), 5.0))["ready"]
            except Exception:  # noqa: BLE001 - unknown readiness is reported as not ready
                self._ready = False
            self._ready_checked = time.monotonic()
        return {
            "ready": self._ready,
            "cache": self.cache.stats().model_dump(),
            "profiles": {"store": type(self.profile_store).__name__, "ready": self.store_ready},
        }

    async def profile_call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return await self.profile_service.call(operation, **kwargs)

    async def health(self) -> dict[str, Any]:
        components = await self.stages.describe()
        ready = all(c.get("status") == "ready" for c in components.values())
        return {
            "status": "healthy" if ready else "degraded",
            "ready": ready,
            "uptime_s": round(time.time() - self.started_at, 1),
            "components": components,
        }
