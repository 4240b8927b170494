"""Events published to the chat gateway over ZMQ PUB (PROTOCOL.md §2), as pydantic models.

Field names are exactly what the gateway reads. `timestamp` is seconds since the epoch as a float:
the old translator sent that and the gateway tolerates it. Every model serialises with
`to_wire()`, which keeps nulls the gateway may check for and drops nothing silently.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.transcription import Segment, Transcription

SERVICE_VERSION = "0.1.0"
PROCESSING_NODE = socket.gethostname()


def now_s() -> float:
    return round(time.time(), 3)


class GatewayEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    timestamp: float = Field(default_factory=now_s)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


class Pong(GatewayEvent):
    type: str = "pong"
    translator_status: str = "alive"
    translator_port_pub: int
    translator_port_pull: int
    audio_pipeline_available: bool
    cache: dict[str, Any] | None = None
    in_flight: int = 0


# ---- text ----
class TranslationResultWire(BaseModel):
    messageId: str
    translatedText: str
    sourceLanguage: str
    targetLanguage: str
    confidenceScore: float
    processingTime: float  # seconds, as the old translator sent
    modelType: str
    translatorModel: str
    fromCache: bool
    timestamp: float = Field(default_factory=now_s)
    version: str = SERVICE_VERSION


class EventMetadata(BaseModel):
    translatorVersion: str = SERVICE_VERSION
    modelVersion: str = ""
    processingNode: str = PROCESSING_NODE
    requestId: str
    protocol: str = "ZMQ_PUB_SUB"
    encoding: str = "UTF-8"


class TranslationCompleted(GatewayEvent):
    type: str = "translation_completed"
    taskId: str
    targetLanguage: str
    result: TranslationResultWire
    metadata: EventMetadata


class TranslationErrorEvent(GatewayEvent):
    type: str = "translation_error"
    taskId: str
    messageId: str = ""
    error: str
    errorCode: str
    targetLanguage: str | None = None
    conversationId: str | None = None


class TranslationSkipped(GatewayEvent):
    type: str = "translation_skipped"
    taskId: str
    messageId: str = ""
    reason: str = "message_too_long"
    length: int
    max_length: int
    conversationId: str | None = None


class StoryTextObjectCompleted(GatewayEvent):
    type: str = "story_text_object_translation_completed"
    postId: str
    textObjectIndex: int
    translations: dict[str, str]
    failedLanguages: dict[str, str] = Field(default_factory=dict)


# ---- audio ----
class TranslatedAudioWire(BaseModel):
    targetLanguage: str
    translatedText: str
    audioUrl: str = ""
    audioPath: str = ""
    durationMs: int
    voiceCloned: bool
    voiceQuality: float
    audioMimeType: str
    segments: list[Segment] = Field(default_factory=list)


class AudioEventBase(GatewayEvent):
    taskId: str
    messageId: str
    attachmentId: str


class TranscriptionReady(AudioEventBase):
    type: str = "transcription_ready"
    processingTimeMs: int
    transcription: Transcription


class AudioLanguageReady(AudioEventBase):
    """audio_translation_ready | audio_translations_progressive | audio_translations_completed."""

    language: str
    translatedAudio: TranslatedAudioWire
    binaryFrames: dict[str, dict[str, Any]]
    processingTimeMs: int


class FailedLanguageWire(BaseModel):
    targetLanguage: str
    error: str
    errorCode: str


class NewVoiceProfileWire(BaseModel):
    userId: str
    profileId: str
    qualityScore: float
    audioCount: int
    totalDurationMs: int
    version: int
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    voiceCharacteristics: dict[str, Any] = Field(default_factory=dict)


class AudioProcessCompleted(AudioEventBase):
    type: str = "audio_process_completed"
    transcription: Transcription
    translatedAudios: list[TranslatedAudioWire]
    failedLanguages: list[FailedLanguageWire] = Field(default_factory=list)
    voiceModelUserId: str
    voiceModelQuality: float
    processingTimeMs: int
    binaryFrames: dict[str, dict[str, Any]]
    newVoiceProfile: NewVoiceProfileWire | None = None
    voiceProfileAction: str | None = None


class AudioProcessError(AudioEventBase):
    type: str = "audio_process_error"
    error: str
    errorCode: str
    conversationId: str | None = None


class TranscriptionCompleted(AudioEventBase):
    type: str = "transcription_completed"
    processingTimeMs: int
    transcription: Transcription


class TranscriptionErrorEvent(AudioEventBase):
    type: str = "transcription_error"
    error: str
    errorCode: str


# ---- voice API ----
class VoiceApiSuccess(GatewayEvent):
    type: str = "voice_api_success"
    taskId: str
    requestType: str
    result: dict[str, Any] | list[Any]  # an array for voice_languages (VoiceSupportedLanguage[])
    processingTimeMs: int


class VoiceApiError(GatewayEvent):
    type: str = "voice_api_error"
    taskId: str
    requestType: str
    error: str
    errorCode: str


class VoiceJobProgress(GatewayEvent):
    type: str = "voice_job_progress"
    taskId: str
    jobId: str
    progress: int = Field(ge=0, le=100)
    currentStep: str


class VoiceJobFinished(GatewayEvent):
    """voice_translation_completed | voice_translation_failed."""

    taskId: str
    jobId: str
    status: str
    userId: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    errorCode: str | None = None


# ---- voice profile family (snake_case) ----
class VoiceProfileResult(GatewayEvent):
    request_id: str
    success: bool = True
    result: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The old translator put the result's keys beside `success`, not under a key."""
        envelope = self.model_dump(mode="json", exclude={"result"})
        return {**(self.result or {}), **envelope}  # a result key never overwrites type/request_id/success


class VoiceProfileErrorEvent(GatewayEvent):
    type: str = "voice_profile_error"
    request_id: str
    requestType: str
    success: bool = False
    error: str
    errorCode: str


class GenericError(GatewayEvent):
    """For a request whose type is unknown or unreadable; carries whatever ids could be read."""

    type: str = "error"
    requestType: str | None = None
    taskId: str | None = None
    messageId: str | None = None
    attachmentId: str | None = None
    request_id: str | None = None
    postId: str | None = None
    error: str
    errorCode: str
