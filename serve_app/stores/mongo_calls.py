"""What the two MongoDB stores (voice profiles, jobs) share: a motor client with small explicit driver
timeouts, and a guard that bounds each call by an overall deadline and turns what the driver raises
into the store errors the doors answer (503 when the server does not answer, 500 when it refuses).
What the driver said (hosts, server messages) goes only to the log, under the error's ``error_id``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from serve_app.stores.errors import StoreError, StoreUnavailableError, store_failure


def motor_client(url: str, timeout_ms: int) -> Any:
    """An ``AsyncIOMotorClient`` whose server selection, connect and socket timeouts are all ``timeout_ms``."""
    from motor.motor_asyncio import AsyncIOMotorClient

    return AsyncIOMotorClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                              socketTimeoutMS=timeout_ms, tz_aware=True, appname="voice-translator")


def call_deadline_s(timeout_ms: int) -> float:
    """Overall deadline per call: server selection plus one socket round trip, with slack."""
    return 2.5 * timeout_ms / 1000.0


@contextlib.asynccontextmanager
async def mongo_guard(deadline_s: float, store: str, what: str) -> AsyncIterator[None]:
    """Runs the block under `deadline_s`; `store` names the store in the client's message ("job store"),
    `what` the operation in the log. A duplicate key passes through: the callers give it a meaning."""
    try:
        async with asyncio.timeout(deadline_s):
            yield
    except DuplicateKeyError:
        raise
    except (ConnectionFailure, TimeoutError) as exc:
        raise store_failure(StoreUnavailableError, f"{store} did not answer", exc, detail=f"MongoDB {what}") from exc
    except PyMongoError as exc:
        raise store_failure(StoreError, f"{store} refused the operation", exc, detail=f"MongoDB {what}") from exc
