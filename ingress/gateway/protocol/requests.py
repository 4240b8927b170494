"""Requests the chat gateway pushes over ZMQ (PROTOCOL.md §2), as pydantic models.

Field names are the gateway's, camelCase, except the voice-profile family, which the old translator
spoke in snake_case. Unknown extra fields are ignored (the gateway adds some we do not read); a
field of the wrong type or a missing required one is a validation error the router answers with
the request type's own error event. Which model a type validates into is the router's table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve_app.domain.transcription import MobileTranscription

ModelType = Literal["basic", "medium", "premium"]


class GatewayModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class PingRequest(GatewayModel):
    """A ping reads nothing but its type: whatever else it carries, it is answered with a pong."""

    type: str = "ping"


class BinaryFrameRefs(GatewayModel):
    """Where the binary parts of a multipart request are: 1-based indexes over the frames after frame 0."""

    audio: int | None = None
    audioMimeType: str | None = None
    audioSize: int | None = None
    voiceProfile: int | None = None
    voiceProfileSize: int | None = None
    embedding: int | None = None


class AudioSource(GatewayModel):
    """Every way a request may carry audio, in the protocol's priority order after a binary frame."""

    binaryFrames: BinaryFrameRefs | None = None
    audioBase64: str | None = None
    audioData: str | None = None
    audioPath: str | None = None
    audioUrl: str | None = None
    audioMimeType: str | None = None


def _lenient_model_type(value: Any) -> Any:
    """The gateway sends basic|medium|premium; case and surrounding spaces are forgiven."""
    return value.strip().lower() if isinstance(value, str) else value


class TranslationRequest(GatewayModel):
    type: Literal["translation"] = "translation"
    taskId: str = Field(min_length=1)
    messageId: str = ""
    text: str
    sourceLanguage: str = "auto"
    targetLanguages: list[str] = Field(min_length=1)
    conversationId: str | None = None
    modelType: ModelType = "basic"
    timestamp: float | None = None

    _model_type = field_validator("modelType", mode="before")(_lenient_model_type)


class StoryTextObjectRequest(GatewayModel):
    type: Literal["story_text_object_translation"] = "story_text_object_translation"
    postId: str = Field(min_length=1)
    textObjectIndex: int = Field(ge=0)
    text: str
    sourceLanguage: str = "auto"
    targetLanguages: list[str] = Field(min_length=1)
    timestamp: float | None = None


class ForwardedVoiceProfile(GatewayModel):
    profileId: str | None = None
    userId: str | None = None
    qualityScore: float | None = None


class AudioProcessRequest(AudioSource):
    type: Literal["audio_process"] = "audio_process"
    taskId: str | None = None
    messageId: str = Field(min_length=1)
    attachmentId: str = Field(min_length=1)
    senderId: str = Field(min_length=1)
    conversationId: str | None = None
    audioDurationMs: int | None = None
    userLanguage: str | None = None
    mobileTranscription: MobileTranscription | None = None
    targetLanguages: list[str] = Field(min_length=1)
    generateVoiceClone: bool = True
    modelType: ModelType = "basic"
    originalSenderId: str | None = None
    existingVoiceProfile: ForwardedVoiceProfile | None = None
    useOriginalVoice: bool = True
    voiceCloneParams: dict[str, Any] = Field(default_factory=dict)

    _model_type = field_validator("modelType", mode="before")(_lenient_model_type)


class TranscriptionOnlyRequest(AudioSource):
    type: Literal["transcription_only"] = "transcription_only"
    taskId: str | None = None
    messageId: str = ""
    attachmentId: str = ""
    audioFormat: str | None = None
    language: str | None = None
    mobileTranscription: MobileTranscription | None = None


# ---- Voice API (JSON only, camelCase) ----
class VoiceApiRequest(GatewayModel):
    type: str
    taskId: str = Field(min_length=1)
    userId: str | None = None


class VoiceAudioRequest(VoiceApiRequest):
    audioBase64: str | None = None
    audioData: str | None = None
    audioPath: str | None = None
    audioUrl: str | None = None


class VoiceTranslateRequest(VoiceAudioRequest):
    targetLanguages: list[str] = Field(min_length=1)
    sourceLanguage: str | None = None
    generateVoiceClone: bool = True
    outputFormat: Literal["mp3", "ogg", "wav"] = "mp3"


class VoiceTranslateAsyncRequest(VoiceTranslateRequest):
    webhookUrl: str | None = None
    priority: str | int | None = None
    callbackMetadata: dict[str, Any] = Field(default_factory=dict)


class VoiceCompareRequest(VoiceApiRequest):
    audioBase64_1: str = Field(min_length=1)
    audioBase64_2: str = Field(min_length=1)


class VoiceJobRequest(VoiceApiRequest):
    jobId: str = Field(min_length=1)


class VoiceFeedbackRequest(VoiceApiRequest):
    userId: str = Field(min_length=1)
    translationId: str = Field(min_length=1)
    rating: float = Field(ge=0, le=5)
    comment: str | None = None


class VoiceHistoryRequest(VoiceApiRequest):
    limit: int = Field(default=20, ge=1, le=500)
    offset: int = Field(default=0, ge=0)
    startDate: datetime | None = None  # ISO 8601; naive = UTC
    endDate: datetime | None = None


class VoiceStatsRequest(VoiceApiRequest):
    period: Literal["day", "week", "month", "all"] = "all"


class VoiceProfileApiRequest(VoiceAudioRequest):
    """voice_profile_get|create|update|delete|list."""

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


# ---- Voice profile family (snake_case, base64 audio in JSON) ----
class VoiceProfileAnalyzeRequest(GatewayModel):
    type: Literal["voice_profile_analyze"] = "voice_profile_analyze"
    request_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    audio_data: str = Field(min_length=1)
    audio_format: str | None = None
    is_update: bool = False
    existing_fingerprint: dict[str, Any] | None = None
    include_transcription: bool = True
    generate_previews: bool = False
    preview_languages: list[str] = Field(default_factory=list)
    preview_text: str | None = None


class VoiceProfileVerifyRequest(GatewayModel):
    type: Literal["voice_profile_verify"] = "voice_profile_verify"
    request_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    audio_data: str = Field(min_length=1)
    audio_format: str | None = None
    existing_fingerprint: dict[str, Any] | None = None


class VoiceProfileCompareRequest(GatewayModel):
    type: Literal["voice_profile_compare"] = "voice_profile_compare"
    request_id: str = Field(min_length=1)
    fingerprint_a: dict[str, Any]
    fingerprint_b: dict[str, Any]


# What the router's `<type>_result` reply reads (`request_id`), whichever of the three it is.
VoiceProfileFamilyRequest = VoiceProfileAnalyzeRequest | VoiceProfileVerifyRequest | VoiceProfileCompareRequest
