"""Serving the portal: HTTP (captive clients, DNAT-ed) and HTTPS (portal, RFC 8908 API).

Werkzeug's threaded server: one site's box serves a few dozen people, each
page costs one call on the daemon's socket, and docs/benchmarks-portal.md
shows it keeps up with far more than that on one core; it adds no
dependency. A thread per connection, with a read timeout so a slow client
cannot hold one for ever.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger("passerelle.portal")


class _Handler(WSGIRequestHandler):
    # HTTP/1.1 answers; werkzeug still closes each connection after one
    # request (it cannot drain a request body safely), measured in the benchmark.
    protocol_version = "HTTP/1.1"
    timeout = 20

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: never a query string (it carries the way-on token).
        log.debug("%s %s %s %s", self.client_address[0], self.command,
                  self.path.split("?", 1)[0][:200], code)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def _quiet(server: BaseWSGIServer) -> BaseWSGIServer:
    def handle_error(request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake: not our fault.
        log.debug("connection from %s ended badly", client_address, exc_info=True)

    server.handle_error = handle_error  # type: ignore[method-assign]
    return server


def serve(app: Flask, host: str, http_port: int, https_port: int,
          context: ssl.SSLContext) -> None:
    """Serve until SIGTERM or SIGINT."""
    servers = [
        _quiet(make_server(host, http_port, app, threaded=True, request_handler=_Handler)),
        _quiet(make_server(host, https_port, app, threaded=True, request_handler=_Handler,
                           ssl_context=context)),
    ]
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    threads = [threading.Thread(target=s.serve_forever, name=f"portal-{s.port}", daemon=True)
               for s in servers]
    for thread in threads:
        thread.start()
    log.info("portal listening on http://%s:%d and https://%s:%d", host, http_port, host,
             https_port)
    print(f"portal listening on {host}:{http_port} and {host}:{https_port}", flush=True)
    try:
        stopped.wait()
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
