"""A voice measured in detail: pitch, timbre, cepstrum, energy and a coarse classification.

Field for field the gateway's shared `VoiceAnalysisResult` (camelCase by alias), so both doors can
render it: the ZMQ voice API (`voice_analyze`) in camelCase, the HTTP routes and the voice-profile
family in snake_case. `serve_app.voice_acoustics` measures it from the samples; no number here is a
placeholder (what cannot be measured says "unknown" with confidence 0).
"""

from __future__ import annotations

from typing import Literal

from serve_app.domain.wire import WireModel

MFCC_COEFFICIENTS = 13


class PitchAnalysis(WireModel):
    """Voiced F0 in Hz: mean/std between the 5th and 95th percentiles (min/max), so single-frame
    octave errors of the tracker do not dominate; `contour` is F0 every 100 ms (0.0 = unvoiced)."""

    mean: float
    std: float
    min: float
    max: float
    contour: list[float]


class TimbreAnalysis(WireModel):
    """Spectral shape averaged over speech frames: centroid, bandwidth (spread around the centroid)
    and 85 % rolloff in Hz; flatness 0 (tonal) to 1 (noise-like)."""

    spectral_centroid: float
    spectral_bandwidth: float
    spectral_rolloff: float
    spectral_flatness: float


class MfccAnalysis(WireModel):
    """13 mel-frequency cepstral coefficients (c0..c12) over speech frames: `coefficients` is the
    voice's average cepstrum (equal to `mean`), `std` the spread of each coefficient."""

    coefficients: list[float]
    mean: list[float]
    std: list[float]


class EnergyAnalysis(WireModel):
    """`rms` over speech frames and `peak` (max |sample|) on a full scale of 1.0; `dynamic_range` in dB
    (95th minus 10th percentile of the 25 ms frame levels); `std` of the frame RMS over speech;
    `silence_ratio` the share of frames that are pauses."""

    rms: float
    peak: float
    dynamic_range: float
    std: float
    silence_ratio: float


VoiceType = Literal["low", "medium", "high", "unknown"]
Gender = Literal["male", "female", "unknown"]


class VoiceClassification(WireModel):
    """Estimated from the mean F0 alone: `voice_type` low (< 120 Hz) / medium / high (> 210 Hz);
    `gender` male below 150 Hz, female above 180 Hz, unknown between or without voicing;
    `age_range` is not estimated (always "unknown"). `confidence` grows with the distance from the
    150-180 Hz overlap and with the voiced duration (full at 3 s)."""

    voice_type: VoiceType
    gender: Gender
    age_range: str = "unknown"
    confidence: float


class VoiceAcoustics(WireModel):
    pitch: PitchAnalysis
    timbre: TimbreAnalysis
    mfcc: MfccAnalysis
    energy: EnergyAnalysis
    classification: VoiceClassification


class AcousticSimilarity(WireModel):
    """Per-family similarity of two voices, each 0..1 (see `serve_app.voice_acoustics.compare`)."""

    pitch_similarity: float
    timbre_similarity: float
    mfcc_similarity: float
    energy_similarity: float
