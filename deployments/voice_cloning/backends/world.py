"""WORLD-vocoder voice conversion: a light, CPU-only stand-in for a neural tone-colour converter.

Analysis (DIO + StoneMask F0, CheapTrick envelope, D4C aperiodicity) splits speech into pitch,
timbre and noise; we then move pitch (log-F0 mean/std) and timbre (a formant warp plus a smoothed,
bounded per-band gain toward the reference's mean envelope) and resynthesise.  It changes what
a speaker encoder hears a lot (GE2E cosine ~0.6 -> ~0.8 on espeak voices) while words stay
intact; it cannot reproduce accent or micro-prosody the way a trained converter does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.speaker import ENVELOPE_HZ, SpeakerReference
from serve_app.errors import PrerequisiteError, VoiceCloneError, logged_failure

from . import NothingToConvert

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld imports the deprecated pkg_resources
        import pyworld
except ImportError:  # pragma: no cover - exercised only where pyworld is missing
    pyworld = None


class WorldOptions(BaseModel):
    """Tuning knobs; defaults measured on espeak/Piper/Kokoro voices (see the stage report)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_period_ms: float = Field(5.0, ge=1.0, le=20.0)
    f0_floor_hz: float = Field(60.0, gt=0)
    f0_ceil_hz: float = Field(700.0, gt=0)
    # Largest formant-scaling ratio the converter may apply (and 1/ratio the smallest); beyond
    # ~1.4 vowels start to blur.
    max_warp: float = Field(1.35, ge=1.0, le=1.6)
    # Per-band envelope correction is clipped to this many dB so one odd band cannot ring.
    max_gain_db: float = Field(12.0, ge=0.0, le=24.0)
    # One candidate per strength (0 = unchanged, 1 = full move); the cloner keeps the one the
    # speaker encoder finds closest.  Each extra strength costs one synthesis + one embedding.
    strengths: tuple[float, ...] = Field((1.0,), min_length=1)
    # Higher input rates are resampled down first: WORLD's cost grows with the sample rate and
    # speech timbre lives below 8 kHz.
    max_sample_rate: int = Field(24_000, ge=16_000)
    min_voiced_frames: int = Field(20, ge=1)


@dataclass
class _Analysis:
    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    fs: int
    freqs: np.ndarray


@dataclass
class _Stats:
    log_f0_mean: float
    log_f0_std: float
    mean_db: np.ndarray  # mean log-power envelope on the analysis FFT bins


