"""Ray Serve deployment for text translation, batched with `@serve.batch`.

Many small requests (every target language of every message) become one model call: the batch is
handed whole to the backend, which decodes it in one go.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.translation.service import TranslationService
from deployments.translation.translator import Translator
from serve_app.deadlines import StageDeadlines
from serve_app.domain.translation import TranslationResult
from serve_app.errors import ServiceError
from serve_app.heap import release_free_heap
from serve_app.settings import TranslatorSettings, replica_settings, resolve_device
from serve_app.watchdog import CallWatchdog

TranslationItem = tuple[str, str, str]


@serve.deployment(name="Translator")
class TranslatorDeployment:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides, TranslatorSettings)
        translator = Translator.from_config(
            settings.translator_backend,
            settings.translator_model,
            cache_dir=settings.cache_dir,
            device=resolve_device(settings.device),
            max_text_chars=settings.max_text_chars,
            **settings.translator_options,
        )
        self.service = TranslationService(translator)
        self.deadlines = StageDeadlines(settings)
        self.watchdog = CallWatchdog(settings.watchdog_grace_s, on_idle=release_free_heap)
        self._batched.set_max_batch_size(settings.translator_max_batch_size)
        self._batched.set_batch_wait_timeout_s(settings.translator_batch_wait_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _batched(self, items: list[TranslationItem]) -> list[TranslationResult | ServiceError]:
        limit = max(self.deadlines.translate(len(text)) for text, _, _ in items)
        return await asyncio.to_thread(self.watchdog.run, "translate", limit, self.service.translate_batch, list(items))

    async def translate(self, text: str, source: str, target: str) -> TranslationResult:
        out = await self._batched((text, source, target))
        if isinstance(out, ServiceError):
            raise out
        return out

    async def detect_language(self, text: str) -> tuple[str, float]:
        limit = self.deadlines.detect_language(len(text))
        return await asyncio.to_thread(self.watchdog.run, "detect_language", limit, self.service.detect_language, text)

    async def describe(self) -> dict[str, Any]:
        return self.service.describe()

    def check_health(self) -> None:
        self.watchdog.check()  # a wedged model thread fails health: Serve replaces the replica
