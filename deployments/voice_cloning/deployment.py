"""Ray Serve deployment for voice cloning: speaker embeddings and tone-colour conversion."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.voice_cloning.service import CloningService
from deployments.voice_cloning.voice_cloner import VoiceCloner
from serve_app.domain.voice import ConvertedClip, SpeechClip
from serve_app.settings import VoiceCloneSettings, replica_settings, resolve_device


@serve.deployment(name="VoiceCloner")
class VoiceClonerDeployment:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides, VoiceCloneSettings)
        cloner = VoiceCloner.from_config(
            settings.voice_clone_backend, cache_dir=settings.cache_dir, device=resolve_device(settings.device)
        )
        self.service = CloningService(cloner)

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes:
        return await asyncio.to_thread(self.service.reference, pcm, sample_rate)

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        return await asyncio.to_thread(self.service.convert, clip, reference)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()
