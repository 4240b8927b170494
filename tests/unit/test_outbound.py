"""The outbound guard (`serve_app/security/outbound.py`) and the gateway's `audioUrl` / `audioPath` sources.

Real HTTP servers on 127.0.0.1 that the tests start themselves; they are reachable only when the test
puts 127.0.0.1 (or localhost) in the allow-list. Every refusal of an internal address is asserted to
happen before any connection: the listening server counts zero connections, or a recording transport
saw no request. Nothing here sends a packet anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from pathlib import Path

import httpx
import pytest

from ingress.gateway.audio_sources import AUDIO_PATH_REFUSED, resolve_audio, voice_api_audio
from ingress.gateway.protocol.requests import AudioSource, VoiceAudioRequest
from serve_app.errors import InvalidRequestError, PayloadTooLargeError
from serve_app.security import outbound
from serve_app.security.outbound import (
    OutboundFailedError,
    OutboundRefusedError,
    fetch_bytes,
    is_public_address,
    redact_url,
    vet_url,
)
from serve_app.settings import Settings
from tests.fixtures.loopback_http import Request, loopback_server, respond

pytestmark = pytest.mark.timeout(30)

LOOPBACK = ["127.0.0.1"]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands in for the network: records what would have been sent, answers `body` with 200."""

    def __init__(self, body: bytes = b"audio") -> None:
        self.requests: list[httpx.Request] = []
        self.body = body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=self.body)


async def fetch(url: str, *, allowed: list[str] | None = None, max_bytes: int = 1_000_000, timeout_s: float = 5.0,
                transport: httpx.AsyncBaseTransport | None = None) -> bytes:
    return await fetch_bytes(url, what="audioUrl", allowed_hosts=allowed or [], max_bytes=max_bytes,
                             timeout_s=timeout_s, transport=transport)


async def ok(request: Request, writer: asyncio.StreamWriter) -> None:
    await respond(writer, 200, b"RIFF-audio-bytes")


# --- the address policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
    "2002:a00:1::", "2002:7f00:1::",  # 6to4 of 10.0.0.1 and 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "::127.0.0.1",  # IPv4-compatible (deprecated)
])
def test_internal_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


def test_redacted_url_keeps_scheme_host_port_path_only() -> None:
    assert redact_url("https://user:pw@Hooks.Example.com:8443/cb/x?token=s3cret#frag") == \
        "https://hooks.example.com:8443/cb/x"
    assert redact_url("http://[::1]:9000/a?b=c") == "http://[::1]:9000/a"
    assert redact_url("http://[::1") == "<unparseable url>"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.wav", "gopher://127.0.0.1:6379/_x",
                                 "//example.com/a", "http:///nohost", "not a url at all",
                                 "http://[::1", "http://example.com:99999/a.wav"])
async def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(OutboundRefusedError):
        await vet_url(url, [], "audioUrl")


# --- refused before any connection --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.wav", "http://localhost/a.wav", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/a.wav", "http://[::1]/a.wav", "http://2130706433/a.wav", "http://0x7f.1/a.wav",
    "http://[::ffff:169.254.169.254]/", "https://127.0.0.1:8443/a.wav", "http://0.0.0.0/",
])
async def test_internal_targets_are_refused_without_a_request(url: str) -> None:
    transport = RecordingTransport()
    with pytest.raises(OutboundRefusedError, match="^audioUrl points to a non-public address$"):
        await fetch(url, transport=transport)
    assert transport.requests == []


async def test_a_listening_loopback_server_gets_no_connection_when_not_allowed() -> None:
    async with loopback_server(ok) as server:
        for url in (server.url + "/a.wav", f"http://localhost:{server.port}/a.wav"):
            with pytest.raises(OutboundRefusedError):
                await fetch(url)
        assert server.connections == 0


async def test_any_internal_address_among_the_resolved_ones_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    transport = RecordingTransport()
    with pytest.raises(OutboundRefusedError) as err:
        await fetch("http://media.example/a.wav", transport=transport)
    assert transport.requests == []
    assert "10.1.2.3" not in err.value.message and "93.184" not in err.value.message  # no internal detail


