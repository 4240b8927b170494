"""A voice message as the pipeline takes it in and hands it out, and the audio the stages exchange.

Both doors validate into `VoiceJob` and render `PipelineEvent` / `VoiceResult` into their own wire
shapes; the stages pass `SpeechClip` / `ConvertedClip` (raw PCM bytes, never pickled arrays).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.acoustics import VoiceAcoustics
from serve_app.domain.transcription import MobileTranscription, Transcription

OutputFormat = Literal["mp3", "ogg", "wav"]


class SpeechClip(BaseModel):
    """Mono float32 little-endian PCM bytes: how audio crosses deployments (no pickled arrays)."""

    pcm: bytes
    sample_rate: int
    backend: str = ""
    voice: str = ""


class ConvertedClip(BaseModel):
    pcm: bytes
    sample_rate: int
    converted: bool
    similarity: float | None = None
    base_similarity: float | None = None
    backend: str = ""


class VoiceJob(BaseModel):
    """A voice message to transcribe, translate and speak in each target language."""

    model_config = ConfigDict(extra="ignore")

    audio: bytes
    target_languages: list[str] = Field(min_length=1)
    source_language: str | None = None
    generate_voice_clone: bool = True
    user_id: str | None = None
    mobile_transcription: MobileTranscription | None = None
    output_format: OutputFormat = "mp3"
    audio_mime_type: str | None = None
    attachment_id: str | None = None
    # A forwarded message: clone the original sender with this reference (npz, .npy or raw float32
    # embedding bytes) and leave the forwarder's own profile alone.
    forwarded_reference: bytes | None = None


class StageTimings(BaseModel):
    decode_ms: int = 0
    transcribe_ms: int = 0
    embed_ms: int = 0


class LanguageAudio(BaseModel):
    target_language: str
    translated_text: str
    audio: bytes
    audio_mime_type: str
    duration_ms: int
    voice_cloned: bool
    voice_similarity: float | None = None
    base_voice_similarity: float | None = None
    tts_backend: str = ""
    translation_model: str = ""
    translation_confidence: float = 0.0
    timings_ms: dict[str, int] = Field(default_factory=dict)


class LanguageFailure(BaseModel):
    target_language: str
    error: str
    error_code: str


class VoiceResult(BaseModel):
    transcription: Transcription
    translations: list[LanguageAudio]
    failed: list[LanguageFailure] = Field(default_factory=list)
    voice_cloned: bool
    processing_time_ms: int
    timings: StageTimings
    speaker_reference: bytes | None = None  # npz of the voice the languages were converted toward
    voice_profile: dict[str, Any] | None = None  # the sender's stored profile, summarised (camelCase)
    voice_profile_action: str | None = None  # reused | created | improved | pending | forwarded


class SpokenAudio(BaseModel):
    """Text spoken in the service's base voice (no cloning), encoded."""

    audio: bytes
    mime_type: str
    duration_ms: int
    backend: str
    language: str


class VoiceAnalysis(BaseModel):
    """A voice sample measured: its embedding, converter statistics and characteristics; the detailed
    acoustics when asked for; the transcription when asked for, with how long it took."""

    duration_ms: int
    embedding: list[float]
    embedding_model: str
    speaker_reference: bytes
    characteristics: dict[str, Any] = Field(default_factory=dict)
    acoustics: VoiceAcoustics | None = None
    transcription: Transcription | None = None
    transcription_ms: int | None = None


class PipelineEvent(BaseModel):
    """One item of the pipeline's stream: the transcription, a language, or the end."""

    kind: Literal["transcription", "language", "language_failed", "completed"]
    transcription: Transcription | None = None
    language: LanguageAudio | None = None
    failure: LanguageFailure | None = None
    result: VoiceResult | None = None
    processing_time_ms: int = 0
