"""The four model stages as the pipeline sees them: an async interface.

`deployments.pipeline.HandleStages` implements it over Ray Serve deployment handles; unit tests
implement it with fakes. The pipeline logic is written once, against this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from deployments.transcription import Transcription
from deployments.translation.translator import TranslationResult


class SpeechClip(BaseModel):
    """Mono float32 little-endian PCM bytes: how audio crosses deployments (no pickled arrays)."""

    pcm: bytes
    sample_rate: int
    backend: str = ""
    voice: str = ""


class ConvertedClip(BaseModel):
    pcm: bytes
    sample_rate: int
    converted: bool
    similarity: float | None = None
    base_similarity: float | None = None
    backend: str = ""


class Stages(Protocol):
    async def transcribe(self, pcm: bytes, language: str | None) -> Transcription: ...

    async def translate(self, text: str, source: str, target: str) -> TranslationResult: ...

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes: ...

    async def synthesize(self, text: str, language: str) -> SpeechClip: ...

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip: ...

    async def describe(self) -> dict[str, Any]: ...