async def test_unresolvable_host_is_a_network_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(outbound, "_resolve", resolve)
    with pytest.raises(OutboundFailedError, match="could not be resolved"):
        await fetch("http://nowhere.example/a.wav", transport=RecordingTransport())


# --- pinning: the request goes to the address that was checked ----------------------------------------------


async def test_request_goes_to_the_vetted_address_even_if_dns_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])  # a rebinding resolver
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(outbound, "_resolve", resolve)
    transport = RecordingTransport(b"audio")
    assert await fetch("https://media.example:8443/a.wav?sig=1", transport=transport) == b"audio"
    assert calls == ["media.example"]  # asked once; httpx never resolves the name itself
    (sent,) = transport.requests
    assert sent.url.host == "93.184.216.34" and sent.url.port == 8443 and sent.url.query == b"sig=1"
    assert sent.headers["host"] == "media.example:8443"
    assert sent.extensions["sni_hostname"] == "media.example"  # TLS still checks the client's host name


async def test_allowed_host_reaches_the_loopback_server_with_its_own_host_header() -> None:
    async with loopback_server(ok) as server:
        assert await fetch(f"http://localhost:{server.port}/a.wav", allowed=["LOCALHOST"]) == b"RIFF-audio-bytes"
        assert await fetch(server.url + "/b.wav", allowed=LOOPBACK) == b"RIFF-audio-bytes"
    assert [r.headers["host"] for r in server.requests] == [f"localhost:{server.port}", f"127.0.0.1:{server.port}"]
    assert [r.target for r in server.requests] == ["/a.wav", "/b.wav"]


async def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy would resolve the name itself
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with loopback_server(ok) as server:
        assert await fetch(server.url + "/a.wav", allowed=LOOPBACK) == b"RIFF-audio-bytes"


# --- redirects ------------------------------------------------------------------------------------------


async def test_redirect_to_a_host_off_the_allow_list_is_refused() -> None:
    async with loopback_server(ok) as target:
        async def redirect(request: Request, writer: asyncio.StreamWriter) -> None:
            await respond(writer, 302, headers={"location": f"http://localhost:{target.port}/secret"})

        async with loopback_server(redirect) as first:
            with pytest.raises(OutboundRefusedError, match="^audioUrl points to a non-public address$"):
                await fetch(first.url + "/a.wav", allowed=LOOPBACK)  # 127.0.0.1 allowed, localhost not
            assert len(first.requests) == 1
        assert target.connections == 0


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"])
async def test_redirect_to_metadata_or_another_scheme_is_refused(location: str) -> None:
    async def redirect(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 301, headers={"location": location})

    async with loopback_server(redirect) as server:
        with pytest.raises(OutboundRefusedError):
            await fetch(server.url + "/a.wav", allowed=LOOPBACK)


async def test_allowed_redirects_are_followed_and_each_hop_checked() -> None:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        if request.target == "/start":
            await respond(writer, 307, headers={"location": "/next"})  # relative to the current URL
        elif request.target == "/next":
            await respond(writer, 308, headers={"location": f"http://127.0.0.1:{server.port}/final"})
        else:
            await respond(writer, 200, b"final-audio")

    async with loopback_server(handler) as server:
        assert await fetch(server.url + "/start", allowed=LOOPBACK) == b"final-audio"
    assert [r.target for r in server.requests] == ["/start", "/next", "/final"]


async def test_at_most_three_redirects() -> None:
    async def loop(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 302, headers={"location": "/again"})

    async with loopback_server(loop) as server:
        with pytest.raises(OutboundRefusedError, match="redirected more than 3 times"):
            await fetch(server.url + "/a.wav", allowed=LOOPBACK)
    assert len(server.requests) == 4  # the first request and three redirects


async def test_error_status_is_refused() -> None:
    async def missing(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 404, b"not here")

    async with loopback_server(missing) as server:
        with pytest.raises(InvalidRequestError, match="^audioUrl answered HTTP 404$"):
            await fetch(server.url + "/a.wav", allowed=LOOPBACK)


# --- size cap and whole deadline ------------------------------------------------------------------------


