"""Text translation, cache first, per target language: the part of the pipeline text messages use.

A mixin of `VoicePipeline` (the one API both doors call); the voice flow reuses `translate` so a
voice message's languages share the same cache.
"""

from __future__ import annotations

import asyncio
import time

from serve_app.domain.translation import TextTranslation, TranslationResult
from serve_app.errors import InvalidRequestError, TextTooLongError, as_service_error
from serve_app.languages import normalize_language
from serve_app.observability.metrics import LANGUAGE_FAILURES, language_tag
from serve_app.pipeline.stages import Stages
from serve_app.settings import Settings
from serve_app.stores.translation_cache import CachedTranslation, TranslationCache


def elapsed_ms(since: float) -> int:
    return int(round((time.perf_counter() - since) * 1000))


class TextOps:
    stages: Stages
    settings: Settings
    cache: TranslationCache | None
    model_key: str

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

    # ---- text ----
    async def translate_text(self, text: str, source: str, targets: list[str]) -> list[TextTranslation]:
        """Translate into every target concurrently; each target reports its own success or error."""
        self.check_text(text)
        source = "auto" if source in ("", "auto", None) else normalize_language(source)
        languages = self.target_languages(targets)
        return list(await asyncio.gather(*(self._translate_one(text, source, t) for t in languages)))

    async def translate(self, text: str, source: str, target: str) -> tuple[TranslationResult, bool]:
        """Cache first; the model is asked only on a miss. Returns the result and whether it was cached."""
        if self.cache is not None:
            hit = await self.cache.get(text, source, target, self.model_key)
            if hit is not None:
                return TranslationResult(
                    translated_text=hit.translated_text, source_language=hit.source_language,
                    target_language=hit.target_language, model=hit.model, confidence=hit.confidence or 0.0,
                ), True
        out = await self.stages.translate(text, source, target)
        if self.cache is not None:
            await self.cache.put(text, source, target, self.model_key, CachedTranslation(
                translated_text=out.translated_text, source_language=out.source_language,
                target_language=out.target_language, model=out.model, confidence=out.confidence,
            ))
        return out, False

    async def _translate_one(self, text: str, source: str, target: str) -> TextTranslation:
        started = time.perf_counter()
        try:
            out, cached = await self.translate(text, source, target)
        except Exception as exc:  # noqa: BLE001 - reported per language, never fatal to others
            err = as_service_error(exc, "translation_failed")
            LANGUAGE_FAILURES.inc(flow="text", language=language_tag(target), error_code=err.code)
            return TextTranslation(
                target_language=target,
                source_language=source,
                processing_time_ms=elapsed_ms(started),
                error=err.message,
                error_code=err.code,
            )
        return TextTranslation(
            target_language=target,
            source_language=out.source_language,
            translated_text=out.translated_text,
            model=out.model,
            confidence=out.confidence,
            processing_time_ms=elapsed_ms(started),
            from_cache=cached,
        )

    async def detect_language(self, text: str) -> tuple[str, float]:
        self.check_text(text)
        try:
            return await self.stages.detect_language(text)
        except Exception as exc:
            raise as_service_error(exc) from exc
