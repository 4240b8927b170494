"""Fixtures the ZMQ unit suites share: a module defines `server` (a running `GatewayServer`, usually
from `tests.fixtures.gateway_server.running_gateway` with its own settings); `gateway` is the chat
gateway's client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ingress.gateway.server import GatewayServer
from tests.fixtures.gateway_client import GatewayClient, connected_client


@pytest.fixture
async def gateway(server: GatewayServer) -> AsyncIterator[GatewayClient]:
    client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
    try:
        yield client
    finally:
        client.close()
