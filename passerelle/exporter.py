"""The HTTP listener every part serves its Prometheus page on.

prometheus_client's own ``start_http_server`` looks the address up at bind
(``socket.getfqdn``, a reverse DNS query): on a box whose DNS is down that
held the daemon's start for as long as the resolver's timeouts. This one
binds the IP address it is given and looks nothing up.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: no name look-up
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class MetricsListener:
    """``/metrics`` (any path answers the same page) for ``registry``, in a
    thread of its own; ``port`` is the one bound (0 asks for any)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        server_class = type("Server", (_Server,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        self._server = server_class((host, port), MetricsHandler.factory(registry))
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
