"""A real Ray cluster for integration tests, driven the way an operator drives one: `ray start`,
`serve deploy <config>`, `serve status`. Configs are the repository's own files, copied with only
the HTTP port (and, where a test needs it, settings) changed."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}


class RayCluster:
    def __init__(self, num_cpus: int = 4, num_gpus: int = 1) -> None:
        self.dashboard_port = free_port()
        self.gcs_port = free_port()
        self.http_port = free_port()  # Serve binds its proxy once per cluster: every deploy reuses it
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.address = f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, attempts: int = 3) -> RayCluster:
        """Start the head; ports picked in advance can be taken before Ray binds them, so a failed
        start is retried on fresh ports, and the last failure carries Ray's own stderr."""
        for attempt in range(1, attempts + 1):
            subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env(), capture_output=True, timeout=120)
            done = subprocess.run(
                [
                    str(BIN / "ray"), "start", "--head",
                    f"--port={self.gcs_port}",
                    f"--num-cpus={self.num_cpus}", f"--num-gpus={self.num_gpus}",
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={self.dashboard_port}",
                    "--disable-usage-stats",
                ],
                env=env(), capture_output=True, text=True, timeout=180,
            )
            if done.returncode == 0:
                return self
            if attempt == attempts:
                raise RuntimeError(f"ray start failed {attempts} times; last stderr:\n{done.stderr[-3000:]}")
            self.dashboard_port, self.gcs_port = free_port(), free_port()
            self.address = f"http://127.0.0.1:{self.dashboard_port}"
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env(), capture_output=True, timeout=120)

    def deploy(self, config: Path, tmp_dir: Path, *, settings: dict[str, Any] | None = None) -> int:
        """Deploy a copy of `config` on the cluster's HTTP port; return the port."""
        data = yaml.safe_load(config.read_text())
        port = self.http_port
        data["http_options"]["port"] = port
        data["http_options"]["host"] = "127.0.0.1"
        for app in data["applications"]:
            app.setdefault("args", {}).setdefault("settings", {}).update(settings or {})
        path = tmp_dir / f"deploy-{config.stem}.yaml"
        path.write_text(yaml.safe_dump(data))
        subprocess.run(
            [str(BIN / "serve"), "deploy", str(path), "-a", self.address],
            env=env(), check=True, capture_output=True, timeout=180, cwd=ROOT,
        )
        return port

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [str(BIN / "serve"), "status", "-a", self.address],
            env=env(), check=True, capture_output=True, timeout=60, text=True,
        )
        return yaml.safe_load(out.stdout) or {}

    def wait_running(self, app: str = "translator", timeout_s: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            state = (status.get("applications") or {}).get(app, {}).get("status")
            if state == "RUNNING":
                return status
            if state == "DEPLOY_FAILED":
                raise AssertionError(f"application failed to deploy: {yaml.safe_dump(status)}")
            time.sleep(3)
        raise AssertionError(f"application not RUNNING after {timeout_s} s: {yaml.safe_dump(status)}")

    def shutdown_apps(self) -> None:
        subprocess.run(
            [str(BIN / "serve"), "shutdown", "-y", "-a", self.address],
            env=env(), capture_output=True, timeout=180,
        )


def wait_http_ready(base_url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/ready", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError(f"{base_url}/ready did not answer 200 within {timeout_s} s")
