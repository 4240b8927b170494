"""One handler per gateway request type: validate into the shared models, call the Pipeline, publish.

No pipeline logic lives here; a handler maps a request onto `PipelineApi` calls and renders the
results into PROTOCOL.md's events. Every failure becomes the request type's own error event
(`error_events`), so the gateway always hears back about a request it can identify.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ingress.gateway.audio_sources import binary_frame, decode_base64, resolve_audio
from ingress.gateway.jobs import JobRegistry, VoiceJobRecord, deliver_webhook
from ingress.gateway.protocol.events import (
    AudioLanguageReady,
    AudioProcessCompleted,
    AudioProcessError,
    EventMetadata,
    FailedLanguageWire,
    GatewayEvent,
    GenericError,
    NewVoiceProfileWire,
    Pong,
    StoryTextObjectCompleted,
    TranscriptionCompleted,
    TranscriptionErrorEvent,
    TranscriptionReady,
    TranslatedAudioWire,
    TranslationCompleted,
    TranslationErrorEvent,
    TranslationResultWire,
    TranslationSkipped,
    VoiceApiError,
    VoiceApiSuccess,
    VoiceJobFinished,
    VoiceJobProgress,
    VoiceProfileErrorEvent,
    VoiceProfileResult,
)
from ingress.gateway.protocol.requests import (
    VOICE_API_TYPES,
    VOICE_PROFILE_TYPES,
    AudioProcessRequest,
    AudioSource,
    StoryTextObjectRequest,
    TranscriptionOnlyRequest,
    TranslationRequest,
    VoiceApiRequest,
    VoiceAudioRequest,
    VoiceCompareRequest,
    VoiceFeedbackRequest,
    VoiceJobRequest,
    VoiceProfileAnalyzeRequest,
    VoiceProfileApiRequest,
    VoiceProfileCompareRequest,
    VoiceProfileVerifyRequest,
    VoiceTranslateAsyncRequest,
    VoiceTranslateRequest,
)
from serve_app.domain.translation import TextTranslation
from serve_app.domain.voice import LanguageAudio, PipelineEvent, VoiceJob, VoiceResult
from serve_app.errors import (
    BusyError,
    InvalidRequestError,
    NotFoundError,
    ServiceError,
    TextTooLongError,
    UnsupportedLanguageError,
    as_service_error,
)
from serve_app.languages import SUPPORTED_LANGUAGES, normalize_language
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)

Publish = Callable[[GatewayEvent, Sequence[bytes]], Awaitable[None]]
AUDIO_ERROR_CODES = {
    "pipeline_unavailable", "processing_failed", "transcription_failed", "translation_failed", "tts_failed",
    "voice_clone_failed", "invalid_request", "busy",
}


def _ms(since: float) -> int:
    return int(round((time.perf_counter() - since) * 1000))


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)


def audio_error_code(err: ServiceError) -> str:
    if isinstance(err, InvalidRequestError):
        return "invalid_request"
    return err.code if err.code in AUDIO_ERROR_CODES else "processing_failed"


def voice_api_error_code(err: ServiceError) -> str:
    if isinstance(err, BusyError):
        return "RATE_LIMITED"
    if isinstance(err, NotFoundError):
        return "NOT_FOUND"
    if isinstance(err, InvalidRequestError) or 400 <= err.status < 500:
        return "INVALID_REQUEST"
    return "INTERNAL_ERROR"


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _targets(raw: dict[str, Any]) -> list[str | None]:
    targets = raw.get("targetLanguages")
    if isinstance(targets, list):
        named = [t for t in targets if isinstance(t, str) and t]
        if named:
            return list(dict.fromkeys(named))
    return [None]


def error_events(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    """The error event(s) the gateway expects for a request of this type, carrying the ids it sent."""
    kind = raw.get("type") or "translation"
    kind = kind if isinstance(kind, str) else "unknown"
    task_id = _text(raw, "taskId")
    if kind == "translation":
        return [
            TranslationErrorEvent(taskId=task_id or "", messageId=_text(raw, "messageId") or "", error=err.message,
                                  errorCode=err.code, targetLanguage=t, conversationId=_text(raw, "conversationId"))
            for t in _targets(raw)
        ]
    if kind == "audio_process":
        # FIX (PROTOCOL.md): the gateway sends no taskId here; even a busy answer carries a generated one.
        return [AudioProcessError(taskId=task_id or f"audio_{uuid.uuid4().hex}",
                                  messageId=_text(raw, "messageId") or "",
                                  attachmentId=_text(raw, "attachmentId") or "", error=err.message,
                                  errorCode=audio_error_code(err), conversationId=_text(raw, "conversationId"))]
    if kind == "transcription_only":
        code = "invalid_request" if isinstance(err, InvalidRequestError) else "transcription_failed"
        code = "busy" if isinstance(err, BusyError) else code
        return [TranscriptionErrorEvent(taskId=task_id or "", messageId=_text(raw, "messageId") or "",
                                        attachmentId=_text(raw, "attachmentId") or "", error=err.message,
                                        errorCode=code)]
    if kind in VOICE_API_TYPES:
        return [VoiceApiError(taskId=task_id or "", requestType=kind, error=err.message,
                              errorCode=voice_api_error_code(err))]
    if kind in VOICE_PROFILE_TYPES:
        return [VoiceProfileErrorEvent(request_id=_text(raw, "request_id") or "", requestType=kind,
                                       error=err.message, errorCode=err.code)]
    return [GenericError(requestType=kind, taskId=task_id, messageId=_text(raw, "messageId"),
                         attachmentId=_text(raw, "attachmentId"), request_id=_text(raw, "request_id"),
                         postId=_text(raw, "postId"), error=err.message, errorCode=err.code)]


def translated_audio(r: LanguageAudio) -> TranslatedAudioWire:
    quality = r.voice_similarity if r.voice_similarity is not None else 0.0
    return TranslatedAudioWire(
        targetLanguage=r.target_language, translatedText=r.translated_text, durationMs=r.duration_ms,
        voiceCloned=r.voice_cloned, voiceQuality=round(float(quality), 4), audioMimeType=r.audio_mime_type,
    )


def voice_result_json(result: VoiceResult, user_id: str | None) -> dict[str, Any]:
    """The voice API's JSON-only result: audio travels as base64 here (no binary frames on this API)."""
    return {
        "translationId": f"vtr_{uuid.uuid4().hex[:16]}",
        "userId": user_id,
        "originalText": result.transcription.text,
        "originalLanguage": result.transcription.language,
        "transcription": result.transcription.model_dump(mode="json"),
        "translations": [
            {**translated_audio(r).model_dump(mode="json"), "audioBase64": base64.b64encode(r.audio).decode("ascii"),
             "voiceSimilarity": r.voice_similarity, "baseVoiceSimilarity": r.base_voice_similarity}
            for r in result.translations
        ],
        "failedLanguages": [
            {"targetLanguage": f.target_language, "error": f.error, "errorCode": f.error_code} for f in result.failed
        ],
        "voiceCloned": result.voice_cloned,
        "processingTimeMs": result.processing_time_ms,
    }


