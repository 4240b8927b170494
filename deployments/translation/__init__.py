"""Text translation stage: a model-agnostic Translator in front of pluggable backends."""

from deployments.translation.translator import (
    BACKENDS,
    BackendOutput,
    TranslationRequest,
    TranslationResult,
    Translator,
    TranslatorBackend,
)

__all__ = [
    "BACKENDS",
    "BackendOutput",
    "TranslationRequest",
    "TranslationResult",
    "Translator",
    "TranslatorBackend",
]
