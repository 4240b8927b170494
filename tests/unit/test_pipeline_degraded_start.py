"""The Pipeline deployment's class (no Ray) starting while MongoDB is unreachable: it comes up in
seconds without profiles, reports it, and answers profile calls with a clear 503 instead of hanging.
The real `motor` driver is pointed at a closed port; nothing is mocked."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from deployments.pipeline import PipelineDeployment
from serve_app.stores.errors import StoreUnavailableError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_mongodb_at_start_degrades_instead_of_failing(tmp_path: Path) -> None:
    cls = PipelineDeployment.func_or_class
    pipeline = cls.__new__(cls)
    overrides = {"MONGODB_URL": f"mongodb://127.0.0.1:{closed_port()}", "mongodb_timeout_ms": 300,
                 "cache_dir": str(tmp_path)}
    started = time.monotonic()
    await pipeline.__init__(None, None, None, None, overrides)
    try:
        assert time.monotonic() - started < 10
        assert pipeline.store_ready is False
        stats = await pipeline.stats()
        assert stats["profiles"] == {"store": "MongoVoiceProfileStore", "ready": False}
        assert stats["cache"]["backend"] == "memory"  # no REDIS_URL: the in-process tier alone
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError) as err:
            await pipeline.profile_get("u1")
        assert err.value.status == 503 and time.monotonic() - t0 < 5
    finally:
        for task in pipeline._background:
            task.cancel()


async def test_health_check_passes_with_a_dead_store_and_fails_when_the_pipeline_breaks(tmp_path: Path) -> None:
    """Degraded is by design: a restart would not bring MongoDB back, so Serve must not replace the
    replica for it; a dead background task (the replica itself broken) does fail the check."""
    cls = PipelineDeployment.func_or_class
    pipeline = cls.__new__(cls)
    overrides = {"MONGODB_URL": f"mongodb://127.0.0.1:{closed_port()}", "mongodb_timeout_ms": 300,
                 "cache_dir": str(tmp_path)}
    await pipeline.__init__(None, None, None, None, overrides)
    try:
        await pipeline.check_health()
        assert pipeline.check()["profile_store_ready"] is False

        async def crash() -> None:
            raise RuntimeError("boom")

        broken = asyncio.create_task(crash())
        await asyncio.gather(broken, return_exceptions=True)
        pipeline._background.append(broken)
        with pytest.raises(RuntimeError, match="background task died"):
            await pipeline.check_health()
    finally:
        await pipeline.close()
