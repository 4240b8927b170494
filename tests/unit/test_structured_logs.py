"""Log context: the gateway's ids on every line of the task serving a message, and the service's loggers
writing through Serve's handlers (its JSON file) when Serve has configured them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.observability import logs
from tests.fixtures.gateway_client import connected_client, new_id
from tests.fixtures.gateway_server import running_gateway


class JsonLines(logging.Handler):
    """Stands in for Serve's replica handler: one JSON object per record, extra attributes included."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append({"message": record.getMessage(), "logger": record.name,
                           **{k: v for k, v in vars(record).items() if k in ("taskId", "messageId")}})


@pytest.fixture
def serve_handler() -> Iterator[JsonLines]:
    """A configured `ray.serve` logger, as inside a replica; every logger put back afterwards."""
    serve_logger = logging.getLogger(logs.SERVE_LOGGER)
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
                    logging.getLogger(name).level) for name in (logs.SERVE_LOGGER, *logs.APP_LOGGERS)}
    handler = JsonLines()
    serve_logger.handlers = [handler]
    serve_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for name, (handlers, propagate, level) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)
        logs.set_request_id_hook(None)


def test_gateway_request_id_prefers_task_id() -> None:
    assert logs.gateway_request_id({"taskId": "t1", "messageId": "m1"}) == "t1"
    assert logs.gateway_request_id({"request_id": "r1", "messageId": "m1"}) == "r1"
    assert logs.gateway_request_id({"messageId": "m1"}) == "m1"
    assert logs.gateway_request_id({"taskId": 5, "messageId": "x" * 200}) is None


def test_service_loggers_write_through_serve_handlers_with_the_ids(serve_handler: JsonLines) -> None:
    logs.configure_replica_logging()
    logs.configure_replica_logging()  # idempotent: one filter, one handler
    serve_handlers = logging.getLogger(logs.SERVE_LOGGER).handlers
    assert serve_handler in serve_handlers and logging.getLogger("serve_app").handlers == serve_handlers
    assert len([f for f in serve_handler.filters if isinstance(f, logs.RequestContextFilter)]) == 1
    bound: list[str] = []
    logs.set_request_id_hook(bound.append)

    async def serve_one(raw: dict[str, str]) -> None:
        logs.bind_gateway_request(raw)
        logging.getLogger("ingress.gateway.router").info("served")

    async def main() -> None:
        await asyncio.gather(serve_one({"taskId": "t-1", "messageId": "m-1"}), serve_one({"messageId": "m-2"}))
        logging.getLogger("serve_app.x").info("outside any request")

    asyncio.run(main())
    by_message = {(line.get("taskId"), line.get("messageId")) for line in serve_handler.lines}
    assert by_message == {("t-1", "m-1"), (None, "m-2"), (None, None)}
    assert sorted(bound) == ["m-2", "t-1"]  # each task bound its own id as the request id


def test_outside_serve_plain_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger(logs.SERVE_LOGGER), "handlers", [])
    called: list[dict[str, object]] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: called.append(kw))
    logs.configure_replica_logging()
    assert called and called[0]["format"] == logs.PLAIN_FORMAT


async def test_zmq_door_logs_each_request_with_its_ids(tmp_path: Path, serve_handler: JsonLines) -> None:
    logs.configure_replica_logging()
    bound: list[str] = []
    logs.set_request_id_hook(bound.append)
    async with running_gateway(tmp_path) as server:
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            await client.send({"type": "translation", "taskId": task, "messageId": "m-42", "text": "Bonjour",
                               "sourceLanguage": "fr", "targetLanguages": ["en"]})
            await client.wait_for(lambda e: e.get("taskId") == task, 10)
        finally:
            client.close()
    served = [line for line in serve_handler.lines if "served in" in str(line["message"])]
    assert served and served[0]["taskId"] == task and served[0]["messageId"] == "m-42"
    assert task in bound
    assert all("Bonjour" not in json.dumps(line) for line in serve_handler.lines)  # no message text either
