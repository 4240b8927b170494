"""Voice profiles in MongoDB through motor.

Every driver timeout is small and explicit (server selection, connect, socket), and every call also
runs under an overall deadline, so an unreachable or dying server becomes a clear
``StoreUnavailableError`` (503) in about ``timeout_ms``, never a hang.  Each write is a single-
document operation (``insert_one`` / ``replace_one`` with a version filter), which MongoDB applies
atomically: a crash leaves the old document or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from serve_app.stores.errors import ProfileExistsError, StoreError, StoreUnavailableError
from serve_app.stores.voice_profiles import (
    PENDING_COLLECTION,
    PROFILES_COLLECTION,
    PendingSample,
    VoiceProfile,
)

_NO_ID = {"_id": False}


class MongoVoiceProfileStore:
    def __init__(self, url: str, database: str = "voice_translator", *, timeout_ms: int = 2000) -> None:
        from motor.motor_asyncio import AsyncIOMotorClient

        self._url = url
        self._timeout_ms = timeout_ms
        # Overall deadline per call: server selection plus one socket round trip, with slack.
        self._deadline_s = 2.5 * timeout_ms / 1000.0
        self._client = AsyncIOMotorClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
            tz_aware=True,
            appname="voice-translator",
        )
        self._db = self._client[database]
        self._profiles = self._db[PROFILES_COLLECTION]
        self._pending = self._db[PENDING_COLLECTION]

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._deadline_s):
                yield
        except DuplicateKeyError:
            raise
        except (ConnectionFailure, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"MongoDB unreachable during {what} ({type(exc).__name__}: {str(exc)[:300]})"
            ) from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB rejected {what}: {str(exc)[:300]}") from exc

    async def start(self) -> None:
        """Ping, then create the indexes (idempotent): fails fast if the server is not there."""
        async with self._guard("start"):
            await self._db.command("ping")
            await self._profiles.create_index("userId", unique=True)
            await self._profiles.create_index("profileId", unique=True)
            await self._profiles.create_index("nextRecalibrationAt")
            await self._pending.create_index([("userId", ASCENDING), ("attachmentId", ASCENDING)], unique=True)

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
        async with self._guard("pending_samples"):
            docs = await self._pending.find({"userId": user_id}, _NO_ID).sort("addedAt", ASCENDING).to_list(None)
        return [PendingSample.model_validate(d) for d in docs]

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
