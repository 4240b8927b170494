"""What the OpenAI-style audio API needs beyond the voice-message flow: text spoken sentence by sentence
(in the base voice or a user's cloned voice, at a chosen speed), and speech translated as text.

A mixin of `VoicePipeline`. Speech is yielded one sentence at a time so a door can stream the first
sentence while the next is still being synthesized; every sentence is started at once (the
Synthesizer's replicas and batching decide how many run together) and yielded in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from serve_app.audio import change_tempo, pcm_from_bytes, pcm_to_bytes
from serve_app.domain.transcription import TranscribeOptions, Transcription
from serve_app.domain.translation import TextTranslation
from serve_app.domain.voice import SpeechClip
from serve_app.errors import InvalidRequestError, as_service_error
from serve_app.languages import normalize_language
from serve_app.pipeline.stages import Stages
from serve_app.sentences import split_text
from serve_app.stores.errors import ProfileNotFoundError

if TYPE_CHECKING:
    from serve_app.stores.voice_profiles import VoiceProfile

SENTENCE_CHARS = 400  # longer sentences are cut at clauses, as for translation
MIN_SPEED, MAX_SPEED = 0.25, 4.0


class AudioApiOps:
    stages: Stages

    if TYPE_CHECKING:  # the other mixins provide them; declared for type checkers only
        def check_text(self, text: str) -> str: ...
        async def detect_language(self, text: str) -> tuple[str, float]: ...
        async def _require_profile(self, user_id: str) -> VoiceProfile: ...
        async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]: ...
        async def transcribe(
            self, audio: bytes, language: str | None = None, mobile: None = None, attachment_id: str | None = None,
            options: TranscribeOptions | None = None,
        ) -> Transcription: ...

    async def speak_sentences(
        self, text: str, language: str | None = None, voice_user_id: str | None = None, speed: float = 1.0
    ) -> AsyncIterator[SpeechClip]:
        """One clip per sentence, in order. `language` None: detected from the text. `voice_user_id`:
        converted toward that user's stored voice profile (the caller has checked it may use it).
        Input errors (empty text, unknown language, no profile) raise before the first clip."""
        self.check_text(text)
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidRequestError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
        if language in (None, "", "auto"):
            language = (await self.detect_language(text))[0]
        iso = normalize_language(language)
        reference: bytes | None = None
        if voice_user_id:
            profile = await self._require_profile(voice_user_id)
            if not profile.speakerReference:
                raise ProfileNotFoundError(f"the voice profile of {voice_user_id!r} holds no voice to clone")
            reference = profile.speakerReference
        tasks = [asyncio.create_task(self._spoken_sentence(piece.text, iso, reference, speed))
                 for piece in split_text(text, SENTENCE_CHARS)]
        try:
            for task in tasks:
                yield await task
        finally:  # a listener that hangs up leaves no synthesis running behind it
            for task in tasks:
                task.cancel()

    async def _spoken_sentence(self, sentence: str, language: str, reference: bytes | None, speed: float) -> SpeechClip:
        try:
            clip = await self.stages.synthesize(sentence, language)
        except Exception as exc:
            raise as_service_error(exc, "tts_failed") from exc
        if reference is not None:
            try:
                converted = await self.stages.convert(clip, reference)
            except Exception as exc:
                raise as_service_error(exc, "voice_clone_failed") from exc
            clip = clip.model_copy(update={"pcm": converted.pcm, "sample_rate": converted.sample_rate,
                                           "voice": "cloned" if converted.converted else clip.voice})
        if speed != 1.0:
            samples = await asyncio.to_thread(change_tempo, pcm_from_bytes(clip.pcm), clip.sample_rate, speed)
            clip = clip.model_copy(update={"pcm": pcm_to_bytes(samples)})
        return clip

    async def translate_speech(
        self, audio: bytes, target: str = "en", options: TranscribeOptions | None = None
    ) -> tuple[Transcription, TextTranslation]:
        """Transcribe, then translate the text into `target` (any supported language; English is
        OpenAI's only one). Speech already in the target language comes back as transcribed."""
        target = normalize_language(target)
        transcription = await self.transcribe(audio, None, None, None, options)
        if transcription.language == target:
            return transcription, TextTranslation(target_language=target, source_language=target,
                                                  translated_text=transcription.text, model=transcription.model,
                                                  confidence=transcription.confidence)
        (translated,) = await self.translate_text(transcription.text, transcription.language, [target])
        return transcription, translated
