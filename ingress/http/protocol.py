"""The HTTP door's request and response models (snake_case, PROTOCOL.md §3), in one place."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelType = Literal["basic", "medium", "premium"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class TranslateBody(StrictModel):
    text: str = Field(min_length=1)
    source_language: str = "auto"
    target_language: str = Field(min_length=2)
    model_type: ModelType = "basic"


class TranslateResponse(BaseModel):
    original_text: str
    translated_text: str
    source_language: str
    target_language: str
    model_used: str
    confidence_score: float
    processing_time_ms: int
    from_cache: bool = False


class DetectLanguageBody(StrictModel):
    text: str = Field(min_length=1)


class DetectLanguageResponse(BaseModel):
    language: str
    confidence: float
