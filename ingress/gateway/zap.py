"""Who may connect to the ZMQ door, decided during the ZMTP handshake (ZAP, RFC 27), before any frame.

Two mechanisms, both on the PULL and the PUB socket:

- NULL (what the chat gateway speaks today, unchanged on its side) with an IP allow-list: the peer's
  address must fall in one of `zmq_allowed_peers` (CIDRs). pyzmq's `Authenticator.allow()` only
  matches exact addresses, so `PeerAuthenticator` checks networks itself, then lets pyzmq finish.
- CURVE, when `zmq_curve_secret_key_file` is set: the sockets are CURVE servers with that key pair;
  clients must hold a certificate from `zmq_curve_clients_dir` (any key when unset). The allow-list,
  when given, still applies on top.

A refused peer gets nothing: its handshake fails, so it can neither push a request nor receive an
event (and libzmq does not reconnect a peer refused by auth, so it does not knock again). A door
bound beyond loopback with neither an allow-list nor CURVE would be open to anyone who can reach
the port, so it refuses to start (`DoorSecurity.from_settings`) and says what to set.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.auth.base import CURVE_ALLOW_ANY

from serve_app.errors import PrerequisiteError
from serve_app.settings import Settings

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# A non-empty ZAP domain makes libzmq consult the handler for NULL connections too.
ZAP_DOMAIN = "voice-translator"
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
MAX_LOGGED_PEERS = 1000
# A handshake not finished by then (a stalled peer, or a ZAP "try again") is dropped and the peer
# reconnects; libzmq's default of 30 s would leave the gateway without a door that long.
HANDSHAKE_IVL_MS = 5000


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect to a socket bound there."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a wildcard (`*`, 0.0.0.0), a hostname or an interface name: assume reachable


def parse_networks(cidrs: list[str]) -> tuple[IPNetwork, ...]:
    """A typo in the allow-list must stop the start, not silently shut the gateway out (or let all in)."""
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise PrerequisiteError(
                f"TRANSLATOR_ZMQ_ALLOWED_PEERS: {cidr!r} is not an IP address or CIDR ({exc}); "
                "write e.g. 10.0.0.0/8,192.168.1.20"
            ) from exc
    return tuple(networks)


def address_in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """The peer address libzmq reports; an IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes
    clients_dir: Path | None  # None: any client key (the traffic is still encrypted)


def load_curve(secret_file: Path, clients_dir: Path | None) -> CurveKeys:
    if not zmq.has("curve"):
        raise PrerequisiteError("TRANSLATOR_ZMQ_CURVE_SECRET_KEY_FILE is set but this libzmq has no CURVE support")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise PrerequisiteError(
            f"TRANSLATOR_ZMQ_CURVE_SECRET_KEY_FILE {secret_file}: cannot load a certificate ({exc}); "
            "make one with zmq.auth.create_certificates(folder, 'server')"
        ) from exc
    if not secret:
        raise PrerequisiteError(
            f"TRANSLATOR_ZMQ_CURVE_SECRET_KEY_FILE {secret_file} holds only a public key: "
            "point it at the `.key_secret` file"
        )
    if clients_dir is not None and not Path(clients_dir).is_dir():
        raise PrerequisiteError(
            f"TRANSLATOR_ZMQ_CURVE_CLIENTS_DIR {clients_dir} is not a folder of client `.key` certificates"
        )
    return CurveKeys(public, secret, clients_dir)


class PeerAuthenticator(AsyncioAuthenticator):
    """pyzmq's ZAP handler, with the address checked against networks (empty = any address) first."""

    def __init__(self, context: zmq.Context, networks: tuple[IPNetwork, ...]) -> None:
        super().__init__(context, log=logging.getLogger("zmq.auth"))
        self.networks = networks
        self.denied = 0
        self._logged: set[str] = set()

    def peer_allowed(self, address: str) -> bool:
        return not self.networks or address_in(address, self.networks)

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        if len(msg) >= 6:
            address = msg[3].decode("utf-8", "replace")
            if not self.peer_allowed(address):
                self.denied += 1
                if address not in self._logged and len(self._logged) < MAX_LOGGED_PEERS:
                    self._logged.add(address)  # it may knock again (a restart, another client): log it once
                    log.warning("ZMQ connection from %s refused: not in TRANSLATOR_ZMQ_ALLOWED_PEERS", address)
                self._send_zap_reply(msg[1], b"400", b"Address not allowed")
                return
        try:
            await super().handle_zap_message(msg)
        except Exception:  # noqa: BLE001 - an exception would end the ZAP task: no connection accepted again
            # 300 (temporary), not 400/500: libzmq drops a peer refused by auth for good (it never
            # reconnects), while a 300 leaves the handshake to time out (HANDSHAKE_IVL_MS) and retry.
            log.exception("ZAP request failed; the peer will retry")
            try:
                self._send_zap_reply(msg[1], b"300", b"Temporary error")
            except (zmq.ZMQError, IndexError):
                pass  # already answered, or nothing to answer to


@dataclass(frozen=True)
class DoorSecurity:
    networks: tuple[IPNetwork, ...]  # empty: any address (CURVE authenticates instead)
    curve: CurveKeys | None

    @classmethod
    def from_settings(cls, settings: Settings) -> DoorSecurity:
        networks = parse_networks(settings.zmq_allowed_peers)
        curve = None
        if settings.zmq_curve_secret_key_file is not None:
            curve = load_curve(settings.zmq_curve_secret_key_file, settings.zmq_curve_clients_dir)
        if not networks and curve is None:
            if not is_loopback_host(settings.zmq_host):
                raise PrerequisiteError(
                    f"the ZMQ door would bind {settings.zmq_host} with no access control: anyone who can reach "
                    "the port could submit work and read every event. Set TRANSLATOR_ZMQ_ALLOWED_PEERS (the "
                    "gateway's addresses or CIDRs) or TRANSLATOR_ZMQ_CURVE_SECRET_KEY_FILE, or bind "
                    "TRANSLATOR_ZMQ_HOST=127.0.0.1 (see SECURITY.md)"
                )
            networks = LOOPBACK_NETWORKS  # a loopback bind admits only this machine anyway; say so in ZAP too
        return cls(networks, curve)

    def secure(self, sock: zmq.Socket) -> None:
        """Before bind: every connection to this socket goes through ZAP (and CURVE when configured)."""
        sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)
        if self.curve is not None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret)

    def authenticator(self, context: zmq.Context) -> PeerAuthenticator:
        """Started in the running loop (it serves ZAP requests as an asyncio task)."""
        auth = PeerAuthenticator(context, self.networks)
        if self.curve is not None:
            location = str(self.curve.clients_dir) if self.curve.clients_dir is not None else CURVE_ALLOW_ANY
            auth.configure_curve(domain=ZAP_DOMAIN, location=location)
        return auth

    def describe(self) -> str:
        peers = ", ".join(str(n) for n in self.networks) or "any address"
        if self.curve is None:
            return f"NULL mechanism, peers {peers}"
        clients = self.curve.clients_dir or "any client key"
        return f"CURVE (clients: {clients}), peers {peers}"
