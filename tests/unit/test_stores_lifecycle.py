"""VoiceProfileManager rules on the embedded file store, with an injected clock.

The same scenarios run against a real MongoDB-wire server in tests/integration/test_stores_real.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from serve_app.domain.speaker import ENVELOPE_HZ, SpeakerReference, l2_normalize
from serve_app.settings import Settings
from serve_app.stores import (
    FileVoiceProfileStore,
    NewSample,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileTooShortError,
    VoiceProfileManager,
    build_profile_store,
)
from tests.fixtures.profiles import Clock, vec


def sample(attachment: str, seconds: float, seed: int = 0, f0: float = 150.0) -> NewSample:
    ref = SpeakerReference(
        embedding=vec(seed),
        log_f0_mean=float(np.log(f0)),
        log_f0_std=0.1,
        envelope_db=np.full(ENVELOPE_HZ.size, -40.0),
        envelope_hz=ENVELOPE_HZ,
    )
    return NewSample(
        attachment_id=attachment,
        duration_ms=int(seconds * 1000),
        language="fr",
        embedding=vec(seed),
        speaker_reference=ref.to_npz_bytes(),
    )


@pytest.fixture
async def store(tmp_path: Path) -> FileVoiceProfileStore:
    store = FileVoiceProfileStore(tmp_path / "profiles")
    await store.start()
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(store: FileVoiceProfileStore, clock: Clock) -> VoiceProfileManager:
    return VoiceProfileManager(store, Settings(), clock=clock)


async def test_short_samples_stay_pending_until_ten_seconds(manager: VoiceProfileManager) -> None:
    first = await manager.observe("u1", sample("a1", 4, seed=1))
    assert first.action == "pending" and first.profile is None and first.speaker_reference
    assert (await manager.observe("u1", sample("a1", 4, seed=1))).action == "pending"  # idempotent
    assert [p.attachmentId for p in await manager.store.pending_samples("u1")] == ["a1"]
    assert (await manager.observe("u1", sample("a2", 4, seed=2))).action == "pending"
    created = await manager.observe("u1", sample("a3", 3, seed=3))
    assert created.action == "created"
    profile = created.profile
    assert profile is not None and profile.version == 1
    assert [s.attachmentId for s in profile.trainingAudioSamples] == ["a1", "a2", "a3"]
    assert (profile.audioCount, profile.totalDurationMs) == (3, 11_000)
    assert profile.qualityScore == pytest.approx(0.6)
    assert await manager.store.pending_samples("u1") == []
    expected = l2_normalize(4 * vec(1) + 4 * vec(2) + 3 * vec(3))
    assert np.allclose(profile.vector(), expected, atol=1e-6)
    assert created.speaker_reference == profile.speakerReference is not None


async def test_fresh_profile_is_reused_without_a_write(manager: VoiceProfileManager, clock: Clock) -> None:
    created = await manager.observe("u1", sample("a1", 12, seed=1))
    assert created.action == "created"
    clock.now += timedelta(days=29)
    reused = await manager.observe("u1", sample("a2", 5, seed=2))
    assert reused.action == "reused" and reused.profile == created.profile
    assert reused.speaker_reference == created.profile.speakerReference
    assert (await manager.get("u1")).version == 1


async def test_old_profile_is_improved(manager: VoiceProfileManager, clock: Clock) -> None:
    created = (await manager.observe("u1", sample("a1", 12, seed=1, f0=120))).profile
    clock.now += timedelta(days=31)
    outcome = await manager.observe("u1", sample("a2", 6, seed=2, f0=240))
    assert outcome.action == "improved"
    p = outcome.profile
    assert p.version == 2 and p.audioCount == 2 and p.totalDurationMs == 18_000
    assert [s.attachmentId for s in p.trainingAudioSamples] == ["a1", "a2"]
    assert np.allclose(p.vector(), l2_normalize(0.7 * vec(1) + 0.3 * vec(2)), atol=1e-6)
    assert p.updatedAt == clock.now and p.nextRecalibrationAt == clock.now + timedelta(days=30)
    assert p.createdAt == created.createdAt and p.profileId == created.profileId
    assert p.fingerprint.signature != created.fingerprint.signature
    assert p.qualityScore == pytest.approx(0.55)
    ref = SpeakerReference.from_npz_bytes(p.speakerReference)
    assert ref.log_f0_mean == pytest.approx(0.7 * np.log(120) + 0.3 * np.log(240))
    assert await manager.get("u1") == p


async def test_explicit_create_and_update(manager: VoiceProfileManager) -> None:
    with pytest.raises(ProfileTooShortError) as info:
        await manager.create_from_sample("u1", sample("a1", 9.9))
    assert info.value.status == 400
    with pytest.raises(ProfileNotFoundError):
        await manager.update_from_sample("u1", sample("a1", 5))
    created = await manager.create_from_sample("u1", sample("a1", 10, seed=1))
    with pytest.raises(ProfileExistsError):
        await manager.create_from_sample("u1", sample("a2", 10, seed=2))
    updated = await manager.update_from_sample("u1", sample("a2", 5, seed=2))  # regardless of age
    assert updated.version == 2 and updated.audioCount == 2
    again = await manager.update_from_sample("u1", sample("a2", 5, seed=2))
    assert again.version == 2  # the same attachment is not added twice
    assert created.profileId == updated.profileId
    assert await manager.count() == 1 and [p.userId for p in await manager.list()] == ["u1"]
    assert await manager.delete("u1") and not await manager.delete("u1")
    assert await manager.get("u1") is None


async def test_delete_also_drops_pending_samples(manager: VoiceProfileManager) -> None:
    await manager.observe("u1", sample("a1", 3))
    await manager.delete("u1")
    assert await manager.store.pending_samples("u1") == []


async def test_recalibration_recomputes_due_profiles(manager: VoiceProfileManager, clock: Clock) -> None:
    await manager.create_from_sample("u1", sample("a1", 10, seed=1))
    await manager.update_from_sample("u1", sample("a2", 30, seed=2))
    await manager.create_from_sample("u2", sample("b1", 10, seed=3))
    assert await manager.recalibrate_due() == 0
    clock.now += timedelta(days=31)
    assert await manager.recalibrate_due() == 2
    p = await manager.get("u1")
    assert p.version == 3 and p.nextRecalibrationAt == clock.now + timedelta(days=30)
    assert np.allclose(p.vector(), l2_normalize(10 * vec(1) + 30 * vec(2)), atol=1e-6)
    assert p.qualityScore == pytest.approx(0.75)
    assert await manager.recalibrate_due() == 0


async def test_recalibration_loop_survives_and_can_be_cancelled(manager: VoiceProfileManager) -> None:
    task = asyncio.create_task(manager.run_recalibration_loop(0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_concurrent_improves_lose_no_sample(store, clock: Clock) -> None:
    """max age 0: every observe must improve, so all 8 concurrent samples must land in the profile."""
    settings = Settings(voice_profile_max_age_days=0)
    first, second = (VoiceProfileManager(store, settings, clock=clock) for _ in range(2))  # two replicas
    await first.create_from_sample("u1", sample("a0", 10, seed=0))
    outcomes = await asyncio.gather(
        *((first if i % 2 else second).observe("u1", sample(f"a{i}", 2, seed=i)) for i in range(1, 9))
    )
    assert {o.action for o in outcomes} == {"improved"}
    profile = await first.get("u1")
    assert {s.attachmentId for s in profile.trainingAudioSamples} == {f"a{i}" for i in range(9)}
    assert profile.version == 9 and profile.audioCount == 9 and profile.totalDurationMs == 26_000


async def test_concurrent_observes_of_an_old_profile_keep_every_improving_sample(
    manager: VoiceProfileManager, clock: Clock
) -> None:
    """Default max age: the first write makes the profile fresh, so later readers may reuse it; but
    every sample that was judged "improve" must be in the profile."""
    await manager.create_from_sample("u1", sample("a0", 10, seed=0))
    clock.now += timedelta(days=31)
    outcomes = await asyncio.gather(*(manager.observe("u1", sample(f"a{i}", 2, seed=i)) for i in range(1, 9)))
    profile = await manager.get("u1")
    improved = {f"a{i}" for i, o in zip(range(1, 9), outcomes, strict=True) if o.action == "improved"}
    assert improved and {o.action for o in outcomes} <= {"improved", "reused"}
    assert {s.attachmentId for s in profile.trainingAudioSamples} == {"a0"} | improved


async def test_concurrent_first_samples_lose_no_sample(manager: VoiceProfileManager, store) -> None:
    other = VoiceProfileManager(store, Settings(), clock=manager.clock)
    outcomes = await asyncio.gather(
        *((manager if i % 2 else other).observe("new", sample(f"s{i}", 2.5, seed=i)) for i in range(8))
    )
    profile = await manager.get("new")
    pending = {p.attachmentId for p in await store.pending_samples("new")}
    kept = {s.attachmentId for s in profile.trainingAudioSamples} | pending
    assert kept == {f"s{i}" for i in range(8)}
    assert sum(o.action == "created" for o in outcomes) == 1


def test_build_profile_store_defaults_to_files(tmp_path: Path) -> None:
    store = build_profile_store(Settings(cache_dir=tmp_path))
    assert isinstance(store, FileVoiceProfileStore) and store.directory == tmp_path / "voice_profiles"
    store = build_profile_store(Settings(cache_dir=tmp_path, voice_profile_dir=tmp_path / "vp"))
    assert store.directory == tmp_path / "vp"


async def test_bad_embeddings_are_rejected(manager: VoiceProfileManager) -> None:
    from pydantic import ValidationError

    from serve_app.errors import InvalidRequestError

    with pytest.raises(ValidationError):
        NewSample(attachment_id="x", duration_ms=1000, embedding=np.zeros(256))
    await manager.create_from_sample("u1", sample("a1", 10))
    wrong = NewSample(attachment_id="a2", duration_ms=1000, embedding=np.ones(128, dtype=np.float32))
    with pytest.raises(InvalidRequestError):
        await manager.update_from_sample("u1", wrong)
