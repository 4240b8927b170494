"""bench/gpu_check.py's parsing (it only runs on a GPU machine; its logic is checked here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

from serve_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
assert spec is not None and spec.loader is not None
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up while the class is built
spec.loader.exec_module(gpu_check)


def test_script_parses_and_finds_its_pins() -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")]).returncode == 0
    found = subprocess.run(["grep", "-oE", "onnxruntime-gpu==[0-9.]+", str(ROOT / "pyproject.toml")],
                           capture_output=True, text=True).stdout.split()
    assert found == ["onnxruntime-gpu==1.31.1"]  # exactly one pin, the one the script installs


def test_compute_apps_joined_with_replicas() -> None:
    smi = ("1201, ray::ServeReplica:translator:Transcriber, 812, GPU-aaaa-bbbb-1111\n"
           "1202, ray::ServeReplica:translator:Translator, 1490, GPU-aaaa-bbbb-1111\n"
           "1300, /usr/bin/python3, [N/A], GPU-aaaa-bbbb-1111\n"
           "garbage line\n")
    apps = gpu_check.parse_compute_apps(smi)
    assert [(a.pid, a.used_memory_mib) for a in apps] == [(1201, 812), (1202, 1490), (1300, 0)]
    actors = [{"pid": 1201, "class_name": "ServeReplica:translator:Transcriber"},
              {"pid": 1202, "class_name": "ServeReplica:translator:Translator"},
              {"pid": 99, "class_name": "ServeController"}]
    table = gpu_check.gpu_table(apps, actors)
    assert [(name, mib) for name, _, mib, _ in table] == [("Transcriber", 812), ("Translator", 1490),
                                                          ("/usr/bin/python3", 0)]
    assert gpu_check.deployment_of("ServeController") is None


def test_p50_p95() -> None:
    assert gpu_check.p50_p95([3.0, 1.0, 2.0, 4.0, 100.0]) == (3.0, 100.0)


def test_gpu_settings_are_valid_on_the_production_config() -> None:
    """What the check changes in serve_config.yaml still validates, and asks for registry weights and CUDA."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    settings = {**config["applications"][0]["args"]["settings"], **gpu_check.GPU_SETTINGS}
    parsed = Settings(**settings)
    assert parsed.device == "cuda" and parsed.translator_backend == "gemma" and parsed.translator_model is None
    gpus = {d["name"]: d["ray_actor_options"].get("num_gpus") for d in config["applications"][0]["deployments"]}
    assert {gpus[name] for name in gpu_check.MODEL_DEPLOYMENTS} == {0.25}
