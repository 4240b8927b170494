"""Zero-downtime redeploy: a config change rolled out with `serve deploy` while a client keeps sending.

A client thread sends a steady stream of text translations through both doors (HTTP /translate and a
ZMQ `translation`) and a ZMQ voice message every few seconds, on ONE gateway client (PUSH + SUB) that
is never re-created. Meanwhile the same serve_config.local.yaml is deployed again with three changes:
the Translator's max_ongoing_requests (applied in place), a second Transcriber replica (scaling), and
the ZmqIngress's ray_actor_options (which restarts its one replica: the gateway's PULL/PUB ports pass
from the old replica to the new one). Every HTTP request must succeed and every ZMQ request must get
its answer; requests sent after the new ZmqIngress replica is up must be answered on the same sockets.

None of the deployments has a `reconfigure` method, so a user_config change is not part of the roll-out
(Serve would refuse a user_config on them).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway_client import GatewayClient, audio_request, connected_client, new_id
from tests.fixtures.ports import free_ports
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

TEXTS = ["Bonjour, comment allez-vous ?", "Merci beaucoup, à demain !", "On se voit ce soir au cinéma.",
         "Bonne nuit à tous.", "Je suis en retard, désolé."]
SEND_EVERY_S = 0.5
VOICE_EVERY = 12  # one voice message per 12 text rounds (~6 s)
ANSWER_WAIT_S = 240  # a voice message takes ~20-60 s on a busy 2-core box
VOICE_DONE = {"audio_process_completed", "audio_process_error"}
CHANGES: dict[str, dict[str, Any]] = {
    "Translator": {"max_ongoing_requests": 48},
    "Transcriber": {"num_replicas": 2},
    "ZmqIngress": {"ray_actor_options": {"num_cpus": 0.15}},
}


@dataclass
class Sent:
    kind: str  # "text" | "voice"
    at: float
    answer: str | None = None


@dataclass
class Traffic:
    """The steady client: what it sent, on which door, and what came back."""

    http_url: str
    pull_port: int
    pub_port: int
    voice: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    http_results: list[tuple[float, int | str]] = field(default_factory=list)
    zmq: dict[str, Sent] = field(default_factory=dict)  # taskId (text) or messageId (voice)
    error: BaseException | None = None
    client: GatewayClient | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc
            self.ready.set()

    async def _run(self) -> None:
        self.client = await connected_client(self.pull_port, self.pub_port, timeout_s=120)
        receiver = asyncio.create_task(self._receive(self.client))
        self.ready.set()
        try:
            async with httpx.AsyncClient(base_url=self.http_url, timeout=300) as http:
                requests: set[asyncio.Task[None]] = set()
                i = 0
                while not self.stop.is_set():
                    text = TEXTS[i % len(TEXTS)] if i % 10 else f"{TEXTS[i % len(TEXTS)]} ({i})"
                    task = asyncio.create_task(self._http(http, text))
                    requests.add(task)
                    task.add_done_callback(requests.discard)
                    await self._zmq_text(self.client, text)
                    if i % VOICE_EVERY == 0:
                        await self._zmq_voice(self.client)
                    i += 1
                    await asyncio.sleep(SEND_EVERY_S)
                await asyncio.gather(*requests)
            deadline = time.monotonic() + ANSWER_WAIT_S
            while self.unanswered() and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
        finally:
            receiver.cancel()
            self.client.close()

    async def _http(self, http: httpx.AsyncClient, text: str) -> None:
        try:
            r = await http.post("/translate", json={"text": text, "source_language": "fr", "target_language": "en"})
            self.http_results.append((time.monotonic(), r.status_code))
        except httpx.HTTPError as exc:
            self.http_results.append((time.monotonic(), repr(exc)))

    async def _zmq_text(self, client: GatewayClient, text: str) -> None:
        task = new_id()
        self.zmq[task] = Sent("text", time.monotonic())
        await client.send({"type": "translation", "taskId": task, "messageId": new_id("m"), "text": text,
                           "sourceLanguage": "fr", "targetLanguages": ["en"], "conversationId": "c-redeploy",
                           "modelType": "basic", "timestamp": int(time.time() * 1000)})

    async def _zmq_voice(self, client: GatewayClient) -> None:
        body = audio_request(self.voice, ["en"])
        self.zmq[body["messageId"]] = Sent("voice", time.monotonic())
        await client.send(body, self.voice)

    async def _receive(self, client: GatewayClient) -> None:
        while True:
            event = await client.recv(1.0)
            if event is None:
                continue
            text = self.zmq.get(str(event.get("taskId")))
            if text is not None and text.kind == "text":
                text.answer = event.type
            voice = self.zmq.get(str(event.get("messageId")))
            if voice is not None and voice.kind == "voice" and event.type in VOICE_DONE:
                voice.answer = event.type

    def unanswered(self) -> list[str]:
        return [key for key, sent in list(self.zmq.items()) if sent.answer is None]


def zmq_ingress_replicas(cluster: RayCluster) -> list[dict[str, Any]]:
    return [r for r in cluster.replicas()["ZmqIngress"] if r["state"] == "RUNNING"]


@pytest.fixture
def voice_m4a(tmp_path: Path) -> bytes:
    return convert(espeak_wav(FRENCH_5S, tmp_path / "fr.wav"), "m4a")


@pytest.fixture
def redeploy_graph(exclusive_cluster: RayCluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    pull, pub = free_ports(2)
    settings = {"zmq_host": "127.0.0.1", "zmq_pull_port": pull, "zmq_pub_port": pub}
    port = exclusive_cluster.deploy(ROOT / "serve_config.local.yaml", tmp_path, settings=settings)
    try:
        exclusive_cluster.wait_running(timeout_s=480)
        base = f"http://127.0.0.1:{port}"
        wait_http_ready(base)
        yield {"http_url": base, "pull": pull, "pub": pub, "settings": settings, "dir": tmp_path}
    finally:
        exclusive_cluster.shutdown_apps()


def test_config_change_rolls_out_under_traffic_without_losing_a_request(
    exclusive_cluster: RayCluster, redeploy_graph: dict[str, Any], voice_m4a: bytes
) -> None:
    cluster = exclusive_cluster
    (old_ingress,) = zmq_ingress_replicas(cluster)
    traffic = Traffic(redeploy_graph["http_url"], redeploy_graph["pull"], redeploy_graph["pub"], voice_m4a)
    thread = threading.Thread(target=traffic.run, name="steady-client", daemon=True)
    thread.start()
    assert traffic.ready.wait(180) and traffic.error is None, traffic.error
    time.sleep(10)  # steady state before the change

    # The same settings (so the app's code version is unchanged); only the named deployments' options differ.
    cluster.deploy(ROOT / "serve_config.local.yaml", redeploy_graph["dir"], settings=redeploy_graph["settings"],
                   deployments=CHANGES)
    handover_at = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        replicas = cluster.replicas()
        ingress = [r for r in replicas["ZmqIngress"] if r["state"] == "RUNNING"]
        transcribers = [r for r in replicas["Transcriber"] if r["state"] == "RUNNING"]
        if handover_at is None and ingress and ingress[0]["replica_id"] != old_ingress["replica_id"]:
            handover_at = time.monotonic()
        if handover_at is not None and len(transcribers) == 2 and len(replicas["ZmqIngress"]) == 1:
            break
        time.sleep(1)
    assert handover_at is not None, f"the ZmqIngress replica was not replaced: {cluster.replicas()['ZmqIngress']}"
    cluster.wait_running(timeout_s=120)
    time.sleep(15)  # traffic on the new replica set
    traffic.stop.set()
    thread.join(ANSWER_WAIT_S + 120)
    assert not thread.is_alive() and traffic.error is None, traffic.error

    details = httpx.get(f"{cluster.address}/api/serve/applications/", timeout=30).json()
    translator = details["applications"]["translator"]["deployments"]["Translator"]["deployment_config"]
    assert translator["max_ongoing_requests"] == 48  # the in-place change reached the deployment

    failed_http = [(round(t - handover_at, 1), status) for t, status in traffic.http_results if status != 200]
    lost = {key: (sent.kind, round(sent.at - handover_at, 1)) for key, sent in traffic.zmq.items()
            if sent.answer is None}
    wrong = {key: sent.answer for key, sent in traffic.zmq.items()
             if sent.answer not in (None, "translation_completed", "audio_process_completed")}
    after = [sent for sent in traffic.zmq.values() if sent.at > handover_at and sent.answer is not None]
    voices = [sent for sent in traffic.zmq.values() if sent.kind == "voice"]
    print(f"HTTP {len(traffic.http_results)} sent, ZMQ {len(traffic.zmq)} sent ({len(voices)} voice); "
          f"times are seconds relative to the new ZmqIngress replica being RUNNING")
    assert failed_http == [], f"{len(failed_http)} HTTP requests failed: {failed_http[:20]}"
    assert lost == {}, f"{len(lost)} of {len(traffic.zmq)} ZMQ requests never answered: {sorted(lost.values())}"
    assert wrong == {}, wrong
    assert after, "no ZMQ answer arrived for a request sent after the handover"
    assert len(traffic.http_results) > 40 and len(voices) >= 3
