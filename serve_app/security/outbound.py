"""Requests the service makes on a client's behalf (`audioUrl` downloads, job webhooks), kept off internal networks.

A client hands us a URL; without a guard it could make the service fetch cloud metadata
(169.254.169.254), an admin port on loopback or a host on the private network (SSRF). Every hop goes
through `vet_url`:

- scheme http or https only;
- the host is resolved (getaddrinfo, off the event loop) and refused when ANY address it resolves to
  is loopback, private, link-local, shared (100.64/10), multicast, reserved or unspecified, including
  those addresses embedded in IPv6 (IPv4-mapped ::ffff:a.b.c.d, 6to4, NAT64 64:ff9b::/96), unless the
  host is named in `outbound_allowed_hosts`;
- the request then goes to the vetted address itself: the URL is rewritten to the IP, the `Host`
  header keeps the client's host and TLS uses it for SNI and certificate checks (httpx's
  `sni_hostname` extension). DNS is asked once per hop, so a name that resolves to a public address
  for the check and to 127.0.0.1 a moment later (DNS rebinding) cannot switch the target;
- redirects are never followed by httpx: `fetch_bytes` follows at most `max_redirects` itself,
  vetting each hop again; webhooks follow none;
- no proxy from the environment (a proxy would resolve the name itself).

Errors are `InvalidRequestError`s whose text names only what the client gave (`audioUrl`, its host),
never the address it resolved to. Ray-free; `fetch_bytes` adds the whole-download deadline and the size
cap enforced while streaming.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from serve_app.errors import InvalidRequestError, PayloadTooLargeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefusedError(InvalidRequestError):
    """Policy said no (scheme, non-public address, too many redirects): retrying cannot help."""


class OutboundFailedError(InvalidRequestError):
    """The network said no (name did not resolve, connection refused or reset): a retry may help."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True only for a globally routable unicast address (an IPv6 address that embeds an IPv4 one is judged
    by the IPv4 address it reaches)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:  # fe80::1%eth0 and the like: an interface-scoped address is never public
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    return ip.is_global and not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified
    )


def redact_url(url: str | httpx.URL) -> str:
    """scheme://host[:port]/path: what may be logged (no userinfo, query or fragment, which can hold tokens)."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparseable url>"
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path}"


@dataclass(frozen=True)
class VettedTarget:
    """A URL whose host resolved to `ip`, which passed the policy: send the request there and only there."""

    url: httpx.URL
    ip: str

    def request(self, client: httpx.AsyncClient, method: str, *, headers: dict[str, str] | None = None,
                content: bytes | None = None) -> httpx.Request:
        """The request to the pinned IP, with the client's host in `Host` and in TLS (SNI + certificate)."""
        pinned = self.url.copy_with(host=self.ip)
        netloc = self.url.netloc.decode("ascii")
        return client.build_request(method, pinned, headers={**(headers or {}), "Host": netloc}, content=content,
                                    extensions={"sni_hostname": self.url.raw_host.decode("ascii")})


def _allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    return any(host == entry.lower().strip().strip("[]").rstrip(".") for entry in allowed_hosts if entry.strip())


async def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (getaddrinfo runs in the loop's executor, so it never blocks the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def vet_url(url: str | httpx.URL, allowed_hosts: Iterable[str], what: str) -> VettedTarget:
    """Parse, resolve and check `url`; the returned target pins the address that was checked."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise OutboundRefusedError(f"{what} is not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise OutboundRefusedError(f"{what} must be an http or https URL")
    if not parsed.host:
        raise OutboundRefusedError(f"{what} has no host")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise OutboundRefusedError(f"{what} has an invalid port")
    try:
        addresses = await _resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise OutboundFailedError(f"{what} host {parsed.host!r} could not be resolved") from exc
    if not addresses:
        raise OutboundFailedError(f"{what} host {parsed.host!r} could not be resolved")
    if not _allowed(parsed.host, allowed_hosts):
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError as exc:
                raise OutboundRefusedError(f"{what} points to a non-public address") from exc
            if not is_public_address(ip):
                raise OutboundRefusedError(f"{what} points to a non-public address")
    return VettedTarget(url=parsed, ip=addresses[0].split("%", 1)[0])


def outbound_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client that never follows redirects and ignores proxy environment variables."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False, transport=transport)


async def fetch_bytes(url: str, *, what: str, allowed_hosts: Iterable[str], max_bytes: int, timeout_s: float,
                      max_redirects: int = 3, transport: httpx.AsyncBaseTransport | None = None) -> bytes:
    """GET `url` through the guard: every hop vetted, at most `max_redirects` redirects, the whole download
    (resolution, redirects and body) within `timeout_s`, aborted as soon as the body passes `max_bytes`."""
    allowed = list(allowed_hosts)
    try:
        async with asyncio.timeout(timeout_s), outbound_client(timeout_s, transport) as client:
            current: str | httpx.URL = url
            for _hop in range(max_redirects + 1):
                target = await vet_url(current, allowed, what)
                try:
                    response = await client.send(target.request(client, "GET"), stream=True)
                except httpx.TimeoutException:
                    raise TimeoutError from None
                except httpx.HTTPError as exc:
                    raise OutboundFailedError(f"{what} could not be fetched ({type(exc).__name__})") from exc
                try:
                    if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                        try:
                            current = target.url.join(response.headers["location"])
                        except (httpx.InvalidURL, ValueError) as exc:
                            raise OutboundRefusedError(f"{what} redirected to an invalid URL") from exc
                        continue
                    if not 200 <= response.status_code < 300:
                        raise OutboundFailedError(f"{what} answered HTTP {response.status_code}")
                    return await _read_capped(response, what, max_bytes)
                finally:
                    await response.aclose()
            raise OutboundRefusedError(f"{what} redirected more than {max_redirects} times")
    except TimeoutError as exc:
        raise OutboundFailedError(f"{what} took longer than {timeout_s:g} s") from exc


async def _read_capped(response: httpx.Response, what: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    if declared.isdigit() and int(declared) > max_bytes and not encoded:  # the decoded size is capped below
        raise PayloadTooLargeError(f"{what} download exceeded {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLargeError(f"{what} download exceeded {max_bytes} bytes")
            chunks.append(chunk)
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as exc:
        raise OutboundFailedError(f"{what} could not be fetched ({type(exc).__name__})") from exc
    return b"".join(chunks)
