"""Who the sender is, as numbers: a speaker embedding plus the voice statistics converters need.

The reference crosses process boundaries (Ray replicas, Redis, MongoDB), so it serialises to plain
``.npz``/``.npy`` bytes or base64 of them and is always loaded with ``allow_pickle=False``: a
message from the network must never be able to run code. Two embedding codecs exist on purpose,
named for what they write: ``.npy`` (self-describing, what a forwarded message carries) and raw
float32 (what the profile stores keep). ``cosine`` is the one similarity every report uses.

Bytes from a client are bounded before they are decoded (`reference_from_wire`): the frame's own
size, then the npz members' uncompressed sizes as the zip directory declares them (a zip bomb is
refused before one member is inflated), then each ``.npy`` header, whose declared shape must match
the bytes actually present (a small member can never make us allocate a large array). ``.npy``
data is parsed here, not by ``np.load``, so no object dtype and no pickle can ever be reached.
"""

from __future__ import annotations

import base64
import binascii
import io
import lzma
import math
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

from serve_app.errors import InvalidRequestError, PayloadTooLargeError

EMBEDDING_MODEL = "resemblyzer-ge2e-256"
EMBEDDING_DIM = 256
FORMAT_VERSION = 1
# Fixed grid for the mean spectral envelope, so references measured at 16, 22.05, 24 or 48 kHz
# compare bin for bin.  Log-spaced because formants matter in relative (octave) terms.
ENVELOPE_HZ = np.geomspace(80.0, 7600.0, 64).astype(np.float32)

