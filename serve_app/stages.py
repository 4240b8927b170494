"""The four model stages as the pipeline sees them: an async interface with two implementations.

`LocalStages` calls the plain model classes in this process (unit tests, the naive benchmark
baseline's models); `deployments.pipeline.HandleStages` calls Ray Serve deployment handles. The
pipeline logic is written once, against this protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from pydantic import BaseModel

from deployments.transcription import Transcription


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


class TranslationOutput(BaseModel):
    translated_text: str
    source_language: str
    target_language: str
    model: str
    confidence: float
    pass_through: bool = False


class Stages(Protocol):
    async def transcribe(self, pcm: bytes, language: str | None) -> Transcription: ...

    async def translate(self, text: str, source: str, target: str) -> TranslationOutput: ...

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes: ...

    async def synthesize(self, text: str, language: str) -> SpeechClip: ...

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip: ...

    async def describe(self) -> dict[str, Any]: ...


class LocalStages:
    """In-process stages over the plain classes; blocking model calls run in worker threads."""

    def __init__(self, transcriber: Any, translator: Any, synthesizer: Any, cloner: Any) -> None:
        from deployments.services import CloningService, SynthesisService, TranslationService

        self.transcriber = transcriber
        self.translation = TranslationService(translator)
        self.synthesis = SynthesisService(synthesizer)
        self.cloning = CloningService(cloner)

    async def transcribe(self, pcm: bytes, language: str | None) -> Transcription:
        from serve_app.audio import pcm_from_bytes

        return await asyncio.to_thread(self.transcriber.transcribe, pcm_from_bytes(pcm), language)

    async def translate(self, text: str, source: str, target: str) -> TranslationOutput:
        return (await asyncio.to_thread(self.translation.translate_batch, [(text, source, target)]))[0]

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes:
        return await asyncio.to_thread(self.cloning.reference, pcm, sample_rate)

    async def synthesize(self, text: str, language: str) -> SpeechClip:
        return await asyncio.to_thread(self.synthesis.synthesize, text, language)

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        return await asyncio.to_thread(self.cloning.convert, clip, reference)

    async def describe(self) -> dict[str, Any]:
        return {
            "transcriber": {"model": self.transcriber.model_name},
            "translator": self.translation.describe(),
            "synthesizer": self.synthesis.describe(),
            "voice_cloner": self.cloning.describe(),
        }
