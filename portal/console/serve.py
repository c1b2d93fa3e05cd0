"""Serving the console with the portal's server module (``passerelle.portal.server``).

The one place the console calls it: plain HTTP on one address, gunicorn's
bounded worker. TLS belongs to a reverse proxy in front (``--behind-proxy``),
or the console listens on the loopback only.
"""

from __future__ import annotations

from flask import Flask

from passerelle.errors import UserError
from passerelle.portal import server

from .state import KEY, Console


def _bind(app: Flask, host: str, port: int) -> server.Server:
    def fresh_connections() -> None:
        # In gunicorn's worker, just forked: the database connections pooled
        # before the fork belong to the parent (SQLAlchemy's advice for fork).
        console: Console = app.extensions[KEY]
        engine = console.factory.kw.get("bind")
        if engine is not None:
            engine.dispose(close=False)

    try:
        # An IP address, never a name: binding does no DNS look-up.
        return server.bind(app, [server.Listener(host, port)], name="console",
                           after_fork=fresh_connections)
    except OSError as exc:
        raise UserError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


class Listening:
    """The console's HTTP server, bound; ``port`` is the real one (port 0 picks)."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        self._server = _bind(app, host, port)
        self.host = host
        self.port: int = self._server.port

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    def start(self) -> None:
        """Serving from a forked gunicorn, once this returns."""
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def serve(app: Flask, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (systemd told READY=1 once bound)."""
    _bind(app, host, port).run()
