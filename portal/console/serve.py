"""Serving the console with the portal's server module (``passerelle.portal.server``).

The one place the console calls it: plain HTTP on one address, a thread per
connection with a read timeout. TLS belongs to a reverse proxy in front
(``--behind-proxy``), or the console listens on the loopback only.
"""

from __future__ import annotations

import logging
import socket

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


class Listening:
    """The console's HTTP server, bound; ``port`` is the real one (port 0 picks)."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        _check_free(host, port)
        # An IP address, never a name: binding does no DNS look-up.
        (self._httpd,) = server.bind(app, [server.Listener(host, port)])
        self.host = host
        self.port: int = self._httpd.port

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    def start(self) -> None:
        server.start((self._httpd,))

    def stop(self) -> None:
        server.stop((self._httpd,))


def serve(app: Flask, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (systemd told READY=1 once bound)."""
    _check_free(host, port)
    server.serve(app, [server.Listener(host, port)], name="console")
