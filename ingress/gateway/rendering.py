"""Pipeline results rendered into the gateway's shapes (`protocol.results`, `protocol.events`).

`translated_audio` is one language in audio_process events; `voice_translation_result` is the voice
API's `VoiceTranslationResult`, shared by voice_translate and the async job's final event, so the two
can never drift apart. Each other builder turns one pipeline or store result into the gateway type
its voice API answer is read as.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from ingress.gateway.protocol.events import FailedLanguageWire, TranslatedAudioWire
from ingress.gateway.protocol.results import (
    TranslationHistoryEntry,
    TranslationJob,
    VoiceHealthStatus,
    VoiceProfileWire,
    VoiceServiceLatency,
    VoiceServiceStatus,
    VoiceSupportedFeatures,
    VoiceSupportedLanguage,
    VoiceTranslationOriginalAudio,
    VoiceTranslationOutput,
    VoiceTranslationProfile,
    VoiceTranslationResult,
)
from ingress.gateway.protocol.voice_analysis_results import (
    AnalysisMetadataLegacy,
    ClassificationWire,
    ComparisonComponentsLegacy,
    EnergyWire,
    MfccWire,
    PitchWire,
    ProsodyWire,
    SpectralLegacy,
    TimbreWire,
    VoiceAnalyzeResult,
    VoiceCompareResult,
)
from serve_app.domain.profiles import ProfileAnalysis, VoiceComparison, iso_utc
from serve_app.domain.voice import LanguageAudio, VoiceResult
from serve_app.language_support import language_features, native_name
from serve_app.languages import SUPPORTED_LANGUAGES
from serve_app.stores.job_store import JobRecord

PROFILE_NAME = "default"
STAGE_OF_SERVICE = {"transcription": "transcriber", "translation": "translator", "tts": "synthesizer",
                    "voiceClone": "voice_cloner"}


def elapsed_ms(since: float) -> int:
    return int(round((time.perf_counter() - since) * 1000))


def _quality(r: LanguageAudio) -> float:
    return round(float(r.voice_similarity), 4) if r.voice_similarity is not None else 0.0


def translated_audio(r: LanguageAudio) -> TranslatedAudioWire:
    return TranslatedAudioWire(
        targetLanguage=r.target_language, translatedText=r.translated_text, durationMs=r.duration_ms,
        voiceCloned=r.voice_cloned, voiceQuality=_quality(r), audioMimeType=r.audio_mime_type,
    )


# ---- voice translation ----
def voice_translation_result(result: VoiceResult, user_id: str | None) -> VoiceTranslationResult:
    """The voice API's JSON-only result: audio travels as base64 here (no binary frames on this API)."""
    t = result.transcription
    profile = result.voice_profile
    return VoiceTranslationResult(
        translationId=f"vtr_{uuid.uuid4().hex[:16]}",
        originalAudio=VoiceTranslationOriginalAudio(transcription=t.text, language=t.language,
                                                    durationMs=t.durationMs, confidence=t.confidence,
                                                    segments=t.segments, source=t.source),
        translations=[
            VoiceTranslationOutput(
                targetLanguage=r.target_language, translatedText=r.translated_text,
                audioBase64=base64.b64encode(r.audio).decode("ascii"), durationMs=r.duration_ms,
                voiceCloned=r.voice_cloned, voiceQuality=_quality(r), audioMimeType=r.audio_mime_type,
                voiceSimilarity=r.voice_similarity, baseVoiceSimilarity=r.base_voice_similarity,
            )
            for r in result.translations
        ],
        voiceProfile=VoiceTranslationProfile(
            profileId=profile["profileId"], quality=profile["qualityScore"], version=profile["version"],
            isNew=result.voice_profile_action == "created", action=result.voice_profile_action or "reused",
        ) if profile else None,
        processingTimeMs=result.processing_time_ms,
        userId=user_id,
        failedLanguages=[FailedLanguageWire(targetLanguage=f.target_language, error=f.error, errorCode=f.error_code)
                         for f in result.failed],
        voiceCloned=result.voice_cloned,
    )


