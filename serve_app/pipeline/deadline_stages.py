"""`DeadlineStages`: any `Stages` with a deadline on every call, so nothing the Pipeline awaits can hang it.

`VoicePipeline` wraps whatever stages it is given, so the Ray handles in production and the fakes in
unit tests go through the very same code. On expiry the awaited call is cancelled (over Ray handles
`HandleStages` then cancels the request on the replica) and `StageTimeoutError` names the stage; the
pipeline's per-language handling turns it into that language's error, the others carry on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from serve_app.deadlines import StageDeadlines, audio_seconds, within_deadline
from serve_app.domain.transcription import TranscribeOptions, Transcription
from serve_app.domain.translation import TranslationResult
from serve_app.domain.voice import ConvertedClip, SpeechClip
from serve_app.errors import StageTimeoutError
from serve_app.pipeline.stages import Stages
from serve_app.settings import StageDeadlineSettings

T = TypeVar("T")
WHISPER_RATE = 16_000


async def within(stage: str, timeout_s: float, call: Awaitable[T]) -> T:
    """`await call`, cancelled after `timeout_s` with `StageTimeoutError(stage)`."""
    return await within_deadline(call, timeout_s, lambda: StageTimeoutError(stage, timeout_s))


class DeadlineStages:
    """`Stages` over `Stages`; any other attribute (a fake's call log) is the wrapped object's."""

    def __init__(self, inner: Stages, settings: StageDeadlineSettings) -> None:
        self.inner = inner
        self.deadlines = StageDeadlines(settings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transcribe(
        self, pcm: bytes, language: str | None, options: TranscribeOptions | None = None
    ) -> Transcription:
        limit = self.deadlines.transcribe(audio_seconds(pcm, WHISPER_RATE))
        inner = self.inner
        call = inner.transcribe(pcm, language) if options is None else inner.transcribe(pcm, language, options)
        return await within("transcribe", limit, call)

    async def translate(self, text: str, source: str, target: str) -> TranslationResult:
        limit = self.deadlines.translate(len(text))
        return await within("translate", limit, self.inner.translate(text, source, target))

    async def detect_language(self, text: str) -> tuple[str, float]:
        return await within("detect_language", self.deadlines.detect_language(len(text)),
                            self.inner.detect_language(text))

    async def speaker_reference(self, pcm: bytes, sample_rate: int) -> bytes:
        limit = self.deadlines.speaker_reference(audio_seconds(pcm, sample_rate))
        return await within("speaker_reference", limit, self.inner.speaker_reference(pcm, sample_rate))

    async def synthesize(self, text: str, language: str) -> SpeechClip:
        limit = self.deadlines.synthesize(len(text))
        return await within("synthesize", limit, self.inner.synthesize(text, language))

    async def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        limit = self.deadlines.convert(audio_seconds(clip.pcm, clip.sample_rate))
        return await within("convert", limit, self.inner.convert(clip, reference))

    async def describe(self) -> dict[str, Any]:
        return await self.inner.describe()  # bounded per stage by the stages themselves
