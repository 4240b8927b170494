"""The voice-message flow: decode, transcribe while embedding the sender, then per language translate
-> speak -> convert, streaming each language out as soon as it is ready.

A mixin of `VoicePipeline`, written against `Stages`, so the same code runs over Ray handles in
production and over fake stages in unit tests. A failing language becomes a `language_failed` event;
it never cancels the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np

from serve_app.audio import MIME_TYPES, DecodedAudio, duration_ms, encode_audio, pcm_from_bytes, pcm_to_bytes
from serve_app.domain.speaker import SpeakerReference, reference_from_wire
from serve_app.domain.transcription import Transcription, from_mobile
from serve_app.domain.translation import TranslationResult
from serve_app.domain.voice import (
    LanguageAudio,
    LanguageFailure,
    PipelineEvent,
    SpeechClip,
    StageTimings,
    VoiceJob,
    VoiceResult,
)
from serve_app.errors import ServiceError, as_service_error
from serve_app.languages import normalize_language
from serve_app.observability.metrics import AUDIO_SECONDS, LANGUAGE_FAILURES, VOICE_SIMILARITY
from serve_app.pipeline.latency import StageLatency
from serve_app.pipeline.speech import WHISPER_RATE
from serve_app.pipeline.stages import Stages
from serve_app.pipeline.text import elapsed_ms
from serve_app.sentences import split_text
from serve_app.settings import Settings
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.profile_lifecycle import NewSample, ProfileOutcome, VoiceProfileManager
from serve_app.stores.voice_profiles import VoiceProfile
from serve_app.voice_characteristics import measure_voice

log = logging.getLogger(__name__)
TTS_SENTENCE_CHARS = 300
"""The Synthesizer's own sentence bound (`max_sentence_chars`): a piece never needs splitting again."""
SENTENCE_PAUSE_S = 0.25
"""The pause the Synthesizer puts between sentences, kept when the Pipeline joins them itself."""


async def _ready(value: bytes) -> bytes:
    return value


def _record_delivered(seconds: float, similarity: float | None, base_similarity: float | None) -> None:
    AUDIO_SECONDS.inc(seconds, direction="out")
    if similarity is not None:
        VOICE_SIMILARITY.observe(similarity, voice="converted")
    if base_similarity is not None:
        VOICE_SIMILARITY.observe(base_similarity, voice="base")


def _profile_summary(profile: VoiceProfile) -> dict[str, Any]:
    summary = profile.summary()
    summary["voiceCharacteristics"] = summary.get("voiceCharacteristics") or {}
    return summary


