"""Serving a Flask app (the portal, and the centre's console) over HTTP and HTTPS.

Werkzeug's threaded server (docs/portal.md says why it and not another): a
thread per connection, with a read timeout so a slow client cannot hold
one for ever. The TLS handshake happens in that connection's thread, not in
the accepting one, so a client that connects and says nothing cannot stop
HTTPS for everyone else.

No name is ever looked up: listeners are IP addresses (a name is refused),
and binding skips http.server's reverse look-up of the bound address
(``socket.getfqdn``), which waits for the resolver's timeout, 10 s per
socket, whenever the WAN's DNS does not answer: exactly when a box boots
with its cable pulled. Once every socket is bound, systemd is told (sd_notify
READY=1), so the unit's readiness means "listening".
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import socketserver
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

log = logging.getLogger("passerelle.portal")

TIMEOUT = 20  # seconds a connection may stay silent (TLS handshake included)


@dataclass(frozen=True)
class Listener:
    """Where to listen: an IP address (never a name), a port (0: any free
    one), and whether the connections speak TLS."""

    host: str
    port: int
    tls: bool = False

    def __post_init__(self) -> None:
        # A name would be resolved at bind time: the very wait we avoid.
        ipaddress.ip_address(self.host)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")


class _Handler(WSGIRequestHandler):
    # HTTP/1.1 answers; werkzeug still closes each connection after one
    # request (it cannot drain a request body safely), measured in the benchmark.
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: never a query string (it carries the way-on token).
        log.debug("%s %s %s %s", self.client_address[0], self.command,
                  self.path.split("?", 1)[0][:200], code)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class Server(ThreadedWSGIServer):
    """One listening socket serving ``app``; bound when built."""

    def __init__(self, app: Flask, listener: Listener,
                 tls: ssl.SSLContext | None = None) -> None:
        if listener.tls and tls is None:
            raise ValueError(f"{listener.host}:{listener.port} is a TLS listener: "
                             "a TLS context is needed")
        # Not werkzeug's ssl_context argument: it would make the accepting
        # thread do every handshake.
        super().__init__(listener.host, listener.port, app, _Handler)
        self.tls = tls if listener.tls else None
        self.ssl_context = self.tls  # what tells werkzeug the scheme is https

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: it sets server_name = getfqdn(address),
        # a reverse DNS look-up. The address itself names the server here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(TIMEOUT)
        with self.tls.wrap_socket(request, server_side=True) as conn:
            super().finish_request(conn, client_address)

    def shutdown_request(self, request: Any) -> None:
        # After a TLS wrap the plain socket is detached (its fd is -1).
        if isinstance(request, socket.socket) and request.fileno() == -1:
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake: not our fault.
        log.debug("connection from %s ended badly", client_address, exc_info=True)


def bind(app: Flask, listeners: Sequence[Listener],
         tls: ssl.SSLContext | None = None) -> list[Server]:
    """One server per listener, bound and listening, not yet serving."""
    servers: list[Server] = []
    try:
        for listener in listeners:
            servers.append(Server(app, listener, tls))
    except BaseException:
        for built in servers:
            built.server_close()
        raise
    return servers


def start(servers: Sequence[Server]) -> list[threading.Thread]:
    threads = [threading.Thread(target=s.serve_forever, name=f"http-{s.port}", daemon=True)
               for s in servers]
    for thread in threads:
        thread.start()
    return threads


def stop(servers: Sequence[Server]) -> None:
    for s in servers:
        s.shutdown()
        s.server_close()


def sd_notify(state: str) -> bool:
    """Tell systemd ``state`` (e.g. "READY=1") on $NOTIFY_SOCKET, as
    sd_notify(3) does: one datagram on a Unix socket; a name starting with
    "@" is in the abstract namespace. False when not run by systemd."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def serve(app: Flask, listeners: Sequence[Listener], tls: ssl.SSLContext | None = None,
          name: str = "portal") -> None:
    """Serve ``app`` on every listener until SIGTERM or SIGINT; systemd is
    told READY=1 once every socket is bound (and STOPPING=1 at the end)."""
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    servers = bind(app, listeners, tls)
    start(servers)
    where = ", ".join(f"{s.host}:{s.port}" for s in servers)
    log.info("%s listening on %s", name, where)
    print(f"{name} listening on {where}", flush=True)
    sd_notify(f"READY=1\nSTATUS=listening on {where}")
    try:
        stopped.wait()
    finally:
        sd_notify("STOPPING=1")
        stop(servers)


def portal_listeners(hosts: Sequence[str], http_port: int, https_port: int) -> list[Listener]:
    """The portal's: HTTP and HTTPS on each of ``hosts``."""
    return [Listener(host, port, tls) for host in hosts
            for port, tls in ((http_port, False), (https_port, True))]


def make_servers(app: Flask, host: str, http_port: int, https_port: int,
                 context: ssl.SSLContext) -> tuple[Server, Server]:
    """(HTTP, HTTPS) servers on ``host``, bound, not yet serving; port 0 picks a free one."""
    http, https = bind(app, portal_listeners([host], http_port, https_port), context)
    return http, https
