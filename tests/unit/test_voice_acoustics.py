"""Detailed acoustics (the gateway's VoiceAnalysisResult) measured on synthetic voices whose answers
are known: F0, brightness, loudness, pauses; and the per-family comparison of two voices."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.domain.profiles import VoiceComparison
from serve_app.voice_acoustics import compare, measure_acoustics
from serve_app.voice_characteristics import measure_voice

SR = 16_000


def voice(f0: float, seconds: float = 2.0, harmonics: int = 12, tilt: float = 1.0, level: float = 0.3) -> np.ndarray:
    """A harmonic 'voice' with a syllable-rate envelope; `tilt` > 1 darkens it (faster harmonic decay)."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum((level / k**tilt) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, harmonics + 1))
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


def test_pitch_contour_and_classification_follow_f0() -> None:
    low, high = measure_acoustics(voice(110.0), SR), measure_acoustics(voice(230.0), SR)
    assert low.pitch.mean == pytest.approx(110, abs=2) and high.pitch.mean == pytest.approx(230, abs=3)
    assert low.pitch.min <= low.pitch.mean <= low.pitch.max
    assert len(low.pitch.contour) == 21 and all(v == pytest.approx(110, abs=3) for v in low.pitch.contour[1:-1])
    assert (low.classification.voice_type, low.classification.gender) == ("low", "male")
    assert (high.classification.voice_type, high.classification.gender) == ("high", "female")
    assert low.classification.age_range == "unknown" and 0 < low.classification.confidence <= 1
    # The same grid as voice_characteristics: the two analyses agree on F0.
    assert measure_voice(voice(110.0), SR).pitchMeanHz == low.pitch.mean


def test_unvoiced_noise_says_unknown_with_no_confidence() -> None:
    noise = np.random.default_rng(3).normal(scale=0.1, size=SR).astype(np.float32)
    a = measure_acoustics(noise, SR)
    assert a.classification.model_dump() == {"voice_type": "unknown", "gender": "unknown", "age_range": "unknown",
                                              "confidence": 0.0}
    assert a.timbre.spectral_flatness > 0.3  # noise is flat; a harmonic voice is not
    assert measure_acoustics(voice(150.0), SR).timbre.spectral_flatness < 0.05


def test_timbre_mfcc_and_energy() -> None:
    bright, dark = measure_acoustics(voice(150.0, tilt=0.5), SR), measure_acoustics(voice(150.0, tilt=2.0), SR)
    assert bright.timbre.spectral_centroid > dark.timbre.spectral_centroid
    assert bright.timbre.spectral_rolloff >= dark.timbre.spectral_rolloff
    assert bright.timbre.spectral_bandwidth > 0
    assert len(bright.mfcc.coefficients) == len(bright.mfcc.mean) == len(bright.mfcc.std) == 13
    assert bright.mfcc.coefficients == bright.mfcc.mean

    spoken = voice(150.0, seconds=1.0)
    with_pause = np.concatenate([spoken, np.zeros(SR, np.float32), spoken])
    e = measure_acoustics(with_pause, SR).energy
    assert e.silence_ratio == pytest.approx(1 / 3, abs=0.05)
    assert 0 < e.rms < e.peak <= 1 and e.dynamic_range > 40  # pauses against speech
    quiet = measure_acoustics(spoken * 0.1, SR).energy
    assert quiet.rms == pytest.approx(measure_acoustics(spoken, SR).energy.rms * 0.1, rel=0.01)
    camel = measure_acoustics(spoken, SR).to_wire(camel=True)
    assert set(camel["timbre"]) == {"spectralCentroid", "spectralBandwidth", "spectralRolloff", "spectralFlatness"}
    assert set(camel["energy"]) >= {"rms", "peak", "dynamicRange"}
    assert set(camel["classification"]) == {"voiceType", "gender", "ageRange", "confidence"}


def test_compare_families_and_verdict() -> None:
    a = measure_acoustics(voice(120.0), SR)
    same = compare(a, measure_acoustics(voice(121.0), SR))
    octave = compare(a, measure_acoustics(voice(240.0, tilt=2.0, level=0.03), SR))
    assert same.pitch_similarity > 0.95 and octave.pitch_similarity == pytest.approx(0.0, abs=0.01)
    assert same.timbre_similarity > octave.timbre_similarity and same.mfcc_similarity > octave.mfcc_similarity
    assert same.energy_similarity > 0.95 and octave.energy_similarity < 0.1  # 20 dB quieter

    match = VoiceComparison.of(True, 0.9, same, {}, {})
    assert (match.verdict, match.confidence, match.overall_similarity) == ("same_speaker", 0.5, 0.9)
    other = VoiceComparison.of(False, 0.5, octave, {}, {})
    assert (other.verdict, other.confidence) == ("different_speaker", 1.0)
    assert set(match.to_wire(camel=True)) >= {"overallSimilarity", "pitchSimilarity", "timbreSimilarity",
                                               "mfccSimilarity", "energySimilarity", "verdict", "confidence"}
