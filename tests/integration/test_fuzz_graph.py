"""The doors' fuzz against the deployed real graph (issue 10), smaller than the unit runs.

ZMQ: 1,000 hypothesis messages (tests/fixtures/zmq_fuzz.py) in batches through the real sockets of
the graph's ZMQ ingress, from two loopback source addresses (500 each, so the per-peer rate limit
of 600/minute answers none of them and later suites are not throttled): every identifiable request
gets exactly one terminal answer, and the door pongs afterwards. HTTP: schemathesis over every
operation of the graph's own OpenAPI schema, a few examples each: no 5xx, every response as documented.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from serve_app.settings import Settings
from tests.fixtures.gateway_client import GatewayClient, connected_client
from tests.fixtures.http_fuzz import fuzz_every_operation
from tests.fixtures.zmq_fuzz import Ledger, drafts, route_models, send_batch, settle, summary
from tests.integration.local_graph import LocalGraph

pytestmark = pytest.mark.integration

T = TypeVar("T")
BATCH = 50
PEERS = ("127.0.0.5", "127.0.0.6")
BATCHES = 20  # 1,000 messages, half from each peer
MAX_STRING = 12_000
HTTP_EXAMPLES = 4  # per operation


@dataclass
class Peers:
    loop: asyncio.AbstractEventLoop
    clients: list[GatewayClient]
    settings: Settings
    ledgers: list[Ledger] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)


@pytest.fixture(scope="module")
def peers(local_graph: LocalGraph) -> Iterator[Peers]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="graph-fuzz", daemon=True)
    thread.start()
    clients: list[GatewayClient] = []
    try:
        for source in PEERS:
            clients.append(asyncio.run_coroutine_threadsafe(connected_client(
                local_graph.zmq_pull_port, local_graph.zmq_pub_port, 60, source=source), loop).result(90))
        yield Peers(loop, clients, Settings(), [Ledger(prefix=f"gf{i}-") for i in range(len(PEERS))])
    finally:
        for client in clients:
            loop.call_soon_threadsafe(client.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@settings(max_examples=BATCHES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_messages_to_the_graph_are_each_answered(peers: Peers, data: st.DataObject) -> None:
    s = peers.settings
    models = route_models(s)
    batch = data.draw(st.lists(drafts(models, s.max_json_depth, MAX_STRING), min_size=BATCH, max_size=BATCH))
    which = sum(ledger.sent for ledger in peers.ledgers) // BATCH % len(PEERS)
    client, ledger = peers.clients[which], peers.ledgers[which]
    tokens = peers.run(send_batch(client, ledger, batch, set(models), s, answer_timeout_s=120))
    missing = [t for t in tokens if not ledger.complete(t)]
    assert not missing, [(t, ledger.expected[t], ledger.frames[t]) for t in missing[:3]]


def test_after_the_graph_fuzz_nothing_was_answered_twice_and_it_pongs(peers: Peers) -> None:
    assert sum(ledger.sent for ledger in peers.ledgers) == BATCH * BATCHES
    for client, ledger in zip(peers.clients, peers.ledgers, strict=True):
        peers.run(settle(client, ledger, jobs_timeout_s=120))
        assert not ledger.problems(), ledger.problems()[:10]
        pong = peers.run(client.ping_until_pong(timeout_s=30))
        assert pong["translator_status"] == "alive"
        print(f"\nZMQ graph fuzz ({ledger.prefix}): {summary(ledger)}")


def test_http_fuzz_of_the_graph_never_5xx_and_answers_as_documented(local_graph: LocalGraph) -> None:
    spec = httpx.get(f"{local_graph.http_url}/openapi.json", timeout=60).raise_for_status().json()
    outcome = fuzz_every_operation(spec, local_graph.http_url, max_examples=HTTP_EXAMPLES, timeout_s=300)
    print(f"\nHTTP graph fuzz: {outcome.summary()}")
    assert not outcome.failures, outcome.report()
