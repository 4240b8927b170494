"""Text translation through the ZMQ gateway ingress beside the same through HTTP `/translate`.

One graph (serve_config.local.yaml on a fresh Ray head), two doors into the same Pipeline:
- ZMQ: the gateway's way: PUSH one `translation` per message with 3 target languages, collect the
  `translation_completed` events (one per language) on SUB;
- HTTP: the compatibility route: 3 concurrent `POST /translate` per message (one per language).

Every message is a distinct French chat sentence (no path ever sees another's text, so nothing is
served from the translation cache). The N messages per path are sent in rounds; in each round one
path sends its whole batch at once and waits for every language, then the other does, and the
order alternates round by round so drift on a shared machine hits both alike. Reported: messages/s
(messages whose 3 languages all arrived, over the summed batch wall time) and p50/p95 of the
latency of each language event, measured from the moment its message was sent. A second phase sends
the same texts again: answered from the translation cache, it shows what each door itself costs.

    .venv/bin/python bench/zmq_vs_http.py --messages 30 --rounds 3

--batch-configs "8:0.02:8,16:0.1:16:1:2" then redeploys the same graph once per
`max_batch:wait_s:ct2_batch[:intra_threads:inter_threads]` (translator_max_batch_size,
translator_batch_wait_s, translator_options; threads default to 2x1, the setting before
issue 13's thread budgets) and sends
--messages new texts over ZMQ in one burst per config: messages/s and p95 of the uncached model path
under each batching setting, in the same run (the first config should be today's setting).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from tests.fixtures.gateway_client import GatewayClient, connected_client, new_id  # noqa: E402
from tests.fixtures.ports import free_ports  # noqa: E402
from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402

TARGETS = ["en", "es", "de"]
OUTPUT = ROOT / "bench" / "last_run_zmq_vs_http.txt"
OUTPUT_BATCHING_ONLY = ROOT / "bench" / "last_run_zmq_batching.txt"  # --skip-doors keeps the doors' file

OPENINGS = ["Salut", "Coucou", "Bonjour", "Bonsoir", "Dis-moi", "Écoute", "Au fait", "Franchement"]
NAMES = ["Marie", "Paul", "Léa", "Hugo", "Chloé", "Lucas", "Emma", "Louis", "Jade", "Nathan", "Inès", "Tom"]
BODIES = [
    "je serai en retard ce soir",
    "on se retrouve devant le cinéma à huit heures",
    "tu peux acheter du pain en rentrant",
    "le train est annulé, je prends le bus",
    "merci pour ton aide hier",
    "on mange ensemble demain midi",
    "j'ai oublié mes clés chez toi",
    "la réunion est repoussée à jeudi",
    "n'oublie pas l'anniversaire de maman",
    "il fait très beau aujourd'hui",
    "je t'appelle après le travail",
    "le colis est arrivé ce matin",
]


def sentences() -> list[str]:
    """Distinct, natural chat messages (opening x name x body), in a fixed shuffled order."""
    out = [f"{o} {n}, {b} !" for b, o, n in itertools.product(BODIES, OPENINGS, NAMES)]
    step = 37  # coprime with len(out): a fixed permutation that mixes bodies and names
    return [out[(i * step) % len(out)] for i in range(len(out))]


@dataclass
class PathStats:
    name: str
    wall_s: float = 0.0
    messages_ok: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    from_cache: int = 0

    def all_latencies(self) -> list[float]:
        return [v for values in self.latencies.values() for v in values]


async def zmq_batch(client: GatewayClient, texts: list[str], stats: PathStats, timeout_s: float) -> None:
    sent: dict[str, float] = {}
    pending: dict[str, set[str]] = {}
    started = time.perf_counter()
    for text in texts:
        task = new_id("bench")
        pending[task] = set(TARGETS)
        sent[task] = time.perf_counter()
        await client.send({"type": "translation", "taskId": task, "messageId": task, "text": text,
                           "sourceLanguage": "fr", "targetLanguages": TARGETS, "conversationId": "bench",
                           "modelType": "basic", "timestamp": int(time.time() * 1000)})
    failed: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while any(pending.values()):
        event = await client.wait_for(lambda e: e.get("taskId") in pending, max(1.0, deadline - time.monotonic()))
        task, lang = event["taskId"], event.get("targetLanguage")
        pending[task].discard(lang)
        if event.type == "translation_completed":
            stats.latencies[lang].append(event.received_at - sent[task])
            stats.from_cache += bool(event["result"]["fromCache"])
        else:
            failed.add(task)
            stats.errors.append(f"{event.type}: {event.get('errorCode')} {event.get('error')}"[:200])
    stats.wall_s += time.perf_counter() - started
    stats.messages_ok += len(texts) - len(failed)


async def http_batch(client: httpx.AsyncClient, texts: list[str], stats: PathStats) -> None:
    async def one(text: str, lang: str, sent: float) -> bool:
        try:
            r = await client.post("/translate", json={"text": text, "source_language": "fr", "target_language": lang,
                                                      "model_type": "basic"})
        except httpx.HTTPError as exc:
            stats.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        if r.status_code != 200:
            stats.errors.append(f"HTTP {r.status_code}: {r.text[:150]}")
            return False
        stats.latencies[lang].append(time.perf_counter() - sent)
        stats.from_cache += bool(r.json().get("from_cache"))
        return True

    async def message(text: str) -> bool:
        sent = time.perf_counter()
        return all(await asyncio.gather(*(one(text, lang, sent) for lang in TARGETS)))

    started = time.perf_counter()
    results = await asyncio.gather(*(message(text) for text in texts))
    stats.wall_s += time.perf_counter() - started
    stats.messages_ok += sum(results)


async def run(http_url: str, pull: int, pub: int, n: int, rounds: int, timeout_s: float, out) -> None:
    texts = sentences()
    if len(texts) < 2 * n + 4:
        raise SystemExit(f"at most {(len(texts) - 4) // 2} messages per path")
    warm, texts = texts[:4], texts[4:]
    zmq_texts, http_texts = texts[0 : 2 * n : 2], texts[1 : 2 * n : 2]  # disjoint: no cross-path cache hits
    gateway = await connected_client(pull, pub, timeout_s=120)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=http_url, timeout=timeout_s, limits=limits) as http:
        # Warm-up (not counted): first calls allocate, JIT and open connections on both paths.
        await zmq_batch(gateway, warm[:2], PathStats("warm"), timeout_s)
        await http_batch(http, warm[2:], PathStats("warm"))
        phases = []
        # Phase 1, the measured comparison: new texts, every language runs the model.
        # Phase 2: the same texts again, now answered from the translation cache, so what is left is
        # the cost of each door (transport, serialisation, ingress replica) rather than the model's.
        for phase, note in (("model", "new texts, model runs"), ("cached", "same texts again, cache hits")):
            zmq_stats = PathStats(f"ZMQ (PUSH/SUB), {note}")
            http_stats = PathStats(f"HTTP /translate, {note}")
            per_round = -(-n // rounds)
            for r in range(rounds):
                z_batch = zmq_texts[r * per_round : (r + 1) * per_round]
                h_batch = http_texts[r * per_round : (r + 1) * per_round]
                if not z_batch:
                    break
                order = ["zmq", "http"] if r % 2 == 0 else ["http", "zmq"]
                for path in order:
                    t0 = time.perf_counter()
                    if path == "zmq":
                        await zmq_batch(gateway, z_batch, zmq_stats, timeout_s)
                    else:
                        await http_batch(http, h_batch, http_stats)
                    print(f"{phase} round {r}: {path:4s} {len(z_batch)} messages x {len(TARGETS)} languages in "
                          f"{time.perf_counter() - t0:.2f} s", file=out, flush=True)
            phases.append((zmq_stats, http_stats))
    gateway.close()
    for zmq_stats, http_stats in phases:
        report([zmq_stats, http_stats], out)


async def zmq_only(pull: int, pub: int, texts: list[str], name: str, timeout_s: float) -> PathStats:
    """One burst of new texts through ZMQ (a 2-message warm-up first, not counted)."""
    gateway = await connected_client(pull, pub, timeout_s=120)
    await zmq_batch(gateway, texts[:2], PathStats("warm"), timeout_s)
    stats = PathStats(name)
    await zmq_batch(gateway, texts[2:], stats, timeout_s)
    gateway.close()
    return stats


def batching_table(rows: list[PathStats], out) -> None:
    # messages/s counts a message only when all its languages came back; texts/s counts every language
    # answer that did (so a setting that times some out is not charged twice).
    print("\n| ZMQ, new texts, 3 languages each: batching | messages/s | texts/s | p50 s | p95 s | errors |",
          file=out)
    print("|---|---|---|---|---|---|", file=out)
    for p in rows:
        lat = p.all_latencies()
        rate = p.messages_ok / p.wall_s if p.wall_s else 0.0
        texts = len(lat) / p.wall_s if p.wall_s else 0.0
        print(f"| {p.name} | {rate:.2f} | {texts:.2f} | {statistics.median(lat):.3f} | {pct(lat, .95):.3f} | "
              f"{len(p.errors)} |", file=out)
    for p in rows:
        if p.errors:  # "event: errorCode message" -> how many of each code
            codes = Counter(e.split(" ", 2)[1] if e.count(" ") >= 1 else e for e in p.errors)
            print(f"{p.name}: errors by code {dict(codes)}; first: {p.errors[0]}", file=out)
    if len(rows) > 1 and rows[0].wall_s:
        base = rows[0].messages_ok / rows[0].wall_s
        base_texts = len(rows[0].all_latencies()) / rows[0].wall_s
        for p in rows[1:]:
            print(f"{p.name}: {p.messages_ok / p.wall_s / base:.2f}x the messages/s and "
                  f"{len(p.all_latencies()) / p.wall_s / base_texts:.2f}x the texts/s of {rows[0].name}", file=out)


def report(paths: list[PathStats], out) -> None:
    print("\n| path | messages/s | p50 s (per language event) | p95 s | "
          + " | ".join(f"p50 {lang} | p95 {lang}" for lang in TARGETS) + " | errors |", file=out)
    print("|---|---|---|---|" + "---|---|" * len(TARGETS) + "---|", file=out)
    for p in paths:
        lat = p.all_latencies()
        per_lang = " | ".join(
            f"{statistics.median(p.latencies[lang]):.3f} | {pct(p.latencies[lang], .95):.3f}"
            if p.latencies[lang] else "- | -"
            for lang in TARGETS
        )
        rate = p.messages_ok / p.wall_s if p.wall_s else 0.0
        p50 = f"{statistics.median(lat):.3f}" if lat else "-"
        p95 = f"{pct(lat, .95):.3f}" if lat else "-"
        print(f"| {p.name} | {rate:.2f} | {p50} | {p95} | {per_lang} | {len(p.errors)} |", file=out)
    for p in paths:
        print(f"{p.name}: {p.from_cache} of {len(p.all_latencies())} language events served from the cache", file=out)
        for err in p.errors[:5]:
            print(f"{p.name} error: {err}", file=out)
    zmq, http = paths
    if zmq.wall_s and http.wall_s and zmq.messages_ok and http.messages_ok:
        ratio = (zmq.messages_ok / zmq.wall_s) / (http.messages_ok / http.wall_s)
        print(f"\nthroughput ratio ZMQ/HTTP: {ratio:.2f}; p50 latency ratio ZMQ/HTTP: "
              f"{statistics.median(zmq.all_latencies()) / statistics.median(http.all_latencies()):.2f}", file=out)


class Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=30, help="messages per path (3 target languages each)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds the messages are split into")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one batch")
    parser.add_argument("--batch-configs", default="",
                        help="comma-separated max_batch:wait_s:ct2_batch[:intra:inter] to compare on new texts, "
                             "ZMQ only")
    parser.add_argument("--skip-doors", action="store_true", help="only the --batch-configs comparison")
    args = parser.parse_args()
    output = OUTPUT_BATCHING_ONLY if args.skip_doors else OUTPUT
    with output.open("w") as log, tempfile.TemporaryDirectory() as tmp:
        out = Tee(sys.stdout, log)
        print(f"{args.messages} distinct French messages per path, targets {TARGETS}, {args.rounds} rounds, "
              "ZMQ and HTTP batches alternating first; one graph (serve_config.local.yaml, fresh 2-CPU Ray head)",
              file=out, flush=True)
        cluster = RayCluster(num_cpus=2, num_gpus=0, dashboard=False).start()  # as `make run` starts it
        try:
            pull, pub = free_ports(2)
            port = cluster.deploy(ROOT / "serve_config.local.yaml", Path(tmp),
                                  settings={"zmq_host": "127.0.0.1", "zmq_pull_port": pull, "zmq_pub_port": pub})
            cluster.wait_running()
            url = f"http://127.0.0.1:{port}"
            wait_http_ready(url)
            if not args.skip_doors:
                asyncio.run(run(url, pull, pub, args.messages, args.rounds, args.timeout, out))
            rows = []
            fresh = sentences()[2 * args.messages + 4 :]  # never sent by the doors comparison
            for i, spec in enumerate(c for c in args.batch_configs.split(",") if c.strip()):
                size, wait, ct2, *threads = spec.split(":")
                intra, inter = (int(threads[0]), int(threads[1])) if threads else (2, 1)
                options = {"intra_threads": intra, "inter_threads": inter, "max_batch_size": int(ct2)}
                cluster.deploy(ROOT / "serve_config.local.yaml", Path(tmp), settings={
                    "zmq_host": "127.0.0.1", "zmq_pull_port": pull, "zmq_pub_port": pub,
                    "translator_max_batch_size": int(size), "translator_batch_wait_s": float(wait),
                    "translator_options": options})
                time.sleep(5)  # the redeploy replaces replicas; let the old ones go
                cluster.wait_running()
                n = args.messages + 2
                texts = fresh[i * n : (i + 1) * n]
                label = f"batch {size}, wait {wait} s, ct2 {ct2}, threads {intra}x{inter}"
                rows.append(asyncio.run(zmq_only(pull, pub, texts, label, args.timeout)))
                print(f"batching {spec}: {rows[-1].messages_ok} messages in {rows[-1].wall_s:.2f} s", file=out,
                      flush=True)
            if rows:
                batching_table(rows, out)
        finally:
            cluster.stop()
    print(f"\n(written to {output.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
