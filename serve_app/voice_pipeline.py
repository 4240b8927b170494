"""The voice-message pipeline: decode, transcribe, embed, then per language translate -> speak ->
convert, streaming each language out as soon as it is ready.

Written against `serve_app.stages.Stages`, so the same code runs over Ray handles in production and
over in-process models in unit tests. A failing language becomes a `language_failed` event; it
never cancels the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from deployments.transcription import Transcription, from_mobile
from deployments.voice_cloning.speaker import reference_from_wire
from serve_app.audio import (
    MIME_TYPES,
    DecodedAudio,
    decode_audio,
    duration_ms,
    encode_audio,
    pcm_from_bytes,
    pcm_to_bytes,
)
from serve_app.errors import (
    InvalidRequestError,
    ServiceError,
    TextTooLongError,
    TranscriptionError,
)
from serve_app.languages import normalize_language
from serve_app.schemas import (
    LanguageAudio,
    LanguageFailure,
    PipelineEvent,
    StageTimings,
    TextTranslation,
    VoiceJob,
    VoiceResult,
)
from serve_app.settings import Settings
from serve_app.stages import Stages

log = logging.getLogger(__name__)
WHISPER_RATE = 16_000


def _ms(since: float) -> int:
    return int(round((time.perf_counter() - since) * 1000))


def as_service_error(exc: BaseException, default_code: str = "processing_failed") -> ServiceError:
    """Unwrap Ray's task errors so the original code and status survive the hop between replicas."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ServiceError):
        return cause
    if isinstance(exc, ServiceError):
        return exc
    return ServiceError(f"{type(exc).__name__}: {exc}", code=default_code)


async def _ready(value: bytes) -> bytes:
    return value


