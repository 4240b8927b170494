"""The HTTP door's request and response models (snake_case, PROTOCOL.md §3), in one place."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.transcription import Transcription
from serve_app.domain.voice import OutputFormat

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


class TranslationOut(BaseModel):
    target_language: str
    translated_text: str
    audio_base64: str
    audio_mime_type: str
    duration_ms: int
    voice_cloned: bool
    voice_similarity: float | None = None
    base_voice_similarity: float | None = None
    tts_backend: str = ""
    timings_ms: dict[str, int] = Field(default_factory=dict)


class FailedLanguageOut(BaseModel):
    target_language: str
    error: str
    error_code: str


class VoiceTranslateResponse(BaseModel):
    success: bool
    original_text: str
    original_language: str
    transcription: Transcription
    translations: list[TranslationOut]
    failed_languages: list[FailedLanguageOut] = Field(default_factory=list)
    voice_cloned: bool
    processing_time_ms: int
    timings_ms: dict[str, int] = Field(default_factory=dict)
    voice_profile: dict[str, Any] | None = None
    voice_profile_action: str | None = None


class FingerprintCompareBody(BaseModel):
    fingerprint_a: dict[str, Any]
    fingerprint_b: dict[str, Any]


class SpeechBody(BaseModel):
    text: str = Field(min_length=1)
    language: str = Field(min_length=2)
    format: OutputFormat = "mp3"


# ---- /v1/audio/speech (OpenAI's field names; the other /v1 models are in ingress/http/openai/protocol.py) ----
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
# OpenAI's built-in voice names: all speak in this service's base voice for the text's language.
BUILT_IN_VOICES = frozenset({
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
})


class VoiceId(BaseModel):
    id: str = Field(min_length=1, max_length=128)


class SpeechRequest(BaseModel):
    model: str = "tts-1"
    input: str = Field(min_length=1)
    voice: str | VoiceId = Field(description="A built-in voice name (the base voice), or a user id / `{id}` "
                                             "whose voice profile clones the speech")
    response_format: SpeechFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = None  # accepted, not used
    language: str | None = Field(default=None, description="Extension: the input's language (default: detected)")

    @property
    def voice_user_id(self) -> str | None:
        """The user whose cloned voice is asked for, or None for a built-in voice."""
        name = self.voice.id if isinstance(self.voice, VoiceId) else self.voice
        return None if name.lower() in BUILT_IN_VOICES else name
