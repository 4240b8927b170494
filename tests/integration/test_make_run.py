"""`make run`, the README's first command, as a developer runs it and stops it (Ctrl-C).

It starts a Ray head without the dashboard (the embedded profile's memory budget, and no job-submission
API on loopback) and serves serve_config.local.yaml through `serve run`. The app must answer, Ray's
metrics agent must still export Prometheus text, and nothing may listen on the dashboard's port.
Only one Ray cluster fits on this machine, so the session's head steps aside meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.ports import free_port
from tests.fixtures.ray_cluster import BIN, ROOT, env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

HTTP_PORT = 8000  # fixed by serve_config.local.yaml, as are the gateway's ZMQ ports
ZMQ_PORTS = (5555, 5558)
DASHBOARD_PORT = 8265
START_TIMEOUT_S = 600


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class MakeRun:
    """`make run` in its own process group; `stop` sends the group SIGINT, as Ctrl-C in a terminal does."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def start(self) -> MakeRun:
        taken = [p for p in (HTTP_PORT, *ZMQ_PORTS, DASHBOARD_PORT) if port_taken(p)]
        if taken:
            pytest.fail(f"`make run` needs ports {taken} on 127.0.0.1, and something else holds them")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["make", "run", f"METRICS_PORT={self.metrics_port}"], cwd=ROOT, env=env(),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"`make run` exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{HTTP_PORT}/ready", timeout=10).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(3)
        pytest.fail(f"`make run` not ready within {START_TIMEOUT_S} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env(), capture_output=True, timeout=120)


def scrape_until(url: str, names: tuple[str, ...], timeout_s: float = 90) -> str:
    """Ray's agent exports replica metrics every few seconds: wait until every name has shown up."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(url, timeout=10).text
        except httpx.HTTPError:
            text = ""
        if all(name in text for name in names):
            return text
        time.sleep(3)
    missing = [name for name in names if name not in text]
    raise AssertionError(f"{url} never exported {missing} within {timeout_s} s ({len(text)} bytes scraped)")


def test_make_run_serves_the_embedded_profile_without_ray_dashboard(
    replaced_cluster: Callable[[Any], Any], tmp_path: Path
) -> None:
    run = replaced_cluster(MakeRun(tmp_path / "make-run.log"))

    r = httpx.post(f"http://127.0.0.1:{HTTP_PORT}/translate", timeout=180, json={
        "text": "Bonjour, comment allez-vous ?", "source_language": "fr", "target_language": "en"})
    assert r.status_code == 200, r.text
    assert "how" in r.json()["translated_text"].lower(), r.json()

    with pytest.raises(httpx.ConnectError):  # no dashboard, so no job-submission API either
        httpx.get(f"http://127.0.0.1:{DASHBOARD_PORT}/api/version", timeout=5)

    text = scrape_until(f"http://127.0.0.1:{run.metrics_port}/metrics",
                        ("ray_serve_num_http_requests", "ray_voice_translator_"))
    served = [line for line in text.splitlines() if line.startswith("ray_serve_num_http_requests")]
    assert any('application="translator"' in line for line in served), served[:5]

    run.stop()
    assert run.proc is not None and run.proc.returncode is not None
    assert not port_taken(HTTP_PORT), "the service still listens after Ctrl-C"
