"""Ray Serve deployment that composes the four model deployments into the voice pipeline.

It holds no model and no pipeline logic: it *is* a `VoicePipeline` whose stages are calls on the
model deployments' handles (`HandleStages`), with the configured stores attached. Both ingresses
call it through `ingress.pipeline_client`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.domain.transcription import TranscribeOptions, Transcription
from serve_app.domain.translation import TranslationResult
from serve_app.domain.voice import ConvertedClip, SpeechClip
from serve_app.errors import as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import replica_settings

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

    async def transcribe(
        self, pcm: bytes, language: str | None, options: TranscribeOptions | None = None
    ) -> Transcription:
        return await self.handles["transcriber"].transcribe.remote(pcm, language, options)

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
class PipelineDeployment(VoicePipeline):
    async def __init__(
        self,
        transcriber: DeploymentHandle,
        translator: DeploymentHandle,
        synthesizer: DeploymentHandle,
        cloner: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
    ) -> None:
        stages = HandleStages(transcriber, translator, synthesizer, cloner)
        super().__init__(stages, replica_settings(settings_overrides))
        self.attach_stores()
        await self.start()
