"""Ray Serve deployment for speech-to-text (Whisper via faster-whisper)."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.transcription.transcriber import Transcriber
from serve_app.audio import pcm_from_bytes
from serve_app.deadlines import StageDeadlines, audio_seconds
from serve_app.domain.transcription import TranscribeOptions, Transcription
from serve_app.heap import release_free_heap
from serve_app.settings import WhisperSettings, replica_settings, resolve_device
from serve_app.watchdog import CallWatchdog

WHISPER_RATE = 16_000


@serve.deployment(name="Transcriber")
class TranscriberDeployment:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides, WhisperSettings)
        self.transcriber = Transcriber(
            settings.whisper_model,
            cache_dir=settings.cache_dir,
            device=resolve_device(settings.device),
            compute_type=settings.whisper_compute_type,
            beam_size=settings.whisper_beam_size,
            vad=settings.whisper_vad,
            cpu_threads=settings.whisper_cpu_threads,
            log_prob_threshold=settings.whisper_log_prob_threshold,
            repetition_penalty=settings.whisper_repetition_penalty,
        )
        self.deadlines = StageDeadlines(settings)
        self.watchdog = CallWatchdog(settings.watchdog_grace_s, on_idle=release_free_heap)

    async def transcribe(
        self, pcm: bytes, language: str | None = None, options: TranscribeOptions | None = None
    ) -> Transcription:
        limit = self.deadlines.transcribe(audio_seconds(pcm, WHISPER_RATE))
        return await asyncio.to_thread(self.watchdog.run, "transcribe", limit, self.transcriber.transcribe,
                                       pcm_from_bytes(pcm), language, options)

    async def describe(self) -> dict[str, Any]:
        return {"model": self.transcriber.model_name, "multilingual": self.transcriber.multilingual}

    def check_health(self) -> None:
        if self.transcriber.model is None:  # pragma: no cover - constructor guarantees it
            raise RuntimeError("Whisper model not loaded")
        self.watchdog.check()  # a wedged model thread fails health: Serve replaces the replica
