"""GPU check (bench/gpu_check.sh runs it): serve_config.yaml on the GPU with the registry-shipped models,
the four model deployments sharing the device, and the voice-message latency beside the same on CPU.

1. `ray start --head --num-gpus=<N>`; `serve deploy serve_config.yaml` with only what this machine needs
   changed: the registry-shipped translator (gemma; the production NLLB folder is not here), device cuda,
   loopback doors, auth optional (no keys on a throwaway check);
2. `serve status`, then `nvidia-smi --query-compute-apps` joined with Ray's actor table: which replica
   (Transcriber, Translator, Synthesizer, VoiceCloner) holds how much of which GPU;
3. a 5 s French voice message -> en, es, de over HTTP, 1 warm-up + N timed runs: p50/p95;
4. the same on CPU: serve_config.local.yaml (the embedded CPU profile) deployed on the same cluster.

    .venv/bin/python bench/gpu_check.py --runs 10
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav  # noqa: E402

TARGETS = ["en", "es", "de"]
MODEL_DEPLOYMENTS = ("Transcriber", "Translator", "Synthesizer", "VoiceCloner")
# What differs from serve_config.yaml on a throwaway single GPU box: the weights registries ship, the GPU.
GPU_SETTINGS: dict[str, Any] = {
    "device": "cuda", "translator_backend": "gemma", "translator_model": None,
    "auth": "optional", "zmq_host": "127.0.0.1", "zmq_allowed_peers": [],
}


@dataclass(frozen=True)
class ComputeApp:
    pid: int
    process_name: str
    used_memory_mib: int
    gpu_uuid: str


def parse_compute_apps(text: str) -> list[ComputeApp]:
    """`nvidia-smi --query-compute-apps=pid,process_name,used_memory,gpu_uuid --format=csv,noheader,nounits`."""
    apps = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 4 or not row[0].strip().isdigit():
            continue
        memory = row[2].strip()
        apps.append(ComputeApp(int(row[0]), row[1].strip(), int(memory) if memory.isdigit() else 0, row[3].strip()))
    return apps


def deployment_of(class_name: str) -> str | None:
    """`ServeReplica:translator:Transcriber` -> `Transcriber` (None for anything that is not a replica)."""
    parts = class_name.split(":")
    return parts[-1] if parts[0] == "ServeReplica" and len(parts) >= 3 else None


def gpu_table(apps: list[ComputeApp], actors: list[dict[str, Any]]) -> list[tuple[str, int, int, str]]:
    """(deployment or process name, pid, MiB, gpu) for every process on a GPU."""
    by_pid = {int(a["pid"]): deployment_of(a.get("class_name") or "") for a in actors if a.get("pid")}
    return [(by_pid.get(app.pid) or app.process_name, app.pid, app.used_memory_mib, app.gpu_uuid[-8:])
            for app in apps]


def p50_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def voice_runs(url: str, audio: bytes, runs: int) -> list[float]:
    """1 warm-up + `runs` timed voice messages, each to every target; any failed language fails the check."""
    times = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for i in range(runs + 1):
            t0 = time.perf_counter()
            r = client.post("/api/v1/voice/translate", files={"audio": ("a.m4a", audio, "audio/mp4")},
                            data={"target_languages": ",".join(TARGETS), "source_language": "fr"})
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            body = r.json()
            if len(body["translations"]) != len(TARGETS):
                raise RuntimeError(f"languages failed: {body.get('failed_languages')}")
            if i:
                times.append(elapsed)
            print(f"  run {i}{' (warm-up)' if not i else ''}: {elapsed:.2f} s", flush=True)
    return times


def show_gpu_sharing(cluster: RayCluster) -> None:
    import ray
    from ray.util.state import list_actors

    status = cluster.status()
    app = (status.get("applications") or {}).get("translator", {})
    print("serve status:", app.get("status"))
    for name, dep in (app.get("deployments") or {}).items():
        print(f"  {name:<12} {dep.get('status')}  replicas {dep.get('replica_states')}")
    ray.init(address=f"127.0.0.1:{cluster.gcs_port}", logging_level="ERROR")
    try:
        actors = [a.__dict__ if hasattr(a, "__dict__") else dict(a)
                  for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)]
    finally:
        ray.shutdown()
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory,gpu_uuid",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True).stdout
    table = gpu_table(parse_compute_apps(out), actors)
    print("\nprocesses on the GPU (nvidia-smi --query-compute-apps):")
    print(f"  {'deployment':<14} {'pid':>8} {'MiB':>7}  gpu")
    for name, pid, mib, gpu in table:
        print(f"  {name:<14} {pid:>8} {mib:>7}  …{gpu}")
    sharing = {name for name, *_ in table} & set(MODEL_DEPLOYMENTS)
    print(f"model deployments seen on the GPU: {sorted(sharing)} ({len(sharing)}/4)"
          + ("" if sharing else "  [pids may be host pids in a container: compare by memory]"))


def deploy(cluster: RayCluster, config: str, tmp: Path, settings: dict[str, Any] | None) -> str:
    port = cluster.deploy(ROOT / config, tmp, settings=settings)
    cluster.wait_running(timeout_s=600)
    url = f"http://127.0.0.1:{port}"
    wait_http_ready(url, timeout_s=300)
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--num-gpus", type=int, default=1)
    parser.add_argument("--num-cpus", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        audio = convert(espeak_wav(FRENCH_5S, tmp / "fr.wav"), "m4a")
        cluster = RayCluster(num_cpus=args.num_cpus, num_gpus=args.num_gpus).start()
        try:
            print(f"== GPU: serve_config.yaml, {GPU_SETTINGS}")
            url = deploy(cluster, "serve_config.yaml", tmp, GPU_SETTINGS)
            show_gpu_sharing(cluster)
            print(f"\n== GPU: 5 s French -> {TARGETS}, {args.runs} runs")
            gpu = voice_runs(url, audio, args.runs)
            print("\n== CPU: serve_config.local.yaml on the same machine")
            url = deploy(cluster, "serve_config.local.yaml", tmp, {"device": "cpu"})
            cpu = voice_runs(url, audio, args.runs)
        finally:
            cluster.stop()
    (g50, g95), (c50, c95) = p50_p95(gpu), p50_p95(cpu)
    print("\n| profile | p50 s | p95 s |\n|---|---|---|")
    print(f"| GPU (serve_config.yaml, 4 models x 0.25 GPU) | {g50:.2f} | {g95:.2f} |")
    print(f"| CPU (serve_config.local.yaml) | {c50:.2f} | {c95:.2f} |")
    print(f"\nGPU/CPU p50: {g50 / c50:.2f}")


if __name__ == "__main__":
    main()