def history_entry(result: VoiceTranslationResult, targets: list[str], request_type: str,
                  job_id: str | None = None) -> TranslationHistoryEntry:
    return TranslationHistoryEntry(
        id=result.translationId, userId=result.userId or "", timestamp=iso_utc(),
        sourceLanguage=result.originalAudio.language, targetLanguages=targets,
        originalText=result.originalAudio.transcription,
        translatedTexts={t.targetLanguage: t.translatedText for t in result.translations},
        audioGenerated=bool(result.translations), voiceCloned=result.voiceCloned,
        processingTimeMs=result.processingTimeMs, jobId=job_id, requestType=request_type,
        audioDurationMs=result.originalAudio.durationMs,
    )


def translation_job(job: JobRecord, result: dict[str, Any] | None = None) -> TranslationJob:
    return TranslationJob(
        jobId=job.jobId, userId=job.userId or "", status=job.status, progress=job.progress,
        currentStep=job.currentStep, createdAt=iso_utc(job.createdAt),
        startedAt=iso_utc(job.startedAt) if job.startedAt is not None else None,
        completedAt=iso_utc(job.completedAt) if job.completedAt is not None else None,
        result=VoiceTranslationResult.model_validate(result) if result else None,
        error=job.error, taskId=job.taskId, targetLanguages=job.targetLanguages, errorCode=job.errorCode,
        updatedAt=iso_utc(job.updatedAt),
    )


# ---- profiles ----
def voice_profile(summary: dict[str, Any]) -> VoiceProfileWire:
    """A stored profile's summary (the document's camelCase fields) as the gateway's VoiceProfile."""
    return VoiceProfileWire(
        id=summary["profileId"], userId=summary["userId"], name=PROFILE_NAME, createdAt=summary["createdAt"],
        updatedAt=summary["updatedAt"], sampleCount=summary["audioCount"], averageQuality=summary["qualityScore"],
        profileId=summary["profileId"], audioCount=summary["audioCount"], totalDurationMs=summary["totalDurationMs"],
        qualityScore=summary["qualityScore"], version=summary["version"], embeddingModel=summary["embeddingModel"],
        embeddingDimension=summary["embeddingDimension"], fingerprint=summary["fingerprint"],
        measuredCharacteristics=summary.get("voiceCharacteristics"),
        nextRecalibrationAt=summary["nextRecalibrationAt"],
    )


def voice_analyze_result(analysis: ProfileAnalysis) -> VoiceAnalyzeResult:
    """The shared VoiceAnalysisResult (+ VoiceQualityAnalysis.prosody when the speaking rate is in
    words), the old translator's keys beside it, and the profile analysis in camelCase."""
    a = analysis.acoustics()
    profile = analysis.to_wire(camel=True)
    for key in ("pitch", "timbre", "mfcc", "energy", "classification", "voicePreviews", "voicePreviewsFailed"):
        profile.pop(key, None)
    characteristics = analysis.voice_characteristics
    prosody = None
    if characteristics.get("speakingRateUnit") == "words_per_second":
        wpm = round(float(characteristics["speakingRate"]) * 60.0, 1)
        prosody = ProsodyWire(energyMean=a.energy.rms, energyStd=a.energy.std, silenceRatio=a.energy.silence_ratio,
                              speechRateWpm=wpm, speech_rate_wpm=wpm)
    c = a.classification
    return VoiceAnalyzeResult(
        pitch=PitchWire(mean=a.pitch.mean, std=a.pitch.std, min=a.pitch.min, max=a.pitch.max, contour=a.pitch.contour,
                        mean_hz=a.pitch.mean, std_hz=a.pitch.std, min_hz=a.pitch.min, max_hz=a.pitch.max),
        timbre=TimbreWire(**a.timbre.to_wire(camel=True)),
        mfcc=MfccWire(**a.mfcc.to_wire(camel=True)),
        energy=EnergyWire(rms=a.energy.rms, peak=a.energy.peak, dynamicRange=a.energy.dynamic_range,
                          std=a.energy.std, silenceRatio=a.energy.silence_ratio, mean=a.energy.rms,
                          silence_ratio=a.energy.silence_ratio, dynamic_range_db=a.energy.dynamic_range),
        classification=ClassificationWire(voiceType=c.voice_type, gender=c.gender, ageRange=c.age_range,
                                          confidence=c.confidence, voice_type=c.voice_type,
                                          estimated_gender=c.gender, estimated_age_range=c.age_range),
        prosody=prosody,
        spectral=SpectralLegacy(centroid_hz=a.timbre.spectral_centroid, bandwidth_hz=a.timbre.spectral_bandwidth,
                                rolloff_hz=a.timbre.spectral_rolloff, flatness=a.timbre.spectral_flatness),
        metadata=AnalysisMetadataLegacy(confidence=c.confidence),
        **profile,
    )


