"""Signed webhooks of async voice jobs (`deliver_webhook`, Standard Webhooks), against real receivers on 127.0.0.1.

Each receiver checks the signature exactly as a customer would, with
`standardwebhooks.Webhook(secret).verify(body, headers)`. Receivers are reachable only because the
test allow-lists 127.0.0.1 (`outbound_allowed_hosts`); the guard's refusals are asserted to happen
before any connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ingress.gateway import jobs
from ingress.gateway.jobs import deliver_webhook, webhook_deadline_s
from ingress.gateway.server import GatewayServer
from serve_app.settings import Settings
from tests.fixtures.gateway_client import connected_client, new_id
from tests.fixtures.gateway_server import running_gateway
from tests.fixtures.loopback_http import Request, loopback_server, respond
from tests.fixtures.ports import free_port
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
PAYLOAD = {"type": "voice_translation_completed", "jobId": "vjob_1", "status": "completed",
           "result": {"text": "Grüße ✓"}, "callbackMetadata": {"orderId": 7}}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "WEBHOOK_BACKOFF_S", 0.05)


def hook_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"webhook_secret": SECRET, "outbound_allowed_hosts": ["127.0.0.1"],
                              "webhook_attempts": 3, "webhook_timeout_s": 2.0}
    return Settings(**{**values, **overrides})


class Receiver:
    """Answers the scripted statuses in turn (the last one repeats) and verifies every signature it gets."""

    def __init__(self, *statuses: int | str, secret: str = SECRET) -> None:
        self.statuses = list(statuses)
        self.verifier = Webhook(secret)
        self.verified: list[Any] = []
        self.failures: list[str] = []

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        try:
            self.verified.append(self.verifier.verify(request.body, request.headers))
        except WebhookVerificationError as exc:
            self.failures.append(str(exc))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status == "hang":
            await asyncio.sleep(30)
        await respond(writer, int(status), b"ok")


async def test_delivered_signed_and_verifiable() -> None:
    receiver = Receiver(200)
    async with loopback_server(receiver) as server:
        assert await deliver_webhook(server.url + "/hooks/voice?token=abc", PAYLOAD, hook_settings(), "vjob_1")
    (request,) = server.requests
    assert receiver.failures == [] and receiver.verified == [PAYLOAD]
    assert request.method == "POST" and request.target == "/hooks/voice?token=abc"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "vjob_1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
    assert request.headers["webhook-signature"].startswith("v1,")


async def test_the_receiver_check_is_real() -> None:
    """Signed with another secret, the same delivery does not verify: the receivers above prove something."""
    receiver = Receiver(200, secret="whsec_" + base64.b64encode(b"other-secret-32-bytes-long......").decode())
    async with loopback_server(receiver) as server:
        await deliver_webhook(server.url, PAYLOAD, hook_settings(), "vjob_1")
    assert receiver.verified == [] and receiver.failures == ["No matching signature found"]


@pytest.mark.parametrize("first", [500, 502, 503, 429, "hang"])
async def test_retried_after_5xx_429_or_timeout_then_delivered(first: int | str) -> None:
    receiver = Receiver(first, 200)
    async with loopback_server(receiver) as server:
        assert await deliver_webhook(server.url, PAYLOAD, hook_settings(webhook_timeout_s=0.5), "vjob_2")
    assert len(server.requests) == 2
    assert {r.headers["webhook-id"] for r in server.requests} == {"vjob_2"}  # the same id on every attempt
    assert receiver.failures == [] and receiver.verified == [PAYLOAD, PAYLOAD]


async def test_retried_after_a_refused_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []
    vet = jobs.vet_url

    async def counting_vet(url: str, *args: Any) -> Any:
        attempts.append(url)
        return await vet(url, *args)

    monkeypatch.setattr(jobs, "vet_url", counting_vet)
    monkeypatch.setattr(jobs, "WEBHOOK_BACKOFF_S", 0.5)
    port = free_port()  # nothing listens yet: the first attempt's connection is refused
    delivery = asyncio.create_task(deliver_webhook(f"http://127.0.0.1:{port}/h", PAYLOAD, hook_settings(), "vjob_3"))
    await asyncio.sleep(0.2)
    assert len(attempts) == 1 and not delivery.done()  # refused, now waiting out the backoff
    async with loopback_server(Receiver(200), port=port) as server:
        assert await delivery
    assert len(attempts) == 2 and len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_other_4xx_is_final_and_not_delivered(status: int, caplog: pytest.LogCaptureFixture) -> None:
    async with loopback_server(Receiver(status, 200)) as server:
        with caplog.at_level(logging.WARNING, logger="ingress.gateway.jobs"):
            assert await deliver_webhook(server.url + "/h", PAYLOAD, hook_settings(), "vjob_4") is False
    assert len(server.requests) == 1
    assert f"not delivered: the receiver answered HTTP {status} (final)" in caplog.text
    assert "delivered (HTTP" not in caplog.text


async def test_persistent_5xx_stops_after_the_attempts() -> None:
    async with loopback_server(Receiver(503)) as server:
        assert await deliver_webhook(server.url, PAYLOAD, hook_settings(webhook_attempts=4), "vjob_5") is False
    assert len(server.requests) == 4


async def test_redirects_are_not_followed() -> None:
    async with loopback_server(Receiver(200)) as target:
        async def redirect(request: Request, writer: asyncio.StreamWriter) -> None:
            await respond(writer, 307, headers={"location": target.url + "/moved"})

        async with loopback_server(redirect) as server:
            assert await deliver_webhook(server.url, PAYLOAD, hook_settings(), "vjob_6") is False
            assert len(server.requests) == 1
    assert target.connections == 0


async def test_the_whole_delivery_has_a_deadline() -> None:
    async with loopback_server(Receiver("hang")) as server:
        settings = hook_settings(webhook_attempts=2, webhook_timeout_s=0.3)
        started = time.monotonic()
        assert await deliver_webhook(server.url, PAYLOAD, settings, "vjob_7") is False
        elapsed = time.monotonic() - started
    assert len(server.requests) == 2
    assert elapsed <= webhook_deadline_s(2, 0.3) + 0.5


def test_deadline_is_attempts_times_timeout_plus_the_backoff_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "WEBHOOK_BACKOFF_S", 0.5)
    assert webhook_deadline_s(1, 10) == 10
    assert webhook_deadline_s(3, 10) == 30 + 0.5 + 1.0
    assert webhook_deadline_s(6, 1) == 6 + 0.5 + 1 + 2 + 4 + 5  # each pause at most WEBHOOK_BACKOFF_MAX_S


@pytest.mark.parametrize("secret", [None, "", "whsec_", "whsec_!!!not-base64!!!"])
async def test_no_usable_secret_means_not_sent(secret: str | None, caplog: pytest.LogCaptureFixture) -> None:
    async with loopback_server(Receiver(200)) as server:
        with caplog.at_level(logging.WARNING, logger="ingress.gateway.jobs"):
            assert await deliver_webhook(server.url, PAYLOAD, hook_settings(webhook_secret=secret), "vjob_8") is False
    assert server.connections == 0
    assert "not sent" in caplog.text


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook",
                                 "http://localhost/hook", "http://[::1]/hook", "ftp://example.com/hook"])
async def test_internal_or_odd_urls_are_never_sent(url: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    async def no_send(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_send)
    with caplog.at_level(logging.WARNING, logger="ingress.gateway.jobs"):
        assert await deliver_webhook(url, PAYLOAD, hook_settings(outbound_allowed_hosts=[]), "vjob_9") is False
    assert "not sent: webhookUrl" in caplog.text


async def test_loopback_receiver_off_the_allow_list_gets_no_connection() -> None:
    async with loopback_server(Receiver(200)) as server:
        assert await deliver_webhook(server.url, PAYLOAD, hook_settings(outbound_allowed_hosts=[]), "v") is False
    assert server.connections == 0


async def test_logged_urls_carry_no_query_or_userinfo(caplog: pytest.LogCaptureFixture) -> None:
    async with loopback_server(Receiver(500)) as server:
        url = f"http://alice:pa55word@127.0.0.1:{server.port}/hooks/v1?token=s3cret-token#frag"
        with caplog.at_level(logging.INFO, logger="ingress.gateway.jobs"):
            assert await deliver_webhook(url, PAYLOAD, hook_settings(webhook_attempts=2), "vjob_10") is False
    assert f"http://127.0.0.1:{server.port}/hooks/v1 " in caplog.text
    for secret in ("s3cret-token", "pa55word", "alice", "frag"):
        assert secret not in caplog.text


# --- through the gateway: voice_translate_async with a webhookUrl -----------------------------------------


@pytest.fixture
async def gateway_server(tmp_path: Path) -> AsyncIterator[GatewayServer]:
    async with running_gateway(tmp_path, zmq_max_in_flight=64, webhook_secret=SECRET,
                               outbound_allowed_hosts=["127.0.0.1"]) as server:
        yield server


async def test_async_job_posts_its_final_event_signed_with_the_job_id(gateway_server: GatewayServer) -> None:
    receiver = Receiver(503, 200)
    s = gateway_server.settings
    client = await connected_client(s.zmq_pull_port, s.zmq_pub_port, timeout_s=10)
    try:
        async with loopback_server(receiver) as hook:
            task = new_id()
            audio = base64.b64encode(sine_wav_bytes(1.0)).decode()
            await client.send({"type": "voice_translate_async", "taskId": task, "userId": "u1", "audioBase64": audio,
                               "targetLanguages": ["en"], "webhookUrl": hook.url + "/done?t=1",
                               "callbackMetadata": {"orderId": 7}})
            final = await client.wait_for(lambda e: e.get("taskId") == task
                                          and e.type.startswith("voice_translation_"), 10)
            for _ in range(100):
                if len(receiver.verified) == 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        client.close()
    assert receiver.failures == []
    assert len(receiver.verified) == 2  # 503, then delivered
    delivered = receiver.verified[-1]
    assert delivered["type"] == final.type == "voice_translation_completed"
    assert delivered["jobId"] == final["jobId"] and delivered["callbackMetadata"] == {"orderId": 7}
    assert {r.headers["webhook-id"] for r in hook.requests} == {final["jobId"]}
    assert json.loads(hook.requests[-1].body) == delivered
