from __future__ import annotations

import numpy as np
import pytest

from serve_app.audio import decode_audio, duration_ms, encode_audio, pcm_from_bytes, pcm_to_bytes
from serve_app.errors import AudioDecodeError, AudioTooLongError, InvalidRequestError, PayloadTooLargeError
from tests.fixtures.speech import sine_wav_bytes


def tone(seconds: float, rate: int = 22_050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "wav"])
def test_encode_then_decode_keeps_duration(fmt: str) -> None:
    data = encode_audio(tone(2.0), 22_050, fmt)
    decoded = decode_audio(data, sample_rate=16_000)
    assert decoded.sample_rate == 16_000
    assert abs(decoded.duration_s - 2.0) < 0.08
    assert decoded.samples.dtype == np.float32 and np.abs(decoded.samples).max() > 0.1


def test_decode_rejects_empty_corrupt_oversize_and_long() -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(b"")
    with pytest.raises(AudioDecodeError, match="could not decode"):
        decode_audio(b"\x00garbage" * 1000)
    with pytest.raises(PayloadTooLargeError):
        decode_audio(b"\x00" * 2048, max_bytes=1024)
    with pytest.raises(AudioTooLongError, match="45 s"):
        decode_audio(sine_wav_bytes(50.0), max_seconds=45.0)
    with pytest.raises(AudioDecodeError, match="at least"):
        decode_audio(sine_wav_bytes(0.1), min_seconds=0.3)
    with pytest.raises(InvalidRequestError):
        decode_audio("not bytes")  # type: ignore[arg-type]


def test_pcm_bytes_round_trip_and_duration() -> None:
    samples = tone(0.5)
    assert np.array_equal(pcm_from_bytes(pcm_to_bytes(samples)), samples)
    assert duration_ms(samples, 22_050) == 500


def test_unknown_output_format_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="unknown output format"):
        encode_audio(tone(0.1), 22_050, "aiff")
