"""Ray Serve deployment for speech synthesis (piper / kokoro / espeak / xtts, per language)."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.synthesis.service import SynthesisService
from deployments.synthesis.synthesizer import Synthesizer
from serve_app.domain.voice import SpeechClip
from serve_app.settings import TtsSettings, replica_settings, resolve_device


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

    async def synthesize(self, text: str, language: str) -> SpeechClip:
        return await asyncio.to_thread(self.service.synthesize, text, language)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()
