"""A hung model replica on the real graph (issue 10): SIGSTOP the Translator mid-request; the text
translation ends in `stage_timeout` within the gateway's 30 s per-try timeout (measured before the
deadlines: 119 s); SIGCONT; the next request succeeds."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from ray.util.state import list_actors

from tests.integration.local_graph import LocalGraph

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def client(local_graph: LocalGraph) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_graph.http_url, timeout=120) as c:
        yield c


def replica_pids(local_graph: LocalGraph, deployment: str) -> list[int]:
    name = f"ServeReplica:translator:{deployment}"
    actors = list_actors(address=local_graph.cluster.address,
                         filters=[("class_name", "=", name), ("state", "=", "ALIVE")])
    return [int(a.pid) for a in actors]


def translate(client: httpx.Client) -> httpx.Response:
    """An uncached text, so the Translator itself is asked."""
    return client.post("/translate", json={"text": f"Good morning, order {uuid.uuid4().hex[:8]} is ready.",
                                           "source_language": "en", "target_language": "fr"})


def test_a_stopped_translator_answers_stage_timeout_within_30s_then_recovers(
    local_graph: LocalGraph, client: httpx.Client
) -> None:
    assert translate(client).status_code == 200  # warm: the model answers before the fault
    pids = replica_pids(local_graph, "Translator")
    assert pids, "no Translator replica found"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = translate(client)
        elapsed = time.monotonic() - started
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert r.status_code == 504, r.text
    assert r.json()["errorCode"] == "stage_timeout" and "translate" in r.json()["error"]
    assert elapsed < 30, elapsed
    deadline = time.monotonic() + 180
    while True:  # resumed (or replaced by Serve's health check): served again
        r = translate(client)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.status_code == 200, r.text
