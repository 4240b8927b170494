"""Voice profile lifecycle: create from enough speech, reuse while fresh, improve when old, recalibrate.

Rules (ARCHITECTURE.md, settings ``voice_profile_*``):
- no profile: the sample joins the user's pending samples; once they add up to >= 10 s of speech the
  profile is created from all of them (duration-weighted mean embedding), version 1;
- a profile younger than ``max_age_days`` is reused as is (no write: the hot path stays read-only);
- an older profile is improved: embedding = L2(0.7 old + 0.3 new), the sample appended, version + 1;
- every ``recalibration_days`` the embedding is recomputed from the kept training samples.

Bounded growth: ``trainingAudioSamples`` keeps only the most recent ``max_training_samples`` (50);
``audioCount`` and ``totalDurationMs`` stay lifetime totals (every sample the profile ever absorbed),
and ``qualityScore`` is computed from those totals, so dropping old samples never lowers a
profile's quality. A very old attachment that has left the window and is observed again would
count once more (the dedupe looks at the kept samples). Pending samples expire in the store
(``voice_profile_pending_ttl_days``), so an abandoned half-profile does not stay forever.

Concurrency: every profile write is ``replace(profile, expected_version)``; on a conflict we reload
and re-apply the *same decision* (a sample judged worth adding is never dropped because another
writer got there first), up to a bounded number of jittered retries.  A lost create race falls
back to the improve path.  Pending samples a creation did not see are absorbed by the next improve.

Characteristics: a profile keeps the latest measured ``VoiceCharacteristics`` (not a blend): spreads
and percentiles do not average meaningfully, and the newest audio best describes the voice now.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve_app.domain.speaker import EMBEDDING_MODEL, SpeakerReference, embedding_to_float32, l2_normalize
from serve_app.errors import InvalidRequestError
from serve_app.stores.errors import (
    ProfileConflictError,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileTooShortError,
)
from serve_app.stores.voice_profiles import (
    PendingSample,
    TrainingSample,
    VoiceProfile,
    VoiceProfileStore,
    compute_fingerprint,
    utcnow,
)
from serve_app.voice_characteristics import VoiceCharacteristics

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


def quality_score(total_duration_ms: int, sample_count: int) -> float:
    """0-10 s: 0.3, 10-30 s: 0.5, 30-60 s: 0.7, 60 s+: 0.9; +0.05 per sample beyond the first (max +0.1)."""
    seconds = total_duration_ms / 1000.0
    if seconds < 10:
        base = 0.3
    elif seconds < 30:
        base = 0.5
    elif seconds < 60:
        base = 0.7
    else:
        base = 0.9
    bonus = min(0.1, 0.05 * max(0, sample_count - 1))
    return round(min(1.0, base + bonus), 4)


def weighted_mean_embedding(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """L2-normalised weighted mean; equal weights when every weight is zero."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones_like(w)
    stacked = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in vectors])
    return l2_normalize((stacked * w[:, None]).sum(axis=0) / w.sum())


def blend_references(old: bytes, new: bytes, old_weight: float) -> bytes:
    """Blend two cloner SpeakerReferences (npz bytes) the way profile embeddings are blended.

    embedding: normalised weighted mean; log-F0 mean/std: weighted; envelope_db: weighted, NaN-aware
    (a bin measured in only one reference takes that value) when both share the envelope_hz grid,
    else the newer envelope; every other field from the newer reference.
    """
    a = SpeakerReference.from_npz_bytes(old)
    b = SpeakerReference.from_npz_bytes(new)
    wa, wb = float(old_weight), 1.0 - float(old_weight)
    fields: dict[str, Any] = dict(b)
    if a.embedding.shape == b.embedding.shape:
        fields["embedding"] = l2_normalize(wa * a.embedding + wb * b.embedding)
    if a.log_f0_mean is not None and b.log_f0_mean is not None:
        fields["log_f0_mean"] = wa * a.log_f0_mean + wb * b.log_f0_mean
        fields["log_f0_std"] = wa * a.log_f0_std + wb * b.log_f0_std
    elif b.log_f0_mean is None and a.log_f0_mean is not None:
        fields["log_f0_mean"], fields["log_f0_std"] = a.log_f0_mean, a.log_f0_std
    if a.envelope_db is not None and b.envelope_db is not None:
        if a.envelope_hz.shape == b.envelope_hz.shape and np.allclose(a.envelope_hz, b.envelope_hz):
            fields["envelope_db"] = _nan_weighted(a.envelope_db, b.envelope_db, wa, wb)
    elif b.envelope_db is None and a.envelope_db is not None:
        fields["envelope_db"], fields["envelope_hz"] = a.envelope_db, a.envelope_hz
    if a.duration_ms is not None and b.duration_ms is not None:
        fields["duration_ms"] = a.duration_ms + b.duration_ms
    return SpeakerReference(**fields).to_npz_bytes()


