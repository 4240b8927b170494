"""The trust boundary, through the real doors of the real graph (real Ray, real sockets, real servers).

The graph is deployed once for this module with production-style settings: keys required (a service
key, plus a keys file with an admin and a user key, stored as SHA-256 digests), a ZMQ allow-list that
holds only the gateway's address (127.0.0.2; the tests' other sockets come from 127.0.0.1), a low
per-user rate limit, a webhook signing secret, and one allowed outbound host (127.0.0.3) that serves
a redirect and receives webhooks. Afterwards the session's shared local graph is put back.

Each test is one hole of the trust issue, shown closed.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import json
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psutil
import pytest
import zmq
from standardwebhooks import Webhook

from serve_app.security.keys import key_digest
from tests.fixtures.gateway_client import Event, GatewayClient, connected_client, new_id
from tests.fixtures.ports import free_ports
from tests.fixtures.ray_cluster import ROOT, RayCluster, wait_http_ready
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav, sine_wav_bytes
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

GATEWAY_ADDRESS = "127.0.0.2"  # the only peer on the ZMQ allow-list
OUTSIDER_ADDRESS = "127.0.0.1"
ALLOWED_OUTBOUND = "127.0.0.3"  # the one host audioUrl/webhooks may reach although it is loopback
SERVICE_KEY = "svc-" + secrets.token_hex(16)
ADMIN_KEY = "adm-" + secrets.token_hex(16)
ALICE_KEY = "usr-" + secrets.token_hex(16)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
PER_USER_LIMIT = 5
T = TypeVar("T")


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, factory()).result()


@dataclass
class Receiver:
    """A plain HTTP server on an allowed outbound address: serves audio, a redirect, and takes webhooks."""

    port: int
    audio: bytes
    redirect_to: str = ""
    hits: list[str] = field(default_factory=list)
    webhooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


def start_receiver(host: str, audio: bytes) -> tuple[Receiver, ThreadingHTTPServer]:
    state = Receiver(port=0, audio=audio)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.hits.append(self.path)
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(state.audio)))
            self.end_headers()
            self.wfile.write(state.audio)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.webhooks.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer((host, 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


@dataclass
class SecureGraph:
    http_url: str
    pull_port: int
    pub_port: int
    receiver: Receiver
    trap: Receiver  # a loopback server nothing may reach: any hit is a hole
    french: bytes

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=120)

    async def gateway(self) -> GatewayClient:
        return await connected_client(self.pull_port, self.pub_port, timeout_s=120, source=GATEWAY_ADDRESS)


@pytest.fixture(scope="module")
def secure_graph(
    ray_cluster: RayCluster,
    tmp_path_factory: pytest.TempPathFactory,
    graph_extra_settings: dict[str, Any],
    _local_graph_state: dict[str, LocalGraph],
) -> Iterator[SecureGraph]:
    tmp = tmp_path_factory.mktemp("secure-graph")
    french = convert(espeak_wav(FRENCH_5S, tmp / "fr.wav"), "m4a")
    receiver, server = start_receiver(ALLOWED_OUTBOUND, sine_wav_bytes(1.0))
    trap, trap_server = start_receiver("127.0.0.1", sine_wav_bytes(1.0))
    receiver.redirect_to = f"http://127.0.0.1:{trap.port}/audio.wav"
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps([
        {"name": "ops", "sha256": key_digest(ADMIN_KEY), "role": "admin"},
        {"name": "alice-app", "sha256": key_digest(ALICE_KEY), "role": "user", "user_id": "alice"},
    ]))
    pull, pub = free_ports(2)
    settings = {
        **graph_extra_settings,
        "auth": "required",
        "api_keys": [SERVICE_KEY],
        "api_keys_file": str(keys_file),
        "zmq_host": "127.0.0.1",
        "zmq_pull_port": pull,
        "zmq_pub_port": pub,
        "zmq_allowed_peers": [f"{GATEWAY_ADDRESS}/32"],
        "rate_limit_per_user": f"{PER_USER_LIMIT}/minute",
        "webhook_secret": WEBHOOK_SECRET,
        "outbound_allowed_hosts": [ALLOWED_OUTBOUND],
    }
    ray_cluster.deploy(ROOT / "serve_config.local.yaml", tmp, settings=settings)
    ray_cluster.wait_running()
    http_url = f"http://127.0.0.1:{ray_cluster.http_port}"
    wait_http_ready(http_url)  # /ready needs no key: probes stay open
    graph = SecureGraph(http_url, pull, pub, receiver, trap, french)
    run(lambda: _close_after_pong(graph))
    try:
        yield graph
    finally:
        server.shutdown()
        trap_server.shutdown()
        local = _local_graph_state.get("graph")
        if local is not None:
            local.deploy()


async def _close_after_pong(graph: SecureGraph) -> None:
    (await graph.gateway()).close()


def gateway_call(graph: SecureGraph, body: dict[str, Any], done: Callable[[Event], bool],
                 *binaries: bytes, timeout_s: float = 240) -> list[Event]:
    async def go() -> list[Event]:
        client = await graph.gateway()
        try:
            await client.send(body, *binaries)
            key = body.get("taskId") or body.get("request_id") or body["messageId"]
            return await client.events_for(key, done, timeout_s)
        finally:
            client.close()

    return run(go)


def is_final(*types: str) -> Callable[[Event], bool]:
    return lambda e: e.type in types


# ---- HTTP: keys, roles, scopes ----

def test_http_needs_a_key_except_for_probes(secure_graph: SecureGraph) -> None:
    with secure_graph.http() as anonymous:
        for path in ("/live", "/ready"):
            assert anonymous.get(path).status_code == 200, path
        for method, path in (("GET", "/health"), ("GET", "/stats"), ("GET", "/api/v1/voice/profiles/alice"),
                             ("POST", "/translate")):
            r = anonymous.request(method, path, json={"text": "Bonjour", "target_language": "en"})
            assert r.status_code == 401, (path, r.text)
            assert r.json()["errorCode"] == "unauthorized" and r.json().get("requestId")
    with secure_graph.http("not-a-key") as wrong:
        assert wrong.get("/health").status_code == 401
    with httpx.Client(base_url=secure_graph.http_url, headers={"X-API-Key": SERVICE_KEY}) as service:
        assert service.get("/health").status_code == 200


def test_a_user_key_reaches_only_its_own_voice_data(secure_graph: SecureGraph) -> None:
    with secure_graph.http(ALICE_KEY) as alice:
        assert alice.get("/api/v1/voice/profiles/bob").status_code == 403
        assert alice.delete("/api/v1/voice/profiles/bob").status_code == 403
        assert alice.get("/api/v1/voice/profiles").status_code == 403  # listing everyone's is for services
        files = {"audio": ("fr.m4a", secure_graph.french, "audio/mp4")}
        r = alice.post("/api/v1/voice/translate", files=files, data={"target_languages": "en", "user_id": "bob"})
        assert r.status_code == 403, r.text  # nobody speaks into another user's profile
        own = alice.get("/api/v1/voice/profiles/alice")  # other suites may have made alice's profile
        assert own.status_code in (200, 404) and own.json().get("errorCode") != "forbidden", own.text
    with secure_graph.http(ADMIN_KEY) as admin:
        assert admin.get("/api/v1/voice/profiles").status_code == 200


# ---- rate limits on both doors ----

def test_rate_limits_answer_429_and_rate_limited(secure_graph: SecureGraph) -> None:
    with secure_graph.http(ALICE_KEY) as alice:
        codes = [alice.get("/api/v1/voice/profiles/alice") for _ in range(PER_USER_LIMIT + 2)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["Retry-After"]) >= 1 and limited[0].json()["errorCode"] == "rate_limited"

    async def zmq_burst() -> list[Event]:
        client = await secure_graph.gateway()
        try:
            tasks = [new_id("rl") for _ in range(PER_USER_LIMIT + 2)]
            for task in tasks:
                await client.send({"type": "voice_profile_get", "taskId": task, "userId": "carol"})
            return [await client.wait_for(lambda e, t=task: e.get("taskId") == t, 60) for task in tasks]
        finally:
            client.close()

    events = run(zmq_burst)
    rate_limited = [e for e in events if e.get("errorCode") == "RATE_LIMITED"]
    assert rate_limited, [(e.type, e.get("errorCode")) for e in events]
    assert isinstance(rate_limited[0]["retryAfterMs"], int) and rate_limited[0]["retryAfterMs"] > 0


# ---- ZMQ: peers ----

def test_a_zmq_peer_outside_the_allow_list_gets_nothing(secure_graph: SecureGraph) -> None:
    async def outsider() -> list[Event]:
        client = GatewayClient(secure_graph.pull_port, secure_graph.pub_port, source=OUTSIDER_ADDRESS)
        try:
            task = new_id("x")
            for body in ({"type": "ping", "timestamp": 1},
                         {"type": "translation", "taskId": task, "messageId": "m", "text": "Bonjour",
                          "sourceLanguage": "fr", "targetLanguages": ["en"]}):
                for _ in range(5):
                    try:  # a refused PUSH has no peer to hand the message to: it must not block the test
                        await client.push.send(json.dumps(body).encode(), flags=zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                    await asyncio.sleep(0.2)
            got = []
            while (event := await client.recv(2.0)) is not None:
                got.append(event)
            return got
        finally:
            client.close()

    assert run(outsider) == []
    assert run(lambda: _pong(secure_graph)).type == "pong"  # the gateway's own address still works


async def _pong(graph: SecureGraph) -> Event:
    client = await graph.gateway()
    try:
        await client.send({"type": "ping", "timestamp": 1})
        return await client.wait_for(lambda e: e.type == "pong", 30)
    finally:
        client.close()


# ---- outbound requests and local paths ----

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{trap}/audio.wav",
    "http://localhost:{trap}/audio.wav",
    "http://169.254.169.254/latest/meta-data/",
    "http://{allowed}:{receiver}/redirect",  # an allowed host redirecting to loopback
])
def test_audio_url_to_internal_addresses_is_refused(secure_graph: SecureGraph, url: str) -> None:
    target = url.format(trap=secure_graph.trap.port, allowed=ALLOWED_OUTBOUND, receiver=secure_graph.receiver.port)
    hits_before = len(secure_graph.trap.hits)
    task = new_id("url")
    [event] = gateway_call(secure_graph, {"type": "transcription_only", "taskId": task, "messageId": "m1",
                                          "attachmentId": new_id("a"), "audioUrl": target},
                           is_final("transcription_completed", "transcription_error"), timeout_s=60)
    assert event.type == "transcription_error" and event["errorCode"] == "invalid_request", event.body
    assert len(secure_graph.trap.hits) == hits_before  # nothing internal was fetched


def test_audio_url_on_an_allowed_host_still_works(secure_graph: SecureGraph) -> None:
    task = new_id("url")
    url = f"http://{ALLOWED_OUTBOUND}:{secure_graph.receiver.port}/ok.wav"
    [event] = gateway_call(secure_graph, {"type": "transcription_only", "taskId": task, "messageId": "m1",
                                          "attachmentId": new_id("a"), "audioUrl": url},
                           is_final("transcription_completed", "transcription_error"), timeout_s=120)
    assert "/ok.wav" in secure_graph.receiver.hits  # fetched; a sine has no speech, so either answer is fine


def test_audio_path_is_refused_without_saying_whether_the_file_exists(secure_graph: SecureGraph) -> None:
    errors = []
    for path in ("/etc/passwd", "/nonexistent/secret.wav"):
        [event] = gateway_call(secure_graph, {"type": "transcription_only", "taskId": new_id("p"), "messageId": "m1",
                                              "attachmentId": new_id("a"), "audioPath": path},
                               is_final("transcription_completed", "transcription_error"), timeout_s=60)
        assert event.type == "transcription_error", event.body
        errors.append(event["error"])
    assert errors[0] == errors[1] and "root:" not in errors[0]


# ---- bounds: an npz bomb and a 200-language message ----

def pipeline_rss() -> int:
    for proc in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:translator:Pipeline" in part for part in proc.info["cmdline"] or []):
            return proc.memory_info().rss
    raise AssertionError("no Pipeline replica process found")


def test_an_npz_bomb_and_200_languages_are_refused_without_a_memory_jump(secure_graph: SecureGraph) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, embedding=np.zeros(32 * 1024 * 1024 // 4, dtype=np.float32))  # 32 MB inflated
    bomb = buf.getvalue()
    assert len(bomb) < 64 * 1024  # under the frame cap: only the declared uncompressed size can refuse it
    before = pipeline_rss()
    task = new_id("bomb")
    events = gateway_call(secure_graph, {
        "type": "audio_process", "taskId": task, "messageId": "m-bomb", "attachmentId": new_id("a"),
        "senderId": "u-bomb", "targetLanguages": ["en"], "existingVoiceProfile": {"profileId": "vfp_x", "userId": "u0"},
        "useOriginalVoice": True,
        "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4", "voiceProfile": 2},
    }, is_final("audio_process_error", "audio_process_completed"), secure_graph.french, bomb, timeout_s=240)
    assert events[-1].type == "audio_process_error", [e.type for e in events]

    languages = [f"l{i:03d}" for i in range(200)]
    task = new_id("many")
    events = gateway_call(secure_graph, {"type": "translation", "taskId": task, "messageId": "m-many",
                                         "text": "Bonjour", "sourceLanguage": "fr", "targetLanguages": languages},
                          is_final("translation_error", "translation_completed"), timeout_s=60)
    assert events[0].type == "translation_error", events[0].body
    time.sleep(2.0)
    assert pipeline_rss() - before < 150 * 1024 * 1024


# ---- data isolation ----

def test_a_different_audio_under_a_known_attachment_id_is_transcribed_again(
    secure_graph: SecureGraph, tmp_path: Path
) -> None:
    attachment = new_id("att")
    other = convert(espeak_wav("Le chat dort sur le canapé rouge.", tmp_path / "other.wav"), "m4a")
    texts = []
    for audio in (secure_graph.french, other):
        task = new_id("tr")
        [event] = gateway_call(secure_graph, {"type": "transcription_only", "taskId": task, "messageId": "m1",
                                              "attachmentId": attachment,
                                              "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4"}},
                               is_final("transcription_completed", "transcription_error"), audio, timeout_s=180)
        assert event.type == "transcription_completed", event.body
        texts.append(event["transcription"]["text"].lower())
    assert texts[0] != texts[1] and "chat" in texts[1]


# ---- signed webhooks ----

def test_async_job_webhook_is_signed(secure_graph: SecureGraph) -> None:
    task = new_id("job")
    url = f"http://{ALLOWED_OUTBOUND}:{secure_graph.receiver.port}/hook?token=secret"
    events = gateway_call(secure_graph, {
        "type": "voice_translate_async", "taskId": task, "userId": "dave",
        "audioBase64": base64.b64encode(secure_graph.french).decode(), "targetLanguages": ["en"],
        "webhookUrl": url,
    }, is_final("voice_translation_completed", "voice_translation_failed"), timeout_s=300)
    assert events[-1].type == "voice_translation_completed", events[-1].body
    deadline = time.monotonic() + 30
    while not secure_graph.receiver.webhooks and time.monotonic() < deadline:
        time.sleep(0.5)
    headers, body = secure_graph.receiver.webhooks[-1]
    payload = Webhook(WEBHOOK_SECRET).verify(body, headers)  # raises on a bad or missing signature
    assert payload["jobId"] == events[-1]["jobId"]
    with pytest.raises(Exception):  # noqa: B017 - any verification failure will do: a forged body is refused
        Webhook(WEBHOOK_SECRET).verify(body.replace(b"completed", b"xompleted"), headers)


# ---- the gateway's flow, unchanged, with production-style settings ----

def test_the_gateway_flow_passes_with_production_settings(secure_graph: SecureGraph) -> None:
    task = new_id("t")

    async def flow() -> list[Event]:
        client = await secure_graph.gateway()
        try:
            await client.send({"type": "translation", "taskId": task, "messageId": "m-ok",
                               "text": "Bonjour, comment allez-vous ?", "sourceLanguage": "fr",
                               "targetLanguages": ["en", "es"], "modelType": "basic"})
            return [await client.wait_for(lambda e: e.get("taskId") == task and e.type == "translation_completed",
                                          180) for _ in range(2)]
        finally:
            client.close()

    done = run(flow)
    assert {e["targetLanguage"] for e in done} == {"en", "es"}
    with secure_graph.http(SERVICE_KEY) as service:
        r = service.post("/translate", json={"text": "Bonjour", "source_language": "fr", "target_language": "en"})
        assert r.status_code == 200 and r.json()["translated_text"]
