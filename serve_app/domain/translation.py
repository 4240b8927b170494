"""A text translation as the stages exchange it, and as the pipeline reports it per language."""

from __future__ import annotations

from pydantic import BaseModel, Field

AUTO = "auto"


class TranslationRequest(BaseModel):
    text: str
    source_language: str = AUTO
    target_language: str


class TranslationResult(BaseModel):
    translated_text: str
    source_language: str
    target_language: str
    model: str
    confidence: float = Field(ge=0.0, le=1.0)
    pass_through: bool = False
    detection_confidence: float | None = None


class TextTranslation(BaseModel):
    """One target language's text result, as the pipeline returns it."""

    target_language: str
    source_language: str
    translated_text: str = ""
    model: str = ""
    confidence: float = 0.0
    processing_time_ms: int = 0
    from_cache: bool = False
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