class VoiceMessageOps:
    stages: Stages
    settings: Settings
    profiles: VoiceProfileManager | None
    profile_breaker: CircuitBreaker
    latency: StageLatency

    if TYPE_CHECKING:  # TextOps and SpeechOps provide them; declared for type checkers only, so no stub
        # can shadow the real method whatever the order of VoicePipeline's bases
        def target_languages(self, targets: list[str]) -> list[str]: ...
        def decode(self, audio: bytes) -> DecodedAudio: ...
        async def translate(self, text: str, source: str, target: str) -> tuple[TranslationResult, bool]: ...
        async def transcribe_cached(
            self, pcm: bytes, language: str | None, attachment_id: str | None
        ) -> Transcription: ...

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
        timings.decode_ms = elapsed_ms(t0)
        AUDIO_SECONDS.inc(decoded.samples.size / WHISPER_RATE, direction="in")
        pcm = pcm_to_bytes(decoded.samples)

        reference_task: asyncio.Task[bytes] | None = None
        if job.forwarded_reference is not None:
            forwarded = await asyncio.to_thread(self._forwarded_reference, job.forwarded_reference)  # bad: a 4xx, now
            reference_task = asyncio.create_task(_ready(forwarded))
        elif job.generate_voice_clone:
            reference_task = asyncio.create_task(self._timed_reference(pcm, timings))
        language_known: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        profile_task: asyncio.Task[ProfileOutcome | None] | None = None
        if (reference_task is not None and job.forwarded_reference is None and job.user_id and self.profiles
                and self.profile_breaker.allow()):
            profile_task = asyncio.create_task(self._observe_profile(job, decoded, reference_task, language_known))

        try:
            transcription = await self._transcribe(job, pcm, decoded.samples.size, source_hint, timings)
        except BaseException:
            for task in (reference_task, profile_task):
                if task:
                    task.cancel()
            raise
        language_known.set_result(transcription.language)
        yield PipelineEvent(kind="transcription", transcription=transcription, processing_time_ms=elapsed_ms(started))
        first_reference = reference_task
        if profile_task is not None:
            reference_task = asyncio.create_task(self._profile_reference(profile_task, reference_task))

        source = source_hint or transcription.language
        reference: bytes | None = None
        language_tasks = [
            asyncio.create_task(
                self._voice_language(transcription.text, source, target, reference_task, job.output_format)
            )
            for target in targets
        ]
        try:
            results: list[LanguageAudio] = []
            failures: list[LanguageFailure] = []
            for next_done in asyncio.as_completed(language_tasks):
                outcome = await next_done
                if isinstance(outcome, LanguageAudio):
                    results.append(outcome)
                    yield PipelineEvent(kind="language", language=outcome, processing_time_ms=elapsed_ms(started))
                else:
                    failures.append(outcome)
                    yield PipelineEvent(kind="language_failed", failure=outcome, processing_time_ms=elapsed_ms(started))
            if reference_task is not None:
                try:
                    reference = await reference_task
                except Exception as exc:  # noqa: BLE001 - the voices were delivered unconverted
                    log.warning("speaker embedding failed, voices not cloned: %s", as_service_error(exc).message)
            outcome = await profile_task if profile_task is not None else None
            order = {t: i for i, t in enumerate(targets)}
            results.sort(key=lambda r: order[r.target_language])
            result = VoiceResult(
                transcription=transcription,
                translations=results,
                failed=failures,
                voice_cloned=bool(reference) and any(r.voice_cloned for r in results),
                processing_time_ms=elapsed_ms(started),
                timings=timings,
                speaker_reference=reference,
                voice_profile=_profile_summary(outcome.profile) if outcome and outcome.profile else None,
                voice_profile_action="forwarded" if job.forwarded_reference is not None else (
                    outcome.action if outcome else None),
            )
            yield PipelineEvent(kind="completed", result=result, processing_time_ms=result.processing_time_ms)
        finally:  # a consumer that stops early (cancel, disconnect) leaves no work running behind it
            for task in (*language_tasks, reference_task, first_reference, profile_task):
                if task is not None and not task.done():
                    task.cancel()

    def _forwarded_reference(self, data: bytes) -> bytes:
        """A forwarded `voiceProfile` frame, bounded by the settings before it is decoded (in a thread)."""
        return reference_from_wire(
            data,
            max_bytes=self.settings.max_voice_profile_frame_bytes,
            max_decompressed_bytes=self.settings.max_voice_profile_decompressed_bytes,
        ).to_npz_bytes()

    async def run_voice(self, job: VoiceJob) -> VoiceResult:
        async for event in self.process_voice(job):
            if event.kind == "completed" and event.result is not None:
                return event.result
        raise ServiceError("pipeline ended without a result")  # pragma: no cover - defensive

    async def _observe_profile(
        self, job: VoiceJob, decoded: DecodedAudio, reference_task: asyncio.Task[bytes], language: asyncio.Future[str]
    ) -> ProfileOutcome | None:
        """Reuse, create or improve the sender's profile. A store failure degrades to this message's
        own voice (logged), never fails the message."""
        assert self.profiles is not None and job.user_id
        try:
            reference = await asyncio.shield(reference_task)
            characteristics = await asyncio.to_thread(measure_voice, decoded.samples, WHISPER_RATE)
            sample = NewSample(
                attachment_id=job.attachment_id or f"audio_{hashlib.sha256(job.audio).hexdigest()[:24]}",
                duration_ms=duration_ms(decoded.samples, WHISPER_RATE),
                language=await language,
                embedding=SpeakerReference.from_npz_bytes(reference).embedding,
                speaker_reference=reference,
                characteristics=characteristics,
            )
            outcome = await self.profiles.observe(job.user_id, sample)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the message is still translated in its own voice
            err = as_service_error(exc)
            if err.status >= 500:
                self.profile_breaker.record_failure()
            log.warning("voice profile of %s not updated: %s", job.user_id, err.message)
            return None
        self.profile_breaker.record_success()
        return outcome

    async def _profile_reference(
        self, profile_task: asyncio.Task[ProfileOutcome | None], reference_task: asyncio.Task[bytes]
    ) -> bytes:
        """Clone with the profile's voice when there is one, else with this message's."""
        outcome = await asyncio.shield(profile_task)
        if outcome is not None and outcome.speaker_reference:
            return outcome.speaker_reference
        return await reference_task

    async def _timed_reference(self, pcm: bytes, timings: StageTimings) -> bytes:
        t0 = time.perf_counter()
        try:
            return await self.stages.speaker_reference(pcm, WHISPER_RATE)
        finally:
            timings.embed_ms = elapsed_ms(t0)
            self.latency.record("embed", timings.embed_ms)

    async def _transcribe(
        self, job: VoiceJob, pcm: bytes, n_samples: int, language: str | None, timings: StageTimings
    ) -> Transcription:
        if job.mobile_transcription is not None:
            return from_mobile(job.mobile_transcription, int(1000 * n_samples / WHISPER_RATE))
        t0 = time.perf_counter()
        try:
            transcription = await self.transcribe_cached(pcm, language, job.attachment_id)
        finally:
            timings.transcribe_ms = elapsed_ms(t0)
        self.latency.record("transcribe", timings.transcribe_ms)
        return transcription

    async def speak_as(self, text: str, target: str, reference: bytes) -> LanguageAudio | LanguageFailure:
        """`text` translated into `target` and spoken in the voice of `reference` (profile previews)."""
        try:
            iso = normalize_language(target)
        except ServiceError as exc:
            return LanguageFailure(target_language=target, error=exc.message, error_code=exc.code)
        return await self._voice_language(text, "auto", iso, asyncio.create_task(_ready(reference)),
                                          self.settings.output_format)

    def _tts_turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A slot under settings.tts_concurrency (made on first use, in the replica's event loop)."""
        limit = self.settings.tts_concurrency
        if limit <= 0:
            return contextlib.nullcontext()
        gate: asyncio.Semaphore | None = getattr(self, "_tts_gate", None)
        if gate is None:
            gate = asyncio.Semaphore(limit)
            self._tts_gate = gate
        return gate

    async def _speak(self, text: str, target: str) -> SpeechClip:
        """`text` spoken; with `tts_split_sentences`, one Synthesizer call per sentence, each taking its own
        TTS turn, so the cores stay busy to the end (a long language no longer finishes alone while the
        other core idles) and a language's first sentences overlap another's translation and cloning.
        The sentences are joined with the Synthesizer's own pause; one whole-text call when a backend
        fell back mid-message and the sample rates differ."""
        sentences = [piece.text for piece in split_text(text, TTS_SENTENCE_CHARS)]
        if len(sentences) < 2 or not self.settings.tts_split_sentences:
            return await self._speak_one(text, target)
        tasks = [asyncio.create_task(self._speak_one(sentence, target)) for sentence in sentences]
        try:
            clips = [await task for task in tasks]
        finally:  # one sentence failed (or the caller gave up): the others stop too
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if len({clip.sample_rate for clip in clips}) > 1:
            return await self._speak_one(text, target)
        rate = clips[0].sample_rate
        gap = np.zeros(int(SENTENCE_PAUSE_S * rate), np.float32)
        pieces: list[np.ndarray] = []
        for clip in clips:
            pieces += [pcm_from_bytes(clip.pcm), gap]
        return clips[0].model_copy(update={"pcm": pcm_to_bytes(np.concatenate(pieces[:-1]))})

    async def _speak_one(self, text: str, target: str) -> SpeechClip:
        """One Synthesizer call under a TTS turn."""
        async with self._tts_turn():
            return await self.stages.synthesize(text, target)

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
            translated, _ = await self.translate(text, source, target)
            timings["translate"] = elapsed_ms(t0)
            self.latency.record("translate", timings["translate"])
            stage = "tts_failed"
            t0 = time.perf_counter()
            clip = await self._speak(translated.translated_text, target)
            timings["tts"] = elapsed_ms(t0)
            self.latency.record("synthesize", timings["tts"])
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
                timings["voice_clone"] = elapsed_ms(t0)
                self.latency.record("convert", timings["voice_clone"])
            stage = "processing_failed"
            t0 = time.perf_counter()
            samples = pcm_from_bytes(clip.pcm)
            audio = await asyncio.to_thread(encode_audio, samples, clip.sample_rate, fmt)
            timings["encode"] = elapsed_ms(t0)
            self.latency.record("encode", timings["encode"])
            _record_delivered(samples.size / clip.sample_rate, similarity if cloned else None, base_similarity)
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
            LANGUAGE_FAILURES.inc(flow="voice", language=target, error_code=err.code)
            return LanguageFailure(target_language=target, error=err.message, error_code=err.code)
