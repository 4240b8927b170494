"""Who may talk to the ZMQ door, over real sockets: the ZAP allow-list, CURVE, unsafe binds, rate limits.

A refused peer must get nothing at all (no request served, no event received), a door open beyond
loopback with no access control must refuse to start, and a peer or user over its rate limit hears
back with its request's own error event and `retryAfterMs`, while pings still pong.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq.auth

from ingress.gateway.protocol.events import GenericError
from ingress.gateway.server import GatewayServer, build_gateway
from ingress.gateway.zap import DoorSecurity, address_in, is_loopback_host, parse_networks
from serve_app.errors import PrerequisiteError
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings
from tests.fixtures.fake_stages import FakeStages
from tests.fixtures.gateway_client import GatewayClient, connected_client, new_id
from tests.fixtures.gateway_server import curve_client, gateway_settings, running_gateway
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

AUDIO = sine_wav_bytes(1.0)


def translation(task_id: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "translation", "taskId": task_id, "messageId": f"m-{task_id}", "text": "Bonjour",
            "sourceLanguage": "fr", "targetLanguages": targets, "conversationId": "conv", **extra}


async def try_send(client: GatewayClient, body: dict[str, Any]) -> None:
    """A refused PUSH has no pipe to queue into once its handshake fails: a send may block, never arrive."""
    try:
        await asyncio.wait_for(client.send(body), 0.05)
    except TimeoutError:
        pass


async def refused(server: GatewayServer, client: GatewayClient) -> None:
    """Nothing the client pushes is read, nothing the server publishes reaches it."""
    for _ in range(10):
        await try_send(client, {"type": "ping", "timestamp": 1})
        await try_send(client, translation(new_id(), ["en"]))
        await server.publish(GenericError(error="broadcast", errorCode="test"))
        assert await client.recv(0.1) is None
    assert server.auth is not None and server.auth.denied >= 2  # both sockets' handshakes were refused
    assert sum(server.router.state.received.values()) == 0
    assert server.stats()["refusedConnections"] == server.auth.denied


def build(**overrides: Any) -> GatewayServer:
    s = gateway_settings(**overrides)
    return build_gateway(VoicePipeline(FakeStages(), s), s)


# ---- the allow-list (NULL mechanism, what the gateway speaks today) ----

async def test_peer_outside_the_allow_list_gets_nothing(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, zmq_allowed_peers=["10.0.0.0/8", "192.168.1.20"]) as server:
        client = GatewayClient(server.settings.zmq_pull_port, server.settings.zmq_pub_port)
        try:
            await refused(server, client)
            assert server.check() is None  # the door itself is fine
        finally:
            client.close()


@pytest.mark.parametrize("peers", [["127.0.0.0/8"], ["10.0.0.0/8", "127.0.0.1"], ["::1/128", "127.0.0.1/32"]])
async def test_peer_inside_the_allow_list_is_served(tmp_path: Path, peers: list[str]) -> None:
    async with running_gateway(tmp_path, zmq_allowed_peers=peers) as server:
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            await client.send(translation(task, ["en"]))
            assert (await client.wait_for(lambda e: e.get("taskId") == task, 5)).type == "translation_completed"
            assert server.auth is not None and server.auth.denied == 0
        finally:
            client.close()


def test_allow_list_matching() -> None:
    networks = parse_networks(["10.0.0.0/8", "192.168.1.20", "fd00::/8"])
    assert address_in("10.1.2.3", networks) and address_in("192.168.1.20", networks)
    assert address_in("::ffff:10.9.9.9", networks)  # an IPv4 peer on a dual-stack socket
    assert address_in("fd12::1", networks)
    assert not address_in("192.168.1.21", networks) and not address_in("127.0.0.1", networks)
    assert not address_in("not-an-address", networks) and not address_in("", networks)


def test_a_malformed_allow_list_stops_the_start() -> None:
    with pytest.raises(PrerequisiteError, match="TRANSLATOR_ZMQ_ALLOWED_PEERS.*10.0.0.0/33"):
        build(zmq_allowed_peers=["10.0.0.0/33"])


# ---- refusing an unprotected door ----

@pytest.mark.parametrize("host", ["0.0.0.0", "*", "10.0.0.5", "gateway.internal", "::"])
def test_unprotected_non_loopback_bind_refuses_to_start(host: str) -> None:
    with pytest.raises(PrerequisiteError) as info:
        build(zmq_host=host)
    message = info.value.message
    assert "TRANSLATOR_ZMQ_ALLOWED_PEERS" in message and "TRANSLATOR_ZMQ_CURVE_SECRET_KEY_FILE" in message
    assert "127.0.0.1" in message


def test_protected_or_loopback_binds_are_accepted(tmp_path: Path) -> None:
    zmq.auth.create_certificates(tmp_path, "server")
    for overrides in ({"zmq_host": "0.0.0.0", "zmq_allowed_peers": ["10.0.0.0/8"]},
                      {"zmq_host": "0.0.0.0", "zmq_curve_secret_key_file": tmp_path / "server.key_secret"},
                      {"zmq_host": "127.0.0.1"}, {"zmq_host": "localhost"}, {"zmq_host": "::1"}):
        build(**overrides).close()


def test_loopback_hosts() -> None:
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "*", "::", "10.0.0.1", "eth0", "example.org"))


# ---- CURVE ----

@pytest.fixture
def certs(tmp_path: Path) -> dict[str, tuple[bytes, bytes]]:
    """server, gateway (trusted: its public cert is in clients/) and stranger key pairs."""
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    out = {}
    for name in ("server", "gateway", "stranger"):
        public_file, secret_file = zmq.auth.create_certificates(keys, name)
        out[name] = zmq.auth.load_certificate(secret_file)
    (clients / "gateway.key").write_bytes((keys / "gateway.key").read_bytes())
    return out


async def test_curve_serves_a_trusted_key_and_refuses_others(tmp_path: Path, certs: dict[str, Any]) -> None:
    server_public = certs["server"][0]
    async with running_gateway(tmp_path, zmq_curve_secret_key_file=tmp_path / "keys" / "server.key_secret",
                               zmq_curve_clients_dir=tmp_path / "clients") as server:
        seen: list[str] = []
        check = server.router.limiter.check

        async def spy(principal: str, user_id: str | None = None) -> None:
            seen.append(principal)
            await check(principal, user_id)

        server.router.limiter.check = spy  # type: ignore[method-assign]
        trusted = curve_client(server, server_public, *certs["gateway"])
        try:
            await trusted.ping_until_pong(10)
            task = new_id()
            await trusted.send(translation(task, ["en"]))
            assert (await trusted.wait_for(lambda e: e.get("taskId") == task, 5)).type == "translation_completed"
            assert seen == [f"curve:{certs['gateway'][0].decode()}"]  # the principal is the client's key
        finally:
            trusted.close()
        received = sum(server.router.state.received.values())
        stranger = curve_client(server, server_public, *certs["stranger"])
        plain = GatewayClient(server.settings.zmq_pull_port, server.settings.zmq_pub_port)  # NULL: no handshake
        try:
            for _ in range(10):
                await try_send(stranger, translation(new_id(), ["en"]))
                await try_send(plain, translation(new_id(), ["en"]))
                await server.publish(GenericError(error="broadcast", errorCode="test"))
                assert await stranger.recv(0.05) is None and await plain.recv(0.05) is None
            assert sum(server.router.state.received.values()) == received
        finally:
            stranger.close()
            plain.close()


async def test_curve_without_a_clients_folder_takes_any_key(tmp_path: Path, certs: dict[str, Any]) -> None:
    async with running_gateway(tmp_path, zmq_curve_secret_key_file=tmp_path / "keys" / "server.key_secret") as server:
        client = curve_client(server, certs["server"][0], *certs["stranger"])
        try:
            await client.ping_until_pong(10)
        finally:
            client.close()


def test_curve_misconfigurations_stop_the_start(tmp_path: Path, certs: dict[str, Any]) -> None:
    with pytest.raises(PrerequisiteError, match="only a public key"):
        build(zmq_curve_secret_key_file=tmp_path / "keys" / "server.key")
    with pytest.raises(PrerequisiteError, match="cannot load"):
        build(zmq_curve_secret_key_file=tmp_path / "keys" / "missing.key_secret")
    with pytest.raises(PrerequisiteError, match="TRANSLATOR_ZMQ_CURVE_CLIENTS_DIR"):
        build(zmq_curve_secret_key_file=tmp_path / "keys" / "server.key_secret",
              zmq_curve_clients_dir=tmp_path / "nowhere")


# ---- rate limits ----

async def test_peer_rate_limit_answers_with_the_request_error_and_retry_after(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, rate_limit="3/minute") as server:
        seen: list[tuple[str, str | None]] = []
        check = server.router.limiter.check

        async def spy(principal: str, user_id: str | None = None) -> None:
            seen.append((principal, user_id))
            await check(principal, user_id)

        server.router.limiter.check = spy  # type: ignore[method-assign]
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            tasks = [new_id() for _ in range(3)]
            for task in tasks:
                await client.send(translation(task, ["en"]))
                served = await client.wait_for(lambda e, t=task: e.get("taskId") == t, 5)
                assert served.type == "translation_completed"
            assert seen[0] == ("peer:127.0.0.1", None)  # pings of the handshake were not counted

            over = new_id()
            await client.send(translation(over, ["en", "es"]))
            events = [await client.wait_for(lambda e: e.get("taskId") == over, 5) for _ in range(2)]
            for e in events:
                assert e.type == "translation_error" and e["errorCode"] == "rate_limited"
                assert isinstance(e["retryAfterMs"], int) and 0 < e["retryAfterMs"] <= 60_000
                assert e["messageId"] == f"m-{over}"
            assert sorted(e["targetLanguage"] for e in events) == ["en", "es"]

            for body, kind, code in [
                ({"type": "voice_languages"}, "voice_api_error", "RATE_LIMITED"),
                ({"type": "audio_process", "messageId": "m1", "attachmentId": "a1", "senderId": "u1",
                  "targetLanguages": ["en"], "binaryFrames": {"audio": 1}}, "audio_process_error", "rate_limited"),
                ({"type": "transcription_only", "binaryFrames": {"audio": 1}}, "transcription_error", "rate_limited"),
            ]:
                task = new_id()
                await client.send({**body, "taskId": task}, AUDIO)
                event = await client.wait_for(lambda e, t=task: e.get("taskId") == t, 5)
                assert (event.type, event["errorCode"]) == (kind, code), event.body
                assert isinstance(event["retryAfterMs"], int) and event["retryAfterMs"] > 0
            request_id = new_id("r")
            await client.send({"type": "voice_profile_compare", "request_id": request_id,
                               "fingerprint_a": {}, "fingerprint_b": {}})
            event = await client.wait_for(lambda e: e.get("request_id") == request_id, 5)
            assert (event.type, event["errorCode"]) == ("voice_profile_error", "rate_limited")

            pong = await client.ping_until_pong(5)  # pings are never rate limited
            assert pong["translator_status"] == "alive"
            assert server.stats()["rateLimited"] == 5
        finally:
            client.close()


async def test_user_rate_limit_counts_per_user(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, rate_limit_per_user="2/minute") as server:
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            audio = base64.b64encode(AUDIO).decode()
            answers = []
            for body in ({"type": "voice_history", "userId": "u1"},
                         {"type": "voice_analyze", "userId": "u1", "audioBase64": audio},
                         {"type": "voice_history", "userId": "u1"},
                         {"type": "voice_history", "userId": "u2"}):
                answers.append(await client.ask(body, 5))
            assert [a.type for a in answers] == ["voice_api_success", "voice_api_success", "voice_api_error",
                                                 "voice_api_success"]
            assert answers[2]["errorCode"] == "RATE_LIMITED" and answers[2]["retryAfterMs"] > 0
            # senderId (audio_process) and user_id (the profile family) name the user just the same.
            request_id = new_id("r")
            await client.send({"type": "voice_profile_verify", "request_id": request_id, "user_id": "u1",
                               "audio_data": audio})
            event = await client.wait_for(lambda e: e.get("request_id") == request_id, 5)
            assert (event.type, event["errorCode"]) == ("voice_profile_error", "rate_limited")
            await client.send({"type": "audio_process", "messageId": "m-rl", "attachmentId": "a-rl",
                               "senderId": "u1", "targetLanguages": ["en"], "binaryFrames": {"audio": 1}}, AUDIO)
            event = await client.wait_for(lambda e: e.get("messageId") == "m-rl", 5)
            assert (event.type, event["errorCode"]) == ("audio_process_error", "rate_limited")
            assert event["taskId"].startswith("audio_")
        finally:
            client.close()


async def test_close_stops_the_authenticator(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as server:
        assert server.auth is not None
    assert server.auth is None
    await asyncio.sleep(0)


@pytest.mark.parametrize("config", ["serve_config.yaml", "serve_config.local.yaml"])
def test_shipped_configs_start_a_protected_door(config: str) -> None:
    """Both profiles must pass the unsafe-bind check: production by its allow-list, local by loopback."""
    root = Path(__file__).resolve().parents[2]
    args = yaml.safe_load((root / config).read_text())["applications"][0]["args"]["settings"]
    zmq_keys = {k: v for k, v in args.items() if k.startswith("zmq_")}
    security = DoorSecurity.from_settings(Settings(**zmq_keys))
    assert security.networks and (config == "serve_config.local.yaml" or "zmq_allowed_peers" in zmq_keys)


async def test_a_failing_zap_request_does_not_end_authentication(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """pyzmq's ZAP task dies with the first exception; ours answers "try again", and the peer does."""
    from zmq.auth.base import Authenticator

    original = Authenticator.handle_zap_message
    calls = []

    async def flaky(self: Authenticator, msg: list[bytes]) -> None:
        calls.append(msg[3])
        if len(calls) == 1:
            raise RuntimeError("a bug in a credentials check")
        await original(self, msg)

    monkeypatch.setattr(Authenticator, "handle_zap_message", flaky)
    async with running_gateway(tmp_path) as server:
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=15)
        client.close()
    assert len(calls) >= 3  # the failed handshake, then both sockets again (one after HANDSHAKE_IVL_MS)
