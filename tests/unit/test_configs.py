"""The deployment files are checked offline: Ray's own cluster-launcher schema, and the Serve
configs' resource arithmetic that decides whether replicas can ever leave STARTING."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parents[2]
MODELS = {"Transcriber", "Translator", "Synthesizer", "VoiceCloner"}


def deployments(name: str) -> dict[str, dict]:
    config = yaml.safe_load((ROOT / name).read_text())
    ServeDeploySchema.parse_obj(config)  # Serve's own schema check of the whole file
    return {d["name"]: d for d in config["applications"][0]["deployments"]}


def max_replicas(d: dict) -> int:
    return d.get("autoscaling_config", {}).get("max_replicas", d.get("num_replicas", 1))


def test_cluster_yaml_passes_rays_schema_check() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["available_node_types"][config["head_node_type"]]["resources"]["GPU"] >= 1


def test_local_profile_fits_two_cores() -> None:
    deps = deployments("serve_config.local.yaml")
    assert MODELS | {"Pipeline", "HttpIngress", "ZmqIngress"} == set(deps)
    total = sum(d["ray_actor_options"]["num_cpus"] * max_replicas(d) for d in deps.values())
    assert total <= 2.0, total
    for name, d in deps.items():
        assert "max_ongoing_requests" in d, name
        assert d["ray_actor_options"].get("num_gpus", 0) == 0, name


def test_production_profile_reserves_fractional_gpus_with_autoscaling() -> None:
    deps = deployments("serve_config.yaml")
    for name in MODELS:
        assert 0 < deps[name]["ray_actor_options"]["num_gpus"] < 1
        assert deps[name]["autoscaling_config"]["max_replicas"] > deps[name]["autoscaling_config"]["min_replicas"]
    minimum_cpus = sum(d["ray_actor_options"]["num_cpus"] * d.get("autoscaling_config", {}).get("min_replicas", 1)
                       for d in deps.values())
    assert minimum_cpus <= 4  # fits the 4-CPU logical head the integration test starts


def test_zmq_ingress_is_a_single_pinned_replica_in_both_profiles() -> None:
    for name in ("serve_config.yaml", "serve_config.local.yaml"):
        zmq = deployments(name)["ZmqIngress"]
        assert zmq["num_replicas"] == 1 and "autoscaling_config" not in zmq, name
    assert deployments("serve_config.yaml")["ZmqIngress"]["max_replicas_per_node"] == 1


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.local.yaml"])
def test_every_deployment_bounds_its_queue(name: str) -> None:
    """A flood is answered at once (Serve's back-pressure 503) instead of growing a queue for ever."""
    config = yaml.safe_load((ROOT / name).read_text())
    for deployment in config["applications"][0]["deployments"]:
        assert deployment.get("max_queued_requests", -1) > 0, deployment["name"]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.local.yaml"])
def test_replicas_log_json(name: str) -> None:
    """Structured logs: Serve's logging_config, JSON, validated by Serve's own schema."""
    config = ServeDeploySchema.parse_obj(yaml.safe_load((ROOT / name).read_text()))
    logging_config = config.applications[0].logging_config
    assert logging_config is not None and logging_config.encoding == "JSON"


def test_every_node_exports_metrics_on_the_documented_port() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("--metrics-export-port=8080" in c for c in starts)
    assert "http://127.0.0.1:8080/metrics" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.local.yaml"])
def test_a_hung_replica_is_replaced_well_within_two_minutes(name: str) -> None:
    """Serve replaces a replica after 3 failed checks: period + timeout each. Serve's defaults (10 s + 30 s)
    took 119 s to replace a SIGSTOPped Translator; every deployment here does it in under a minute."""
    from ray.serve._private.constants import REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD

    for deployment_name, d in deployments(name).items():
        worst = REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD * (d["health_check_period_s"] + d["health_check_timeout_s"])
        assert worst <= 60, (deployment_name, worst)


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.local.yaml"])
def test_graceful_shutdown_outlasts_the_zmq_drain(name: str) -> None:
    from serve_app.settings import Settings

    config = yaml.safe_load((ROOT / name).read_text())
    drain = Settings(**config["applications"][0]["args"]["settings"]).zmq_drain_timeout_s
    deps = deployments(name)
    assert deps["ZmqIngress"]["graceful_shutdown_timeout_s"] > drain + 2  # + the last events' linger
    for deployment_name, d in deps.items():
        assert d["graceful_shutdown_timeout_s"] >= 30 and d["graceful_shutdown_wait_loop_s"] > 0, deployment_name
