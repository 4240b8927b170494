"""Async voice jobs outlive the ZMQ door that ran them: the real `GatewayServer` on fake stages, stopped
and started again on the same job store (files under cache_dir, or a real Redis)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingress.gateway.jobs import JobRegistry
from serve_app.stores import build_job_store
from serve_app.stores.file_jobs import FileJobStore
from serve_app.stores.job_store import INTERRUPTED_CODE
from tests.fixtures.fake_stages import FakeStages
from tests.fixtures.gateway_client import GatewayClient, connected_client, new_id
from tests.fixtures.gateway_server import running_gateway
from tests.fixtures.loopback_http import loopback_server
from tests.fixtures.ports import free_port
from tests.fixtures.servers import start_server
from tests.fixtures.speech import sine_wav_bytes
from tests.unit.test_webhooks import SECRET, Receiver

pytestmark = pytest.mark.timeout(90)
AUDIO = base64.b64encode(sine_wav_bytes(1.0)).decode()
HOOKS = {"webhook_secret": SECRET, "outbound_allowed_hosts": ["127.0.0.1"]}


class HangingStages(FakeStages):
    """Transcription never ends: the job stays `processing` until its door goes away."""

    def __init__(self) -> None:
        super().__init__()
        self.transcribing = asyncio.Event()

    async def transcribe(self, pcm: bytes, language: str | None) -> Any:
        self.transcribing.set()
        await asyncio.Event().wait()


@pytest.fixture(params=["file", "redis"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        yield {"redis_url": None, "mongodb_url": None}
        return
    server = start_server("redis", tmp_path / "redis")
    try:
        yield {"redis_url": server.url, "mongodb_url": None}
    finally:
        server.kill()


async def client_of(server: Any) -> GatewayClient:
    return await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)


async def api_call(client: GatewayClient, body: dict[str, Any]) -> Any:
    return await client.ask(body, 10)


def submit(task: str, user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"type": "voice_translate_async", "taskId": task, "userId": user, "audioBase64": AUDIO,
            "targetLanguages": ["en"], **extra}


@pytest.fixture
async def connected(tmp_path: Path, store_settings: dict[str, Any]) -> AsyncIterator[GatewayClient]:
    async with running_gateway(tmp_path, **store_settings) as server:
        client = await client_of(server)
        try:
            yield client
        finally:
            client.close()


async def test_status_answers_after_the_door_is_replaced(tmp_path: Path, store_settings: dict[str, Any]) -> None:
    task = new_id()
    async with running_gateway(tmp_path, **store_settings) as first:
        client = await client_of(first)
        try:
            await client.send(submit(task))
            final = await client.wait_for(lambda e: e.get("taskId") == task
                                          and e.type.startswith("voice_translation_"), 15)
        finally:
            client.close()
    assert final.type == "voice_translation_completed"
    async with running_gateway(tmp_path, **store_settings) as second:
        client = await client_of(second)
        try:
            status = await api_call(client, {"type": "voice_job_status", "userId": "u1", "jobId": final["jobId"]})
            stranger = await api_call(client, {"type": "voice_job_status", "userId": "u2", "jobId": final["jobId"]})
            unknown = await api_call(client, {"type": "voice_job_status", "userId": "u1", "jobId": "vjob_nope"})
        finally:
            client.close()
    assert status.type == "voice_api_success"
    assert (status["result"]["status"], status["result"]["progress"]) == ("completed", 100)
    assert status["result"]["result"] == final["result"]  # stored apart, read back by another door
    assert stranger.type == unknown.type == "voice_api_error"
    assert stranger["errorCode"] == unknown["errorCode"] == "NOT_FOUND"


async def test_resubmitting_a_task_never_runs_it_twice(connected: GatewayClient) -> None:
    task = new_id()
    await connected.send(submit(task))
    first = await connected.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success", 10)
    await connected.send(submit(task))
    second = await connected.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success"
                                      and e is not first, 10)
    assert second["result"]["jobId"] == first["result"]["jobId"]
    final = await connected.wait_for(lambda e: e.get("taskId") == task and e.type.startswith("voice_translation_"), 15)
    assert final.type == "voice_translation_completed"
    later = await connected.no_event_for(task, 1.5)
    assert not [e for e in later if e.type.startswith("voice_translation_")]  # one final event, one run
    await connected.send(submit(task))
    third = await connected.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success"
                                     and e is not first and e is not second, 10)
    assert third["result"] == {"jobId": first["result"]["jobId"], "status": "completed"}
    await connected.send(submit(task, user="u2"))  # the same taskId from someone else is another job
    other = await connected.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success"
                                     and e.get("result", {}).get("jobId") != first["result"]["jobId"], 10)
    assert other["result"]["status"] == "pending"


async def test_a_job_left_processing_by_a_dead_door_is_reported_interrupted(
        tmp_path: Path, store_settings: dict[str, Any]) -> None:
    receiver = Receiver(200)
    task = new_id()
    stages = HangingStages()
    async with loopback_server(receiver) as hook:
        # A long lease on the first door, so the job is still leased when the second door's client is
        # connected; the second renews and sweeps often.
        async with running_gateway(tmp_path, stages, job_lease_s=4.0, **HOOKS, **store_settings) as first:
            client = await client_of(first)
            try:
                await client.send(submit(task, webhookUrl=hook.url + "/done", callbackMetadata={"orderId": 9}))
                ack = await client.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success", 10)
                await asyncio.wait_for(stages.transcribing.wait(), 10)
            finally:
                client.close()
        job_id = ack["result"]["jobId"]
        store = build_job_store(first.settings)
        left = await store.get(job_id)
        await store.close()
        assert left is not None and left.status == "processing"  # the dead door did not mark it

        async with running_gateway(tmp_path, job_lease_s=0.6, **HOOKS, **store_settings) as second:
            client = await client_of(second)
            try:
                final = await client.wait_for(lambda e: e.get("jobId") == job_id
                                              and e.type.startswith("voice_translation_"), 20)
                for _ in range(100):
                    if receiver.verified:
                        break
                    await asyncio.sleep(0.05)
                status = await api_call(client, {"type": "voice_job_status", "userId": "u1", "jobId": job_id})
            finally:
                client.close()
    assert final.type == "voice_translation_failed" and final["taskId"] == task
    assert (final["status"], final["errorCode"], final["userId"]) == ("failed", INTERRUPTED_CODE, "u1")
    assert receiver.failures == []
    [delivered] = receiver.verified
    assert delivered["jobId"] == job_id and delivered["errorCode"] == INTERRUPTED_CODE
    assert delivered["callbackMetadata"] == {"orderId": 9}
    assert status.type == "voice_api_success"
    assert (status["result"]["status"], status["result"]["errorCode"]) == ("failed", INTERRUPTED_CODE)


async def test_a_dead_job_store_is_a_clear_error_and_the_door_lives_on(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    async with running_gateway(tmp_path, redis_url=dead, redis_connect_timeout_s=0.2,
                               redis_socket_timeout_s=0.2) as server:
        client = await client_of(server)
        try:
            task = new_id()
            await client.send(submit(task))
            refused = await client.wait_for(lambda e: e.get("taskId") == task, 10)
            status = await api_call(client, {"type": "voice_job_status", "userId": "u1", "jobId": "vjob_x"})
            pong = await client.ping_until_pong(10)
        finally:
            client.close()
    assert refused.type == status.type == "voice_api_error"
    assert "job store" in refused["error"] and "job store" in status["error"]
    assert dead not in refused["error"]  # where the store is stays in the log
    assert pong.type == "pong"


async def test_a_final_state_the_store_missed_is_saved_later_never_reported_interrupted(tmp_path: Path) -> None:
    store = FileJobStore(tmp_path / "jobs", max_jobs=10, record_ttl_s=60, result_ttl_s=60)
    registry = JobRegistry(store, lease_s=0.5)
    await registry.start()
    job, _ = await registry.create("t1", "u1", ["en"], None, None)
    folder = store.directory
    store.directory = tmp_path / "a-file"
    store.directory.write_text("x")  # the store fails...
    await registry.update(job, status="failed", currentStep="failed", error="boom", errorCode="INTERNAL_ERROR")
    assert job.jobId in registry.unsaved
    store.directory = folder  # ...and comes back
    await asyncio.sleep(0.6)  # the lease taken at creation has run out
    await registry.renew_leases()
    assert not registry.unsaved
    other = JobRegistry(FileJobStore(folder, max_jobs=10, record_ttl_s=60, result_ttl_s=60), lease_s=0.5)
    assert await other.claim_orphans() == []
    saved = await store.get(job.jobId)
    assert saved is not None and (saved.status, saved.errorCode) == ("failed", "INTERNAL_ERROR")
