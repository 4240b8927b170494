"""Soak: mixed load on both doors while a fault is injected every minute; every request must get a
terminal answer (lost = 0).

    python bench/soak.py                   # 15 minutes, a fault every 60 s (what the README reports)
    python bench/soak.py --minutes 4       # a quick look

One real graph (serve_config.local.yaml on a fresh Ray head) with its real Redis and MongoDB-wire
server. Load: cached and uncached text to 3 languages on both doors, a voice message every few
seconds (doors alternating), profile reads. The ZMQ client behaves like the chat gateway: a
translation whose languages have not all answered after 30 s is re-pushed for the missing ones (the
same taskId, up to 4 times, PROTOCOL.md §1). Faults, in turn: SIGKILL or SIGSTOP (a hang, released
after a while) of a model replica, Redis killed, the MongoDB-wire server killed (each restarted
after `--store-down-s`), the ZMQ ingress replica killed.

A request is *answered* when every part of it (each target language of a ZMQ translation; the whole
of anything else) got a result or an error with a code; *lost* = sent - answered, after a grace
period at the end; *duplicates* = answers beyond one per part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray.util.state import list_actors  # noqa: E402

from tests.fixtures.gateway_client import GatewayClient, connected_client, ids_of, new_id  # noqa: E402
from tests.fixtures.ports import free_ports  # noqa: E402
from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402
from tests.fixtures.replica_faults import ReplicaFaults  # noqa: E402
from tests.fixtures.servers import ServerProcess, start_server  # noqa: E402
from tests.fixtures.speech import convert, espeak_wav  # noqa: E402

OUTPUT = ROOT / "bench" / "last_run_soak.txt"
TARGETS = ["en", "es", "de"]
CACHED = ["Merci pour ton aide, à demain !", "Je suis en route.", "On se voit ce soir ?"]
NAMES = ["Marie", "Paul", "Léa", "Hugo", "Chloé", "Lucas", "Emma", "Louis", "Jade", "Nathan"]
BODIES = ["je serai en retard ce soir", "tu peux acheter du pain", "le train est annulé", "la réunion est jeudi",
          "j'ai oublié mes clés chez toi", "il fait très beau aujourd'hui", "le colis est arrivé ce matin"]
VOICE_LINES = ["Bonjour, je serai en retard ce soir, commence sans moi.",
               "Le train est annulé, je prends le bus et j'arrive vers neuf heures.",
               "N'oublie pas d'acheter du pain et du lait en rentrant."]
GATEWAY_RETRY_S, GATEWAY_TRIES = 30.0, 5  # the gateway re-pushes missing languages after 30 s, 4 times
VOICE_RETRY_S, VOICE_TRIES = 180.0, 2
FAULTS = ["kill:Transcriber", "hang:Translator", "kill:Synthesizer", "down:redis", "hang:VoiceCloner",
          "kill:ZmqIngress", "down:mongo", "kill:Translator", "hang:Synthesizer", "kill:VoiceCloner",
          "hang:Transcriber"]


@dataclass
class Request:
    door: str
    kind: str
    parts: set[str]
    sent: float = field(default_factory=time.monotonic)
    answers: dict[str, str] = field(default_factory=dict)  # part -> "ok" or the error code
    answered_at: float | None = None
    duplicates: int = 0
    tries: int = 1

    def answer(self, part: str, code: str) -> None:
        if part in self.answers:
            self.duplicates += 1
            return
        self.answers[part] = code
        if set(self.answers) >= self.parts and self.answered_at is None:
            self.answered_at = time.monotonic()

    @property
    def missing(self) -> list[str]:
        return sorted(self.parts - set(self.answers))


@dataclass
class Soak:
    http_url: str
    gateway: GatewayClient
    voices: list[bytes]
    requests: dict[str, Request] = field(default_factory=dict)  # key: taskId or an HTTP request id
    bodies: dict[str, tuple[dict[str, Any], bytes | None]] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    # ---- ZMQ ----
    async def zmq_send(self, kind: str, body: dict[str, Any], parts: set[str], binary: bytes | None = None) -> None:
        self.requests[body["taskId"]] = Request("zmq", kind, parts)
        self.bodies[body["taskId"]] = (body, binary)
        await self.gateway.send(body, *([binary] if binary else []))

    async def zmq_reader(self) -> None:
        while True:
            event = await self.gateway.recv(1.0)
            if event is None:
                continue
            request = next((self.requests[i] for i in ids_of(event.body) if i in self.requests), None)
            if request is None:
                continue
            kind = event.type
            if kind in ("translation_completed", "translation_error"):
                request.answer(str(event.get("targetLanguage")), "ok" if kind.endswith("completed")
                               else str(event.get("errorCode")))
            elif kind in ("audio_process_completed", "audio_process_error", "voice_api_success", "voice_api_error"):
                ok = kind.endswith(("completed", "success"))
                request.answer("all", "ok" if ok else str(event.get("errorCode")))

    async def gateway_retries(self) -> None:
        """What the gateway does about a request that has not answered: re-push the missing part."""
        while True:
            await asyncio.sleep(2)
            now = time.monotonic()
            for task_id, request in list(self.requests.items()):
                if request.door != "zmq" or request.answered_at is not None:
                    continue
                retry_s, tries = (VOICE_RETRY_S, VOICE_TRIES) if request.kind == "voice" else (GATEWAY_RETRY_S,
                                                                                                GATEWAY_TRIES)
                if request.tries >= tries or now - request.sent < retry_s * request.tries:
                    continue
                body, binary = self.bodies[task_id]
                if request.kind.startswith("text"):
                    body = {**body, "targetLanguages": request.missing}
                request.tries += 1
                await self.gateway.send(body, *([binary] if binary else []))

    def zmq_text(self, text: str, kind: str) -> dict[str, Any]:
        return {"type": "translation", "taskId": new_id(), "messageId": f"665f{new_id('')}", "text": text,
                "sourceLanguage": "fr", "targetLanguages": TARGETS, "conversationId": "soak", "modelType": "basic",
                "timestamp": int(time.time() * 1000)}

    def zmq_voice(self, audio: bytes) -> dict[str, Any]:
        return {"type": "audio_process", "taskId": new_id(), "messageId": new_id("m"), "attachmentId": new_id("a"),
                "conversationId": "soak", "senderId": "u-soak", "audioUrl": "", "audioMimeType": "audio/mp4",
                "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4", "audioSize": len(audio)},
                "audioDurationMs": 5000, "userLanguage": "fr", "targetLanguages": ["en", "es"],
                "generateVoiceClone": True, "timestamp": int(time.time() * 1000)}

    # ---- HTTP ----
    async def http_call(self, kind: str, method: str, path: str, **kwargs: Any) -> None:
        key = f"http-{next(self.counter)}"
        request = self.requests[key] = Request("http", kind, {"all"})
        try:
            async with httpx.AsyncClient(base_url=self.http_url, timeout=300) as client:
                response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # no answer at all: counted as lost
            request.tries = -1
            print(f"  http {kind}: no answer ({type(exc).__name__})", flush=True)
            return
        if response.status_code < 400 or (kind == "profile" and response.status_code == 404):
            request.answer("all", "ok")
        else:
            try:
                request.answer("all", str(response.json().get("errorCode") or f"http_{response.status_code}"))
            except ValueError:
                request.answer("all", f"http_{response.status_code}_unparsed")

    # ---- the load ----
    async def load(self, until: float) -> None:
        tasks: set[asyncio.Task[None]] = set()

        def spawn(coro: Any) -> None:
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        tick = 0
        while time.monotonic() < until:
            tick += 1
            cached = random.choice(CACHED)
            fresh = f"{random.choice(NAMES)}, {random.choice(BODIES)} ({tick})."
            await self.zmq_send("text-cached", self.zmq_text(cached, "cached"), set(TARGETS))
            spawn(self.http_call("text-cached", "POST", "/translate/batch",
                                 json=[{"text": cached, "source_language": "fr", "target_language": t}
                                       for t in TARGETS]))
            if tick % 4 == 0:
                await self.zmq_send("text-fresh", self.zmq_text(fresh, "fresh"), set(TARGETS))
            if tick % 4 == 2:
                spawn(self.http_call("text-fresh", "POST", "/translate/batch",
                                     json=[{"text": fresh, "source_language": "fr", "target_language": t}
                                           for t in TARGETS]))
            if tick % 5 == 0:
                audio = self.voices[tick // 5 % len(self.voices)]
                if tick % 10 == 0:
                    await self.zmq_send("voice", self.zmq_voice(audio), {"all"}, audio)
                else:
                    spawn(self.http_call("voice", "POST", "/api/v1/voice/translate",
                                         files={"audio": ("note.m4a", audio, "audio/mp4")},
                                         data={"target_languages": "en,es", "source_language": "fr",
                                               "generate_voice_clone": "true", "user_id": "u-soak"}))
            if tick % 3 == 0:
                spawn(self.http_call("profile", "GET", "/api/v1/voice/profiles/u-soak"))
                await self.zmq_send("profile", {"type": "voice_profile_get", "taskId": new_id(), "userId": "u-soak"},
                                    {"all"})
            await asyncio.sleep(3)
        await asyncio.gather(*tasks, return_exceptions=True)


# ---- faults ----
async def inject(fault: str, faults: ReplicaFaults, stores: dict[str, ServerProcess], hold_s: float) -> None:
    action, target = fault.split(":")
    if action == "kill":
        await asyncio.to_thread(faults.kill, target)
    elif action == "hang":
        pid = await asyncio.to_thread(faults.freeze, target)
        await asyncio.sleep(hold_s)
        faults.thaw(pid)
    elif action == "down":
        stores[target].kill()
        await asyncio.sleep(hold_s)
        await asyncio.to_thread(stores[target].start)


async def fault_loop(faults: ReplicaFaults, stores: dict[str, ServerProcess], every_s: float, hold_s: float,
                     until: float, log: list[str]) -> None:
    for fault in itertools.cycle(FAULTS):
        await asyncio.sleep(every_s)
        if time.monotonic() >= until:
            return
        started = time.monotonic()
        try:
            await inject(fault, faults, stores, hold_s)
            log.append(f"{fault} ok")
        except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
            log.append(f"{fault} not injected: {exc}")
        print(f"  [{time.strftime('%H:%M:%S')}] fault {fault} ({time.monotonic() - started:.0f} s)", flush=True)


# ---- figures ----
def replica_resources(address: str) -> dict[str, tuple[float, int]]:
    """RSS (MiB) and open file descriptors of every Serve replica, by deployment."""
    out: dict[str, tuple[float, int]] = {}
    for actor in list_actors(address=address, filters=[("state", "=", "ALIVE")], detail=True, limit=1000):
        name = str(actor.class_name)
        if not name.startswith(("ServeReplica:", "ServeController", "ProxyActor")) or not actor.pid:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(actor.pid))
            label = name.split(":")[-1]
            rss, fds = out.get(label, (0.0, 0))
            out[label] = (rss + proc.memory_info().rss / 2**20, fds + proc.num_fds())
    return out


def temp_files() -> int:
    root = Path(tempfile.gettempdir())
    return sum(1 for p in root.iterdir() if p.name not in ("ray", "voice-ray.lock") and not p.name.startswith("pytest"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(soak: Soak, faults_log: list[str], before: dict[str, tuple[float, int]],
           after: dict[str, tuple[float, int]], temps: tuple[int, int], minutes: float) -> str:
    lines = [f"soak: {minutes:g} min of mixed load, {len(faults_log)} faults injected"]
    lines += [f"  fault: {f}" for f in faults_log]
    by_door: dict[str, list[Request]] = defaultdict(list)
    for request in soak.requests.values():
        by_door[request.door].append(request)
    total_sent = total_lost = total_dup = 0
    for door, requests in sorted(by_door.items()):
        answered = [r for r in requests if r.answered_at is not None]
        lost = len(requests) - len(answered)
        dups = sum(r.duplicates for r in requests)
        codes = Counter(code for r in requests for code in r.answers.values())
        latencies = [r.answered_at - r.sent for r in answered if r.answered_at is not None]
        retried = sum(1 for r in requests if r.tries > 1)
        total_sent, total_lost, total_dup = total_sent + len(requests), total_lost + lost, total_dup + dups
        lines.append(f"{door}: sent {len(requests)}, answered {len(answered)}, lost {lost}, duplicates {dups}, "
                     f"re-pushed {retried}, p50 {statistics.median(latencies) if latencies else float('nan'):.2f} s, "
                     f"p95 {pct(latencies, 0.95):.2f} s")
        lines.append(f"  answers by code: {dict(codes.most_common())}")
        kinds = Counter(r.kind for r in requests)
        lines.append(f"  requests by kind: {dict(kinds)}")
        for r in requests:
            if r.answered_at is None:
                lines.append(f"  LOST {r.kind} sent at +{r.sent - min(x.sent for x in requests):.0f} s, "
                             f"missing {r.missing}, tries {r.tries}")
    lines.append(f"TOTAL: sent {total_sent}, lost {total_lost}, duplicates {total_dup}")
    lines.append("replica RSS MiB / open fds, start -> end:")
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, (0.0, 0)), after.get(name, (0.0, 0))
        lines.append(f"  {name:<16} {b[0]:7.0f} -> {a[0]:7.0f} MiB   {b[1]:4d} -> {a[1]:4d} fds")
    lines.append(f"temp files in {tempfile.gettempdir()}: {temps[0]} before, {temps[1]} after")
    return "\n".join(lines)


async def run(args: argparse.Namespace, cluster: RayCluster, http_url: str, pull: int, pub: int,
              stores: dict[str, ServerProcess], voices: list[bytes]) -> str:
    gateway = await connected_client(pull, pub, timeout_s=120)
    soak = Soak(http_url, gateway, voices)
    faults = ReplicaFaults(cluster.address, cluster.status)
    background = [asyncio.create_task(soak.zmq_reader()), asyncio.create_task(soak.gateway_retries())]
    before, temps_before = replica_resources(cluster.address), temp_files()
    until = time.monotonic() + args.minutes * 60
    faults_log: list[str] = []
    fault_task = asyncio.create_task(fault_loop(faults, stores, args.fault_every_s, args.hold_s, until, faults_log))
    await soak.load(until)
    await fault_task
    print(f"load stopped; waiting up to {args.grace_s:g} s for the last answers", flush=True)
    deadline = time.monotonic() + args.grace_s
    while time.monotonic() < deadline and any(
        r.answered_at is None and r.tries >= 0 for r in soak.requests.values()
    ):
        await asyncio.sleep(2)
    after = replica_resources(cluster.address)
    for task in background:
        task.cancel()
    gateway.close()
    return report(soak, faults_log, before, after, (temps_before, temp_files()), args.minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--fault-every-s", type=float, default=60.0)
    parser.add_argument("--hold-s", type=float, default=30.0, help="how long a hang or a store outage lasts")
    parser.add_argument("--grace-s", type=float, default=300.0, help="wait for late answers after the load")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        voices = [convert(espeak_wav(line, work / f"v{i}.wav"), "m4a") for i, line in enumerate(VOICE_LINES)]
        stores = {"redis": start_server("redis", work / "redis"),
                  "mongo": start_server("mongo", work / "mongo", durable=True)}
        cluster = RayCluster(num_cpus=4, num_gpus=0).start()
        try:
            pull, pub = free_ports(2)
            settings = {"zmq_host": "127.0.0.1", "zmq_pull_port": pull, "zmq_pub_port": pub,
                        "REDIS_URL": stores["redis"].url, "MONGODB_URL": stores["mongo"].url}
            port = cluster.deploy(ROOT / "serve_config.local.yaml", work, settings=settings)
            cluster.wait_running()
            url = f"http://127.0.0.1:{port}"
            wait_http_ready(url)
            print(f"graph up; soaking for {args.minutes:g} min, a fault every {args.fault_every_s:g} s", flush=True)
            text = asyncio.run(run(args, cluster, url, pull, pub, stores, voices))
        finally:
            cluster.stop()
            for server in stores.values():
                server.kill()
    print(text)
    OUTPUT.write_text(text + "\n")
    print(f"\n(written to {OUTPUT.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
