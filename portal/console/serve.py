"""Serving the console with the portal's server module (``passerelle.portal.server``).

The one place the console calls it: plain HTTP on one address, a thread per
connection with a read timeout. TLS belongs to a reverse proxy in front
(``--behind-proxy``), or the console listens on the loopback only.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading

from flask import Flask

from passerelle.errors import UserError
from passerelle.portal import server

log = logging.getLogger("passerelle.portal")


def _check_free(host: str, port: int) -> None:
    # Werkzeug's server prints and exits on a bind error: try the address first.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


def serve(app: Flask, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    _check_free(host, port)
    httpd = server._Server(host, port, app)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    server.start((httpd,))
    shown = f"[{host}]" if ":" in host else host
    log.info("console listening on http://%s:%d/", shown, httpd.port)
    print(f"console listening on http://{shown}:{httpd.port}/", flush=True)
    try:
        stopped.wait()
    finally:
        server.stop((httpd,))
