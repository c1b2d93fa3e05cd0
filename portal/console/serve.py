"""Serving the console with the portal's server module (``passerelle.portal.server``).

The one place the console calls it: plain HTTP on one address, a thread per
connection with a read timeout. TLS belongs to a reverse proxy in front
(``--behind-proxy``), or the console listens on the loopback only.
"""

from __future__ import annotations

import logging
import signal
import threading

from flask import Flask

from passerelle.errors import UserError
from passerelle.portal import server

log = logging.getLogger("passerelle.portal")


def serve(app: Flask, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    try:
        httpd = server._Server(host, port, app)
    except OSError as exc:
        raise UserError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
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
