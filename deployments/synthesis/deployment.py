"""Ray Serve deployment for speech synthesis (piper / kokoro / espeak / xtts, per language)."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.synthesis.service import SynthesisService
from deployments.synthesis.synthesizer import Synthesizer
from serve_app.deadlines import StageDeadlines
from serve_app.domain.voice import SpeechClip
from serve_app.heap import release_free_heap
from serve_app.settings import TtsSettings, replica_settings, resolve_device
from serve_app.watchdog import CallWatchdog


@serve.deployment(name="Synthesizer")
class SynthesizerDeployment:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides, TtsSettings)
        synthesizer = Synthesizer.from_config(
            settings.tts_chains,
            cache_dir=settings.cache_dir,
            device=resolve_device(settings.device),
            backend_options=settings.tts_backend_options,
            warmup=True,
        )
        self.service = SynthesisService(synthesizer)
        self.deadlines = StageDeadlines(settings)
        self.watchdog = CallWatchdog(settings.watchdog_grace_s, on_idle=release_free_heap)

    async def synthesize(self, text: str, language: str) -> SpeechClip:
        limit = self.deadlines.synthesize(len(text))
        return await asyncio.to_thread(self.watchdog.run, "synthesize", limit, self.service.synthesize, text, language)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()

    def check_health(self) -> None:
        self.watchdog.check()  # a wedged model thread fails health: Serve replaces the replica
