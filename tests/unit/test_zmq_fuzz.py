"""Fuzzing the ZMQ door through its real sockets (issue 10): 10,000 corrupted messages, in batches.

Messages come from the wire models of every routed type (`tests.fixtures.zmq_fuzz`), corrupted in
every way the protocol says must not hurt: wrong types, missing and extra fields, unknown types,
random frames, huge strings, deep nesting, non-UTF-8 and non-JSON frame 0. The promise checked:
the receive loop never dies, every message that carries an id its type's answers echo gets exactly
one terminal answer (one per target language for a translation) and never a second, an acked async
job ends exactly once, every unreadable frame is counted as malformed, and a ping gets its pong after.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingress.gateway.server import GatewayServer
from tests.fixtures import fake_stages
from tests.fixtures.gateway_client import Event, GatewayClient, connected_client, ids_of
from tests.fixtures.gateway_server import running_gateway
from tests.fixtures.zmq_fuzz import Draft, Ledger, drafts, drain, route_models, send_batch, settle, summary

T = TypeVar("T")

BATCH = 100
BATCHES = 100  # 10,000 messages
MAX_STRING = 20_000


@dataclass
class Door:
    """The gateway and its client on an event loop of their own thread, so hypothesis drives a sync test
    and both tests of this module share one server (the second checks what the whole run left)."""

    loop: asyncio.AbstractEventLoop
    server: GatewayServer
    client: GatewayClient

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="zmq-fuzz-door", daemon=True)
    thread.start()
    delay, fake_stages.DELAY = fake_stages.DELAY, 0.01  # the stages' speed is not what is fuzzed here
    gateway = running_gateway(tmp_path_factory.mktemp("fuzz"), zmq_max_in_flight=2 * BATCH,
                              rate_limit="1000000/minute", rate_limit_per_user="1000000/minute")

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    try:
        server = call(gateway.__aenter__())
        client = call(connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, 10))
        yield Door(loop, server, client)
        client.close()
        call(gateway.__aexit__(None, None, None))
    finally:
        fake_stages.DELAY = delay
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


LEDGER = Ledger()


def test_a_lone_surrogate_echoed_in_an_error_still_gets_the_answer_out(door: Door) -> None:
    """Regression (found by this fuzz): a `\\ud800` escape in conversationId, echoed by translation_error,
    or in a dict key named by a validation message, made the event unencodable: no answer at all."""
    frames = {
        "sg-1": b'{"type":"translation","taskId":"sg-1","text":"","targetLanguages":["en"],"conversationId":"\\ud800"}',
        "sg-2": b'{"type":"audio_process","taskId":"sg-2","messageId":"m","attachmentId":"a","senderId":"u",'
                b'"targetLanguages":["en"],"voiceCloneParams":{"\\ud800":1}}',
    }

    async def answers() -> dict[str, Event]:
        for frame in frames.values():
            await door.client.send(frame)
        return {t: await door.client.wait_for(lambda e, t=t: t in ids_of(e.body), 10) for t in frames}

    got = door.run(answers())
    assert got["sg-1"].type == "translation_error" and got["sg-1"]["errorCode"] == "invalid_request"
    assert got["sg-1"]["conversationId"] == "\ud800"  # sent back as the JSON escape it came in
    assert got["sg-2"].type == "audio_process_error" and got["sg-2"]["errorCode"] == "invalid_request"


@settings(max_examples=BATCHES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_fuzzed_batches_never_kill_the_loop_and_each_request_is_answered(door: Door, data: st.DataObject) -> None:
    s = door.server.settings
    models = route_models(s)
    batch = data.draw(st.lists(drafts(models, s.max_json_depth, MAX_STRING), min_size=BATCH, max_size=BATCH))
    door.run(one_batch(door, batch, set(models)))


async def one_batch(door: Door, batch: list[Draft], kinds: set[str]) -> None:
    server = door.server
    malformed_before = server.malformed
    tokens = await send_batch(door.client, LEDGER, batch, kinds, server.settings)
    unreadable = sum(not LEDGER.expected[t].readable for t in tokens)
    deadline = time.monotonic() + 10
    while server.malformed - malformed_before < unreadable and time.monotonic() < deadline:
        await drain(door.client, LEDGER, time.monotonic() + 0.05)
    server.check()  # the receive loop is alive
    assert server.malformed - malformed_before == unreadable
    missing = [t for t in tokens if not LEDGER.complete(t)]
    assert not missing, [(t, LEDGER.expected[t], LEDGER.frames[t], LEDGER.answered(t)) for t in missing[:3]]


def test_after_the_fuzz_nothing_was_answered_twice_and_the_door_pongs(door: Door) -> None:
    assert LEDGER.sent == BATCH * BATCHES, "hypothesis ran fewer batches than planned"
    door.run(finish(door))


async def finish(door: Door) -> None:
    await settle(door.client, LEDGER)
    door.server.check()
    assert not LEDGER.problems(), LEDGER.problems()[:10]
    pong = await door.client.ping_until_pong(timeout_s=10)
    assert pong["translator_status"] == "alive"
    print(f"\nZMQ fuzz: {summary(LEDGER)}, malformed counted {door.server.malformed}")