_ARRAY_FIELDS = ("embedding", "envelope_db", "envelope_hz", "tone_color")
_FLOAT_FIELDS = ("log_f0_mean", "log_f0_std")
_STR_FIELDS = ("embedding_model", "tone_color_model")
_INT_FIELDS = ("duration_ms", "format_version")
_KNOWN_MEMBERS = frozenset((*_ARRAY_FIELDS, *_FLOAT_FIELDS, *_STR_FIELDS, *_INT_FIELDS))
# Our own npz has at most 10 members; anything with many more is not one of ours.
MAX_NPZ_MEMBERS = 16
_MAX_NPY_HEADER = 1024
_BAD_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError,
            ValueError, struct.error, zlib.error, lzma.LZMAError)


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
    def from_npz_bytes(
        cls, data: bytes, *, max_bytes: int | None = None, max_decompressed_bytes: int | None = None
    ) -> SpeakerReference:
        """Read our npz. The limits apply to bytes from a client (None: a blob this service wrote):
        ``max_bytes`` on the blob itself, ``max_decompressed_bytes`` on the sum of its members'
        uncompressed sizes, read from the zip directory before any member is inflated."""
        raw = _npz_members(data, max_bytes=max_bytes, max_decompressed_bytes=max_decompressed_bytes)
        fields: dict[str, Any] = {}
        try:
            version = int(raw.pop("format_version", np.array(FORMAT_VERSION)))
            if version != FORMAT_VERSION:
                raise InvalidRequestError(f"unsupported speaker reference format version {version}")
            for name, value in raw.items():
                if name in _ARRAY_FIELDS:
                    if value.dtype.kind not in "fiu":
                        raise InvalidRequestError(f"speaker reference field {name} must hold numbers")
                    fields[name] = value
                elif name in _FLOAT_FIELDS:
                    fields[name] = float(value)
                elif name in _STR_FIELDS:
                    fields[name] = str(value)
                elif name == "duration_ms":
                    fields[name] = int(value)
        except (TypeError, ValueError) as exc:  # e.g. a vector where a scalar belongs
            raise InvalidRequestError("speaker reference has a field of the wrong shape or type") from exc
        if "embedding" not in fields:
            raise InvalidRequestError("speaker reference has no embedding")
        try:
            return cls(**fields)
        except ValueError as exc:
            raise InvalidRequestError(f"invalid speaker reference: {_first_error(exc)}") from exc

    def to_base64(self) -> str:
        return base64.b64encode(self.to_npz_bytes()).decode("ascii")

    @classmethod
    def from_base64(
        cls, text: str, *, max_bytes: int | None = None, max_decompressed_bytes: int | None = None
    ) -> SpeakerReference:
        if max_bytes is not None and len(text) > 4 * (max_bytes // 3 + 1):
            raise PayloadTooLargeError(f"speaker reference is over {max_bytes} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequestError("speaker reference is not valid base64") from exc
        return cls.from_npz_bytes(data, max_bytes=max_bytes, max_decompressed_bytes=max_decompressed_bytes)


def _first_error(exc: ValueError) -> str:
    """A pydantic error's first message alone (no input echo, no documentation links)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors(include_url=False, include_input=False)[0]
            return str(first.get("msg", "invalid value"))
        except (IndexError, TypeError):
            return "invalid value"
    return str(exc)[:200]


def _check_size(data: bytes, max_bytes: int | None, what: str) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLargeError(f"{what} is {len(data)} bytes; the limit is {max_bytes}")


def array_from_npy(data: bytes, what: str = "array") -> np.ndarray:
    """Parse ``.npy`` bytes without ``np.load``: versions 1.0/2.0, no object dtype, and the shape the
    header declares must account for exactly the bytes that follow it, so the array allocated is
    never larger than the input. Returns a writable copy."""
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_NPY_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, SyntaxError) as exc:
        raise InvalidRequestError(f"{what} is not valid .npy data") from exc
    if dtype.hasobject:
        raise InvalidRequestError(f"{what} holds Python objects; only numbers and text are accepted")
    if any(int(n) < 0 for n in shape):
        raise InvalidRequestError(f"{what} declares a negative dimension")
    count = math.prod(int(n) for n in shape)
    body = data[fp.tell():]
    if count * dtype.itemsize != len(body):
        raise InvalidRequestError(f"{what}: its header declares {count} values of {dtype.itemsize} bytes, "
                                  f"but {len(body)} bytes follow")
    try:
        flat = np.frombuffer(body, dtype=dtype, count=count)
        return flat.reshape(shape, order="F" if fortran else "C").copy()
    except ValueError as exc:  # e.g. a zero-size dtype
        raise InvalidRequestError(f"{what} has an unusable dtype or shape") from exc


def _npz_members(
    data: bytes, *, max_bytes: int | None, max_decompressed_bytes: int | None
) -> dict[str, np.ndarray]:
    """The known members of an npz blob, bounded before anything is inflated (see the module doc).

    Unknown members are not read (their declared sizes still count). A member whose stream inflates
    past the size the directory declared is cut off there by ``zipfile`` and then fails its CRC.
    """
    _check_size(data, max_bytes, "speaker reference")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise InvalidRequestError(f"speaker reference has {len(infos)} members; at most {MAX_NPZ_MEMBERS}")
            declared = sum(info.file_size for info in infos)
            if max_decompressed_bytes is not None and declared > max_decompressed_bytes:
                raise PayloadTooLargeError(
                    f"speaker reference unpacks to {declared} bytes; the limit is {max_decompressed_bytes}"
                )
            members: dict[str, np.ndarray] = {}
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if name not in _KNOWN_MEMBERS:
                    continue
                with archive.open(info) as fh:
                    raw = fh.read(info.file_size + 1)
                members[name] = array_from_npy(raw, f"speaker reference field {name}")
            return members
    except _BAD_ZIP as exc:  # a corrupt, encrypted or oddly compressed archive is the sender's problem
        raise InvalidRequestError("speaker reference is not a valid .npz blob") from exc


def embedding_to_npy(vec: np.ndarray) -> bytes:
    """A float32 vector as ``.npy`` bytes: self-describing (dtype, shape), what a forwarded message carries."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(vec, dtype=np.float32).reshape(-1), allow_pickle=False)
    return buf.getvalue()


def embedding_from_npy(data: bytes) -> np.ndarray:
    """Read ``.npy`` bytes (never pickle, never more than the bytes given) into a float32 vector."""
    vec = array_from_npy(data, "embedding")
    if vec.dtype.kind != "f":
        raise InvalidRequestError(f"embedding must hold floats, got dtype {vec.dtype}")
    return np.asarray(vec, dtype=np.float32).reshape(-1)


def reference_from_wire(data: bytes, *, max_bytes: int, max_decompressed_bytes: int) -> SpeakerReference:
    """A reference as a client sends it back: our own npz, an ``.npy`` embedding, or raw float32.

    The gateway stores the `embedding` frame of `audio_process_completed` and returns it as the
    `voiceProfile` frame of a forwarded message; other producers send the bare vector. Bounded
    before decoding (``max_bytes`` on the frame, ``max_decompressed_bytes`` on the npz members'
    declared sizes; the settings' ``max_voice_profile_frame_bytes`` and
    ``max_voice_profile_decompressed_bytes``); the embedding must have exactly EMBEDDING_DIM
    values (a raw frame: exactly EMBEDDING_DIM little-endian float32). CPU work: call it from a
    thread, not the event loop.
    """
    _check_size(data, max_bytes, "voice profile frame")
    if data[:2] == b"PK":
        reference = SpeakerReference.from_npz_bytes(
            data, max_bytes=max_bytes, max_decompressed_bytes=max_decompressed_bytes
        )
    else:
        if data[:6] == b"\x93NUMPY":
            vector = embedding_from_npy(data)
        elif len(data) == 4 * EMBEDDING_DIM:
            vector = np.frombuffer(data, dtype="<f4")
        else:
            raise InvalidRequestError(
                f"voice profile frame of {len(data)} bytes is neither npz, npy nor {EMBEDDING_DIM} float32"
            )
        if vector.size != EMBEDDING_DIM:
            raise InvalidRequestError(f"voice profile embedding has {vector.size} values; expected {EMBEDDING_DIM}")
        try:
            reference = SpeakerReference(embedding=vector)
        except ValueError as exc:
            raise InvalidRequestError(f"voice profile frame holds no usable embedding: {_first_error(exc)}") from exc
    if reference.embedding.size != EMBEDDING_DIM:
        raise InvalidRequestError(
            f"voice profile embedding has {reference.embedding.size} values; expected {EMBEDDING_DIM}"
        )
    return reference


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
