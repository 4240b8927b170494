"""Ratings of translations (`voice_feedback`): MongoDB `voice_feedback` when configured, else JSONL.

Kept, never dropped: a rating that cannot be written is a 503, not a silent success.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from serve_app.settings import Settings
from serve_app.stores.errors import StoreUnavailableError


class FeedbackLog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.cache_dir) / "voice_feedback.jsonl"
        self._collection: Any = None
        self._lock = asyncio.Lock()

    async def record(self, feedback: dict[str, Any]) -> dict[str, Any]:
        entry = {**feedback, "feedbackId": f"vfb_{uuid.uuid4().hex[:16]}", "createdAt": time.time()}
        if self.settings.mongodb_url:
            if self._collection is None:
                from motor.motor_asyncio import AsyncIOMotorClient

                timeout = self.settings.mongodb_timeout_ms
                client = AsyncIOMotorClient(self.settings.mongodb_url, serverSelectionTimeoutMS=timeout,
                                            connectTimeoutMS=timeout, socketTimeoutMS=timeout)
                self._collection = client[self.settings.mongodb_database]["voice_feedback"]
            try:
                await self._collection.insert_one(dict(entry))
            except PyMongoError as exc:
                raise StoreUnavailableError(f"feedback not recorded, MongoDB did not answer: {exc}") from exc
        else:
            async with self._lock:
                await asyncio.to_thread(self._append, entry)
        return {"recorded": True, "feedbackId": entry["feedbackId"]}

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
