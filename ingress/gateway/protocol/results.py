"""The `result` of each voice API answer (`voice_api_success`, `voice_translation_completed`), as the
gateway's shared types read it (Meeshy `packages/shared/types/voice-api.ts`, camelCase).

One model per shape, named after the gateway type it matches; `rendering.py` builds them from the
pipeline's results. Fields the gateway type marks optional are left out when we have nothing for
them (absent, not null); milliseconds are integers, dates ISO 8601 strings. Extra fields are ours,
kept only where they collide with nothing the gateway reads (each is marked "extra").

The voice-analysis shapes (`voice_analyze`, `voice_compare`) are in `voice_analysis_results.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingress.gateway.protocol.events import FailedLanguageWire
from serve_app.domain.transcription import Segment

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]


class ResultModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# ---- voice_translate / voice_translation_completed: VoiceTranslationResult ----
class VoiceTranslationOriginalAudio(ResultModel):
    transcription: str  # the text, which the gateway persists as the attachment's transcription
    language: str
    durationMs: int
    confidence: float
    segments: list[Segment] = Field(default_factory=list)  # {text, startMs, endMs, confidence}
    source: str  # extra: whisper | mobile


class VoiceTranslationOutput(ResultModel):
    targetLanguage: str
    translatedText: str
    audioBase64: str
    audioUrl: str | None = None  # JSON-only API: the audio is in audioBase64
    durationMs: int
    voiceCloned: bool
    voiceQuality: float  # the measured similarity to the sender's voice (0 when not converted)
    audioMimeType: str  # extra
    voiceSimilarity: float | None = None  # extra
    baseVoiceSimilarity: float | None = None  # extra: the unconverted TTS voice, for comparison


class VoiceTranslationProfile(ResultModel):
    profileId: str
    quality: float
    isNew: bool
    version: int  # extra
    action: str  # extra: reused | created | improved


class VoiceTranslationResult(ResultModel):
    translationId: str
    originalAudio: VoiceTranslationOriginalAudio
    translations: list[VoiceTranslationOutput]
    voiceProfile: VoiceTranslationProfile | None = None
    processingTimeMs: int
    userId: str | None = None  # extra
    failedLanguages: list[FailedLanguageWire] = Field(default_factory=list)  # extra
    voiceCloned: bool  # extra


# ---- voice_translate_async ack; voice_job_status: TranslationJob; voice_job_cancel ----
class VoiceJobAccepted(ResultModel):
    jobId: str
    status: JobStatus = "pending"


class TranslationJob(ResultModel):
    jobId: str
    userId: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    currentStep: str | None = None
    createdAt: str
    startedAt: str | None = None
    completedAt: str | None = None
    result: VoiceTranslationResult | None = None
    error: str | None = None
    taskId: str  # extra
    targetLanguages: list[str]  # extra
    errorCode: str | None = None  # extra
    updatedAt: str  # extra


class VoiceJobCancelResult(ResultModel):
    success: bool  # the job was running and is now cancelled
    message: str
    jobId: str  # extra
    status: JobStatus  # extra


# ---- voice_history: {history: TranslationHistoryEntry[], total} ----
class TranslationHistoryEntry(ResultModel):
    id: str  # the translationId that voice_feedback names
    userId: str
    timestamp: str
    sourceLanguage: str
    targetLanguages: list[str]
    originalText: str
    translatedTexts: dict[str, str]
    audioGenerated: bool
    voiceCloned: bool
    processingTimeMs: int
    feedbackRating: float | None = None
    jobId: str | None = None  # extra: set for voice_translate_async
    requestType: str  # extra: voice_translate | voice_translate_async
    audioDurationMs: int  # extra


class VoiceHistoryPage(ResultModel):
    history: list[TranslationHistoryEntry]
    total: int
    limit: int  # extra
    offset: int  # extra


# ---- voice_stats: VoiceUserStats ----
class VoiceUserStats(ResultModel):
    userId: str
    totalTranslations: int
    totalAudioMinutes: float
    languagesUsed: list[str]
    averageProcessingTimeMs: int
    averageFeedbackRating: float  # 0 when no rating
    feedbackCount: int
    profileCount: int  # 0 or 1: the service keeps one voice profile per user
    periodStart: str
    periodEnd: str
    period: str  # extra: day | week | month | all
    zmq: dict[str, Any]  # extra: this door's transport counters


# ---- voice_admin_metrics: VoiceSystemMetrics ----
class VoiceSystemMetrics(ResultModel):
    activeJobs: int
    queuedJobs: int
    completedToday: int  # UTC day
    failedToday: int
    averageProcessingTimeMs: int
    cpuUsage: float  # percent of one core, this process, since the previous call (or start)
    memoryUsageMb: float  # resident memory of this process
    modelsLoaded: list[str]
    uptime: float  # seconds
    version: str
    zmq: dict[str, Any]  # extra
    health: dict[str, Any]  # extra: the pipeline's health
    cache: dict[str, Any] | None = None  # extra
    profiles: dict[str, Any] | None = None  # extra: the profile store


# ---- voice_health: VoiceHealthStatus ----
class VoiceServiceStatus(ResultModel):
    transcription: bool
    translation: bool
    tts: bool
    voiceClone: bool
    analytics: bool
    database: bool


class VoiceServiceLatency(ResultModel):
    transcriptionMs: int  # medians of the last 100 voice messages; 0 until one was measured
    translationMs: int
    ttsMs: int
    sampleCounts: dict[str, int]  # extra: how many measurements each median stands on


class VoiceHealthStatus(ResultModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: VoiceServiceStatus
    latency: VoiceServiceLatency
    timestamp: str
    ready: bool  # extra
    components: dict[str, Any]  # extra: each stage as it describes itself
    zmq: dict[str, Any]  # extra


# ---- voice_languages: VoiceSupportedLanguage[] (the result is the array) ----
class VoiceSupportedFeatures(ResultModel):
    transcription: bool
    translation: bool
    tts: bool
    voiceClone: bool


class VoiceSupportedLanguage(ResultModel):
    code: str
    name: str
    nativeName: str
    supportedFeatures: VoiceSupportedFeatures


# ---- voice_profile_get|create|update: VoiceProfile; list; delete; voice_feedback ----
class VoiceProfileWire(ResultModel):
    id: str
    userId: str
    name: str  # profiles are not named: one per user, called "default"
    createdAt: str
    updatedAt: str
    sampleCount: int
    averageQuality: float
    # `voiceCharacteristics` (a VoiceAnalysisResult) is left out: the profile stores its own measures
    # under `measuredCharacteristics`, a different shape.
    profileId: str  # extra
    audioCount: int  # extra
    totalDurationMs: int  # extra
    qualityScore: float  # extra
    version: int  # extra
    embeddingModel: str  # extra
    embeddingDimension: int  # extra
    fingerprint: dict[str, Any]  # extra
    measuredCharacteristics: dict[str, Any] | None = None  # extra
    nextRecalibrationAt: str  # extra


class VoiceProfileList(ResultModel):
    profiles: list[VoiceProfileWire]
    total: int
    limit: int  # extra
    offset: int  # extra


class VoiceProfileDeleted(ResultModel):
    success: bool
    deleted: bool  # extra
    userId: str  # extra


class VoiceFeedbackRecorded(ResultModel):
    success: bool
    feedbackId: str
    recorded: bool  # extra
