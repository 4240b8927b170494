"""Request and response models of the `/v1` routes, with OpenAI's audio API field names.

`model` is accepted and reported but does not choose anything: this service runs the models it was
deployed with (`GET /v1/models` lists them). Extensions beyond OpenAI are marked as such.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ingress.http.protocol import BUILT_IN_VOICES, SpeechFormat, SpeechRequest, VoiceId

__all__ = ["BUILT_IN_VOICES", "SpeechFormat", "SpeechRequest", "VoiceId"]  # the speech body lives beside the
# door's other request models (`ingress.http.protocol`), since its admission (`access`) reads it

TranscriptionFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
TranslationFormat = Literal["json", "text", "verbose_json"]
VoiceMessageFormat = Literal["mp3", "opus", "wav"]
TRANSCRIPTION_MODEL_ALIASES = ("whisper-1",)
SPEECH_MODEL_ALIASES = ("tts-1",)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---- transcription / translation ----
class TranscriptionJson(BaseModel):
    text: str


class WordOut(BaseModel):
    word: str
    start: float
    end: float


class SegmentOut(BaseModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float
    compression_ratio: float = 1.0
    no_speech_prob: float = 0.0


class VerboseTranscription(BaseModel):
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str  # ISO 639-1 code (OpenAI writes the English name)
    duration: float
    text: str
    segments: list[SegmentOut] | None = None
    words: list[WordOut] | None = None


# ---- speech ----
class SpeechUsage(BaseModel):
    input_tokens: int
    output_tokens: int = 0
    total_tokens: int


# ---- models ----
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "voice-translator"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
