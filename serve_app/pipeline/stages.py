"""The four model stages as the pipeline sees them: an async interface.

`deployments.pipeline.HandleStages` implements it over Ray Serve deployment handles; unit tests
implement it with fakes. The pipeline logic is written once, against this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from serve_app.domain.transcription import TranscribeOptions, Transcription
from serve_app.domain.translation import TranslationResult
from serve_app.domain.voice import ConvertedClip, SpeechClip


class Stages(Protocol):
    async def transcribe(
        self, pcm: bytes, language: str | None, options: TranscribeOptions | None = None
    ) -> Transcription: ...

    async def translate(self, text: str, source: str, target: str) -> TranslationResult: ...

    async def detect_language(self, text: str) -> tuple[str, float]: ...

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes: ...

    async def synthesize(self, text: str, language: str) -> SpeechClip: ...

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip: ...

    async def describe(self) -> dict[str, Any]: ...
