"""Autoscaling seen happening: a burst of speech requests takes the Synthesizer from 1 to 2 replicas,
and it returns to 1 once the burst is over, as `serve status` reports it.

The deployed config is serve_config.local.yaml with the Synthesizer's own bounds (min 1, max 2); only
the delays and the look-back window are shortened here, so the test sees both decisions within a
minute or two. Operators keep the file's defaults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.ports import free_port
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

BURST_CLIENTS = 12  # > 2 replicas x target_ongoing_requests: the policy asks for the maximum
FAST_AUTOSCALING = {"upscale_delay_s": 2, "downscale_delay_s": 10, "look_back_period_s": 4, "metrics_interval_s": 1}


def synthesizer_replicas(cluster: RayCluster) -> dict[str, int]:
    deployments = cluster.status()["applications"]["translator"]["deployments"]
    return dict(deployments["Synthesizer"].get("replica_states") or {})


class Burst:
    """Clients that each send speech requests back to back (fresh text each time: nothing cached)."""

    def __init__(self, base_url: str, clients: int) -> None:
        self.base_url, self.clients = base_url, clients
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.pool = ThreadPoolExecutor(clients)

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=300) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    text = f"Message {n} number {i}: see you at the station tonight."
                    r = http.post("/api/v1/tts", json={"text": text, "language": "en"})
                    self.statuses.append(r.status_code)
                except httpx.HTTPError:
                    self.statuses.append(0)  # no answer at all: a failure the assertion reports

    def __enter__(self) -> Burst:
        for n in range(self.clients):
            self.pool.submit(self._client, n)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True)


@pytest.fixture
def autoscaling_graph(exclusive_cluster: RayCluster, tmp_path: Path) -> Iterator[str]:
    config = yaml.safe_load((ROOT / "serve_config.local.yaml").read_text())
    synthesizer = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Synthesizer")
    autoscaling = {**synthesizer["autoscaling_config"], **FAST_AUTOSCALING}
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
    port = exclusive_cluster.deploy(
        ROOT / "serve_config.local.yaml", tmp_path,
        settings={"zmq_host": "127.0.0.1", "zmq_pull_port": free_port(), "zmq_pub_port": free_port()},
        deployments={"Synthesizer": {"autoscaling_config": autoscaling}},
    )
    try:
        exclusive_cluster.wait_running(timeout_s=480)
        base = f"http://127.0.0.1:{port}"
        wait_http_ready(base)
        yield base
    finally:
        exclusive_cluster.shutdown_apps()


def test_synthesizer_scales_up_under_a_burst_and_back_down(
    exclusive_cluster: RayCluster, autoscaling_graph: str
) -> None:
    timeline: list[tuple[float, dict[str, int]]] = []
    start = time.monotonic()

    def sample() -> dict[str, int]:
        states = synthesizer_replicas(exclusive_cluster)
        timeline.append((round(time.monotonic() - start, 1), states))
        return states

    assert sample() == {"RUNNING": 1}

    with Burst(autoscaling_graph, BURST_CLIENTS) as burst:
        deadline = time.monotonic() + 240
        while sample().get("RUNNING", 0) < 2:
            assert time.monotonic() < deadline, f"no second replica under the burst: {timeline}"
            time.sleep(2)
        time.sleep(4)  # the second replica serves part of the burst
    assert burst.statuses and set(burst.statuses) == {200}, sorted(set(burst.statuses))

    deadline = time.monotonic() + 180
    while sample() != {"RUNNING": 1}:
        assert time.monotonic() < deadline, f"not back to one replica after the burst: {timeline}"
        time.sleep(2)
    print(f"Synthesizer replicas over time (s, states): {timeline}; {len(burst.statuses)} burst requests")
