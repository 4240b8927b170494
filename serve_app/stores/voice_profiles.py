"""Voice profile documents and the store interface both backends implement.

Field names are camelCase because they are the MongoDB document fields the rest of the product
(gateway, admin tools) already reads.  Embeddings are raw float32 little-endian bytes (BSON binary in
MongoDB, base64 in the JSON file store), never pickle.  Datetimes are UTC and truncated to
milliseconds, BSON's precision, so a profile reads back equal from either backend.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from serve_app.domain.speaker import (
    EMBEDDING_DIM,
    EMBEDDING_MODEL,
    embedding_from_float32,
    embedding_to_float32,
    l2_normalize,
)
from serve_app.voice_characteristics import VoiceCharacteristics

FINGERPRINT_ALGORITHM = "sha256-int8-l2norm-v1"
PROFILES_COLLECTION = "user_voice_models"
PENDING_COLLECTION = "user_voice_samples"

_BYTES_AS_BASE64 = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


def utcnow() -> datetime:
    return to_ms(datetime.now(UTC))


def to_ms(value: datetime) -> datetime:
    """UTC, millisecond precision (naive datetimes are taken as UTC, as pymongo returns them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcMs = Annotated[datetime, AfterValidator(to_ms)]


def new_profile_id() -> str:
    return "vfp_" + secrets.token_hex(8)


class TrainingSample(BaseModel):
    model_config = _BYTES_AS_BASE64

    attachmentId: str
    durationMs: int = Field(ge=0)
    language: str | None = None
    addedAt: UtcMs
    embedding: bytes

    def vector(self) -> np.ndarray:
        return embedding_from_float32(self.embedding)


class PendingSample(TrainingSample):
    """A sample waiting until the user has spoken enough to create a profile.  It also carries what
    the profile will need from it that a TrainingSample does not keep: the cloner's reference and
    the measured characteristics."""

    speakerReference: bytes | None = None
    voiceCharacteristics: VoiceCharacteristics | None = None

    def training(self) -> TrainingSample:
        return TrainingSample.model_validate(self.model_dump(include=set(TrainingSample.model_fields)))


class VoiceFingerprint(BaseModel):
    signature: str
    signatureShort: str
    checksum: str
    embeddingModel: str
    embeddingDimension: int
    algorithm: str = FINGERPRINT_ALGORITHM
    createdAt: UtcMs


def compute_fingerprint(
    embedding: np.ndarray, embedding_model: str = EMBEDDING_MODEL, created_at: datetime | None = None
) -> VoiceFingerprint:
    """The signature hashes the L2-normalised embedding quantised to int8, so float noise from a
    float64/float32 round trip or a rescaling does not change it; the checksum (crc32 of the exact
    float32 bytes) detects any change of the stored vector itself."""
    vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
    quantised = np.clip(np.rint(l2_normalize(vec).astype(np.float64) * 127.0), -127, 127).astype(np.int8)
    signature = hashlib.sha256(quantised.tobytes()).hexdigest()
    return VoiceFingerprint(
        signature=signature,
        signatureShort=signature[:12],
        checksum=f"{zlib.crc32(embedding_to_float32(vec)) & 0xFFFFFFFF:08x}",
        embeddingModel=embedding_model,
        embeddingDimension=int(vec.size),
        createdAt=created_at or utcnow(),
    )


class VoiceProfile(BaseModel):
    model_config = _BYTES_AS_BASE64

    userId: str
    profileId: str = Field(default_factory=new_profile_id)
    embedding: bytes
    embeddingModel: str = EMBEDDING_MODEL
    embeddingDimension: int = EMBEDDING_DIM
    audioCount: int = Field(ge=0)
    totalDurationMs: int = Field(ge=0)
    trainingAudioSamples: list[TrainingSample] = Field(default_factory=list)
    qualityScore: float = Field(ge=0, le=1)
    version: int = Field(ge=1)
    voiceCharacteristics: VoiceCharacteristics | None = None
    fingerprint: VoiceFingerprint
    speakerReference: bytes | None = None
    createdAt: UtcMs
    updatedAt: UtcMs
    nextRecalibrationAt: UtcMs

    def vector(self) -> np.ndarray:
        return embedding_from_float32(self.embedding, self.embeddingDimension)

    def sample_ids(self) -> set[str]:
        return {s.attachmentId for s in self.trainingAudioSamples}

    def to_document(self) -> dict[str, Any]:
        """The MongoDB document: bytes stay bytes (BSON binary), datetimes stay datetimes."""
        return self.model_dump(mode="python")

    def summary(self) -> dict[str, Any]:
        """What the wire shows of a profile (no embeddings, no reference blob)."""
        return self.model_dump(mode="json", exclude={"embedding", "speakerReference", "trainingAudioSamples"})


class VoiceProfileStore(Protocol):
    """Profiles keyed by userId, plus the pending samples of users who have no profile yet.

    Pending samples expire (``voice_profile_pending_ttl_days`` after ``addedAt``): ``pending_samples``
    and ``add_pending_sample`` never return an expired one, and ``purge_expired_pending`` deletes them.

    ``replace`` is the only way to change a profile: it succeeds only if the stored version equals
    ``expected_version`` (optimistic concurrency), so concurrent writers reload and retry instead
    of overwriting each other's samples.
    """

    async def start(self) -> None: ...

    async def get(self, user_id: str) -> VoiceProfile | None: ...

    async def list(self, limit: int = 50, skip: int = 0) -> list[VoiceProfile]: ...

    async def count(self) -> int: ...

    async def create(self, profile: VoiceProfile) -> None: ...

    async def replace(self, profile: VoiceProfile, expected_version: int) -> bool: ...

    async def delete(self, user_id: str) -> bool: ...

    async def add_pending_sample(self, user_id: str, sample: PendingSample) -> list[PendingSample]: ...

    async def pending_samples(self, user_id: str) -> list[PendingSample]: ...

    async def clear_pending(self, user_id: str, attachment_ids: list[str] | None = None) -> None: ...

    async def purge_expired_pending(self) -> int: ...

    async def due_for_recalibration(self, now: datetime, limit: int = 100) -> list[VoiceProfile]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
