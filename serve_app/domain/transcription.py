"""What speech-to-text produces (and what a phone may send instead), in PROTOCOL.md's wire shape.

Every layer uses these: the Transcriber fills them, the pipeline caches and forwards them, both doors
render them. They hold no model and no Ray, so any module may import them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Segment(BaseModel):
    text: str
    startMs: int
    endMs: int
    confidence: float = Field(ge=0.0, le=1.0)


class Word(BaseModel):
    """One word with its timing, when word timestamps were asked for (the OpenAI routes' `word` granularity)."""

    word: str
    startMs: int
    endMs: int
    probability: float = Field(default=1.0, ge=0.0, le=1.0)


class TranscribeOptions(BaseModel):
    """What a caller may tune in Whisper beyond the language (the OpenAI transcription fields)."""

    prompt: str | None = Field(default=None, max_length=2000)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    word_timestamps: bool = False


class Transcription(BaseModel):
    """Wire-compatible with PROTOCOL.md's `transcription` object (camelCase on purpose)."""

    text: str
    language: str
    confidence: float = Field(ge=0.0, le=1.0)
    source: str = "whisper"
    durationMs: int = 0
    segments: list[Segment] = Field(default_factory=list)
    model: str = ""
    languageProbability: float | None = None
    words: list[Word] | None = Field(default=None, exclude_if=lambda v: v is None)


class MobileSegment(BaseModel):
    text: str
    startMs: int = 0
    endMs: int = 0
    confidence: float | None = None


class MobileTranscription(BaseModel):
    """What a phone already transcribed; when present it replaces Whisper entirely."""

    text: str = Field(min_length=1)
    language: str = Field(min_length=2)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    source: str = "mobile"
    segments: list[MobileSegment] = Field(default_factory=list)


def from_mobile(mobile: MobileTranscription, duration_ms: int) -> Transcription:
    return Transcription(
        text=mobile.text.strip(),
        language=mobile.language.split("-")[0].lower(),
        confidence=mobile.confidence if mobile.confidence is not None else 0.85,
        source="mobile",
        durationMs=duration_ms,
        segments=[
            Segment(text=s.text, startMs=s.startMs, endMs=s.endMs, confidence=s.confidence or 0.85)
            for s in mobile.segments
        ],
        model=f"mobile:{mobile.source}",
    )
