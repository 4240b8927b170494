"""serve_config.yaml (the production profile) on a Ray head with logical resources
(`--num-cpus=4 --num-gpus=1`): every replica of every deployment must reach RUNNING, and the four
model deployments must really hold their fractional GPUs."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.fixtures.ports import free_port
from tests.fixtures.ray_cluster import BIN, ROOT, RayCluster, env, wait_http_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

MODEL_DEPLOYMENTS = {"Transcriber", "Translator", "Synthesizer", "VoiceCloner"}


def test_production_config_reserves_fractional_gpus(exclusive_cluster: RayCluster, tmp_path) -> None:
    # Replaces the whole Serve app set: `exclusive_cluster` puts the shared local graph back afterwards.
    ray_cluster = exclusive_cluster
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    for name in MODEL_DEPLOYMENTS:
        assert 0 < deployments[name]["ray_actor_options"]["num_gpus"] < 1, name
        assert "autoscaling_config" in deployments[name], name
        assert deployments[name]["max_ongoing_requests"] >= 1

    # The NLLB folder of the production profile is not on this machine: run the same graph with
    # the embedded translator, everything else (resources, autoscaling, device=auto) unchanged.
    port = ray_cluster.deploy(
        ROOT / "serve_config.yaml", tmp_path,
        settings={"translator_backend": "gemma", "translator_model": None, "api_keys": ["it-service-key"],
                  "zmq_host": "127.0.0.1", "zmq_pull_port": free_port(), "zmq_pub_port": free_port()},
    )
    try:
        status = ray_cluster.wait_running()
        app = status["applications"]["translator"]
        for name, info in app["deployments"].items():
            assert info["status"] == "HEALTHY", (name, info)
            assert set(info["replica_states"]) == {"RUNNING"}, (name, info)
        assert MODEL_DEPLOYMENTS <= set(app["deployments"])

        usage = subprocess.run(
            [str(BIN / "ray"), "status", f"--address=127.0.0.1:{ray_cluster.gcs_port}"],
            env=env(), capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        assert "1.0/1.0 GPU" in usage, usage  # 4 model replicas x 0.25 GPU
        wait_http_ready(f"http://127.0.0.1:{port}")
    finally:
        ray_cluster.shutdown_apps()
