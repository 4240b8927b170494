"""Text translation stage: a model-agnostic Translator in front of pluggable backends."""

from deployments.translation.translator import BACKENDS, BackendOutput, Translator, TranslatorBackend
from serve_app.domain.translation import TranslationRequest, TranslationResult

__all__ = [
    "BACKENDS",
    "BackendOutput",
    "TranslationRequest",
    "TranslationResult",
    "Translator",
    "TranslatorBackend",
]