class GatewayHandlers:
    def __init__(self, pipeline: VoicePipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.jobs = JobRegistry(settings.max_jobs)
        self.translations_in_flight: dict[str, set[str]] = {}
        self.received: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.deduplicated = 0
        self.started_at = time.time()
        self.in_flight = lambda: 0  # the transport replaces this with its live count
        # voice_stats reports the transport's counters too (busy rejections, malformed input, loop state).
        self.transport_stats: Callable[[], dict[str, Any]] = self.stats
        self.routes: dict[str, Callable[[dict[str, Any], list[bytes], Publish], Awaitable[None]]] = {
            "ping": self.on_ping,
            "translation": self.on_translation,
            "story_text_object_translation": self.on_story_text,
            "audio_process": self.on_audio_process,
            "transcription_only": self.on_transcription_only,
            **{kind: self.on_voice_api for kind in VOICE_API_TYPES},
            **{kind: self.on_voice_profile for kind in VOICE_PROFILE_TYPES},
        }

    # ---- entry ----
    async def handle(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        kind = raw.get("type") or "translation"
        handler = self.routes.get(kind) if isinstance(kind, str) else None
        self.received[kind if handler is not None else "unknown"] += 1  # client strings never grow the map
        try:
            if handler is None:
                raise InvalidRequestError(f"unknown message type {kind!r}", code="unknown_type")
            await handler(raw, frames, publish)
        except asyncio.CancelledError:
            raise
        except ValidationError as exc:
            await self.publish_error(raw, InvalidRequestError(validation_message(exc)), publish)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, none kills the loop
            await self.publish_error(raw, as_service_error(exc), publish)

    async def publish_error(self, raw: dict[str, Any], err: ServiceError, publish: Publish) -> None:
        kind = raw.get("type") or "translation"
        self.failed[kind if isinstance(kind, str) and kind in self.routes else "unknown"] += 1
        level = logging.ERROR if err.status >= 500 else logging.INFO
        log.log(level, "gateway request %s failed (%s): %s", raw.get("type"), err.code, err.message)
        for event in error_events(raw, err):
            await publish(event, ())

    def stats(self) -> dict[str, Any]:
        return {
            "received": dict(self.received),
            "failed": dict(self.failed),
            "deduplicated": self.deduplicated,
            "inFlight": self.in_flight(),
            "jobs": self.jobs.counts(),
            "uptimeS": round(time.time() - self.started_at, 1),
        }

    # ---- ping ----
    async def on_ping(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        cache: dict[str, Any] | None = None
        available = True
        try:
            stats = await asyncio.wait_for(self.pipeline.stats(), 2.0)
            cache = stats.get("cache")
            available = bool(stats.get("ready", True))
        except Exception as exc:  # noqa: BLE001 - a pong is always sent; it says what it knows
            log.warning("ping: pipeline stats unavailable: %s", exc)
            available = False
        await publish(
            Pong(translator_port_pub=self.settings.zmq_pub_port, translator_port_pull=self.settings.zmq_pull_port,
                 audio_pipeline_available=available, cache=cache, in_flight=self.in_flight()),
            (),
        )

    # ---- text ----
    async def on_translation(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        req = TranslationRequest.model_validate(raw)
        if len(req.text) > self.settings.max_text_chars:
            await publish(TranslationSkipped(taskId=req.taskId, messageId=req.messageId, length=len(req.text),
                                             max_length=self.settings.max_text_chars,
                                             conversationId=req.conversationId), ())
            return
        if not req.text.strip():
            raise InvalidRequestError("text is empty")
        pending = self.translations_in_flight.setdefault(req.taskId, set())
        languages = [t for t in dict.fromkeys(req.targetLanguages) if t not in pending]
        if not languages:
            self.deduplicated += 1
            log.info("translation %s re-pushed while in flight; de-duplicated", req.taskId)
            return
        pending.update(languages)
        await asyncio.gather(*(self._translate_one(req, lang, publish, pending) for lang in languages))

    async def _translate_one(self, req: TranslationRequest, language: str, publish: Publish, pending: set[str]) -> None:
        """Each language leaves the in-flight set as soon as it is answered, so the gateway's retry of a
        failed language is served even while the task's other languages still run."""
        try:
            await self._translate_and_publish(req, language, publish)
        finally:
            pending.discard(language)
            if not pending and self.translations_in_flight.get(req.taskId) is pending:
                self.translations_in_flight.pop(req.taskId, None)

    async def _translate_and_publish(self, req: TranslationRequest, language: str, publish: Publish) -> None:
        started = time.perf_counter()
        try:
            [out] = await self.pipeline.translate_text(req.text, req.sourceLanguage, [language])
        except Exception as exc:  # noqa: BLE001 - reported for this language at once
            err = as_service_error(exc, "translation_failed")
            out = TextTranslation(target_language=language, source_language=req.sourceLanguage, error=err.message,
                                  error_code=err.code)
        if not out.ok:
            self.failed["translation"] += 1
            await publish(TranslationErrorEvent(taskId=req.taskId, messageId=req.messageId, error=out.error or "",
                                                errorCode=out.error_code or "translation_failed",
                                                targetLanguage=language, conversationId=req.conversationId), ())
            return
        result = TranslationResultWire(
            messageId=req.messageId, translatedText=out.translated_text, sourceLanguage=out.source_language,
            targetLanguage=language, confidenceScore=round(out.confidence, 4),
            processingTime=round(time.perf_counter() - started, 4), modelType=req.modelType,
            translatorModel=out.model, fromCache=out.from_cache,
        )
        await publish(TranslationCompleted(taskId=req.taskId, targetLanguage=language, result=result,
                                           metadata=EventMetadata(modelVersion=out.model, requestId=req.taskId)), ())

    async def on_story_text(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        req = StoryTextObjectRequest.model_validate(raw)
        if len(req.text) > self.settings.max_text_chars:
            limit = self.settings.max_text_chars
            raise TextTooLongError(f"text is {len(req.text)} characters; the limit is {limit}")
        outs = await asyncio.gather(*(self.pipeline.translate_text(req.text, req.sourceLanguage, [t])
                                      for t in dict.fromkeys(req.targetLanguages)), return_exceptions=True)
        translations: dict[str, str] = {}
        failed: dict[str, str] = {}
        for target, out in zip(dict.fromkeys(req.targetLanguages), outs, strict=True):
            if isinstance(out, BaseException):
                failed[target] = as_service_error(out).message
            elif out[0].ok:
                translations[target] = out[0].translated_text
            else:
                failed[target] = out[0].error or "translation failed"
        await publish(StoryTextObjectCompleted(postId=req.postId, textObjectIndex=req.textObjectIndex,
                                               translations=translations, failedLanguages=failed), ())

    # ---- audio ----
    async def on_audio_process(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        if not _text(raw, "taskId"):
            raw["taskId"] = f"audio_{uuid.uuid4().hex}"  # FIX: the old gateway sends none; errors carry it too
        req = AudioProcessRequest.model_validate(raw)
        task_id: str = raw["taskId"]  # the request's own, or the one generated above
        ids = {"taskId": task_id, "messageId": req.messageId, "attachmentId": req.attachmentId}
        audio = await resolve_audio(req, frames, self.settings)
        refs = req.binaryFrames
        forwarded: bytes | None = None
        if req.existingVoiceProfile is not None and req.useOriginalVoice and refs is not None:
            forwarded = binary_frame(frames, refs.voiceProfile or refs.embedding, "voiceProfile")
        targets, rejected = _split_targets(req.targetLanguages)
        if not targets:
            raise UnsupportedLanguageError("; ".join(f.error for f in rejected))
        job = VoiceJob(
            audio=audio, target_languages=targets, generate_voice_clone=req.generateVoiceClone,
            # A forwarded message is the original sender's voice: it never updates the forwarder's profile.
            user_id=None if req.existingVoiceProfile is not None else req.senderId,
            mobile_transcription=req.mobileTranscription,
            output_format=self.settings.output_format,
            audio_mime_type=req.audioMimeType or (refs.audioMimeType if refs else None),
            attachment_id=req.attachmentId, forwarded_reference=forwarded,
        )
        total = len(targets) + len(rejected)
        done = 0
        for failure in rejected:
            done += 1
            log.info("audio_process %s: %s", task_id, failure.error)
        async for event in self.pipeline.process_voice(job):
            if event.kind == "transcription" and event.transcription is not None:
                await publish(TranscriptionReady(**ids, processingTimeMs=event.processing_time_ms,
                                                 transcription=event.transcription), ())
            elif event.kind in ("language", "language_failed"):
                done += 1
                if event.language is not None:
                    name = ("audio_translation_ready" if total == 1 else
                            "audio_translations_completed" if done == total else "audio_translations_progressive")
                    r = event.language
                    await publish(AudioLanguageReady(
                        type=name, **ids, language=r.target_language, translatedAudio=translated_audio(r),
                        binaryFrames={"audio": {"index": 1, "size": len(r.audio), "mimeType": r.audio_mime_type}},
                        processingTimeMs=event.processing_time_ms,
                    ), (r.audio,))
            elif event.kind == "completed" and event.result is not None:
                await self._audio_completed(req, ids, event, rejected, publish)

    async def _audio_completed(
        self, req: AudioProcessRequest, ids: dict[str, str], event: PipelineEvent,
        rejected: list[FailedLanguageWire], publish: Publish,
    ) -> None:
        result = event.result
        assert result is not None
        binaries: list[bytes] = []
        refs: dict[str, dict[str, Any]] = {}
        for r in result.translations:
            binaries.append(r.audio)
            refs[f"audio_{r.target_language}"] = {"index": len(binaries), "size": len(r.audio),
                                                  "mimeType": r.audio_mime_type}
        if result.speaker_reference:
            binaries.append(result.speaker_reference)
            refs["embedding"] = {"index": len(binaries), "size": len(result.speaker_reference),
                                 "format": "npz"}
        similarities = [r.voice_similarity for r in result.translations if r.voice_similarity is not None]
        profile = result.voice_profile
        quality = profile["qualityScore"] if profile else (max(similarities) if similarities else 0.0)
        new_profile = None
        if profile and result.voice_profile_action in ("created", "improved"):
            new_profile = NewVoiceProfileWire.model_validate(profile)
        await publish(AudioProcessCompleted(
            **ids, transcription=result.transcription,
            translatedAudios=[translated_audio(r) for r in result.translations],
            failedLanguages=rejected + [FailedLanguageWire(targetLanguage=f.target_language, error=f.error,
                                                           errorCode=f.error_code) for f in result.failed],
            voiceModelUserId=(req.existingVoiceProfile.userId or req.originalSenderId or req.senderId)
            if req.existingVoiceProfile else req.senderId,
            voiceModelQuality=round(float(quality), 4), processingTimeMs=result.processing_time_ms,
            binaryFrames=refs, newVoiceProfile=new_profile, voiceProfileAction=result.voice_profile_action,
        ), binaries)

    async def on_transcription_only(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        if not _text(raw, "taskId"):
            raw["taskId"] = f"transcription_{uuid.uuid4().hex}"
        req = TranscriptionOnlyRequest.model_validate(raw)
        started = time.perf_counter()
        audio = await resolve_audio(req, frames, self.settings)
        transcription = await self.pipeline.transcribe(audio, req.language, req.mobileTranscription,
                                                       req.attachmentId or None)
        await publish(TranscriptionCompleted(taskId=raw["taskId"], messageId=req.messageId,
                                             attachmentId=req.attachmentId, processingTimeMs=_ms(started),
                                             transcription=transcription), ())

    # ---- voice API ----
    async def on_voice_api(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        kind = raw["type"]
        req = VOICE_API_TYPES[kind].model_validate(raw)
        started = time.perf_counter()
        if kind == "voice_translate_async":
            assert isinstance(req, VoiceTranslateAsyncRequest)
            await self._voice_translate_async(req, publish)
            return
        result = await self._voice_api_result(kind, req)
        await publish(VoiceApiSuccess(taskId=req.taskId, requestType=kind, result=result,
                                      processingTimeMs=_ms(started)), ())

    async def _audio_of(self, req: VoiceAudioRequest) -> bytes:
        text = req.audioBase64 or req.audioData
        if text:
            return decode_base64(text, self.settings)
        if req.audioPath or req.audioUrl:
            return await resolve_audio(AudioSource(audioPath=req.audioPath, audioUrl=req.audioUrl), [], self.settings)
        raise InvalidRequestError("audioBase64 is required")

    async def _voice_api_result(self, kind: str, req: VoiceApiRequest) -> dict[str, Any]:
        if kind == "voice_translate":
            assert isinstance(req, VoiceTranslateRequest)
            result = await self.pipeline.run_voice(await self._voice_job(req))
            return voice_result_json(result, req.userId)
        if kind == "voice_analyze":
            assert isinstance(req, VoiceAudioRequest)
            analysis = await self.pipeline.profile_analyze(await self._audio_of(req), user_id=req.userId)
            return analysis.to_wire(camel=True)
        if kind == "voice_compare":
            assert isinstance(req, VoiceCompareRequest)
            comparison = await self.pipeline.compare_voices(
                decode_base64(req.audioBase64_1, self.settings, "audioBase64_1"),
                decode_base64(req.audioBase64_2, self.settings, "audioBase64_2"),
            )
            return comparison.to_wire(camel=True)
        if kind.startswith("voice_profile_"):
            assert isinstance(req, VoiceProfileApiRequest)
            return await self._profile_api(kind.removeprefix("voice_profile_"), req)
        if kind in ("voice_job_status", "voice_job_cancel"):
            assert isinstance(req, VoiceJobRequest)
            job = self.jobs.cancel(req.jobId) if kind == "voice_job_cancel" else self.jobs.get(req.jobId)
            return job.public()
        if kind == "voice_feedback":
            assert isinstance(req, VoiceFeedbackRequest)
            return await self.pipeline.record_feedback(req.model_dump(exclude={"type"}))
        if kind == "voice_history":
            return {"userId": req.userId, "jobs": self.jobs.history(req.userId)}
        if kind == "voice_languages":
            return {"languages": [{"code": lang.code, "name": lang.name} for lang in
                                  sorted(SUPPORTED_LANGUAGES.values(), key=lambda x: x.code)],
                    "count": len(SUPPORTED_LANGUAGES)}
        if kind == "voice_health":
            health = await self.pipeline.health()
            return {**health, "zmq": {"inFlight": self.in_flight()}}
        if kind in ("voice_stats", "voice_admin_metrics"):
            stats = {"zmq": self.transport_stats(), **(await self.pipeline.stats())}
            if kind == "voice_admin_metrics":
                stats["health"] = await self.pipeline.health()
            return stats
        raise InvalidRequestError(f"unknown voice API type {kind!r}")  # pragma: no cover - routes are the keys

    async def _profile_api(self, operation: str, req: VoiceProfileApiRequest) -> dict[str, Any]:
        if operation == "list":
            return await self.pipeline.profile_list(req.limit, req.offset)
        if not req.userId:
            raise InvalidRequestError("userId is required")
        if operation == "get":
            return await self.pipeline.profile_get(req.userId)
        if operation == "delete":
            return await self.pipeline.profile_delete(req.userId)
        audio = await self._audio_of(req)
        if operation == "create":
            return await self.pipeline.profile_create(req.userId, audio)
        return await self.pipeline.profile_update(req.userId, audio)

    async def _voice_job(self, req: VoiceTranslateRequest) -> VoiceJob:
        targets, rejected = _split_targets(req.targetLanguages)
        if rejected:
            raise UnsupportedLanguageError("; ".join(f.error for f in rejected))
        return VoiceJob(audio=await self._audio_of(req), target_languages=targets,
                        source_language=req.sourceLanguage, generate_voice_clone=req.generateVoiceClone,
                        user_id=req.userId, output_format=req.outputFormat)

    async def _voice_translate_async(self, req: VoiceTranslateAsyncRequest, publish: Publish) -> None:
        """Ack with a job id and return: the job runs as its own task (bounded separately), so long jobs
        and their webhook retries never hold the request slots that text translations need."""
        voice_job = await self._voice_job(req)  # a bad request fails now, before a job id is handed out
        if len(self.jobs.tasks) >= self.settings.zmq_max_in_flight:
            raise BusyError(f"{len(self.jobs.tasks)} voice jobs running; retry shortly")
        job = self.jobs.create(req.taskId, req.userId, voice_job.target_languages)
        self.jobs.attach(job, asyncio.create_task(self._job_task(req, job, voice_job, publish)))
        await publish(VoiceApiSuccess(taskId=req.taskId, requestType=req.type,
                                      result={"jobId": job.jobId, "status": "pending"}, processingTimeMs=0), ())

    async def _job_task(
        self, req: VoiceTranslateAsyncRequest, job: VoiceJobRecord, voice_job: VoiceJob, publish: Publish
    ) -> None:
        try:
            final = await self._run_job(req, job, voice_job, publish)
        except asyncio.CancelledError:
            final = VoiceJobFinished(type="voice_translation_failed", taskId=req.taskId, jobId=job.jobId,
                                     status="cancelled", userId=req.userId, error="the job was cancelled",
                                     errorCode="CANCELLED")
            await publish(final, ())
            return  # the cancel is complete and reported
        if req.webhookUrl:
            await deliver_webhook(req.webhookUrl, {**final.to_wire(), "callbackMetadata": req.callbackMetadata},
                                  self.settings.webhook_attempts, self.settings.webhook_timeout_s)

    async def _run_job(
        self, req: VoiceTranslateAsyncRequest, job: VoiceJobRecord, voice_job: VoiceJob, publish: Publish
    ) -> VoiceJobFinished:
        async def progress(value: int, step: str) -> None:
            self.jobs.update(job, status="processing", progress=value, currentStep=step)
            await publish(VoiceJobProgress(taskId=req.taskId, jobId=job.jobId, progress=value, currentStep=step), ())

        n = len(voice_job.target_languages)
        done = 0
        await progress(5, "transcribing")
        try:
            async for event in self.pipeline.process_voice(voice_job):
                if event.kind == "transcription":
                    await progress(30, "translating")
                elif event.kind in ("language", "language_failed"):
                    done += 1
                    lang = (event.language or event.failure).target_language  # type: ignore[union-attr]
                    await progress(30 + int(65 * done / n), f"language {lang} done")
                elif event.kind == "completed" and event.result is not None:
                    result = voice_result_json(event.result, req.userId)
                    self.jobs.update(job, status="completed", progress=100, currentStep="completed", result=result)
                    final = VoiceJobFinished(type="voice_translation_completed", taskId=req.taskId, jobId=job.jobId,
                                             status="completed", userId=req.userId, result=result)
                    await publish(final, ())
                    return final
            raise ServiceError("the pipeline ended without a result")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the job fails with its reason, the loop goes on
            err = as_service_error(exc)
            self.jobs.update(job, status="failed", currentStep="failed", error=err.message,
                             errorCode=voice_api_error_code(err))
            final = VoiceJobFinished(type="voice_translation_failed", taskId=req.taskId, jobId=job.jobId,
                                     status="failed", userId=req.userId, error=err.message,
                                     errorCode=voice_api_error_code(err))
            await publish(final, ())
            return final

    # ---- voice profile family (snake_case) ----
    async def on_voice_profile(self, raw: dict[str, Any], frames: list[bytes], publish: Publish) -> None:
        kind = raw["type"]
        req: BaseModel = VOICE_PROFILE_TYPES[kind].model_validate(raw)
        if isinstance(req, VoiceProfileAnalyzeRequest):
            analysis = await self.pipeline.profile_analyze(
                decode_base64(req.audio_data, self.settings, "audio_data"), user_id=req.user_id,
                include_transcription=req.include_transcription, min_profile_audio=True,
                preview_languages=req.preview_languages if req.generate_previews else [],
                preview_text=req.preview_text,
            )
            result = analysis.to_wire()
        elif isinstance(req, VoiceProfileVerifyRequest):
            verification = await self.pipeline.profile_verify(
                decode_base64(req.audio_data, self.settings, "audio_data"), req.user_id, req.existing_fingerprint,
            )
            result = verification.to_wire()
        else:
            assert isinstance(req, VoiceProfileCompareRequest)
            match = await self.pipeline.profile_compare(req.fingerprint_a, req.fingerprint_b)
            result = match.to_wire()
        await publish(VoiceProfileResult(type=f"{kind}_result", request_id=raw["request_id"], result=result), ())


def _split_targets(targets: list[str]) -> tuple[list[str], list[FailedLanguageWire]]:
    """Known languages go to the pipeline; an unknown one fails alone instead of sinking the message."""
    ok: list[str] = []
    rejected: list[FailedLanguageWire] = []
    for code in dict.fromkeys(targets):
        try:
            iso = normalize_language(code)
        except ServiceError as exc:
            rejected.append(FailedLanguageWire(targetLanguage=code, error=exc.message, errorCode=exc.code))
            continue
        if iso not in ok:
            ok.append(iso)
    return ok, rejected
