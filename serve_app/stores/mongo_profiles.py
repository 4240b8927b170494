"""Voice profiles in MongoDB through motor.

Every driver timeout is small and explicit (server selection, connect, socket), and every call also
runs under an overall deadline, so an unreachable or dying server becomes a clear
``StoreUnavailableError`` (503) in about ``timeout_ms``, never a hang; what the driver said (hosts,
server messages) is logged under the error's ``error_id``, never sent to a client.  Each write is a
single-document operation (``insert_one`` / ``replace_one`` with a version filter), which MongoDB
applies atomically: a crash leaves the old document or the new one, never a mix.

Pending samples expire ``pending_ttl`` after ``addedAt``: a TTL index created at start-up lets the
server delete them, and reads ignore expired ones until it has (the TTL monitor runs once a minute).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

from serve_app.stores.errors import ProfileExistsError
from serve_app.stores.mongo_calls import call_deadline_s, mongo_guard, motor_client
from serve_app.stores.voice_profiles import (
    PENDING_COLLECTION,
    PROFILES_COLLECTION,
    PendingSample,
    VoiceProfile,
    utcnow,
)

log = logging.getLogger(__name__)
PENDING_TTL_INDEX = "pending_ttl"
# IndexOptionsConflict / IndexKeySpecsConflict: the TTL index exists with another expireAfterSeconds.
_INDEX_CONFLICT_CODES = {85, 86}

_NO_ID = {"_id": False}


class MongoVoiceProfileStore:
    def __init__(
        self,
        url: str,
        database: str = "voice_translator",
        *,
        timeout_ms: int = 2000,
        pending_ttl: timedelta | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._url = url
        self._timeout_ms = timeout_ms
        self.pending_ttl = pending_ttl
        self._clock = clock
        self._deadline_s = call_deadline_s(timeout_ms)
        self._client = motor_client(url, timeout_ms)
        self._db = self._client[database]
        self._profiles = self._db[PROFILES_COLLECTION]
        self._pending = self._db[PENDING_COLLECTION]

    def _guard(self, what: str) -> contextlib.AbstractAsyncContextManager[None]:
        return mongo_guard(self._deadline_s, "voice profile store", what)

    def _pending_cutoff(self) -> datetime | None:
        return self._clock() - self.pending_ttl if self.pending_ttl is not None else None

    async def start(self) -> None:
        """Ping, then create the indexes (idempotent): fails fast if the server is not there."""
        async with self._guard("start"):
            await self._db.command("ping")
            await self._profiles.create_index("userId", unique=True)
            await self._profiles.create_index("profileId", unique=True)
            await self._profiles.create_index("nextRecalibrationAt")
            await self._pending.create_index([("userId", ASCENDING), ("attachmentId", ASCENDING)], unique=True)
            if self.pending_ttl is not None:
                await self._ensure_pending_ttl(max(1, int(self.pending_ttl.total_seconds())))

    async def _ensure_pending_ttl(self, seconds: int) -> None:
        """The TTL index on ``addedAt``; one left by an earlier ``voice_profile_pending_ttl_days`` is
        changed in place (collMod). A server that refuses either is logged, not fatal: reads still
        ignore expired samples and the maintenance pass (`purge_expired_pending`) deletes them."""
        try:
            await self._pending.create_index("addedAt", name=PENDING_TTL_INDEX, expireAfterSeconds=seconds)
            return
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICT_CODES:
                log.warning("pending samples TTL index not created (%s); expired samples are ignored on read "
                            "and purged by the maintenance pass", exc)
                return
        try:
            await self._db.command({"collMod": PENDING_COLLECTION,
                                    "index": {"name": PENDING_TTL_INDEX, "expireAfterSeconds": seconds}})
        except OperationFailure as exc:
            log.warning("pending samples TTL index not updated to %d s (%s); expired samples are ignored on read "
                        "and purged by the maintenance pass", seconds, exc)

    async def ping(self) -> None:
        async with self._guard("ping"):
            await self._db.command("ping")

    async def get(self, user_id: str) -> VoiceProfile | None:
        async with self._guard("get"):
            doc = await self._profiles.find_one({"userId": user_id}, _NO_ID)
        return VoiceProfile.model_validate(doc) if doc else None

    async def list(self, limit: int = 50, skip: int = 0) -> builtins.list[VoiceProfile]:
        async with self._guard("list"):
            cursor = self._profiles.find({}, _NO_ID).sort("userId", ASCENDING).skip(max(0, skip)).limit(limit)
            docs = await cursor.to_list(length=limit)
        return [VoiceProfile.model_validate(d) for d in docs]

    async def count(self) -> int:
        async with self._guard("count"):
            return int(await self._profiles.count_documents({}))

    async def create(self, profile: VoiceProfile) -> None:
        try:
            async with self._guard("create"):
                await self._profiles.insert_one(profile.to_document())
        except DuplicateKeyError as exc:
            raise ProfileExistsError(f"user {profile.userId} already has a voice profile") from exc

    async def replace(self, profile: VoiceProfile, expected_version: int) -> bool:
        async with self._guard("replace"):
            result = await self._profiles.replace_one(
                {"userId": profile.userId, "version": expected_version}, profile.to_document()
            )
        return result.matched_count == 1

    async def delete(self, user_id: str) -> bool:
        async with self._guard("delete"):
            result = await self._profiles.delete_one({"userId": user_id})
            await self._pending.delete_many({"userId": user_id})
        return result.deleted_count == 1

    async def add_pending_sample(self, user_id: str, sample: PendingSample) -> builtins.list[PendingSample]:
        doc: dict[str, Any] = {"userId": user_id, **sample.model_dump(mode="python")}
        try:
            async with self._guard("add_pending_sample"):
                # $setOnInsert: the same attachment observed twice stays one sample.
                await self._pending.update_one(
                    {"userId": user_id, "attachmentId": sample.attachmentId}, {"$setOnInsert": doc}, upsert=True
                )
        except DuplicateKeyError:
            pass  # two concurrent upserts of one attachment: the other one inserted it
        return await self.pending_samples(user_id)

    async def pending_samples(self, user_id: str) -> builtins.list[PendingSample]:
        query: dict[str, Any] = {"userId": user_id}
        cutoff = self._pending_cutoff()
        if cutoff is not None:
            query["addedAt"] = {"$gte": cutoff}
        async with self._guard("pending_samples"):
            docs = await self._pending.find(query, _NO_ID).sort("addedAt", ASCENDING).to_list(None)
        return [PendingSample.model_validate(d) for d in docs]

    async def purge_expired_pending(self) -> int:
        """Delete expired pending samples now (the TTL index does it too, on the server's schedule)."""
        cutoff = self._pending_cutoff()
        if cutoff is None:
            return 0
        async with self._guard("purge_expired_pending"):
            result = await self._pending.delete_many({"addedAt": {"$lt": cutoff}})
        return int(result.deleted_count)

    async def clear_pending(self, user_id: str, attachment_ids: builtins.list[str] | None = None) -> None:
        query: dict[str, Any] = {"userId": user_id}
        if attachment_ids is not None:
            query["attachmentId"] = {"$in": builtins.list(attachment_ids)}
        async with self._guard("clear_pending"):
            await self._pending.delete_many(query)

    async def due_for_recalibration(self, now: datetime, limit: int = 100) -> builtins.list[VoiceProfile]:
        async with self._guard("due_for_recalibration"):
            cursor = (
                self._profiles.find({"nextRecalibrationAt": {"$lte": now}}, _NO_ID)
                .sort("nextRecalibrationAt", ASCENDING)
                .limit(limit)
            )
            docs = await cursor.to_list(length=limit)
        return [VoiceProfile.model_validate(d) for d in docs]

    async def close(self) -> None:
        self._client.close()