class VoicePipeline:
    def __init__(self, stages: Stages, settings: Settings) -> None:
        self.stages = stages
        self.settings = settings

    # ---- validation shared by both doors ----
    def target_languages(self, targets: list[str]) -> list[str]:
        if not targets:
            raise InvalidRequestError("at least one target language is required")
        normalized: list[str] = []
        for code in targets:
            iso = normalize_language(code)
            if iso not in normalized:
                normalized.append(iso)
        if len(normalized) > self.settings.max_target_languages:
            raise InvalidRequestError(
                f"{len(normalized)} target languages; at most {self.settings.max_target_languages} per request"
            )
        return normalized

    def check_text(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError("text is empty")
        if len(text) > self.settings.max_text_chars:
            raise TextTooLongError(f"text is {len(text)} characters; the limit is {self.settings.max_text_chars}")
        return text

    def decode(self, audio: bytes) -> DecodedAudio:
        """Decode an upload to Whisper's 16 kHz mono, enforcing the configured limits."""
        return decode_audio(
            audio,
            sample_rate=WHISPER_RATE,
            max_bytes=self.settings.max_audio_bytes,
            max_seconds=self.settings.max_audio_seconds,
            min_seconds=self.settings.min_audio_seconds,
        )

    # ---- text ----
    async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]:
        """Translate into every target concurrently; each target reports its own success or error."""
        self.check_text(text)
        source = "auto" if source in ("", "auto", None) else normalize_language(source)
        languages = self.target_languages(targets)
        return list(await asyncio.gather(*(self._translate_one(text, source, t) for t in languages)))

    async def _translate_one(self, text: str, source: str, target: str) -> TextTranslation:
        started = time.perf_counter()
        try:
            out = await self.stages.translate(text, source, target)
        except Exception as exc:  # noqa: BLE001 - reported per language, never fatal to others
            err = as_service_error(exc, "translation_failed")
            return TextTranslation(
                target_language=target,
                source_language=source,
                processing_time_ms=_ms(started),
                error=err.message,
                error_code=err.code,
            )
        return TextTranslation(
            target_language=target,
            source_language=out.source_language,
            translated_text=out.translated_text,
            model=out.model,
            confidence=out.confidence,
            processing_time_ms=_ms(started),
        )

    # ---- voice ----
    async def process_voice(self, job: VoiceJob) -> AsyncIterator[PipelineEvent]:
        """Yield `transcription`, then one `language`/`language_failed` per target, then `completed`.

        Input errors (bad audio, unknown language) raise before anything is yielded, so a caller
        can answer them with a plain 4xx.
        """
        started = time.perf_counter()
        targets = self.target_languages(job.target_languages)
        source_hint = normalize_language(job.source_language) if job.source_language not in (None, "", "auto") else None
        timings = StageTimings()

        t0 = time.perf_counter()
        decoded = await asyncio.to_thread(self.decode, job.audio)
        timings.decode_ms = _ms(t0)
        pcm = pcm_to_bytes(decoded.samples)

        reference_task: asyncio.Task[bytes] | None = None
        if job.forwarded_reference is not None:
            forwarded = reference_from_wire(job.forwarded_reference).to_npz_bytes()  # bad bytes: a 4xx, now
            reference_task = asyncio.create_task(_ready(forwarded))
        elif job.generate_voice_clone:
            reference_task = asyncio.create_task(self._timed_reference(pcm, timings))

        try:
            transcription = await self._transcribe(job, pcm, decoded.samples.size, source_hint, timings)
        except BaseException:
            if reference_task:
                reference_task.cancel()
            raise
        yield PipelineEvent(kind="transcription", transcription=transcription, processing_time_ms=_ms(started))

        source = source_hint or transcription.language
        reference: bytes | None = None
        language_tasks = [
            asyncio.create_task(
                self._voice_language(transcription.text, source, target, reference_task, job.output_format)
            )
            for target in targets
        ]
        results: list[LanguageAudio] = []
        failures: list[LanguageFailure] = []
        for next_done in asyncio.as_completed(language_tasks):
            outcome = await next_done
            if isinstance(outcome, LanguageAudio):
                results.append(outcome)
                yield PipelineEvent(kind="language", language=outcome, processing_time_ms=_ms(started))
            else:
                failures.append(outcome)
                yield PipelineEvent(kind="language_failed", failure=outcome, processing_time_ms=_ms(started))
        if reference_task is not None:
            try:
                reference = reference_task.result()
            except Exception as exc:  # noqa: BLE001 - the voices were delivered unconverted
                log.warning("speaker embedding failed, voices not cloned: %s", as_service_error(exc).message)
        order = {t: i for i, t in enumerate(targets)}
        results.sort(key=lambda r: order[r.target_language])
        result = VoiceResult(
            transcription=transcription,
            translations=results,
            failed=failures,
            voice_cloned=bool(reference) and any(r.voice_cloned for r in results),
            processing_time_ms=_ms(started),
            timings=timings,
            speaker_reference=reference,
        )
        yield PipelineEvent(kind="completed", result=result, processing_time_ms=result.processing_time_ms)

    async def run_voice(self, job: VoiceJob) -> VoiceResult:
        async for event in self.process_voice(job):
            if event.kind == "completed" and event.result is not None:
                return event.result
        raise ServiceError("pipeline ended without a result")  # pragma: no cover - defensive

    async def _timed_reference(self, pcm: bytes, timings: StageTimings) -> bytes:
        t0 = time.perf_counter()
        try:
            return await self.stages.speaker_reference(pcm, WHISPER_RATE)
        finally:
            timings.embed_ms = _ms(t0)

    async def _transcribe(
        self, job: VoiceJob, pcm: bytes, n_samples: int, language: str | None, timings: StageTimings
    ) -> Transcription:
        if job.mobile_transcription is not None:
            return from_mobile(job.mobile_transcription, int(1000 * n_samples / WHISPER_RATE))
        t0 = time.perf_counter()
        try:
            transcription = await self.stages.transcribe(pcm, language)
        except Exception as exc:
            raise as_service_error(exc, "transcription_failed") from exc
        finally:
            timings.transcribe_ms = _ms(t0)
        if not transcription.text.strip():
            raise TranscriptionError("no speech was recognised in the audio", status=422)
        return transcription

    async def _voice_language(
        self,
        text: str,
        source: str,
        target: str,
        reference_task: asyncio.Task[bytes] | None,
        fmt: str,
    ) -> LanguageAudio | LanguageFailure:
        timings: dict[str, int] = {}
        stage = "translation_failed"
        try:
            t0 = time.perf_counter()
            translated = await self.stages.translate(text, source, target)
            timings["translate"] = _ms(t0)
            stage = "tts_failed"
            t0 = time.perf_counter()
            clip = await self.stages.synthesize(translated.translated_text, target)
            timings["tts"] = _ms(t0)
            cloned = False
            similarity = base_similarity = None
            if reference_task is not None:
                stage = "voice_clone_failed"
                t0 = time.perf_counter()
                try:
                    reference = await asyncio.shield(reference_task)
                    converted = await self.stages.convert(clip, reference)
                    clip = clip.model_copy(update={"pcm": converted.pcm, "sample_rate": converted.sample_rate})
                    cloned = converted.converted
                    similarity, base_similarity = converted.similarity, converted.base_similarity
                except Exception as exc:  # noqa: BLE001 - degrade to the base voice, say so
                    log.warning("voice conversion failed for %s: %s", target, as_service_error(exc).message)
                timings["voice_clone"] = _ms(t0)
            stage = "processing_failed"
            t0 = time.perf_counter()
            samples = pcm_from_bytes(clip.pcm)
            audio = await asyncio.to_thread(encode_audio, samples, clip.sample_rate, fmt)
            timings["encode"] = _ms(t0)
            return LanguageAudio(
                target_language=target,
                translated_text=translated.translated_text,
                audio=audio,
                audio_mime_type=MIME_TYPES[fmt],
                duration_ms=duration_ms(samples, clip.sample_rate),
                voice_cloned=cloned,
                voice_similarity=similarity,
                base_voice_similarity=base_similarity,
                tts_backend=clip.backend,
                translation_model=translated.model,
                translation_confidence=translated.confidence,
                timings_ms=timings,
            )
        except Exception as exc:  # noqa: BLE001 - one language never sinks the others
            err = as_service_error(exc, stage)
            log.warning("language %s failed (%s): %s", target, err.code, err.message)
            return LanguageFailure(target_language=target, error=err.message, error_code=err.code)
