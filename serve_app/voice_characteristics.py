"""Measured voice characteristics of one clip: pitch, loudness, speaking rate, voicing.

They go into voice profiles and onto the wire (camelCase, as the gateway reads them), so every number
is measured from the samples, never a placeholder.  F0 comes from WORLD (``pyworld.dio`` refined by
``stonemask``: ~10x faster than ``harvest`` at the same accuracy on clean speech) at 16 kHz; energy
from 25 ms RMS frames; speaking rate from peaks of the smoothed energy envelope (one peak per
syllable nucleus, a standard estimate), or words per second when a transcript is given.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import BaseModel

ANALYSIS_RATE = 16_000
FRAME_S = 0.025
HOP_S = 0.010
F0_FLOOR_HZ = 60.0
F0_CEIL_HZ = 500.0
# A frame is "active" (speech, not pause) above both an absolute floor and a level relative to the
# loudest frame, so quiet recordings and loud ones are judged alike.
ACTIVE_FLOOR_DB = -60.0
ACTIVE_BELOW_PEAK_DB = 35.0
MIN_SYLLABLE_GAP_S = 0.12  # at most ~8 syllables/s, fast speech
SYLLABLE_PROMINENCE_DB = 4.0


class VoiceCharacteristics(BaseModel):
    """Pitch min/max are the 5th/95th percentiles of voiced F0 and mean/std are taken between them:
    single-frame octave errors of the tracker would otherwise dominate them.  ``energyDb`` is the
    mean frame RMS in dBFS over active (non-pause) frames.  ``voicedRatio`` is voiced frames over all
    frames.  ``speakingRate`` is per second of speech (first to last active frame)."""

    pitchMeanHz: float
    pitchStdHz: float
    pitchMinHz: float
    pitchMaxHz: float
    pitchRangeHz: float
    energyDb: float
    energyStdDb: float
    speakingRate: float
    speakingRateUnit: Literal["syllables_per_second", "words_per_second"]
    voicedRatio: float
    durationMs: int


def measure_voice(samples: np.ndarray, sample_rate: int, transcript: str | None = None) -> VoiceCharacteristics:
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    duration_ms = int(round(1000.0 * x.size / sample_rate))
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("samples must be a non-empty array of finite floats")
    x16 = _resample(x, sample_rate, ANALYSIS_RATE)

    frame_db = _frame_db(x16, ANALYSIS_RATE)
    active = _active_frames(frame_db)
    energy = frame_db[active] if active.any() else frame_db
    f0 = _f0(x16, ANALYSIS_RATE)
    voiced = f0[f0 > 0]
    if voiced.size:
        lo, hi = (float(v) for v in np.percentile(voiced, [5, 95]))
        kept = voiced[(voiced >= lo) & (voiced <= hi)]
        pitch = (float(kept.mean()), float(kept.std()), lo, hi)
    else:
        pitch = (0.0, 0.0, 0.0, 0.0)
    speech_s = _speech_seconds(active)
    if transcript is not None and transcript.strip():
        rate = len(transcript.split()) / speech_s if speech_s > 0 else 0.0
        unit: Literal["syllables_per_second", "words_per_second"] = "words_per_second"
    else:
        rate = _syllable_peaks(frame_db, active) / speech_s if speech_s > 0 else 0.0
        unit = "syllables_per_second"
    return VoiceCharacteristics(
        pitchMeanHz=round(pitch[0], 2),
        pitchStdHz=round(pitch[1], 2),
        pitchMinHz=round(pitch[2], 2),
        pitchMaxHz=round(pitch[3], 2),
        pitchRangeHz=round(pitch[3] - pitch[2], 2),
        energyDb=round(float(energy.mean()), 2),
        energyStdDb=round(float(energy.std()), 2),
        speakingRate=round(float(rate), 3),
        speakingRateUnit=unit,
        voicedRatio=round(float(voiced.size / max(f0.size, 1)), 4),
        durationMs=duration_ms,
    )


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    import soxr

    return soxr.resample(x, rate_in, rate_out).astype(np.float32)


def _frame_db(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS level in dBFS per 25 ms frame, 10 ms hop (same grid as the F0 track)."""
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    count = 1 + (x.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    rms = np.sqrt(np.mean(np.square(x[idx].astype(np.float64)), axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def _active_frames(frame_db: np.ndarray) -> np.ndarray:
    threshold = max(ACTIVE_FLOOR_DB, float(frame_db.max()) - ACTIVE_BELOW_PEAK_DB)
    return frame_db > threshold


def _speech_seconds(active: np.ndarray) -> float:
    """Span from the first to the last active frame: leading/trailing silence is not speech time."""
    where = np.flatnonzero(active)
    if where.size == 0:
        return 0.0
    return (where[-1] - where[0] + 1) * HOP_S


def _f0(x: np.ndarray, rate: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld imports pkg_resources (deprecation noise)
        import pyworld

    xd = x.astype(np.float64)
    f0, t = pyworld.dio(xd, rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=HOP_S * 1000)
    return pyworld.stonemask(xd, f0, t, rate)


def _syllable_peaks(frame_db: np.ndarray, active: np.ndarray) -> int:
    from scipy.signal import find_peaks

    # ~50 ms moving average smooths away pitch-period ripple but keeps syllable-rate (2-8 Hz) swings.
    kernel = np.ones(5) / 5.0
    env = np.convolve(frame_db, kernel, mode="same")
    peaks, _ = find_peaks(
        env,
        distance=max(1, int(MIN_SYLLABLE_GAP_S / HOP_S)),
        prominence=SYLLABLE_PROMINENCE_DB,
    )
    return int(np.count_nonzero(active[peaks])) if peaks.size else 0