def voice_compare_result(comparison: VoiceComparison) -> VoiceCompareResult:
    c = comparison
    return VoiceCompareResult(
        **c.to_wire(camel=True),
        overall_score=c.overall_similarity, is_likely_same_speaker=c.is_match,
        components=ComparisonComponentsLegacy(pitch_similarity=c.pitch_similarity,
                                              timbre_similarity=c.timbre_similarity,
                                              mfcc_similarity=c.mfcc_similarity,
                                              energy_similarity=c.energy_similarity),
    )


# ---- the service ----
def supported_languages(components: dict[str, Any]) -> list[VoiceSupportedLanguage]:
    features = language_features(components)
    return [
        VoiceSupportedLanguage(code=code, name=SUPPORTED_LANGUAGES[code].name, nativeName=native_name(code),
                               supportedFeatures=VoiceSupportedFeatures(**features[code]))
        for code in sorted(SUPPORTED_LANGUAGES)
    ]


def health_status(health: dict[str, Any], store_ready: bool, zmq: dict[str, Any]) -> VoiceHealthStatus:
    components: dict[str, Any] = health.get("components") or {}
    up = {service: (components.get(stage) or {}).get("status") == "ready"
          for service, stage in STAGE_OF_SERVICE.items()}
    services = VoiceServiceStatus(**up, analytics=True, database=store_ready)
    if all(services.model_dump().values()):
        status = "healthy"
    elif not (up["transcription"] or up["translation"] or up["tts"]):
        status = "unhealthy"
    else:
        status = "degraded"
    latency = health.get("latency_ms") or {}

    def median(stage: str) -> int:
        return int((latency.get(stage) or {}).get("median_ms") or 0)

    return VoiceHealthStatus(
        status=status, services=services,
        latency=VoiceServiceLatency(
            transcriptionMs=median("transcription"), translationMs=median("translation"), ttsMs=median("tts"),
            sampleCounts={stage: int((latency.get(stage) or {}).get("samples") or 0)
                          for stage in ("transcription", "translation", "tts")},
        ),
        timestamp=iso_utc(), ready=bool(health.get("ready")), components=components, zmq=zmq,
    )


def models_loaded(components: dict[str, Any]) -> list[str]:
    """What each ready stage says it runs: Whisper model, translator backend:model, TTS backends, cloner."""
    out: list[str] = []
    for stage, info in components.items():
        if not isinstance(info, dict) or info.get("status") != "ready":
            continue
        if stage == "translator":
            out.append(f"{info.get('backend', 'translator')}:{info.get('model', '')}".rstrip(":"))
        elif stage == "synthesizer":
            out.extend(f"tts:{name}" for name in sorted(info.get("loaded") or {}))
        elif stage == "voice_cloner":
            out.extend(str(v) for v in (info.get("backend"), info.get("embedding_model")) if v)
        elif info.get("model"):
            out.append(str(info["model"]))
    return list(dict.fromkeys(out))
