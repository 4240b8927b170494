"""Ray-free adapter from the plain `Translator` to the stage API the pipeline speaks (batches of
(text, source, target) tuples). The Serve deployment and the benchmark's naive baseline both use it.
"""

from __future__ import annotations

from typing import Any

from deployments.translation.translator import Translator
from serve_app.domain.translation import TranslationRequest, TranslationResult
from serve_app.errors import ServiceError


class TranslationService:
    def __init__(self, translator: Translator) -> None:
        self.translator = translator
        self.calls = 0  # backend batches run; exposed in describe() for cache/batching checks

    def translate_batch(self, items: list[tuple[str, str, str]]) -> list[TranslationResult | ServiceError]:
        self.calls += 1
        requests = [TranslationRequest(text=t, source_language=s, target_language=g) for t, s, g in items]
        return self.translator.translate_many(requests)

    def detect_language(self, text: str) -> tuple[str, float]:
        from serve_app.text_language import detect_text_language

        return detect_text_language(text)

    def describe(self) -> dict[str, Any]:
        backend = self.translator.backend
        return {"backend": backend.name, "model": backend.model_id, "batches": self.calls}
