"""The ZMQ door's sockets and receive loop (PROTOCOL.md §1), without Ray, so unit tests run it as is.

It binds PULL and PUB behind ZAP (`zap.DoorSecurity`: an IP allow-list, optionally CURVE; a door
open beyond loopback with neither refuses to start), reads multipart messages in one asyncio loop
and hands each request to its own task, bounded by `zmq_max_in_flight`: the loop only parses frame
0, within size and depth bounds (`frame0`), and never waits on the pipeline. Each request carries
its principal, the peer it came from (address, or CURVE key), for the router's rate limits. A
request over the budget is answered at once with its type's error event (`errorCode` busy /
RATE_LIMITED), never with silence. Malformed input (bad JSON, random bytes, frames out of range,
oversize or too deeply nested payloads) is answered where the request can be identified and
logged; the loop keeps going. `check` fails if the loop task has died, so the deployment's health
check can have Serve replace the replica.

Port handover on a redeploy (the old replica drains while the new one starts, same ports): the old
one releases PULL first, so the gateway's PUSH (which keeps connecting) queues what it sends next on
its side, serves what it had already taken, gives the requests in flight a bounded time, answers the rest
with an error event, then releases PUB (`shutdown`). The new one binds PUB
first and PULL second, so it holds no port it cannot serve yet, and reads nothing before a subscriber's
handshake (bounded wait): an answer published before the gateway's SUB has reconnected would be lost.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Sequence
from typing import Any

import zmq
import zmq.asyncio

from ingress.gateway.frame0 import base64_allowance, parse_frame0, refused_unread, sniff
from ingress.gateway.protocol.events import GatewayEvent, GenericError
from ingress.gateway.router import GatewayRouter
from ingress.gateway.zap import DoorSecurity, PeerAuthenticator
from serve_app.errors import BusyError, InvalidRequestError, StageUnavailableError
from serve_app.json_bytes import utf8_json
from serve_app.observability.metrics import IN_FLIGHT, ZMQ_PUBLISHED, ZMQ_REJECTED
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)

SUBSCRIBER_WAIT_S = 2.0  # how long a new door waits for the gateway's SUB before it reads requests anyway


def peer_principal(frame: zmq.Frame) -> str:
    """Who sent a message, from what ZAP recorded: its CURVE key, else its address ("gateway" if unknown)."""
    try:
        user = frame.get("User-Id")
        if user and user != "anonymous":
            return f"curve:{user}"
        return f"peer:{frame.get('Peer-Address')}"
    except (zmq.ZMQError, UnicodeDecodeError):
        return "gateway"


def tcp_address(host: str, port: int) -> str:
    return f"tcp://[{host.strip('[]')}]:{port}" if ":" in host else f"tcp://{host}:{port}"


class GatewayServer:
    """The sockets and the receive loop; what each request means is the router's business."""

    def __init__(self, router: GatewayRouter, settings: Settings) -> None:
        self.router = router
        self.settings = settings
        self.security = DoorSecurity.from_settings(settings)  # refuses an unprotected non-loopback bind
        self.context = zmq.asyncio.Context()
        self.auth: PeerAuthenticator | None = None
        self.pull: zmq.asyncio.Socket | None = None
        self.pub: zmq.asyncio.Socket | None = None
        self.loop_task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.requests: dict[asyncio.Task[None], dict[str, Any]] = {}  # each request task's frame 0, to answer it
        self.side_tasks: set[asyncio.Task[None]] = set()  # busy and malformed-input answers: not counted
        self.pings: set[asyncio.Task[None]] = set()
        self.malformed = 0
        self.rejected_busy = 0
        self.published = 0
        router.state.in_flight = lambda: len(self.tasks)
        IN_FLIGHT.set(0, door="zmq")
        router.state.transport_stats = self.stats

    async def start(self) -> None:
        s = self.settings
        self.auth = self.security.authenticator(self.context)
        self.auth.start()
        self.pull = self.context.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, s.zmq_high_water_mark)
        self.pull.setsockopt(zmq.MAXMSGSIZE, s.zmq_max_message_bytes)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, s.zmq_high_water_mark)
        self.pub.setsockopt(zmq.LINGER, 1000)  # the last error events of a shutdown still go out
        for sock in (self.pull, self.pub):
            self.security.secure(sock)
            sock.setsockopt(zmq.IPV6, int(":" in s.zmq_host))
        watcher = self.pub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.side_tasks.add(asyncio.create_task(self._watch_subscribers(watcher), name="zmq-pub-monitor"))
        await self._bind(self.pub, s.zmq_pub_port)
        await self._bind(self.pull, s.zmq_pull_port)
        self.loop_task = asyncio.create_task(self._receive_loop(), name="zmq-receive-loop")
        await self.router.start(self.publish)
        log.info("ZMQ ingress: PULL %s, PUB %s, %s, at most %d requests in flight",
                 tcp_address(s.zmq_host, s.zmq_pull_port), tcp_address(s.zmq_host, s.zmq_pub_port),
                 self.security.describe(), s.zmq_max_in_flight)

    async def _bind(self, sock: zmq.asyncio.Socket, port: int) -> None:
        """A replaced replica may still hold the port for a moment: retry, then fail loudly."""
        address = tcp_address(self.settings.zmq_host, port)
        deadline = time.monotonic() + self.settings.zmq_bind_timeout_s
        while True:
            try:
                sock.bind(address)
                return
            except zmq.ZMQError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"cannot bind {address}: {exc}. Another process holds the port; set "
                        "TRANSLATOR_ZMQ_PULL_PORT / TRANSLATOR_ZMQ_PUB_PORT (or the zmq_*_port settings) to free ports."
                    ) from exc
                log.warning("%s busy, retrying", address)
                await asyncio.sleep(0.5)

    def check(self) -> None:
        if self.loop_task is None:
            raise RuntimeError("ZMQ receive loop not started")
        if self.loop_task.done():
            exc = None if self.loop_task.cancelled() else self.loop_task.exception()
            raise RuntimeError(f"ZMQ receive loop has stopped: {exc!r}")

    async def publish(self, event: GatewayEvent, binaries: Sequence[bytes] = ()) -> None:
        assert self.pub is not None
        frame0 = utf8_json(event.to_wire())  # a lone surrogate a peer sent cannot sink the answer
        await self.pub.send_multipart([frame0, *binaries], copy=len(binaries) == 0)
        self.published += 1
        ZMQ_PUBLISHED.inc(type=event.type)

    async def _watch_subscribers(self, watcher: zmq.asyncio.Socket) -> None:
        try:
            await watcher.recv_multipart()  # the first completed handshake on PUB
            await asyncio.sleep(0.05)  # its SUBSCRIBE follows the handshake on the same connection
            self.subscribed.set()
        finally:
            # Stop the monitor before closing its socket: a monitor left without a reader stalls
            # the PUB socket's later handshakes (a reconnecting gateway would never be served).
            if self.pub is not None and not self.pub.closed:
                self.pub.disable_monitor()
            watcher.close(linger=0)

    async def _receive_loop(self) -> None:
        assert self.pull is not None
        try:
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBER_WAIT_S)
        except TimeoutError:
            pass  # no gateway yet: what it sends later waits in PULL's queue, its SUB subscribes meanwhile
        while True:
            try:
                parts = await self.pull.recv_multipart(copy=False)
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    return
                log.error("ZMQ receive failed: %s", exc)
                await asyncio.sleep(0.05)
                continue
            try:
                self._dispatch([p.bytes for p in parts], peer_principal(parts[0]))
            except Exception:  # noqa: BLE001 - the loop outlives any single message
                log.exception("dispatch failed; message dropped")

    def _spawn_side(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.side_tasks.add(task)
        task.add_done_callback(self.side_tasks.discard)

    def _dispatch(self, frames: list[bytes], principal: str = "gateway") -> None:
        s = self.settings
        try:
            raw = parse_frame0(frames[0], s.max_json_frame_bytes, s.max_json_depth, base64_allowance(s.max_audio_bytes))
        except InvalidRequestError as exc:
            self.malformed += 1
            ZMQ_REJECTED.inc(reason="malformed")
            log.warning("malformed gateway message from %s (%d frames, %d bytes): %s",
                        principal, len(frames), sum(len(f) for f in frames), exc.message)
            self._spawn_side(self._publish_all(self._malformed_events(frames[0], exc)))
            return
        if raw.get("type") == "ping":
            # Pings skip the request budget (a busy translator still pongs) but have their own bound,
            # since each asks the Pipeline for its figures: a ping flood cannot grow without limit.
            if len(self.pings) >= self.settings.zmq_max_in_flight:
                self.rejected_busy += 1
                ZMQ_REJECTED.inc(reason="busy")
                return
            ping = asyncio.create_task(self.router.handle(raw, frames, self.publish, principal))
            self.pings.add(ping)
            ping.add_done_callback(self.pings.discard)
            return
        if len(self.tasks) >= self.settings.zmq_max_in_flight:
            self.rejected_busy += 1
            ZMQ_REJECTED.inc(reason="busy")
            busy = BusyError(f"translator busy: {len(self.tasks)} requests in flight; retry shortly")
            self._spawn_side(self._publish_all(self.router.error_events(raw, busy)))
            return
        task = asyncio.create_task(self.router.handle(raw, frames, self.publish, principal))
        self.tasks.add(task)
        self.requests[task] = raw
        IN_FLIGHT.set(len(self.tasks), door="zmq")
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.requests.pop(task, None)
        IN_FLIGHT.set(len(self.tasks), door="zmq")

    def _malformed_events(self, frame0: bytes, exc: InvalidRequestError) -> list[GatewayEvent]:
        """A frame refused for its size or depth may still be well-formed: answer with its type's own
        event when the type and ids can be read cheaply. Bad JSON gets the anonymous error, as ever."""
        found = sniff(frame0) if refused_unread(exc) else {}
        if "type" in found:
            return self.router.error_events(found, exc)
        return [GenericError(taskId=found.get("taskId"), messageId=found.get("messageId"),
                             attachmentId=found.get("attachmentId"), request_id=found.get("request_id"),
                             postId=found.get("postId"), error=exc.message, errorCode=exc.code)]

    async def _publish_all(self, events: list[GatewayEvent]) -> None:
        for event in events:
            await self.publish(event)

    def stats(self) -> dict[str, Any]:
        return {
            **self.router.stats(),
            "malformed": self.malformed,
            "rejectedBusy": self.rejected_busy,
            "published": self.published,
            "refusedConnections": self.auth.denied if self.auth is not None else 0,
            "access": self.security.describe(),
            "loopAlive": self.loop_task is not None and not self.loop_task.done(),
            "pullPort": self.settings.zmq_pull_port,
            "pubPort": self.settings.zmq_pub_port,
        }

    async def shutdown(self, drain_s: float) -> None:
        """Stop pulling and release the PULL port (linger 0) so a new replica can bind it; let the
        requests and async jobs in flight finish for up to `drain_s`; answer every request still
        running with its type's error event (a job still running is left to the next replica, which
        reports it interrupted); then close everything."""
        if self.loop_task is not None:
            self.loop_task.cancel()
            await asyncio.gather(self.loop_task, return_exceptions=True)
        if self.pull is not None and not self.pull.closed:
            while await self.pull.poll(timeout=0):  # already queued here: served, not dropped
                parts = await self.pull.recv_multipart(copy=False)
                self._dispatch([p.bytes for p in parts], peer_principal(parts[0]))
            self.pull.close(linger=0)
        jobs = set(self.router.jobs.tasks.values())
        side = {t for t in self.side_tasks | self.pings if t.get_name() != "zmq-pub-monitor"}
        running = self.tasks | jobs | side
        if running:
            log.info("ZMQ ingress shutting down: draining %d requests and jobs for up to %.0f s", len(running), drain_s)
            await asyncio.wait(running, timeout=drain_s)
        late = {task: self._unanswered(raw) for task, raw in self.requests.items() if not task.done()}
        # A job still running is stopped unmarked: its lease runs out and the next replica reports it
        # (voice_translation_failed, job_interrupted, webhook) from the job store.
        self.router.jobs.stopping = True
        for task in (*late, *(j for j in jobs if not j.done())):
            task.cancel()
        await asyncio.gather(*late, *jobs, return_exceptions=True)
        err = StageUnavailableError("the translator is restarting and could not finish this request; send it again")
        for raw in late.values():
            await self._publish_all(self.router.error_events(raw, err))
        if late:
            log.warning("ZMQ ingress shutdown: %d requests did not finish in %.0f s and were answered with an "
                        "error", len(late), drain_s)
        if self.pub is not None and not self.pub.closed:
            self.pub.close(linger=int(max(drain_s, 1.0) * 1000))  # flushes the last answers to the gateway
        self.close()

    def _unanswered(self, raw: dict[str, Any]) -> dict[str, Any]:
        """What is still owed for a request: a text translation only for its languages still running."""
        pending = self.router.text.in_flight.get(raw.get("taskId")) if isinstance(raw.get("taskId"), str) else None
        if (raw.get("type") or "translation") == "translation" and pending:
            return {**raw, "targetLanguages": sorted(pending)}
        return raw

    def close(self) -> None:
        for side in list(self.side_tasks):  # busy/malformed answers and the PUB monitor
            side.cancel()
        if self.loop_task is not None:
            self.loop_task.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.router.close()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        self.context.destroy(linger=0)


def build_gateway(pipeline: VoicePipeline, settings: Settings) -> GatewayServer:
    return GatewayServer(GatewayRouter(pipeline, settings), settings)
