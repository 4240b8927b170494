"""Audio decoding and encoding with PyAV (no system ffmpeg needed).

Decoding enforces the limits while it decodes (size first, then duration as frames arrive), so a
huge or endless upload is rejected without ever being held whole in memory as PCM.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from serve_app.errors import (
    AudioDecodeError,
    AudioTooLongError,
    InvalidRequestError,
    PayloadTooLargeError,
)

MIME_TYPES = {
    "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav",
    "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "pcm": "audio/pcm",
}
_ENCODERS = {  # format -> (container format, codec, sample format, preferred rate, frame size, bit rate)
    "mp3": ("mp3", "libmp3lame", "s16p", None, 1152, 64_000),
    "ogg": ("ogg", "libopus", "s16", 48_000, 960, 32_000),
    "opus": ("ogg", "libopus", "s16", 48_000, 960, 32_000),  # OpenAI's name for ogg/opus
    "wav": ("wav", "pcm_s16le", "s16", None, 4096, None),
    "aac": ("adts", "aac", "fltp", None, 1024, 64_000),  # ADTS: a raw AAC stream that plays concatenated
    "flac": ("flac", "flac", "s16", None, 4096, None),
}
PCM_RATE = 24_000  # `pcm`: raw 16-bit little-endian mono at 24 kHz, as OpenAI's speech API sends it
ENCODED_FORMATS = frozenset(_ENCODERS) | {"pcm"}


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate)


def decode_audio(
    data: bytes,
    *,
    sample_rate: int = 16_000,
    max_bytes: int = 10 * 1024 * 1024,
    max_seconds: float = 45.0,
    min_seconds: float = 0.0,
) -> DecodedAudio:
    """Decode any container PyAV knows (mp4/m4a, ogg/opus, webm, mp3, wav, flac) to mono float32."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidRequestError(f"audio must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise AudioDecodeError("audio is empty (0 bytes)")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"audio is {len(data)} bytes; the limit is {max_bytes} bytes ({max_bytes // (1024 * 1024)} MB)"
        )
    max_samples = int(max_seconds * sample_rate)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(bytes(data)), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the upload contains no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    total += len(chunk)
                    if total > max_samples:
                        raise AudioTooLongError(
                            f"audio is longer than the {max_seconds:g} s limit"
                        )
                    chunks.append(chunk)
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1)
                total += len(chunk)
                chunks.append(chunk)
    except (AudioDecodeError, AudioTooLongError):
        raise
    except (av.error.FFmpegError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(f"could not decode audio: {exc}") from exc
    if total > max_samples:
        raise AudioTooLongError(f"audio is longer than the {max_seconds:g} s limit")
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioDecodeError("audio decoded to no samples (empty or corrupt)")
    if samples.size < int(min_seconds * sample_rate):
        raise AudioDecodeError(
            f"audio is {samples.size / sample_rate:.2f} s; at least {min_seconds:g} s is needed"
        )
    np.clip(samples, -1.0, 1.0, out=samples)
    return DecodedAudio(samples=samples, sample_rate=sample_rate)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples.astype(np.float32, copy=False), rate_in, rate_out).astype(np.float32)


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str = "mp3", chunk: bool = False) -> bytes:
    """Encode mono float32 to mp3, ogg/opus, wav, aac (ADTS), flac, or raw `pcm` (s16le, 24 kHz).

    `chunk`: one piece of a stream that is played back to back, so mp3 gets no ID3 tag or Xing/LAME
    frame (those would sit mid-stream once pieces are concatenated)."""
    if fmt == "pcm":
        pcm = resample(np.asarray(samples, dtype=np.float32), sample_rate, PCM_RATE)
        return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    if fmt not in _ENCODERS:
        raise InvalidRequestError(f"unknown output format {fmt!r}; use one of {sorted(ENCODED_FORMATS)}")
    container_fmt, codec, sample_fmt, preferred_rate, frame_size, bit_rate = _ENCODERS[fmt]
    rate = preferred_rate or sample_rate
    if fmt in ("mp3", "aac") and rate not in (16_000, 22_050, 24_000, 32_000, 44_100, 48_000):
        rate = 24_000
    pcm = np.clip(resample(np.asarray(samples, dtype=np.float32), sample_rate, rate), -1.0, 1.0)
    block_data = pcm.astype(np.float32) if sample_fmt == "fltp" else (pcm * 32767.0).astype(np.int16)
    buffer = io.BytesIO()
    options = {"id3v2_version": "0", "write_xing": "0"} if chunk and fmt == "mp3" else {}
    with av.open(buffer, mode="w", format=container_fmt, options=options) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        for start in range(0, len(block_data), frame_size):
            block = block_data[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format=sample_fmt, layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def change_tempo(samples: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """Speak faster or slower without changing pitch (FFmpeg's `atempo`, chained: each link takes 0.5-2)."""
    if abs(speed - 1.0) < 1e-3 or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    factors: list[float] = []
    rest = speed
    while rest > 2.0:
        factors.append(2.0)
        rest /= 2.0
    while rest < 0.5:
        factors.append(0.5)
        rest /= 0.5
    factors.append(rest)
    graph = av.filter.Graph()
    nodes = [graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono", time_base=f"1/{sample_rate}")]
    nodes += [graph.add("atempo", f"{factor:.6f}") for factor in factors]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    graph.push(frame)
    graph.push(None)
    out: list[np.ndarray] = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.BlockingIOError, av.EOFError):
            break
    return np.concatenate(out).astype(np.float32) if out else samples.astype(np.float32)


def duration_ms(samples: np.ndarray, sample_rate: int) -> int:
    return int(round(1000.0 * len(samples) / float(sample_rate)))


def pcm_to_bytes(samples: np.ndarray) -> bytes:
    """Float32 little-endian PCM: how clips cross between deployments (no pickle of arrays)."""
    return np.asarray(samples, dtype="<f4").tobytes()


def pcm_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
