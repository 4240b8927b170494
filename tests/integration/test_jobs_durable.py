"""An async voice job survives the death of the ZMQ ingress replica running it (issue 10, durable jobs).

On the shared real graph (its job store is the session's real Redis): submit `voice_translate_async`,
SIGKILL the `ZmqIngress` replica process mid-job, let Serve restart it, and check that the job ends
with exactly one terminal state, completed or failed with `job_interrupted` (the new replica reports
it once the dead replica's lease runs out, `TRANSLATOR_JOB_LEASE_S`, 30 s), and that
`voice_job_status` answers from the new replica. Slow: it waits for Serve to replace the replica.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from serve_app.stores.job_store import INTERRUPTED_CODE
from tests.fixtures.gateway_client import Event, GatewayClient, connected_client, new_id
from tests.fixtures.speech import convert, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPLICA = "ServeReplica:translator:ZmqIngress"
LONG_FRENCH = (
    "Salut Claire, je voulais te dire que la réunion de demain est déplacée à quinze heures. "
    "Pense à apporter les documents du projet et préviens aussi Marc, il n'a pas encore répondu."
)


def ingress_pids() -> set[int]:
    """The ZmqIngress replica's worker process (its title names the replica class)."""
    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(REPLICA in part for part in proc.info["cmdline"] or []):
            pids.add(proc.info["pid"])
    return pids


def wait_replaced(old: set[int], timeout_s: float = 300) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = ingress_pids() - old
        if new:
            return new
        time.sleep(1)
    raise AssertionError(f"Serve did not restart {REPLICA} within {timeout_s} s")


async def status_of(client: GatewayClient, job_id: str, user_id: str) -> Event:
    task = new_id("st")
    await client.send({"type": "voice_job_status", "taskId": task, "userId": user_id, "jobId": job_id})
    return await client.wait_for(lambda e: e.get("taskId") == task, 30)


@pytest.fixture(scope="module")
def long_m4a(speech_dir: Path) -> bytes:
    return convert(espeak_wav(LONG_FRENCH, speech_dir / "durable_job.wav"), "m4a")


async def test_a_job_survives_the_zmq_replica_being_killed(local_graph: LocalGraph, long_m4a: bytes) -> None:
    user, task = "u-durable", new_id("job")
    pull, pub = local_graph.zmq_pull_port, local_graph.zmq_pub_port
    client = await connected_client(pull, pub, timeout_s=120)
    try:
        await client.send({"type": "voice_translate_async", "taskId": task, "userId": user,
                           "audioBase64": base64.b64encode(long_m4a).decode(),
                           "targetLanguages": ["en", "es", "de"], "callbackMetadata": {"case": "kill"}})
        ack = await client.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success", 120)
        job_id = ack["result"]["jobId"]
        await client.wait_for(lambda e: e.get("jobId") == job_id and e.type == "voice_job_progress", 120)
    finally:
        client.close()

    old = ingress_pids()
    assert len(old) == 1, f"expected one {REPLICA} process, found {old}"
    os.kill(next(iter(old)), signal.SIGKILL)
    wait_replaced(old)

    client = await connected_client(pull, pub, timeout_s=300)  # pings until the new replica pongs
    try:
        deadline = time.monotonic() + 240
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            answer = await status_of(client, job_id, user)
            assert answer.type == "voice_api_success", answer.body  # the new replica knows the job
            state = answer["result"]
            if state["status"] not in ("pending", "processing"):
                break
            await asyncio.sleep(2)
        again = await status_of(client, job_id, user)
        stranger = await status_of(client, job_id, "someone-else")
        finals = [e for e in client.backlog if e.get("jobId") == job_id and e.type.startswith("voice_translation_")]
    finally:
        client.close()

    print(f"job {job_id} after the kill: {state.get('status')} ({state.get('errorCode')}), "
          f"{len(finals)} final event(s) seen by the new client")  # which way it went, with -s / -rA
    assert state.get("status") in ("completed", "failed"), f"the job never ended: {state}"
    if state["status"] == "failed":
        assert state["errorCode"] == INTERRUPTED_CODE, state
        assert all(e.type == "voice_translation_failed" and e["errorCode"] == INTERRUPTED_CODE for e in finals)
    else:
        assert state["result"] is not None
    assert len(finals) <= 1  # never two terminal answers
    assert again.type == "voice_api_success" and again["result"]["status"] == state["status"]
    assert stranger.type == "voice_api_error" and stranger["errorCode"] == "NOT_FOUND"
