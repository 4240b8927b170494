"""Requests the chat gateway pushes over ZMQ (PROTOCOL.md §2), as pydantic models.

Field names are the gateway's, camelCase, except the voice-profile family, which the old translator
spoke in snake_case. Unknown extra fields are ignored (the gateway adds some we do not read); a
field of the wrong type or a missing required one is a validation error the router answers with
the request type's own error event. Which model a type validates into is the router's table.

Trust boundary: every id an event may be published under (taskId, messageId, attachmentId,
request_id, jobId, postId) is validated here (`WireId`: 1-128 of `[A-Za-z0-9_.:@-]`, which keeps
namespaced messageIds such as `post:<id>`), so what goes back out on PUB is an id this service
checked or generated. User ids are bounded in length (they key rate limits and stores). Target and
preview language lists are capped by the limits the router passes as validation context
(`max_target_languages`, `max_preview_languages`), so one message cannot fan out without bound.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from serve_app.domain.transcription import MobileTranscription

ModelType = Literal["basic", "medium", "premium"]

ID_CHARS = r"A-Za-z0-9_.:@-"
MAX_ID_CHARS = 128
WireId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=rf"^[{ID_CHARS}]+$")]
# Optional ids the gateway may send empty ("" = absent); when given, they follow the same rule.
OptionalWireId = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS, pattern=rf"^[{ID_CHARS}]*$")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
LanguageCode = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class GatewayModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _cap_distinct(values: list[str], info: ValidationInfo, limit_name: str, what: str) -> list[str]:
    """Duplicates cost nothing (they are merged downstream); distinct entries over the limit are refused."""
    limit = (info.context or {}).get(limit_name)
    distinct = len(dict.fromkeys(values))
    if isinstance(limit, int) and distinct > limit:
        raise ValueError(f"{distinct} {what} in one request; the limit is {limit} ({limit_name})")
    return values


class TargetLanguages(GatewayModel):
    """Every request that fans out per language: at least one, at most `max_target_languages` distinct."""

    targetLanguages: list[LanguageCode] = Field(min_length=1)

    @field_validator("targetLanguages")
    @classmethod
    def _capped(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _cap_distinct(value, info, "max_target_languages", "target languages")


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


class TranslationRequest(TargetLanguages):
    type: Literal["translation"] = "translation"
    taskId: WireId
    messageId: OptionalWireId = ""
    text: str
    sourceLanguage: LanguageCode = "auto"
    conversationId: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | None = None
    modelType: ModelType = "basic"
    timestamp: float | None = None

    _model_type = field_validator("modelType", mode="before")(_lenient_model_type)


class StoryTextObjectRequest(TargetLanguages):
    type: Literal["story_text_object_translation"] = "story_text_object_translation"
    postId: WireId
    textObjectIndex: int = Field(ge=0)
    text: str
    sourceLanguage: LanguageCode = "auto"
    timestamp: float | None = None


class ForwardedVoiceProfile(GatewayModel):
    profileId: str | None = None
    userId: str | None = None
    qualityScore: float | None = None


class AudioProcessRequest(AudioSource, TargetLanguages):
    type: Literal["audio_process"] = "audio_process"
    taskId: WireId | None = None
    messageId: WireId
    attachmentId: WireId
    senderId: UserId
    conversationId: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | None = None
    audioDurationMs: int | None = None
    userLanguage: str | None = None
    mobileTranscription: MobileTranscription | None = None
    generateVoiceClone: bool = True
    modelType: ModelType = "basic"
    originalSenderId: UserId | None = None
    existingVoiceProfile: ForwardedVoiceProfile | None = None
    useOriginalVoice: bool = True
    voiceCloneParams: dict[str, Any] = Field(default_factory=dict)

    _model_type = field_validator("modelType", mode="before")(_lenient_model_type)


class TranscriptionOnlyRequest(AudioSource):
    type: Literal["transcription_only"] = "transcription_only"
    taskId: WireId | None = None
    messageId: OptionalWireId = ""
    attachmentId: OptionalWireId = ""
    audioFormat: str | None = None
    language: str | None = None
    mobileTranscription: MobileTranscription | None = None


# ---- Voice API (JSON only, camelCase) ----
class VoiceApiRequest(GatewayModel):
    type: str
    taskId: WireId
    userId: UserId | None = None


class VoiceAudioRequest(VoiceApiRequest):
    audioBase64: str | None = None
    audioData: str | None = None
    audioPath: str | None = None
    audioUrl: str | None = None


class VoiceTranslateRequest(VoiceAudioRequest, TargetLanguages):
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
    jobId: WireId


class VoiceFeedbackRequest(VoiceApiRequest):
    userId: UserId
    translationId: str = Field(min_length=1)
    rating: float = Field(ge=0, le=5)
    comment: str | None = None


class VoiceHistoryRequest(VoiceApiRequest):
    """A user's own translations only: there is no listing of everyone's."""

    userId: UserId
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
    request_id: WireId
    user_id: UserId
    audio_data: str = Field(min_length=1)
    audio_format: str | None = None
    is_update: bool = False
    existing_fingerprint: dict[str, Any] | None = None
    include_transcription: bool = True
    generate_previews: bool = False
    preview_languages: list[LanguageCode] = Field(default_factory=list)
    preview_text: str | None = None

    @field_validator("preview_languages")
    @classmethod
    def _capped(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _cap_distinct(value, info, "max_preview_languages", "preview languages")


class VoiceProfileVerifyRequest(GatewayModel):
    type: Literal["voice_profile_verify"] = "voice_profile_verify"
    request_id: WireId
    user_id: UserId
    audio_data: str = Field(min_length=1)
    audio_format: str | None = None
    existing_fingerprint: dict[str, Any] | None = None


class VoiceProfileCompareRequest(GatewayModel):
    type: Literal["voice_profile_compare"] = "voice_profile_compare"
    request_id: WireId
    fingerprint_a: dict[str, Any]
    fingerprint_b: dict[str, Any]


# What the router's `<type>_result` reply reads (`request_id`), whichever of the three it is.
VoiceProfileFamilyRequest = VoiceProfileAnalyzeRequest | VoiceProfileVerifyRequest | VoiceProfileCompareRequest
