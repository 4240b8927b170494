"""measure_voice on signals whose answers are known: harmonic tones, silence, espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serve_app.voice_characteristics import measure_voice
from tests.fixtures.speech import FRENCH_5S, espeak_wav, read_wav

RATE = 22_050


def harmonic(f0: float, seconds: float = 1.5, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return sum(amplitude / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)).astype(np.float32)


@pytest.mark.parametrize("f0", [150.0, 220.0])
def test_pitch_of_a_harmonic_tone(f0: float) -> None:
    vc = measure_voice(harmonic(f0), RATE)
    assert vc.pitchMeanHz == pytest.approx(f0, rel=0.03)
    assert vc.pitchMinHz <= vc.pitchMeanHz <= vc.pitchMaxHz
    assert vc.pitchRangeHz == pytest.approx(vc.pitchMaxHz - vc.pitchMinHz, abs=0.02)
    assert vc.voicedRatio > 0.9
    assert vc.durationMs == 1500
    assert vc.speakingRateUnit == "syllables_per_second"


def test_energy_tracks_level() -> None:
    loud = measure_voice(harmonic(180.0, amplitude=0.4), RATE)
    quiet = measure_voice(harmonic(180.0, amplitude=0.04), RATE)
    assert loud.energyDb - quiet.energyDb == pytest.approx(20.0, abs=0.5)
    assert loud.energyDb < 0 and loud.energyStdDb < 1.0


def test_silence_has_no_pitch_and_no_rate() -> None:
    vc = measure_voice(np.zeros(RATE, dtype=np.float32), RATE)
    assert (vc.pitchMeanHz, vc.voicedRatio, vc.speakingRate) == (0.0, 0.0, 0.0)


def test_rejects_empty_or_non_finite() -> None:
    with pytest.raises(ValueError):
        measure_voice(np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(ValueError):
        measure_voice(np.array([0.1, np.nan], dtype=np.float32), RATE)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[np.ndarray, int]]:
    folder = tmp_path_factory.mktemp("vc")
    out = {}
    for name, speed, pitch in (("slow_low", 110, 25), ("fast_high", 190, 85)):
        out[name] = read_wav(espeak_wav(FRENCH_5S, Path(folder / f"{name}.wav"), speed=speed, pitch=pitch))
    return out


def test_espeak_speech_is_measured_plausibly(speech: dict[str, tuple[np.ndarray, int]]) -> None:
    slow = measure_voice(*speech["slow_low"])
    fast = measure_voice(*speech["fast_high"])
    for vc in (slow, fast):
        assert 70 < vc.pitchMeanHz < 400
        assert 0.3 < vc.voicedRatio < 0.98
        assert 1.0 < vc.speakingRate < 9.0
        assert -40 < vc.energyDb < 0 and vc.energyStdDb > 1
    assert fast.pitchMeanHz > slow.pitchMeanHz * 1.2  # espeak's -p 85 vs -p 25
    assert fast.speakingRate > slow.speakingRate * 1.2  # 190 vs 110 words per minute
    assert fast.durationMs < slow.durationMs


def test_transcript_gives_words_per_second(speech: dict[str, tuple[np.ndarray, int]]) -> None:
    samples, rate = speech["slow_low"]
    vc = measure_voice(samples, rate, transcript=FRENCH_5S)
    assert vc.speakingRateUnit == "words_per_second"
    speech_s = vc.durationMs / 1000
    assert len(FRENCH_5S.split()) / speech_s <= vc.speakingRate < 4.0  # speech span <= clip length
    assert set(vc.model_dump()) >= {"pitchMeanHz", "pitchStdHz", "energyDb", "speakingRate", "voicedRatio"}
