"""Through a real Ray Serve deploy: a stage whose model is missing fails the application at start-up
with the actionable message, instead of leaving replicas STARTING or requests waiting."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.ports import free_port
from tests.fixtures.ray_cluster import ROOT, RayCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_missing_whisper_model_fails_the_deploy_with_the_fix(exclusive_cluster: RayCluster, tmp_path) -> None:
    # Replaces the whole Serve app set: `exclusive_cluster` puts the shared local graph back afterwards.
    ray_cluster = exclusive_cluster
    ray_cluster.deploy(
        ROOT / "serve_config.local.yaml", tmp_path,
        settings={"whisper_model": str(tmp_path / "none"), "zmq_pull_port": free_port(), "zmq_pub_port": free_port()},
    )
    started = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="DEPLOY_FAILED") as info:
            ray_cluster.wait_running(timeout_s=300)
        assert "TRANSLATOR_WHISPER_MODEL" in str(info.value)
        assert time.monotonic() - started < 300
    finally:
        ray_cluster.shutdown_apps()
