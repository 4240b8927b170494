"""Ratings of translations (`voice_feedback`): MongoDB `voice_feedback` when configured, else JSONL.

Kept, never dropped: a rating that cannot be written is a 503, not a silent success. Bounded: the
entry is flat (scalars only) and every text field (`comment`, ids) is at most
``max_feedback_comment_chars`` characters, so a client cannot grow the store without limit.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from serve_app.errors import InvalidRequestError, TextTooLongError
from serve_app.settings import Settings
from serve_app.stores.errors import StoreUnavailableError, store_failure

MAX_FEEDBACK_FIELDS = 32
MAX_ID_CHARS = 256


def check_feedback(feedback: dict[str, Any], max_chars: int) -> None:
    """Flat, few fields, short texts, else an InvalidRequestError (413 `message_too_long` for a long
    text): free text (`comment`, any other text field) at most `max_chars`, ids (`userId`,
    `translationId`, `taskId`: names ending in `Id`) at most MAX_ID_CHARS."""
    if len(feedback) > MAX_FEEDBACK_FIELDS:
        raise InvalidRequestError(f"feedback has {len(feedback)} fields; at most {MAX_FEEDBACK_FIELDS}")
    for name, value in feedback.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise InvalidRequestError("feedback field names are short strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidRequestError(f"feedback field {name!r} must be text or a number")
        limit = MAX_ID_CHARS if name.endswith(("Id", "_id")) else max_chars
        if isinstance(value, str) and len(value) > limit:
            raise TextTooLongError(f"feedback {name} is {len(value)} characters; the limit is {limit}")


class FeedbackLog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.cache_dir) / "voice_feedback.jsonl"
        self._collection: Any = None
        self._lock = asyncio.Lock()

    async def record(self, feedback: dict[str, Any]) -> dict[str, Any]:
        check_feedback(feedback, self.settings.max_feedback_comment_chars)
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
                raise store_failure(StoreUnavailableError, "feedback not recorded, the store did not answer", exc,
                                    detail="MongoDB voice_feedback insert") from exc
        else:
            async with self._lock:
                try:
                    await asyncio.to_thread(self._append, entry)
                except OSError as exc:
                    raise store_failure(StoreUnavailableError, "feedback not recorded, the store is unavailable",
                                        exc, detail=f"file {self.path}") from exc
        return {"recorded": True, "feedbackId": entry["feedbackId"]}

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
