"""Serving the portal: HTTP (captive clients, DNAT-ed) and HTTPS (portal, RFC 8908 API).

Werkzeug's threaded server: one site's box serves a few dozen people, each
page costs one call on the daemon's socket, and it adds no dependency
(docs/benchmarks-portal.md has its figures). A thread per connection, with
a read timeout so a slow client cannot hold one for ever. The TLS handshake
happens in that connection's thread, not in the accepting one, so a client
that connects and says nothing cannot stop HTTPS for everyone else.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

log = logging.getLogger("passerelle.portal")

TIMEOUT = 20  # seconds a connection may stay silent (TLS handshake included)


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


class _Server(ThreadedWSGIServer):
    def __init__(self, host: str, port: int, app: Flask,
                 tls: ssl.SSLContext | None = None) -> None:
        # Not werkzeug's ssl_context argument: it would make the accepting
        # thread do every handshake.
        super().__init__(host, port, app, _Handler)
        self.tls = tls
        self.ssl_context = tls  # what tells werkzeug the scheme is https

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


def make_servers(app: Flask, host: str, http_port: int, https_port: int,
                 context: ssl.SSLContext) -> tuple[_Server, _Server]:
    """(HTTP, HTTPS) servers, bound, not yet serving; port 0 picks a free one."""
    return _Server(host, http_port, app), _Server(host, https_port, app, context)


def start(servers: tuple[_Server, ...]) -> list[threading.Thread]:
    threads = [threading.Thread(target=s.serve_forever, name=f"portal-{s.port}", daemon=True)
               for s in servers]
    for thread in threads:
        thread.start()
    return threads


def stop(servers: tuple[_Server, ...]) -> None:
    for s in servers:
        s.shutdown()
        s.server_close()


def serve(app: Flask, hosts: list[str], http_port: int, https_port: int,
          context: ssl.SSLContext) -> None:
    """Serve on each of ``hosts`` until SIGTERM or SIGINT."""
    servers: tuple[_Server, ...] = ()
    for host in hosts:
        servers += make_servers(app, host, http_port, https_port, context)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    start(servers)
    where = ", ".join(f"{s.host}:{s.port}" for s in servers)
    log.info("portal listening on %s", where)
    print(f"portal listening on {where}", flush=True)
    try:
        stopped.wait()
    finally:
        stop(servers)
