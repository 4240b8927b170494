"""The `result` of `voice_analyze` (VoiceAnalysisResult) and `voice_compare` (VoiceComparisonResult).

Both also carry the keys of the translator this service replaces (`pitch.mean_hz`, `spectral`,
`components`, ...), marked "legacy": a gateway that normalises those answers
(`voice-analysis-normalize.ts`) reads them instead of the shared type's, and finds the same measured
values either way.
"""

from __future__ import annotations

from typing import Any, Literal

from ingress.gateway.protocol.results import ResultModel


# ---- voice_analyze: VoiceAnalysisResult (+ legacy keys, + the profile analysis) ----
class PitchWire(ResultModel):
    mean: float
    std: float
    min: float
    max: float
    contour: list[float]
    mean_hz: float  # legacy
    std_hz: float  # legacy
    min_hz: float  # legacy
    max_hz: float  # legacy


class TimbreWire(ResultModel):
    spectralCentroid: float
    spectralBandwidth: float
    spectralRolloff: float
    spectralFlatness: float


class SpectralLegacy(ResultModel):
    centroid_hz: float
    bandwidth_hz: float
    rolloff_hz: float
    flatness: float


class MfccWire(ResultModel):
    coefficients: list[float]
    mean: list[float]
    std: list[float]


class EnergyWire(ResultModel):
    rms: float
    peak: float
    dynamicRange: float  # dB
    std: float  # extra; also legacy
    silenceRatio: float  # extra
    mean: float  # legacy: the RMS
    silence_ratio: float  # legacy
    dynamic_range_db: float  # legacy


class ClassificationWire(ResultModel):
    voiceType: str
    gender: str
    ageRange: str
    confidence: float
    voice_type: str  # legacy
    estimated_gender: str  # legacy
    estimated_age_range: str  # legacy


class ProsodyWire(ResultModel):
    """VoiceQualityAnalysis.prosody, only when the speaking rate was measured in words."""

    energyMean: float
    energyStd: float
    silenceRatio: float
    speechRateWpm: float
    speech_rate_wpm: float  # legacy


class AnalysisMetadataLegacy(ResultModel):
    confidence: float


class VoiceAnalyzeResult(ResultModel):
    pitch: PitchWire
    timbre: TimbreWire
    mfcc: MfccWire
    energy: EnergyWire
    classification: ClassificationWire
    prosody: ProsodyWire | None = None
    spectral: SpectralLegacy  # legacy
    metadata: AnalysisMetadataLegacy  # legacy
    # extra: the profile analysis (ProfileAnalysis in camelCase: fingerprint, embedding, transcription)
    profileId: str
    userId: str | None = None
    qualityScore: float
    audioDurationMs: int
    voiceCharacteristics: dict[str, Any]
    fingerprint: dict[str, Any]
    signatureShort: str
    embeddingData: str
    embeddingDimension: int
    embeddingModel: str
    transcription: dict[str, Any] | None = None


# ---- voice_compare: VoiceComparisonResult (+ legacy keys) ----
class ComparisonComponentsLegacy(ResultModel):
    pitch_similarity: float
    timbre_similarity: float
    mfcc_similarity: float
    energy_similarity: float


class VoiceCompareResult(ResultModel):
    overallSimilarity: float
    pitchSimilarity: float
    timbreSimilarity: float
    mfccSimilarity: float
    energySimilarity: float
    verdict: Literal["same_speaker", "different_speaker", "uncertain"]
    confidence: float
    isMatch: bool  # extra
    similarityScore: float  # extra (= overallSimilarity)
    threshold: float  # extra
    voiceCharacteristics1: dict[str, Any]  # extra
    voiceCharacteristics2: dict[str, Any]  # extra
    overall_score: float  # legacy
    components: ComparisonComponentsLegacy  # legacy
    is_likely_same_speaker: bool  # legacy
