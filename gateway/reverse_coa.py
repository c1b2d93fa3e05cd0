"""Reverse CoA: Disconnect and CoA from the centre to a box behind NAT.

The box opens a TLS connection to each central node (RadSec port, its
enrolment certificate, ALPN ``passerelle-reverse-coa`` so the centre knows
this connection is for requests the other way) and keeps it: the centre
sends its Disconnect- and CoA-Requests for this gateway down it, and the box
answers each through ``DaeServer.respond``, the same RFC 5176 core as UDP
(secret "radsec", RFC 6614 section 2.3). A NAT or firewall in front of the
box lets the answers through: the box opened the connection.

A lost connection is opened again after a back-off (1 s, doubling to 60 s,
plus or minus 20 %); TCP keepalives every minute keep the NAT's mapping.
This is the box-initiated equivalent of draft-ietf-radext-reverse-coa; see
docs/radsec.md.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from passerelle.radius import messages as m
from passerelle.radius.dae import RADSEC_SECRET
from passerelle.radius.radsec import REVERSE_ALPN, BadLength, Framer

from .dae_server import DaeServer, Sessions
from .radclient import NasIdentity
from .radsecproxy import Centre

log = logging.getLogger("passerelle.gateway")

_REQUESTS = (m.Code.DISCONNECT_REQUEST, m.Code.COA_REQUEST)


@dataclass(frozen=True)
class Credentials:
    cert: Path
    key: Path
    ca: Path

    def context(self, *, reverse: bool = True) -> ssl.SSLContext:
        """The box's TLS client context; ``reverse=False`` for a connection
        that must not become the gateway's reverse path (doctor's probe)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        if reverse:
            context.set_alpn_protocols([REVERSE_ALPN])
        return context


def backoff_waits(initial: float = 1.0, maximum: float = 60.0,
                  rand: Callable[[], float] = random.random) -> Callable[[int], float]:
    """The wait before reconnection attempt ``n`` (0 after a good connection)."""
    def wait(n: int) -> float:
        return min(maximum, initial * 2 ** n) * (0.8 + 0.4 * rand())
    return wait


class ReverseCoa:
    """One thread per central node, each holding a reverse connection."""

    def __init__(self, centres: tuple[Centre, ...], credentials: Credentials,
                 nas: NasIdentity, sessions: Sessions, *, window: int = 300,
                 clock: Callable[[], float] = time.time,
                 wait: Callable[[int], float] | None = None, poll: float = 0.5) -> None:
        self.centres = centres
        self.credentials = credentials
        self.nas = nas
        self.sessions = sessions
        self.window = window
        self.clock = clock
        self.wait = wait or backoff_waits()
        self.poll = poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connected: dict[Centre, bool] = {c: False for c in centres}

    def start(self) -> None:
        self._stop.clear()
        for centre in self.centres:
            thread = threading.Thread(target=self._run, args=(centre,), daemon=True,
                                      name=f"reverse-coa-{centre.host}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _run(self, centre: Centre) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._connect_and_serve(centre)
            except (OSError, ssl.SSLError, BadLength) as exc:
                log.warning("reverse CoA: connection to %s:%d: %s", centre.host, centre.port,
                            exc)
            except Exception:  # the thread is the boundary: log, reconnect
                log.exception("reverse CoA: connection to %s:%d failed", centre.host,
                              centre.port)
            self.connected[centre] = False
            # A connection that lasted starts the back-off again.
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            self._stop.wait(self.wait(failures))

    def _connect_and_serve(self, centre: Centre) -> None:
        raw = socket.create_connection((centre.host, centre.port), timeout=10)
        _keepalive(raw)
        with self.credentials.context().wrap_socket(raw, server_hostname=centre.host) as tls:
            peer = tls.getpeername()
            # The core knows its clients by address: the centre's, with the TLS secret.
            dae = DaeServer("127.0.0.1", 0, {peer[0]: RADSEC_SECRET}, self.nas, self.sessions,
                            window=self.window, clock=self.clock)
            tls.settimeout(self.poll)
            self.connected[centre] = True
            log.info("reverse CoA: connected to %s:%d", centre.host, centre.port)
            framer = Framer()
            while not self._stop.is_set():
                try:
                    data = tls.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    raise ConnectionError("the centre closed the connection")
                for packet in framer.feed(data):
                    if packet[0] not in _REQUESTS:
                        log.warning("reverse CoA: ignored a %s from %s", _name(packet[0]),
                                    centre.host)
                        continue
                    reply = dae.respond(packet, (peer[0], peer[1]), self.clock())
                    if reply is not None:
                        tls.sendall(reply)


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _name(code: int) -> str:
    try:
        return m.Code(code).label
    except ValueError:
        return f"code {code}"