class WorldBackend:
    name = "world"

    def __init__(self, options: WorldOptions | None = None) -> None:
        if pyworld is None:
            raise PrerequisiteError(
                "the 'world' voice clone backend needs pyworld: pip install 'pyworld>=0.3.5' "
                "'setuptools<81'"
            )
        self.options = options or WorldOptions()

    # -- reference side -------------------------------------------------------------------
    def describe(self, samples: np.ndarray, sample_rate: int) -> dict[str, Any]:
        x, fs = self._maybe_resample(samples, sample_rate)
        analysis = self._analyse(x, fs)
        stats = self._stats(analysis)
        if stats is None:  # whispered/unvoiced: keep an embedding-only reference
            return {}
        nyquist_ok = ENVELOPE_HZ <= 0.95 * fs / 2
        env = np.interp(ENVELOPE_HZ, analysis.freqs, stats.mean_db)
        env = np.where(nyquist_ok, env, np.nan)
        return {
            "log_f0_mean": stats.log_f0_mean,
            "log_f0_std": stats.log_f0_std,
            "envelope_db": env.astype(np.float32),
            "envelope_hz": ENVELOPE_HZ.copy(),
        }

    def can_convert(self, reference: SpeakerReference) -> str | None:
        if not reference.has_world_stats:
            return "reference has no voice statistics (embedding only); nothing to convert toward"
        return None

    # -- conversion -----------------------------------------------------------------------
    def candidates(
        self, samples: np.ndarray, sample_rate: int, reference: SpeakerReference
    ) -> list[tuple[np.ndarray, int]]:
        reason = self.can_convert(reference)
        if reason:
            raise VoiceCloneError(reason)
        x, fs = self._maybe_resample(samples, sample_rate)
        analysis = self._analyse(x, fs)
        stats = self._stats(analysis)
        if stats is None:
            raise NothingToConvert("input has too little voiced speech to convert")
        target_hz, target_db = self._target_envelope(reference, fs)
        alpha = self._best_warp(analysis.freqs, stats.mean_db, target_hz, target_db)
        out = []
        for strength in self.options.strengths:
            y = self._convert_one(
                x, analysis, stats, reference, target_hz, target_db, alpha**strength, strength
            )
            out.append((y, fs))
        return out

    def _convert_one(
        self,
        x: np.ndarray,
        a: _Analysis,
        stats: _Stats,
        ref: SpeakerReference,
        target_hz: np.ndarray,
        target_db: np.ndarray,
        alpha: float,
        strength: float,
    ) -> np.ndarray:
        o = self.options
        # Pitch: shift the log-F0 mean and rescale its spread toward the reference.
        f0 = a.f0.copy()
        voiced = f0 > 0
        ratio = float(np.clip(ref.log_f0_std / max(stats.log_f0_std, 1e-3), 0.5, 2.0))
        lf0 = np.log(f0[voiced])
        mean = stats.log_f0_mean + strength * (ref.log_f0_mean - stats.log_f0_mean)
        f0[voiced] = np.exp(mean + (lf0 - stats.log_f0_mean) * ratio**strength)
        f0[voiced] = np.clip(f0[voiced], o.f0_floor_hz, 1.2 * o.f0_ceil_hz)
        # Timbre 1: formant warp sp'(f) = sp(f / alpha), same warp for aperiodicity.
        idx = np.clip(a.freqs / alpha / a.freqs[1], 0.0, a.freqs.size - 1.001)
        i0 = idx.astype(np.int64)
        w = idx - i0
        sp = a.sp[:, i0] * (1.0 - w) + a.sp[:, i0 + 1] * w
        ap = a.ap[:, i0] * (1.0 - w) + a.ap[:, i0 + 1] * w
        # Timbre 2: what the warp left over, as a smooth bounded gain per band.
        warped_db = np.interp(target_hz / alpha, a.freqs, stats.mean_db)
        gain_db = self._band_gain(target_hz, target_db, warped_db, strength)
        gain = np.interp(
            np.log(np.maximum(a.freqs, 1.0)),
            np.log(np.append(target_hz, 2.0 * target_hz[-1])),
            np.append(gain_db, 0.0),
            left=gain_db[0],
            right=0.0,
        )
        sp *= 10.0 ** (gain / 10.0)
        try:
            y = pyworld.synthesize(
                f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), a.fs, o.frame_period_ms
            )
        except Exception as exc:  # noqa: BLE001 - C extension errors carry no useful type
            raise logged_failure(VoiceCloneError, "WORLD synthesis failed", exc) from exc
        y = y[: x.size]
        y = np.pad(y, (0, x.size - y.size))
        # Loudness: same RMS as the input, without clipping.
        y *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / max(np.mean(y**2), 1e-12))
        peak = float(np.max(np.abs(y)))
        if peak > 0.99:
            y *= 0.99 / peak
        return y.astype(np.float32)

    def _band_gain(
        self, hz: np.ndarray, target_db: np.ndarray, source_db: np.ndarray, strength: float
    ) -> np.ndarray:
        band = self._fit_band(hz)
        diff = (target_db - target_db[band].mean()) - (source_db - source_db[band].mean())
        diff = np.convolve(np.pad(diff, 2, mode="edge"), np.ones(5) / 5.0, mode="valid")
        return np.clip(diff, -self.options.max_gain_db, self.options.max_gain_db) * strength

    @staticmethod
    def _fit_band(hz: np.ndarray) -> np.ndarray:
        """Bins where formants live and both recordings are reliable."""
        return (hz >= 150.0) & (hz <= 5000.0)

    def _best_warp(
        self, freqs: np.ndarray, source_db: np.ndarray, hz: np.ndarray, target_db: np.ndarray
    ) -> float:
        """Formant ratio that best lines the source's mean envelope up with the target's."""
        band = self._fit_band(hz)
        if band.sum() < 8:
            return 1.0
        tgt = target_db[band] - target_db[band].mean()
        best, best_err = 1.0, np.inf
        for alpha in np.geomspace(1.0 / self.options.max_warp, self.options.max_warp, 41):
            src = np.interp(hz[band] / alpha, freqs, source_db)
            err = float(np.mean((src - src.mean() - tgt) ** 2))
            if err < best_err:
                best, best_err = float(alpha), err
        return best

    @staticmethod
    def _target_envelope(ref: SpeakerReference, fs: int) -> tuple[np.ndarray, np.ndarray]:
        hz = np.asarray(ref.envelope_hz, dtype=np.float64)
        db = np.asarray(ref.envelope_db, dtype=np.float64)
        keep = np.isfinite(db) & (hz <= 0.95 * fs / 2)
        if keep.sum() < 8:
            raise VoiceCloneError("reference envelope covers too few frequency bands")
        return hz[keep], db[keep]

    # -- analysis -------------------------------------------------------------------------
    def _maybe_resample(self, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        x = np.asarray(samples, dtype=np.float64)
        fs = int(sample_rate)
        if fs > self.options.max_sample_rate:
            import soxr

            x = soxr.resample(x, fs, self.options.max_sample_rate)
            fs = self.options.max_sample_rate
        return np.ascontiguousarray(x), fs

    def _analyse(self, x: np.ndarray, fs: int) -> _Analysis:
        o = self.options
        try:
            f0, t = pyworld.dio(
                x, fs, f0_floor=o.f0_floor_hz, f0_ceil=o.f0_ceil_hz, frame_period=o.frame_period_ms
            )
            f0 = pyworld.stonemask(x, f0, t, fs)
            sp = pyworld.cheaptrick(x, f0, t, fs)
            ap = pyworld.d4c(x, f0, t, fs)
        except Exception as exc:  # noqa: BLE001
            raise logged_failure(VoiceCloneError, "WORLD analysis failed", exc) from exc
        freqs = np.linspace(0.0, fs / 2.0, sp.shape[1])
        return _Analysis(f0=f0, sp=sp, ap=ap, fs=fs, freqs=freqs)

    def _stats(self, a: _Analysis) -> _Stats | None:
        voiced = a.f0 > 0
        if int(voiced.sum()) < self.options.min_voiced_frames:
            return None
        lf0 = np.log(a.f0[voiced])
        db = 10.0 * np.log10(a.sp[voiced] + 1e-12)
        energy = db.mean(axis=1)
        loud = energy >= np.percentile(energy, 20)  # drop weak, breathy voiced frames
        return _Stats(
            log_f0_mean=float(lf0.mean()),
            log_f0_std=float(lf0.std()),
            mean_db=db[loud].mean(axis=0),
        )


def from_config(cache_dir: Path, device: str = "cpu", options: Mapping[str, Any] | None = None) -> WorldBackend:
    """Registry factory (see ``BACKENDS``): WORLD runs on the CPU and needs no weights."""
    return WorldBackend(WorldOptions(**dict(options or {})))
