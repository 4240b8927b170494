"""Voice profile models and pure helpers: bytes codec, fingerprint, quality table, reference blend."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.domain.speaker import ENVELOPE_HZ, SpeakerReference, cosine, embedding_from_float32, embedding_to_float32
from serve_app.errors import InvalidRequestError
from serve_app.stores.profile_lifecycle import blend_references, quality_score
from serve_app.stores.voice_profiles import VoiceProfile, compute_fingerprint, new_profile_id, utcnow


def vec(seed: int, dim: int = 256) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_embedding_bytes_round_trip_and_validation() -> None:
    v = vec(0)
    data = embedding_to_float32(v)
    assert len(data) == 256 * 4 and data == v.astype("<f4").tobytes()
    assert np.array_equal(embedding_from_float32(data, 256), v)
    with pytest.raises(ValueError):
        embedding_from_float32(data[:-1])
    with pytest.raises(ValueError):
        embedding_from_float32(b"")
    with pytest.raises(ValueError):
        embedding_from_float32(data, 128)
    with pytest.raises(ValueError):
        embedding_from_float32(np.array([1.0, np.nan], dtype="<f4").tobytes())


def test_fingerprint_is_stable_across_float_noise_and_scale() -> None:
    v = vec(1)
    fp = compute_fingerprint(v)
    assert len(fp.signature) == 64 and fp.signatureShort == fp.signature[:12]
    assert fp.embeddingDimension == 256 and fp.embeddingModel and fp.algorithm
    assert compute_fingerprint(v.astype(np.float64) * 3.0).signature == fp.signature
    noisy = v + np.random.default_rng(7).normal(scale=1e-7, size=v.size).astype(np.float32)
    assert compute_fingerprint(noisy).signature == fp.signature
    assert compute_fingerprint(noisy).checksum != fp.checksum  # the exact bytes did change
    assert compute_fingerprint(vec(2)).signature != fp.signature


@pytest.mark.parametrize(
    ("duration_ms", "count", "expected"),
    [
        (0, 1, 0.3),
        (9_999, 1, 0.3),
        (10_000, 1, 0.5),
        (29_999, 1, 0.5),
        (30_000, 1, 0.7),
        (60_000, 1, 0.9),
        (12_000, 2, 0.55),
        (12_000, 3, 0.6),
        (12_000, 9, 0.6),  # the sample bonus is capped at +0.1
        (120_000, 5, 1.0),
    ],
)
def test_quality_score_table(duration_ms: int, count: int, expected: float) -> None:
    assert quality_score(duration_ms, count) == pytest.approx(expected)


def test_cosine_similarity() -> None:
    v = vec(3)
    assert cosine(v, 2 * v) == pytest.approx(1.0)
    assert cosine(v, -v) == pytest.approx(-1.0)
    assert cosine(v, np.zeros_like(v)) == 0.0
    with pytest.raises(InvalidRequestError):  # a client sent mismatched embeddings: a 4xx, not a crash
        cosine(v, v[:10])


def reference(seed: int, f0_hz: float, envelope_offset_db: float, duration_ms: int = 5000) -> SpeakerReference:
    envelope = np.linspace(-20, -60, ENVELOPE_HZ.size).astype(np.float32) + envelope_offset_db
    return SpeakerReference(
        embedding=vec(seed),
        duration_ms=duration_ms,
        log_f0_mean=float(np.log(f0_hz)),
        log_f0_std=0.1,
        envelope_db=envelope,
        envelope_hz=ENVELOPE_HZ,
    )


def test_blend_references_weights_every_statistic() -> None:
    old, new = reference(1, 120.0, 0.0), reference(2, 240.0, 10.0)
    new_env = new.envelope_db.copy()
    new_env[-3:] = np.nan  # the newer clip was band-limited: those bins were not measured
    new = new.model_copy(update={"envelope_db": new_env})
    out = SpeakerReference.from_npz_bytes(blend_references(old.to_npz_bytes(), new.to_npz_bytes(), 0.7))
    expected_embedding = 0.7 * old.embedding + 0.3 * new.embedding
    expected_embedding /= np.linalg.norm(expected_embedding)
    assert np.allclose(out.embedding, expected_embedding, atol=1e-6)
    assert out.log_f0_mean == pytest.approx(0.7 * np.log(120) + 0.3 * np.log(240))
    assert np.allclose(out.envelope_db[:-3], old.envelope_db[:-3] + 3.0, atol=1e-4)
    assert np.allclose(out.envelope_db[-3:], old.envelope_db[-3:])  # NaN-aware: the measured one wins
    assert out.duration_ms == 10_000
    assert out.has_world_stats


def test_blend_keeps_the_newer_envelope_when_grids_differ() -> None:
    old = reference(1, 120.0, 0.0)
    grid = np.geomspace(100.0, 5000.0, 16).astype(np.float32)
    new = SpeakerReference(
        embedding=vec(2), log_f0_mean=5.0, log_f0_std=0.2, envelope_db=np.full(16, -30.0), envelope_hz=grid
    )
    out = SpeakerReference.from_npz_bytes(blend_references(old.to_npz_bytes(), new.to_npz_bytes(), 0.7))
    assert np.allclose(out.envelope_hz, grid) and np.allclose(out.envelope_db, -30.0)


def test_blend_with_an_embedding_only_reference_keeps_the_old_statistics() -> None:
    old = reference(1, 120.0, 0.0)
    new = SpeakerReference(embedding=vec(2))
    out = SpeakerReference.from_npz_bytes(blend_references(old.to_npz_bytes(), new.to_npz_bytes(), 0.7))
    assert out.log_f0_mean == pytest.approx(old.log_f0_mean)
    assert np.allclose(out.envelope_db, old.envelope_db)


def test_profile_json_round_trip_keeps_bytes_and_utc_milliseconds() -> None:
    now = utcnow()
    v = vec(4)
    profile = VoiceProfile(
        userId="u1",
        embedding=embedding_to_float32(v),
        audioCount=0,
        totalDurationMs=0,
        qualityScore=0.3,
        version=1,
        fingerprint=compute_fingerprint(v),
        speakerReference=b"\x00\xff binary",
        createdAt=now,
        updatedAt=now,
        nextRecalibrationAt=now,
    )
    assert profile.profileId.startswith("vfp_") and len(profile.profileId) == 20
    assert new_profile_id() != new_profile_id()
    back = VoiceProfile.model_validate_json(profile.model_dump_json())
    assert back == profile and back.createdAt.tzinfo is not None
    assert back.createdAt.microsecond % 1000 == 0
    assert "embedding" not in profile.summary() and profile.summary()["fingerprint"]["signatureShort"]