def _nan_weighted(a: np.ndarray, b: np.ndarray, wa: float, wb: float) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = wa * a64 + wb * b64
    out = np.where(np.isnan(a64), b64, out)
    out = np.where(np.isnan(b64), a64, out)
    return out.astype(np.float32)


class NewSample(BaseModel):
    """One observed voice message, as the pipeline measured it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    attachment_id: str
    duration_ms: int = Field(ge=0)
    language: str | None = None
    embedding: np.ndarray
    speaker_reference: bytes | None = None
    characteristics: VoiceCharacteristics | None = None

    @field_validator("embedding", mode="before")
    @classmethod
    def _check_embedding(cls, value: Any) -> np.ndarray:
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
        if vec.size == 0 or not np.all(np.isfinite(vec)) or not np.any(vec):
            raise ValueError("embedding must be a non-empty, non-zero vector of finite floats")
        return vec

    def pending(self, now: datetime) -> PendingSample:
        return PendingSample(
            attachmentId=self.attachment_id,
            durationMs=self.duration_ms,
            language=self.language,
            addedAt=now,
            embedding=embedding_to_float32(l2_normalize(self.embedding)),
            speakerReference=self.speaker_reference,
            voiceCharacteristics=self.characteristics,
        )


class ProfileOutcome(BaseModel):
    action: Literal["reused", "created", "improved", "pending"]
    profile: VoiceProfile | None = None
    speaker_reference: bytes | None = None


class VoiceProfileManager:
    def __init__(
        self,
        store: VoiceProfileStore,
        settings: Any,
        clock: Callable[[], datetime] = utcnow,
        *,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_age = timedelta(days=settings.voice_profile_max_age_days)
        self.min_speech_ms = int(settings.voice_profile_min_speech_ms)
        self.old_weight = float(settings.voice_profile_old_weight)
        self.recalibration = timedelta(days=settings.voice_profile_recalibration_days)
        self.max_training_samples = max(1, int(getattr(settings, "voice_profile_max_training_samples", 50)))
        self.max_attempts = max_attempts

    # -- the pipeline's entry point -------------------------------------------------------------

    async def observe(self, user_id: str, sample: NewSample) -> ProfileOutcome:
        committed = False  # once True, this sample goes into the profile whatever other writers do
        for attempt in range(self.max_attempts):
            profile = await self.store.get(user_id)
            if profile is None:
                outcome = await self._try_create(user_id, sample)
                if outcome is not None:
                    return outcome
                committed = True  # lost a create race: improve the winner's profile instead
            elif not committed and self.clock() - profile.updatedAt < self.max_age:
                ref = profile.speakerReference or sample.speaker_reference
                return ProfileOutcome(action="reused", profile=profile, speaker_reference=ref)
            else:
                committed = True
                improved = await self._try_improve(profile, sample)
                if improved is not None:
                    ref = improved.speakerReference or sample.speaker_reference
                    return ProfileOutcome(action="improved", profile=improved, speaker_reference=ref)
            await _backoff(attempt)
        raise ProfileConflictError(f"voice profile of {user_id}: too many concurrent updates, try again")

    # -- explicit API operations ----------------------------------------------------------------

    async def get(self, user_id: str) -> VoiceProfile | None:
        return await self.store.get(user_id)

    async def list(self, limit: int = 50, skip: int = 0) -> list[VoiceProfile]:
        return await self.store.list(limit=limit, skip=skip)

    async def count(self) -> int:
        return await self.store.count()

    async def delete(self, user_id: str) -> bool:
        return await self.store.delete(user_id)

    async def create_from_sample(self, user_id: str, sample: NewSample) -> VoiceProfile:
        if sample.duration_ms < self.min_speech_ms:
            raise ProfileTooShortError(
                f"a voice profile needs at least {self.min_speech_ms / 1000:.0f} s of speech, "
                f"got {sample.duration_ms / 1000:.1f} s"
            )
        profile = self._new_profile(user_id, [sample.pending(self.clock())])
        await self.store.create(profile)
        return profile

    async def update_from_sample(self, user_id: str, sample: NewSample) -> VoiceProfile:
        """Improve now, whatever the profile's age (an explicit request from the user)."""
        for attempt in range(self.max_attempts):
            profile = await self.store.get(user_id)
            if profile is None:
                raise ProfileNotFoundError(f"user {user_id} has no voice profile")
            improved = await self._try_improve(profile, sample)
            if improved is not None:
                return improved
            await _backoff(attempt)
        raise ProfileConflictError(f"voice profile of {user_id}: too many concurrent updates, try again")

    # -- recalibration --------------------------------------------------------------------------

    async def recalibrate_due(self, batch: int = 100) -> int:
        """Recompute due profiles from all their samples; a profile changed meanwhile is skipped
        (its writer already pushed its next date or it will be due again on the next pass)."""
        now = self.clock()
        done = 0
        seen: set[str] = set()
        while True:
            due = [p for p in await self.store.due_for_recalibration(now, batch) if p.userId not in seen]
            if not due:
                return done
            for profile in due:
                seen.add(profile.userId)
                updated = self._recalibrated(profile, now)
                if await self.store.replace(updated, expected_version=profile.version):
                    done += 1

    async def run_recalibration_loop(self, interval_s: float) -> None:
        """Background task: run forever, surviving store outages (they are logged, then retried)."""
        while True:
            try:
                count = await self.recalibrate_due()
                if count:
                    log.info("recalibrated %d voice profiles", count)
                purged = await self.store.purge_expired_pending()
                if purged:
                    log.info("dropped %d expired pending voice samples", purged)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed pass must not end the loop
                log.exception("voice profile recalibration pass failed")
            await asyncio.sleep(interval_s)

    # -- internals ------------------------------------------------------------------------------

    async def _try_create(self, user_id: str, sample: NewSample) -> ProfileOutcome | None:
        """Add to pending; create once there is enough speech.  None means "a profile appeared
        meanwhile: improve it with this sample instead"."""
        pending = await self.store.add_pending_sample(user_id, sample.pending(self.clock()))
        if sum(p.durationMs for p in pending) < self.min_speech_ms:
            if await self.store.get(user_id) is not None:
                return None  # created concurrently from samples that may not include ours
            return ProfileOutcome(action="pending", profile=None, speaker_reference=sample.speaker_reference)
        profile = self._new_profile(user_id, pending)
        try:
            await self.store.create(profile)
        except ProfileExistsError:
            return None
        await self.store.clear_pending(user_id, [p.attachmentId for p in pending])
        ref = profile.speakerReference or sample.speaker_reference
        return ProfileOutcome(action="created", profile=profile, speaker_reference=ref)

    async def _try_improve(self, profile: VoiceProfile, sample: NewSample) -> VoiceProfile | None:
        """Write the improved profile; None on a version conflict (the caller reloads and retries)."""
        now = self.clock()
        known = profile.sample_ids()
        pending = await self.store.pending_samples(profile.userId)
        fresh = [s for s in [sample.pending(now), *pending] if s.attachmentId not in known]
        fresh = list({s.attachmentId: s for s in fresh}.values())
        if not fresh:
            return profile  # already in (a retry after another writer absorbed it): nothing to add
        if any(s.vector().size != profile.embeddingDimension for s in fresh):
            raise InvalidRequestError(
                f"embedding size differs from the profile's ({profile.embeddingDimension}, {profile.embeddingModel})"
            )
        new_vec = weighted_mean_embedding([s.vector() for s in fresh], [s.durationMs for s in fresh])
        blended = l2_normalize(self.old_weight * profile.vector() + (1.0 - self.old_weight) * new_vec)
        samples = [*profile.trainingAudioSamples, *(s.training() for s in fresh)][-self.max_training_samples:]
        audio_count = profile.audioCount + len(fresh)
        total_ms = profile.totalDurationMs + sum(s.durationMs for s in fresh)
        reference = _combine_references(
            [(profile.speakerReference, float(self.old_weight)), (_fold_references(fresh), 1 - self.old_weight)]
        )
        updated = profile.model_copy(
            update={
                "embedding": embedding_to_float32(blended),
                "trainingAudioSamples": samples,
                "audioCount": audio_count,
                "totalDurationMs": total_ms,
                "qualityScore": quality_score(total_ms, audio_count),
                "version": profile.version + 1,
                "updatedAt": now,
                "nextRecalibrationAt": now + self.recalibration,
                "fingerprint": compute_fingerprint(blended, profile.embeddingModel, now),
                "voiceCharacteristics": _latest_characteristics(fresh) or profile.voiceCharacteristics,
                "speakerReference": reference,
            }
        )
        if not await self.store.replace(updated, expected_version=profile.version):
            return None
        if pending:
            await self.store.clear_pending(profile.userId, [p.attachmentId for p in pending])
        return updated

    def _new_profile(self, user_id: str, pending: Sequence[PendingSample]) -> VoiceProfile:
        now = self.clock()
        vec = weighted_mean_embedding([p.vector() for p in pending], [p.durationMs for p in pending])
        samples = [p.training() for p in pending][-self.max_training_samples:]
        total = sum(p.durationMs for p in pending)
        return VoiceProfile(
            userId=user_id,
            embedding=embedding_to_float32(vec),
            embeddingModel=EMBEDDING_MODEL,
            embeddingDimension=int(vec.size),
            audioCount=len(pending),
            totalDurationMs=total,
            trainingAudioSamples=samples,
            qualityScore=quality_score(total, len(pending)),
            version=1,
            voiceCharacteristics=_latest_characteristics(pending),
            fingerprint=compute_fingerprint(vec, EMBEDDING_MODEL, now),
            speakerReference=_fold_references(pending),
            createdAt=now,
            updatedAt=now,
            nextRecalibrationAt=now + self.recalibration,
        )

    def _recalibrated(self, profile: VoiceProfile, now: datetime) -> VoiceProfile:
        samples: list[TrainingSample] = profile.trainingAudioSamples
        # updatedAt is left alone: it dates the last new sample, and a profile's age (reuse vs improve)
        # must not be reset by recomputing from samples it already had.
        update: dict[str, Any] = {
            "version": profile.version + 1,
            "nextRecalibrationAt": now + self.recalibration,
            "qualityScore": quality_score(profile.totalDurationMs, profile.audioCount),  # lifetime totals
        }
        if len(samples) > self.max_training_samples:  # a profile from before the bound, or a lowered one
            samples = samples[-self.max_training_samples:]
            update["trainingAudioSamples"] = samples
        if samples:
            vec = weighted_mean_embedding([s.vector() for s in samples], [s.durationMs for s in samples])
            update["embedding"] = embedding_to_float32(vec)
            update["fingerprint"] = compute_fingerprint(vec, profile.embeddingModel, now)
        return profile.model_copy(update=update)


def _latest_characteristics(samples: Sequence[PendingSample]) -> VoiceCharacteristics | None:
    measured = [s.voiceCharacteristics for s in samples if s.voiceCharacteristics is not None]
    return measured[-1] if measured else None


def _fold_references(samples: Sequence[PendingSample]) -> bytes | None:
    """Duration-weighted blend of the samples' speaker references (those that have one)."""
    return _combine_references([(s.speakerReference, float(max(s.durationMs, 1))) for s in samples])


def _combine_references(weighted: Sequence[tuple[bytes | None, float]]) -> bytes | None:
    acc: bytes | None = None
    acc_w = 0.0
    for ref, weight in weighted:
        if ref is None or weight <= 0:
            continue
        if acc is None:
            acc, acc_w = ref, weight
        else:
            acc = blend_references(acc, ref, acc_w / (acc_w + weight))
            acc_w += weight
    return acc


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, 0.005 * (2 ** min(attempt, 5))))
