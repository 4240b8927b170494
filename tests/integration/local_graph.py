"""The full local graph (serve_config.local.yaml) as the session's integration tests share it."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.gateway_client import connected_client
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready


@dataclass
class LocalGraph:
    """serve_config.local.yaml deployed once on the session's cluster, with both ingresses reachable."""

    http_url: str
    zmq_pull_port: int
    zmq_pub_port: int
    cluster: RayCluster
    settings: dict[str, Any] = field(default_factory=dict)
    config_dir: Path | None = None

    def deploy(self) -> None:
        """Deploy (or re-deploy) and return only when HTTP is ready and the ZMQ ingress pongs."""
        assert self.config_dir is not None
        self.cluster.deploy(ROOT / "serve_config.local.yaml", self.config_dir, settings=self.settings)
        self.cluster.wait_running()
        wait_http_ready(self.http_url)
        # On its own thread: a fixture may be set up while pytest-asyncio holds an event loop here.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _zmq_ready(self.zmq_pull_port, self.zmq_pub_port)).result()


async def _zmq_ready(pull_port: int, pub_port: int) -> None:
    (await connected_client(pull_port, pub_port, timeout_s=120)).close()
