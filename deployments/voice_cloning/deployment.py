"""Ray Serve deployment for voice cloning: speaker embeddings and tone-colour conversion."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.voice_cloning.service import CloningService
from deployments.voice_cloning.voice_cloner import VoiceCloner
from serve_app.deadlines import StageDeadlines, audio_seconds
from serve_app.domain.voice import ConvertedClip, SpeechClip
from serve_app.heap import release_free_heap
from serve_app.settings import VoiceCloneSettings, replica_settings, resolve_device
from serve_app.watchdog import CallWatchdog


@serve.deployment(name="VoiceCloner")
class VoiceClonerDeployment:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides, VoiceCloneSettings)
        cloner = VoiceCloner.from_config(
            settings.voice_clone_backend, cache_dir=settings.cache_dir, device=resolve_device(settings.device)
        )
        self.service = CloningService(cloner)
        self.deadlines = StageDeadlines(settings)
        self.watchdog = CallWatchdog(settings.watchdog_grace_s, on_idle=release_free_heap)

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes:
        limit = self.deadlines.speaker_reference(audio_seconds(pcm, sample_rate))
        return await asyncio.to_thread(self.watchdog.run, "speaker_reference", limit, self.service.reference, pcm,
                                       sample_rate)

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        limit = self.deadlines.convert(audio_seconds(clip.pcm, clip.sample_rate))
        return await asyncio.to_thread(self.watchdog.run, "convert", limit, self.service.convert, clip, reference)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()

    def check_health(self) -> None:
        self.watchdog.check()  # a wedged model thread fails health: Serve replaces the replica