async def test_size_cap_aborts_mid_stream() -> None:
    sent = {"bytes": 0, "finished": False}

    async def endless(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")  # no length: read until the server stops
        for _ in range(10_000):  # 640 MB if nobody hung up
            writer.write(b"x" * 65536)
            await writer.drain()
            sent["bytes"] += 65536
        sent["finished"] = True

    async with loopback_server(endless) as server:
        with pytest.raises(PayloadTooLargeError, match="^audioUrl download exceeded 100000 bytes$"):
            await fetch(server.url + "/big.wav", allowed=LOOPBACK, max_bytes=100_000)
        await asyncio.sleep(0.2)
    assert not sent["finished"]


async def test_declared_length_over_the_cap_is_refused_before_the_body() -> None:
    async def big(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 50000000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(30)  # the body never comes: only the header can have refused it

    async with loopback_server(big) as server:
        started = time.monotonic()
        with pytest.raises(PayloadTooLargeError):
            await fetch(server.url + "/big.wav", allowed=LOOPBACK, max_bytes=1000, timeout_s=10)
        assert time.monotonic() - started < 5


async def test_slow_drip_hits_the_whole_download_deadline() -> None:
    async def drip(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        for _ in range(1000):  # one byte every 50 ms: each read is quick, the whole is 50 s
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with loopback_server(drip) as server:
        started = time.monotonic()
        with pytest.raises(InvalidRequestError, match=r"^audioUrl took longer than 0.5 s$"):
            await fetch(server.url + "/slow.wav", allowed=LOOPBACK, timeout_s=0.5)
        assert time.monotonic() - started < 3


async def test_connection_refused_names_no_address() -> None:
    async with loopback_server(ok) as server:
        port = server.port
    with pytest.raises(OutboundFailedError) as err:  # the server is gone: nothing listens on the port
        await fetch(f"http://127.0.0.1:{port}/a.wav", allowed=LOOPBACK)
    assert err.value.message == "audioUrl could not be fetched (ConnectError)"


# --- the gateway's audioUrl source ------------------------------------------------------------------------


async def test_audio_url_source_uses_the_guard_and_the_settings() -> None:
    async with loopback_server(ok) as server:
        url = server.url + "/a.wav"
        allowed = Settings(outbound_allowed_hosts=["127.0.0.1"], max_audio_bytes=1000)
        assert await resolve_audio(AudioSource(audioUrl=url), [], allowed) == b"RIFF-audio-bytes"
        request = VoiceAudioRequest(type="voice_analyze", taskId="t1", audioUrl=url)
        assert await voice_api_audio(request, allowed) == b"RIFF-audio-bytes"
        with pytest.raises(OutboundRefusedError, match="non-public"):
            await resolve_audio(AudioSource(audioUrl=url), [], Settings())
        with pytest.raises(PayloadTooLargeError):
            await resolve_audio(AudioSource(audioUrl=url), [], Settings(outbound_allowed_hosts="127.0.0.1",
                                                                        max_audio_bytes=4))
    assert server.connections == 3


@pytest.mark.parametrize("url", ["http://127.0.0.1/a.wav", "http://localhost/a.wav",
                                 "http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.1/a.wav",
                                 "http://[::1]/a.wav"])
async def test_audio_url_source_refuses_internal_targets_before_sending(url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_send(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_send)
    with pytest.raises(InvalidRequestError, match="^audioUrl points to a non-public address$"):
        await resolve_audio(AudioSource(audioUrl=url), [], Settings())


async def test_audio_url_deadline_comes_from_settings() -> None:
    async def hang(request: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with loopback_server(hang) as server:
        settings = Settings(outbound_allowed_hosts=["127.0.0.1"], audio_url_timeout_s=0.3)
        with pytest.raises(InvalidRequestError, match=r"took longer than 0.3 s"):
            await resolve_audio(AudioSource(audioUrl=server.url), [], settings)


# --- audioPath ------------------------------------------------------------------------------------------


def path_settings(*roots: Path, max_audio_bytes: int = 1000) -> Settings:
    return Settings(audio_path_roots=[str(root) for root in roots], max_audio_bytes=max_audio_bytes)


async def read_path(path: str | Path, settings: Settings) -> bytes:
    return await resolve_audio(AudioSource(audioPath=str(path)), [], settings)


async def refusal(path: str | Path, settings: Settings) -> str:
    with pytest.raises(InvalidRequestError) as err:
        await read_path(path, settings)
    assert type(err.value) is InvalidRequestError and err.value.code == "invalid_request"
    return err.value.message


async def test_audio_path_inside_a_root_is_read(tmp_path: Path) -> None:
    (tmp_path / "clip.wav").write_bytes(b"RIFF" * 10)
    assert await read_path(tmp_path / "clip.wav", path_settings(tmp_path)) == b"RIFF" * 10
    assert await voice_api_audio(VoiceAudioRequest(type="voice_analyze", taskId="t1",
                                                   audioPath=str(tmp_path / "clip.wav")),
                                 path_settings(tmp_path)) == b"RIFF" * 10


async def test_audio_path_is_refused_when_no_root_is_configured(tmp_path: Path) -> None:
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    assert await refusal(tmp_path / "clip.wav", Settings(audio_path_roots=[])) == AUDIO_PATH_REFUSED


async def test_every_audio_path_refusal_reads_the_same(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    (root / "folder").mkdir()
    (root / "big.wav").write_bytes(b"x" * 1001)
    (root / "empty.wav").write_bytes(b"")
    os.mkfifo(root / "pipe.wav")
    (root / "escape.wav").symlink_to("/etc/passwd")
    (root / "loop.wav").symlink_to(root / "loop.wav")
    (tmp_path / "outside.wav").write_bytes(b"RIFF")
    settings = path_settings(root)
    texts = {
        "passwd, no roots": await refusal("/etc/passwd", Settings()),
        "passwd, roots elsewhere": await refusal("/etc/passwd", settings),
        "missing, no roots": await refusal("/etc/no-such-file", Settings()),
        "missing inside the root": await refusal(root / "nope.wav", settings),
        "a folder": await refusal(root / "folder", settings),
        "over the cap": await refusal(root / "big.wav", settings),
        "a fifo": await refusal(root / "pipe.wav", settings),
        "symlink inside pointing outside": await refusal(root / "escape.wav", settings),
        "symlink loop": await refusal(root / "loop.wav", settings),
        "dot-dot out of the root": await refusal(f"{root}/../outside.wav", settings),
        "a NUL byte": await refusal(f"{root}/clip\x00.wav", settings),
        "the root's sibling with a shared prefix": await refusal(tmp_path / "audio-other.wav", settings),
    }
    assert set(texts.values()) == {AUDIO_PATH_REFUSED}, texts
    assert await read_path(root / "empty.wav", settings) == b""  # a readable file inside is not refused


async def test_symlink_inside_a_root_to_a_file_inside_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.wav").write_bytes(b"RIFF-real")
    (tmp_path / "alias.wav").symlink_to(tmp_path / "real.wav")
    assert await read_path(tmp_path / "alias.wav", path_settings(tmp_path)) == b"RIFF-real"


async def test_a_root_that_is_a_symlink_is_resolved_too(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "link").symlink_to(real)
    assert await read_path(real / "a.wav", path_settings(tmp_path / "link")) == b"RIFF"


async def test_unreadable_file_inside_a_root_reads_the_same(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    secret.chmod(0)
    assert await refusal(secret, path_settings(tmp_path)) == AUDIO_PATH_REFUSED


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see what was opened")
async def test_a_folder_swapped_between_check_and_open_is_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: the path checks out, then a folder on it becomes a link elsewhere before the open."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.wav").write_bytes(b"RIFF-inside")
    (tmp_path / "outside.wav").write_bytes(b"RIFF-outside")
    real_open = os.open

    def swapped_open(path: object, flags: int, *args: object) -> int:
        return real_open(tmp_path / "outside.wav", flags)  # what the attacker's swap makes the open reach

    monkeypatch.setattr(os, "open", swapped_open)
    assert await refusal(root / "a.wav", path_settings(root)) == AUDIO_PATH_REFUSED
