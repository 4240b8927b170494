"""Real Redis and MongoDB-wire servers for integration tests, on free ports in temp folders.

``redis-server`` comes from Debian, ``secantusd-py`` (a MongoDB-wire server on WiredTiger) from the
``secantusdb`` dev dependency; both are installed by ``make setup``.  Each server is a subprocess we
own: started, waited for until it answers (Redis PING, MongoDB ``ping``), killed on teardown.

Fixtures (import them into a conftest or a test module):
- ``redis_server`` / ``mongo_server``: session scope, the URL of a server shared by the session;
- ``redis_process`` / ``mongo_process``: function scope, a ``ServerProcess`` the test may ``kill()``
  and ``start()`` again on the same port (and, for MongoDB, the same storage folder).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SETUP_HINT = "run `make setup` (it installs redis-server from Debian and secantusdb into .venv)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_binary(name: str) -> str:
    local = Path(sys.executable).with_name(name)  # console scripts of the venv running the tests
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: {SETUP_HINT}")
    return found


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _mongo_answers(port: int) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(
        f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=300, connectTimeoutMS=300, directConnection=True
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class ServerProcess:
    """One server subprocess on a fixed port; ``kill()`` then ``start()`` restarts it in place."""

    def __init__(self, kind: str, workdir: Path, port: int | None = None, *, durable: bool = False) -> None:
        if kind not in ("redis", "mongo"):
            raise ValueError(kind)
        self.kind = kind
        self.workdir = workdir
        self.port = port or free_port()
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = _find_binary("redis-server" if kind == "redis" else "secantusd-py")

    @property
    def url(self) -> str:
        scheme = "redis" if self.kind == "redis" else "mongodb"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        if self.kind == "redis":
            return [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            ]  # fmt: skip
        storage = str(self.workdir / "data") if self.durable else ":memory:"
        command = [self.binary, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", storage]
        command += ["--log-level", "WARNING"]
        return command + (["--sync-on-commit"] if self.durable else [])

    def answers(self) -> bool:
        return _redis_answers(self.port) if self.kind == "redis" else _mongo_answers(self.port)

    def start(self, timeout_s: float = 20.0) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{self.kind}.log", "ab")
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.answers():
                return self
            time.sleep(0.05)
        self.kill()
        tail = (self.workdir / f"{self.kind}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.kind} server on port {self.port} did not start ({SETUP_HINT}):\n{tail}")

    def kill(self) -> None:
        """SIGKILL, like a crash: no clean shutdown, no flush."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def restart(self) -> ServerProcess:
        self.kill()
        return self.start()


def start_server(kind: str, workdir: Path, *, durable: bool = False, attempts: int = 3) -> ServerProcess:
    """Start on a fresh free port, retrying with another port if one was taken in between."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return ServerProcess(kind, workdir, durable=durable).start()
        except RuntimeError as exc:
            if "not found" in str(exc):
                raise
            last = exc
    raise RuntimeError(f"could not start {kind}: {last}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_server("redis", tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_server("mongo", tmp_path_factory.mktemp("mongo"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server("redis", tmp_path / "redis")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def mongo_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """Durable (on-disk storage, sync on commit) so a kill + restart shows what really persisted."""
    server = start_server("mongo", tmp_path / "mongo", durable=True)
    try:
        yield server
    finally:
        server.kill()
