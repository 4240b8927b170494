"""Who the sender is, as numbers: a speaker embedding plus the voice statistics converters need.

The reference crosses process boundaries (Ray replicas, Redis, MongoDB), so it serialises to plain
``.npz``/``.npy`` bytes or base64 of them and is always loaded with ``allow_pickle=False``: a
message from the network must never be able to run code.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import os
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

from serve_app.errors import AudioDecodeError, InvalidRequestError, PrerequisiteError

EMBEDDING_MODEL = "resemblyzer-ge2e-256"
EMBEDDING_DIM = 256
ENCODER_SAMPLE_RATE = 16_000
FORMAT_VERSION = 1
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
# Fixed grid for the mean spectral envelope, so references measured at 16, 22.05, 24 or 48 kHz
# compare bin for bin.  Log-spaced because formants matter in relative (octave) terms.
ENVELOPE_HZ = np.geomspace(80.0, 7600.0, 64).astype(np.float32)

_ARRAY_FIELDS = ("embedding", "envelope_db", "envelope_hz", "tone_color")
_FLOAT_FIELDS = ("log_f0_mean", "log_f0_std")
_STR_FIELDS = ("embedding_model", "tone_color_model")


class SpeakerReference(BaseModel):
    """A sender's voice: GE2E embedding (always) and per-backend statistics (optional).

    A reference rebuilt from an embedding alone (a forwarded message, no audio) has no statistics:
    it can still score similarity but a converter that needs statistics will not convert.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    embedding: np.ndarray
    embedding_model: str = EMBEDDING_MODEL
    duration_ms: int | None = None
    # WORLD converter statistics: natural-log F0 over voiced frames, mean log-power envelope (dB)
    # on ``envelope_hz`` (NaN where the reference's Nyquist frequency was too low to measure).
    log_f0_mean: float | None = None
    log_f0_std: float | None = None
    envelope_db: np.ndarray | None = None
    envelope_hz: np.ndarray | None = None
    # Neural tone-colour converters (OpenVoice) use their own embedding of the reference clip.
    tone_color: np.ndarray | None = None
    tone_color_model: str | None = None

    @field_validator("embedding", mode="before")
    @classmethod
    def _check_embedding(cls, value: Any) -> np.ndarray:
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
        if vec.size == 0 or not np.all(np.isfinite(vec)):
            raise ValueError("embedding must be a non-empty vector of finite floats")
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            raise ValueError("embedding must not be all zeros")
        return vec / norm

    @field_validator("envelope_db", "envelope_hz", "tone_color", mode="before")
    @classmethod
    def _as_float32(cls, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        return np.asarray(value, dtype=np.float32).reshape(-1)

    @model_validator(mode="after")
    def _check_stats(self) -> SpeakerReference:
        if (self.envelope_db is None) != (self.envelope_hz is None):
            raise ValueError("envelope_db and envelope_hz go together")
        if self.envelope_db is not None and self.envelope_db.shape != self.envelope_hz.shape:
            raise ValueError("envelope_db and envelope_hz must have the same length")
        if (self.log_f0_mean is None) != (self.log_f0_std is None):
            raise ValueError("log_f0_mean and log_f0_std go together")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite")
        return self

    @field_serializer("embedding", "envelope_db", "envelope_hz", "tone_color")
    def _list(self, value: np.ndarray | None) -> list[float | None] | None:
        """JSON-friendly dumps (NaN becomes null) for logs and HTTP answers."""
        if value is None:
            return None
        return [None if not math.isfinite(x) else float(x) for x in value.tolist()]

    @property
    def has_world_stats(self) -> bool:
        return self.log_f0_mean is not None and self.envelope_db is not None

    def embedding_bytes(self) -> bytes:
        """The embedding alone as ``.npy`` bytes (float32), the cheap form to forward."""
        return embedding_to_bytes(self.embedding)

    def to_npz_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"format_version": np.array(FORMAT_VERSION)}
        for name in _ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value, dtype=np.float32)
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.array(value, dtype=np.float64)
        for name in _STR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.array(value, dtype=np.str_)
        if self.duration_ms is not None:
            arrays["duration_ms"] = np.array(self.duration_ms, dtype=np.int64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> SpeakerReference:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                raw = {name: npz[name] for name in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise InvalidRequestError(f"speaker reference is not a valid .npz blob: {exc}") from exc
        version = int(raw.pop("format_version", np.array(FORMAT_VERSION)))
        if version != FORMAT_VERSION:
            raise InvalidRequestError(f"unsupported speaker reference format version {version}")
        fields: dict[str, Any] = {}
        for name, value in raw.items():
            if name in _ARRAY_FIELDS:
                fields[name] = value
            elif name in _FLOAT_FIELDS:
                fields[name] = float(value)
            elif name in _STR_FIELDS:
                fields[name] = str(value)
            elif name == "duration_ms":
                fields[name] = int(value)
        if "embedding" not in fields:
            raise InvalidRequestError("speaker reference has no embedding")
        try:
            return cls(**fields)
        except ValueError as exc:
            raise InvalidRequestError(f"invalid speaker reference: {exc}") from exc

    def to_base64(self) -> str:
        return base64.b64encode(self.to_npz_bytes()).decode("ascii")

    @classmethod
    def from_base64(cls, text: str) -> SpeakerReference:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequestError(f"speaker reference is not valid base64: {exc}") from exc
        return cls.from_npz_bytes(data)


def embedding_to_bytes(vec: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(vec, dtype=np.float32).reshape(-1), allow_pickle=False)
    return buf.getvalue()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """Read ``.npy`` bytes (never pickle) back into a float32 vector."""
    try:
        vec = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidRequestError(f"embedding is not valid .npy bytes: {exc}") from exc
    if vec.dtype.kind != "f":
        raise InvalidRequestError(f"embedding must hold floats, got dtype {vec.dtype}")
    return np.asarray(vec, dtype=np.float32).reshape(-1)


def reference_from_wire(data: bytes) -> SpeakerReference:
    """A reference as a client sends it back: our own npz, an ``.npy`` embedding, or raw float32.

    The gateway stores the `embedding` frame of `audio_process_completed` and returns it as the
    `voiceProfile` frame of a forwarded message; other producers send the bare vector.
    """
    if data[:2] == b"PK":
        return SpeakerReference.from_npz_bytes(data)
    if data[:6] == b"\x93NUMPY":
        return SpeakerReference(embedding=embedding_from_bytes(data))
    if not data or len(data) % 4:
        raise InvalidRequestError(f"voice profile frame of {len(data)} bytes is neither npz, npy nor float32")
    try:
        return SpeakerReference(embedding=np.frombuffer(data, dtype="<f4"))
    except ValueError as exc:
        raise InvalidRequestError(f"voice profile frame holds no usable embedding: {exc}") from exc


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; the one measure every reported similarity goes through."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise InvalidRequestError(f"embedding sizes differ: {a.size} vs {b.size}")
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0.0:
        return 0.0
    return float(np.dot(a, b) / denom)


def check_audio(samples: Any, sample_rate: int, *, min_seconds: float, what: str) -> np.ndarray:
    """Validate mono float audio and return it as float32; raise a client error otherwise."""
    if not isinstance(sample_rate, (int, np.integer)) or not (
        MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE
    ):
        raise InvalidRequestError(
            f"{what}: sample rate must be an int in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], "
            f"got {sample_rate!r}"
        )
    x = np.asarray(samples)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise InvalidRequestError(f"{what}: expected mono audio (1-D array), got shape {x.shape}")
    if x.dtype.kind != "f":  # int PCM would be 32768x too loud: the service speaks float
        raise InvalidRequestError(f"{what}: audio must be float samples in [-1, 1], got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    seconds = x.size / int(sample_rate)
    if seconds < min_seconds:
        raise AudioDecodeError(
            f"{what}: audio is too short ({seconds:.2f} s); at least {min_seconds:.1f} s needed"
        )
    if not np.all(np.isfinite(x)):
        raise AudioDecodeError(f"{what}: audio contains NaN or infinite samples")
    if float(np.max(np.abs(x))) < 1e-4:
        raise AudioDecodeError(f"{what}: audio is silent")
    return x


class Encoder(Protocol):
    """What the cloner needs from a speaker encoder (the real one or a test fake)."""

    name: str

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray: ...


def _configure_numba_cache(cache_dir: Path) -> None:
    """Point numba's JIT cache (librosa, used by resemblyzer) at a writable folder.

    The first embedding JIT-compiles librosa kernels (~15 s); with a persistent cache later
    processes load them in about a second.  site-packages may be read-only in a container, so
    unless the operator chose a folder we use one under ``cache_dir``.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = Path(cache_dir) / "numba"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    try:  # numba reads the variable at import; if it is already imported, tell it directly
        import sys

        if "numba" in sys.modules:
            sys.modules["numba"].config.CACHE_DIR = str(folder)
    except AttributeError:  # pragma: no cover - numba internals moved
        pass


class SpeakerEncoder:
    """resemblyzer's GE2E encoder: 256-d, L2-normalised utterance embeddings at 16 kHz."""

    name = EMBEDDING_MODEL
    dim = EMBEDDING_DIM

    def __init__(self, cache_dir: Path, device: str = "cpu", torch_threads: int | None = 1) -> None:
        """``torch_threads`` caps torch's intra-op threads *during* each embedding.

        The GE2E LSTM is tiny: on a loaded 2-core host two OpenMP threads made one embedding
        take 4-7 s instead of 0.15 s (threads waiting on each other), so one thread is the
        default.  The previous setting is restored afterwards for the rest of the process.
        """
        _configure_numba_cache(Path(cache_dir))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pkg_resources / scipy deprecation noise
                from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as exc:
            raise PrerequisiteError(
                "voice cloning needs the speaker encoder: pip install 'resemblyzer==0.1.4' "
                f"'setuptools<81' (import failed: {exc})"
            ) from exc
        import torch

        self._torch = torch
        self._threads = torch_threads
        self._preprocess = preprocess_wav
        self._encoder = VoiceEncoder(device=device, verbose=False)
        self.device = device

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        # preprocess_wav resamples to 16 kHz, normalises loudness and trims long pauses.
        wav = self._preprocess(x, source_sr=int(sample_rate))
        if wav.size < ENCODER_SAMPLE_RATE // 2:  # VAD kept too little: use all of it instead
            import librosa

            wav = librosa.resample(x, orig_sr=int(sample_rate), target_sr=ENCODER_SAMPLE_RATE)
        with self._limited_threads():
            vec = np.asarray(self._encoder.embed_utterance(wav), dtype=np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    @contextlib.contextmanager
    def _limited_threads(self) -> Iterator[None]:
        previous = self._torch.get_num_threads()
        if not self._threads or self._threads == previous:
            yield
            return
        self._torch.set_num_threads(self._threads)
        try:
            yield
        finally:
            self._torch.set_num_threads(previous)

    def warmup(self) -> None:
        """Run one embedding so numba compiles (or loads its cache) before the first request."""
        t = np.arange(ENCODER_SAMPLE_RATE, dtype=np.float32) / ENCODER_SAMPLE_RATE
        self.embed(0.3 * np.sin(2 * np.pi * 180.0 * t), ENCODER_SAMPLE_RATE)

    @staticmethod
    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return cosine(a, b)
