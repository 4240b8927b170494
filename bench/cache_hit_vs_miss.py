"""Text translation through the graph: cache miss vs cache hit, in one run, over HTTP `/translate`.

Deploys serve_config.local.yaml on a fresh Ray head with a real `redis-server` (REDIS_URL), then for
N distinct French chat messages x 3 target languages, three phases:
  1. miss  - every (text, language) pair for the first time: the Translator model runs;
  2. hit   - the same requests again: answered by the Pipeline replica's in-process LRU tier;
  3. hit   - the same again after a redeploy (a new replica, empty LRU): answered from Redis.
Each phase reports p50/p95 latency per request, throughput (requests/s) at a fixed concurrency, and
how many answers said `from_cache`.

    .venv/bin/python bench/cache_hit_vs_miss.py --messages 20 --concurrency 6
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from tests.fixtures.ports import free_port  # noqa: E402
from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402
from tests.fixtures.servers import start_server  # noqa: E402

SENTENCES = [
    "Je serai en retard ce soir, commence sans moi.",
    "Tu peux acheter du pain en rentrant ?",
    "La réunion est déplacée à demain matin.",
    "Merci pour ton aide, c'était parfait.",
    "On se retrouve devant la gare à midi.",
    "J'ai oublié mes clés chez toi hier soir.",
    "Le train a vingt minutes de retard.",
    "Bon anniversaire, passe une belle journée !",
    "Est-ce que tu as reçu mon message ?",
    "Il fait très beau aujourd'hui, allons au parc.",
]
TARGETS = ["en", "es", "de"]


def messages(n: int) -> list[str]:
    return [f"{SENTENCES[i % len(SENTENCES)]} ({i // len(SENTENCES) + 1})" for i in range(n)]


async def phase(url: str, texts: list[str], concurrency: int) -> tuple[list[float], float, list[bool]]:
    """Every (text, target) once, `concurrency` at a time; latencies (s), wall time, from_cache flags."""
    jobs = [(t, g) for t in texts for g in TARGETS]
    latencies: list[float] = []
    cached: list[bool] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        async def one(text: str, target: str) -> None:
            async with gate:
                t0 = time.perf_counter()
                r = await client.post("/translate", json={"text": text, "source_language": "fr",
                                                          "target_language": target})
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()
                cached.append(bool(r.json()["from_cache"]))

        started = time.perf_counter()
        await asyncio.gather(*(one(t, g) for t, g in jobs))
        return latencies, time.perf_counter() - started, cached


def line(name: str, lat: list[float], wall: float, cached: list[bool]) -> str:
    return (f"{name:<28} {len(lat):>5} {1000 * pct(lat, 0.5):>10.1f} {1000 * pct(lat, 0.95):>10.1f} "
            f"{len(lat) / wall:>10.1f} {sum(cached):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "last_run_cache.txt")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = start_server("redis", tmp / "redis")
        cluster = RayCluster(num_cpus=2, num_gpus=0).start()
        try:
            settings = {"REDIS_URL": redis.url, "zmq_host": "127.0.0.1", "zmq_pull_port": free_port(),
                        "zmq_pub_port": free_port()}
            (tmp / "cfg").mkdir()
            (tmp / "cfg2").mkdir()
            port = cluster.deploy(ROOT / "serve_config.local.yaml", tmp / "cfg", settings=settings)
            cluster.wait_running()
            url = f"http://127.0.0.1:{port}"
            wait_http_ready(url)
            asyncio.run(phase(url, ["Bonjour à tous."], 1))  # warm-up, not counted
            texts = messages(args.messages)
            rows = [("miss (model runs)", *asyncio.run(phase(url, texts, args.concurrency)))]
            rows.append(("hit (LRU tier)", *asyncio.run(phase(url, texts, args.concurrency))))
            # A fresh Pipeline replica has an empty LRU: its answers come from Redis.
            cluster.shutdown_apps()
            port = cluster.deploy(ROOT / "serve_config.local.yaml", tmp / "cfg2", settings=settings)
            cluster.wait_running()
            wait_http_ready(url)
            rows.append(("hit (Redis tier, new replica)", *asyncio.run(phase(url, texts, args.concurrency))))
        finally:
            cluster.stop()
            redis.stop()

    header = f"{'phase':<28} {'reqs':>5} {'p50 ms':>10} {'p95 ms':>10} {'req/s':>10} {'cached':>8}"
    report = [
        f"Text translation over HTTP /translate, {args.messages} messages x {len(TARGETS)} languages "
        f"({args.messages * len(TARGETS)} requests per phase), concurrency {args.concurrency}, one run",
        header,
        *(line(*row) for row in rows),
    ]
    miss, hit = rows[0], rows[1]
    report.append(
        f"hit vs miss: p50 {1000 * pct(miss[1], 0.5) / max(1e-9, 1000 * pct(hit[1], 0.5)):.0f}x faster, "
        f"throughput {(len(hit[1]) / hit[2]) / (len(miss[1]) / miss[2]):.0f}x"
    )
    text = "\n".join(report)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
