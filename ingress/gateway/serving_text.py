"""Text translation for the gateway: `translation` (one event per language) and story text objects.

A re-push of a `taskId` while it is in flight is de-duplicated per language: the gateway retries
the languages it is missing after 30 s (up to 4 times), and a language still running must not be
translated twice. Each language leaves the in-flight set as soon as it is answered, so a retry of a
failed language is served even while the task's other languages still run. Every failed language
is reported at once with its own `translation_error` (FIX: the old translator dropped it silently).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ingress.gateway.context import Call, GatewayState
from ingress.gateway.protocol.events import (
    EventMetadata,
    StoryTextObjectCompleted,
    TranslationCompleted,
    TranslationErrorEvent,
    TranslationResultWire,
    TranslationSkipped,
)
from ingress.gateway.protocol.requests import StoryTextObjectRequest, TranslationRequest
from serve_app.deadlines import StageDeadlines, within_deadline
from serve_app.domain.translation import TextTranslation
from serve_app.errors import InvalidRequestError, RequestTimeoutError, TextTooLongError, as_service_error
from serve_app.observability.metrics import LANGUAGE_FAILURES, language_tag
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)


class ServingText:
    def __init__(self, pipeline: VoicePipeline, settings: Settings, state: GatewayState) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.state = state
        self.in_flight: dict[str, set[str]] = {}  # taskId -> languages still running
        self.deadlines = StageDeadlines(settings)  # the door's own bound, past the stage's deadline

    async def translation(self, req: TranslationRequest, call: Call) -> None:
        if len(req.text) > self.settings.max_text_chars:
            await call.publish(TranslationSkipped(taskId=req.taskId, messageId=req.messageId, length=len(req.text),
                                                  max_length=self.settings.max_text_chars,
                                                  conversationId=req.conversationId), ())
            return
        if not req.text.strip():
            raise InvalidRequestError("text is empty")
        pending = self.in_flight.setdefault(req.taskId, set())
        languages = [t for t in dict.fromkeys(req.targetLanguages) if t not in pending]
        if not languages:
            self.state.deduplicated += 1
            log.info("translation %s re-pushed while in flight; de-duplicated", req.taskId)
            return
        pending.update(languages)
        await asyncio.gather(*(self._translate_one(req, lang, call, pending) for lang in languages))

    async def _translate_one(self, req: TranslationRequest, language: str, call: Call, pending: set[str]) -> None:
        try:
            await self._translate_and_publish(req, language, call)
        finally:
            pending.discard(language)
            if not pending and self.in_flight.get(req.taskId) is pending:
                self.in_flight.pop(req.taskId, None)

    async def _translate_and_publish(self, req: TranslationRequest, language: str, call: Call) -> None:
        started = time.perf_counter()
        limit_s = self.deadlines.door_text_s(len(req.text))
        try:
            [out] = await within_deadline(
                self.pipeline.translate_text(req.text, req.sourceLanguage, [language]), limit_s,
                lambda: RequestTimeoutError(f"no answer from the pipeline within {limit_s:.0f} s"))
        except Exception as exc:  # noqa: BLE001 - reported for this language at once
            err = as_service_error(exc, "translation_failed")  # refused before the Pipeline counted it
            LANGUAGE_FAILURES.inc(flow="text", language=language_tag(language), error_code=err.code)
            out = TextTranslation(target_language=language, source_language=req.sourceLanguage, error=err.message,
                                  error_code=err.code)
        if not out.ok:
            self.state.failed["translation"] += 1
            await call.publish(TranslationErrorEvent(taskId=req.taskId, messageId=req.messageId,
                                                     error=out.error or "",
                                                     errorCode=out.error_code or "translation_failed",
                                                     targetLanguage=language, conversationId=req.conversationId), ())
            return
        result = TranslationResultWire(
            messageId=req.messageId, translatedText=out.translated_text, sourceLanguage=out.source_language,
            targetLanguage=language, confidenceScore=round(out.confidence, 4),
            processingTime=round(time.perf_counter() - started, 4), modelType=req.modelType,
            translatorModel=out.model, fromCache=out.from_cache,
        )
        await call.publish(TranslationCompleted(taskId=req.taskId, targetLanguage=language, result=result,
                                                metadata=EventMetadata(modelVersion=out.model, requestId=req.taskId)),
                           ())

    async def story_text(self, req: StoryTextObjectRequest, call: Call) -> None:
        """Fire and forget on the gateway's side: one event with every language, failures beside them."""
        if len(req.text) > self.settings.max_text_chars:
            limit = self.settings.max_text_chars
            raise TextTooLongError(f"text is {len(req.text)} characters; the limit is {limit}")
        targets = list(dict.fromkeys(req.targetLanguages))
        outs = await asyncio.gather(*(self.pipeline.translate_text(req.text, req.sourceLanguage, [t])
                                      for t in targets), return_exceptions=True)
        translations: dict[str, str] = {}
        failed: dict[str, str] = {}
        for target, out in zip(targets, outs, strict=True):
            if isinstance(out, BaseException):
                failed[target] = as_service_error(out).message
            elif out[0].ok:
                translations[target] = out[0].translated_text
            else:
                failed[target] = out[0].error or "translation failed"
        await call.publish(StoryTextObjectCompleted(postId=req.postId, textObjectIndex=req.textObjectIndex,
                                                    translations=translations, failedLanguages=failed), ())
