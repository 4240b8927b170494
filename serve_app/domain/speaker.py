"""Who the sender is, as numbers: a speaker embedding plus the voice statistics converters need.

The reference crosses process boundaries (Ray replicas, Redis, MongoDB), so it serialises to plain
``.npz``/``.npy`` bytes or base64 of them and is always loaded with ``allow_pickle=False``: a
message from the network must never be able to run code. Two embedding codecs exist on purpose,
named for what they write: ``.npy`` (self-describing, what a forwarded message carries) and raw
float32 (what the profile stores keep). ``cosine`` is the one similarity every report uses.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import zipfile
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

from serve_app.errors import InvalidRequestError

EMBEDDING_MODEL = "resemblyzer-ge2e-256"
EMBEDDING_DIM = 256
FORMAT_VERSION = 1
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
        return embedding_to_npy(self.embedding)

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


def embedding_to_npy(vec: np.ndarray) -> bytes:
    """A float32 vector as ``.npy`` bytes: self-describing (dtype, shape), what a forwarded message carries."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(vec, dtype=np.float32).reshape(-1), allow_pickle=False)
    return buf.getvalue()


def embedding_from_npy(data: bytes) -> np.ndarray:
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
        return SpeakerReference(embedding=embedding_from_npy(data))
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


def embedding_to_float32(vec: np.ndarray) -> bytes:
    """Raw float32 little-endian bytes: the compact form stores keep (BSON binary, base64 in JSON)."""
    return np.asarray(vec, dtype="<f4").reshape(-1).tobytes()


def embedding_from_float32(data: bytes, dim: int | None = None) -> np.ndarray:
    """Raw float32 LE bytes back to a vector; rejects ragged, empty, wrong-size or non-finite data."""
    if not data or len(data) % 4:
        raise ValueError(f"embedding bytes must be a non-empty multiple of 4, got {len(data)}")
    vec = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if dim is not None and vec.size != dim:
        raise ValueError(f"embedding has {vec.size} dimensions, expected {dim}")
    if not np.all(np.isfinite(vec)):
        raise ValueError("embedding contains NaN or infinite values")
    return vec


def l2_normalize(vec: np.ndarray) -> np.ndarray:
    vec = np.asarray(vec, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("cannot normalise a zero or non-finite embedding")
    return (vec / norm).astype(np.float32)
