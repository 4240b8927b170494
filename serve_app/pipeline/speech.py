"""Single-audio operations: decode with limits, transcribe (cached per attachment), speak, analyze.

A mixin of `VoicePipeline`. The voice-message flow and the profile operations build on these.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from serve_app.audio import (
    MIME_TYPES,
    DecodedAudio,
    decode_audio,
    duration_ms,
    encode_audio,
    pcm_from_bytes,
    pcm_to_bytes,
)
from serve_app.domain.speaker import SpeakerReference
from serve_app.domain.transcription import MobileTranscription, TranscribeOptions, Transcription, from_mobile
from serve_app.domain.voice import SpokenAudio, VoiceAnalysis
from serve_app.errors import TranscriptionError, as_service_error
from serve_app.languages import normalize_language
from serve_app.pipeline.stages import Stages
from serve_app.settings import Settings
from serve_app.stores.translation_cache import TranslationCache, audio_digest
from serve_app.voice_acoustics import measure_acoustics
from serve_app.voice_characteristics import measure_voice

log = logging.getLogger(__name__)
WHISPER_RATE = 16_000


class SpeechOps:
    stages: Stages
    settings: Settings
    cache: TranslationCache | None

    if TYPE_CHECKING:  # TextOps provides it; declared for type checkers only, so no stub can shadow it
        def check_text(self, text: str) -> str: ...

    def decode(self, audio: bytes) -> DecodedAudio:
        """Decode an upload to Whisper's 16 kHz mono, enforcing the configured limits."""
        return decode_audio(
            audio,
            sample_rate=WHISPER_RATE,
            max_bytes=self.settings.max_audio_bytes,
            max_seconds=self.settings.max_audio_seconds,
            min_seconds=self.settings.min_audio_seconds,
        )

    async def transcribe(
        self,
        audio: bytes,
        language: str | None = None,
        mobile: MobileTranscription | None = None,
        attachment_id: str | None = None,
        options: TranscribeOptions | None = None,
    ) -> Transcription:
        decoded = await asyncio.to_thread(self.decode, audio)
        if mobile is not None:
            return from_mobile(mobile, duration_ms(decoded.samples, WHISPER_RATE))
        hint = normalize_language(language) if language not in (None, "", "auto") else None
        return await self.transcribe_cached(pcm_to_bytes(decoded.samples), hint, attachment_id, options)

    async def transcribe_cached(
        self, pcm: bytes, language: str | None, attachment_id: str | None, options: TranscribeOptions | None = None
    ) -> Transcription:
        """Whisper once per attachment and audio: a retried message (same attachment id, same audio)
        reads `audio:transcription:{attachmentId}:{sha256(pcm)[:32]}`. The digest is of the decoded
        16 kHz PCM Whisper hears, so other audio under a known attachment id is a miss: it can neither
        read that attachment's transcript nor plant one for it."""
        digest = None
        if options is not None:  # a tuned transcription (prompt, words) is neither read from nor kept in the cache
            attachment_id = None
        if self.cache is not None and attachment_id:
            digest = await asyncio.to_thread(audio_digest, pcm)
            hit = await self.cache.get_transcription(attachment_id, digest)
            if hit is not None:
                try:
                    return Transcription.model_validate(hit)
                except ValueError:
                    log.warning("cached transcription of %s is unreadable; transcribing again", attachment_id)
        try:
            transcription = (await self.stages.transcribe(pcm, language, options) if options is not None
                             else await self.stages.transcribe(pcm, language))
        except Exception as exc:
            raise as_service_error(exc, "transcription_failed") from exc
        if not transcription.text.strip():
            raise TranscriptionError("no speech was recognised in the audio", status=422)
        if self.cache is not None and attachment_id and digest is not None:
            await self.cache.put_transcription(attachment_id, digest, transcription.model_dump(mode="json"))
        return transcription

    async def speak(self, text: str, language: str, fmt: str = "mp3") -> SpokenAudio:
        """Plain TTS in the service's base voice, encoded, with its measured duration."""
        self.check_text(text)
        iso = normalize_language(language)
        try:
            clip = await self.stages.synthesize(text, iso)
        except Exception as exc:
            raise as_service_error(exc, "tts_failed") from exc
        samples = pcm_from_bytes(clip.pcm)
        audio = await asyncio.to_thread(encode_audio, samples, clip.sample_rate, fmt)
        return SpokenAudio(audio=audio, mime_type=MIME_TYPES[fmt], duration_ms=duration_ms(samples, clip.sample_rate),
                           backend=clip.backend, language=iso)

    async def analyze_voice(self, audio: bytes, transcribe: bool = False, detailed: bool = False) -> VoiceAnalysis:
        """Measure a voice sample: embedding and converter statistics, characteristics, optional text
        (timed), and with `detailed` the full acoustics (pitch contour, timbre, MFCC, energy)."""
        decoded = await asyncio.to_thread(self.decode, audio)
        pcm = pcm_to_bytes(decoded.samples)
        text_task = asyncio.create_task(self._timed_transcription(pcm)) if transcribe else None
        try:
            reference = await self.stages.speaker_reference(pcm, WHISPER_RATE)
        except Exception as exc:
            if text_task:
                text_task.cancel()
            raise as_service_error(exc, "voice_clone_failed") from exc
        transcription, transcription_ms = None, None
        if text_task is not None:
            try:
                transcription, transcription_ms = await text_task
            except Exception as exc:  # noqa: BLE001 - the analysis stands without the text
                log.warning("analysis transcription failed: %s", as_service_error(exc).message)
        characteristics = await asyncio.to_thread(
            measure_voice, decoded.samples, WHISPER_RATE, transcription.text if transcription else None
        )
        acoustics = await asyncio.to_thread(measure_acoustics, decoded.samples, WHISPER_RATE) if detailed else None
        speaker = SpeakerReference.from_npz_bytes(reference)
        return VoiceAnalysis(
            duration_ms=duration_ms(decoded.samples, WHISPER_RATE),
            embedding=speaker.embedding.tolist(),
            embedding_model=speaker.embedding_model,
            speaker_reference=reference,
            characteristics=characteristics.model_dump(),
            acoustics=acoustics,
            transcription=transcription,
            transcription_ms=transcription_ms,
        )

    async def _timed_transcription(self, pcm: bytes) -> tuple[Transcription, int]:
        started = time.perf_counter()
        transcription = await self.stages.transcribe(pcm, None)
        return transcription, int(round((time.perf_counter() - started) * 1000))
