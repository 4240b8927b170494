"""Detailed acoustics of one clip (`VoiceAcoustics`) and how alike two clips are, family by family.

Same analysis grid as `serve_app.voice_characteristics` (16 kHz, 25 ms frames, 10 ms hop, WORLD F0,
the same speech/pause decision), so the two never disagree on a clip. Spectra are Hann-windowed
512-point FFTs of those frames; MFCCs use 40 mel bands from 20 Hz to 8 kHz, log energies and an
orthonormal DCT-II, the textbook recipe. Only speech frames count where the measure is about the
voice (timbre, cepstrum, RMS); pauses count where they are the point (dynamic range, silence ratio).
"""

from __future__ import annotations

import numpy as np

from serve_app.domain.acoustics import (
    MFCC_COEFFICIENTS,
    AcousticSimilarity,
    EnergyAnalysis,
    MfccAnalysis,
    PitchAnalysis,
    TimbreAnalysis,
    VoiceAcoustics,
    VoiceClassification,
)
from serve_app.voice_characteristics import (
    ANALYSIS_RATE,
    FRAME_S,
    HOP_S,
    _active_frames,
    _f0,
    _frame_db,
    _resample,
)

N_FFT = 512
MEL_BANDS = 40
MEL_FMIN_HZ = 20.0
ROLLOFF = 0.85
CONTOUR_STEP_S = 0.1
MIN_VOICED_FRAMES = 10  # 0.1 s of voicing before pitch says anything
LOW_VOICE_HZ, HIGH_VOICE_HZ = 120.0, 210.0
MALE_BELOW_HZ, FEMALE_ABOVE_HZ = 150.0, 180.0
FULL_CONFIDENCE_VOICED_S = 3.0


def measure_acoustics(samples: np.ndarray, sample_rate: int) -> VoiceAcoustics:
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("samples must be a non-empty array of finite floats")
    x16 = _resample(x, sample_rate, ANALYSIS_RATE)
    frame_db = _frame_db(x16, ANALYSIS_RATE)
    active = _active_frames(frame_db)
    speech = active if active.any() else np.ones_like(active)
    f0 = _f0(x16, ANALYSIS_RATE)
    pitch = _pitch(f0)
    power = _power_spectrum(x16)[: frame_db.size]
    speech_power = power[speech[: power.shape[0]]]
    return VoiceAcoustics(
        pitch=pitch,
        timbre=_timbre(speech_power),
        mfcc=_mfcc(speech_power),
        energy=_energy(x16, frame_db, active, speech),
        classification=_classify(pitch.mean, int(np.count_nonzero(f0 > 0))),
    )


def compare(a: VoiceAcoustics, b: VoiceAcoustics) -> AcousticSimilarity:
    """Each family 0..1: pitch by the semitone distance of the mean F0 (0 at an octave, or when
    either clip is unvoiced); timbre by the mean relative difference of centroid, bandwidth,
    rolloff and flatness; cepstrum by the cosine of the average c1..c12 (c0 is loudness), mapped to
    0..1; energy by the RMS level difference (0 at 20 dB)."""
    if a.pitch.mean > 0 and b.pitch.mean > 0:
        semitones = abs(12.0 * np.log2(a.pitch.mean / b.pitch.mean))
        pitch = max(0.0, 1.0 - semitones / 12.0)
    else:
        pitch = 0.0
    ta, tb = a.timbre, b.timbre
    pairs = [(ta.spectral_centroid, tb.spectral_centroid), (ta.spectral_bandwidth, tb.spectral_bandwidth),
             (ta.spectral_rolloff, tb.spectral_rolloff), (ta.spectral_flatness, tb.spectral_flatness)]
    timbre = 1.0 - float(np.mean([abs(p - q) / max(p, q) if max(p, q) > 0 else 0.0 for p, q in pairs]))
    ca, cb = np.asarray(a.mfcc.mean[1:]), np.asarray(b.mfcc.mean[1:])
    norm = float(np.linalg.norm(ca) * np.linalg.norm(cb))
    mfcc = (1.0 + float(ca @ cb) / norm) / 2.0 if norm > 0 else 0.0
    level_db = abs(20.0 * np.log10(max(a.energy.rms, 1e-10) / max(b.energy.rms, 1e-10)))
    energy = max(0.0, 1.0 - level_db / 20.0)
    return AcousticSimilarity(pitch_similarity=round(pitch, 4), timbre_similarity=round(timbre, 4),
                              mfcc_similarity=round(mfcc, 4), energy_similarity=round(float(energy), 4))


