"""The Pipeline deployment's methods as plain coroutines, so an ingress never touches Ray details.

The ZMQ gateway handlers are written against `PipelineApi`; in production it is `HandlePipeline`
over a Serve handle, in unit tests an in-process object with the same methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ray.serve.handle import DeploymentHandle

from serve_app.domain.transcription import MobileTranscription, Transcription
from serve_app.domain.translation import TextTranslation
from serve_app.domain.voice import PipelineEvent, VoiceAnalysis, VoiceJob, VoiceResult


class PipelineApi(Protocol):
    async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]: ...

    def process_voice(self, job: VoiceJob) -> AsyncIterator[PipelineEvent]: ...

    async def run_voice(self, job: VoiceJob) -> VoiceResult: ...

    async def transcribe(
        self,
        audio: bytes,
        language: str | None = None,
        mobile: MobileTranscription | None = None,
        attachment_id: str | None = None,
    ) -> Transcription: ...

    async def analyze_voice(self, audio: bytes, transcribe: bool = False) -> VoiceAnalysis: ...

    async def health(self) -> dict[str, Any]: ...

    async def stats(self) -> dict[str, Any]: ...

    async def profile_call(self, operation: str, **kwargs: Any) -> dict[str, Any]: ...


class HandlePipeline:
    """`PipelineApi` over a Ray Serve deployment handle to the Pipeline deployment."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle
        self.stream_handle = handle.options(stream=True)

    async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]:
        return await self.handle.translate_text.remote(text, source, targets)

    async def process_voice(self, job: VoiceJob) -> AsyncIterator[PipelineEvent]:
        async for event in self.stream_handle.process_voice.remote(job):
            yield event

    async def run_voice(self, job: VoiceJob) -> VoiceResult:
        return await self.handle.run_voice.remote(job)

    async def transcribe(
        self,
        audio: bytes,
        language: str | None = None,
        mobile: MobileTranscription | None = None,
        attachment_id: str | None = None,
    ) -> Transcription:
        return await self.handle.transcribe.remote(audio, language, mobile, attachment_id)

    async def analyze_voice(self, audio: bytes, transcribe: bool = False) -> VoiceAnalysis:
        return await self.handle.analyze_voice.remote(audio, transcribe)

    async def health(self) -> dict[str, Any]:
        return await self.handle.health.remote()

    async def stats(self) -> dict[str, Any]:
        return await self.handle.stats.remote()

    async def profile_call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return await self.handle.profile_call.remote(operation, **kwargs)