def _pitch(f0: np.ndarray) -> PitchAnalysis:
    voiced = f0[f0 > 0]
    if voiced.size:
        lo, hi = (float(v) for v in np.percentile(voiced, [5, 95]))
        kept = voiced[(voiced >= lo) & (voiced <= hi)]
        mean, std = float(kept.mean()), float(kept.std())
    else:
        mean = std = lo = hi = 0.0
    step = int(round(CONTOUR_STEP_S / HOP_S))
    contour = []
    for start in range(0, f0.size, step):
        window = f0[start:start + step]
        window = window[window > 0]
        contour.append(round(float(np.median(window)), 1) if window.size else 0.0)
    return PitchAnalysis(mean=round(mean, 2), std=round(std, 2), min=round(lo, 2), max=round(hi, 2), contour=contour)


def _power_spectrum(x: np.ndarray) -> np.ndarray:
    """|FFT|^2 of the 25 ms / 10 ms frames of `_frame_db`, one row per frame."""
    frame, hop = int(FRAME_S * ANALYSIS_RATE), int(HOP_S * ANALYSIS_RATE)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    count = 1 + (x.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    frames = x[idx].astype(np.float64) * np.hanning(frame)[None, :]
    return np.square(np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)))


def _timbre(power: np.ndarray) -> TimbreAnalysis:
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_RATE)
    total = power.sum(axis=1)
    ok = total > 1e-20
    if not ok.any():
        return TimbreAnalysis(spectral_centroid=0.0, spectral_bandwidth=0.0, spectral_rolloff=0.0,
                              spectral_flatness=0.0)
    p = power[ok] / total[ok][:, None]
    centroid = p @ freqs
    bandwidth = np.sqrt(np.sum(p * np.square(freqs[None, :] - centroid[:, None]), axis=1))
    rolloff = freqs[np.argmax(np.cumsum(p, axis=1) >= ROLLOFF, axis=1)]
    floor = power[ok] + 1e-20
    flatness = np.exp(np.mean(np.log(floor), axis=1)) / np.mean(floor, axis=1)
    return TimbreAnalysis(
        spectral_centroid=round(float(centroid.mean()), 1),
        spectral_bandwidth=round(float(bandwidth.mean()), 1),
        spectral_rolloff=round(float(rolloff.mean()), 1),
        spectral_flatness=round(float(flatness.mean()), 4),
    )


def _mel_filters() -> np.ndarray:
    def mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_RATE)
    edges = hz(np.linspace(mel(np.array(MEL_FMIN_HZ)), mel(np.array(ANALYSIS_RATE / 2)), MEL_BANDS + 2))
    bank = np.zeros((MEL_BANDS, freqs.size))
    for i in range(MEL_BANDS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


def _mfcc(power: np.ndarray) -> MfccAnalysis:
    from scipy.fft import dct

    log_mel = np.log(power @ _mel_filters().T + 1e-10)
    cepstra = dct(log_mel, type=2, axis=1, norm="ortho")[:, :MFCC_COEFFICIENTS]
    mean = [round(float(v), 3) for v in cepstra.mean(axis=0)]
    std = [round(float(v), 3) for v in cepstra.std(axis=0)]
    return MfccAnalysis(coefficients=list(mean), mean=mean, std=std)


def _energy(x: np.ndarray, frame_db: np.ndarray, active: np.ndarray, speech: np.ndarray) -> EnergyAnalysis:
    frame_rms = 10.0 ** (frame_db / 20.0)
    lo, hi = np.percentile(frame_db, [10, 95])
    return EnergyAnalysis(
        rms=round(float(np.sqrt(np.mean(np.square(frame_rms[speech])))), 5),
        peak=round(float(np.max(np.abs(x))), 5),
        dynamic_range=round(float(hi - lo), 2),
        std=round(float(frame_rms[speech].std()), 5),
        silence_ratio=round(1.0 - float(active.mean()), 4),
    )


def _classify(mean_f0: float, voiced_frames: int) -> VoiceClassification:
    if voiced_frames < MIN_VOICED_FRAMES or mean_f0 <= 0:
        return VoiceClassification(voice_type="unknown", gender="unknown", confidence=0.0)
    voice_type = "low" if mean_f0 < LOW_VOICE_HZ else "high" if mean_f0 > HIGH_VOICE_HZ else "medium"
    if mean_f0 < MALE_BELOW_HZ:
        gender, distance = "male", MALE_BELOW_HZ - mean_f0
    elif mean_f0 > FEMALE_ABOVE_HZ:
        gender, distance = "female", mean_f0 - FEMALE_ABOVE_HZ
    else:
        gender, distance = "unknown", 0.0
    support = min(1.0, voiced_frames * HOP_S / FULL_CONFIDENCE_VOICED_S)
    confidence = min(1.0, 0.5 + distance / 60.0) * support if gender != "unknown" else 0.0
    return VoiceClassification(voice_type=voice_type, gender=gender, confidence=round(confidence, 3))
