"""gunicorn's threaded (gthread) worker, bounded for a portal on an open Wi-Fi.

What it changes in gunicorn's ``ThreadWorker`` (26.x), and why:

- accept: at most ``PER_ADDRESS`` connections open at once from one client
  address (``Admission``); one over is reset at once, and said in the log at
  most once a minute per address. gunicorn's ``worker_connections`` caps the
  total (``MAX_CONNECTIONS``): over it the worker stops accepting and new
  connections wait in the kernel's backlog;
- a new connection waits for its first byte in the worker's poller, with no
  thread, at most ``FIRST_BYTE_TIMEOUT`` seconds (gunicorn's own worker gives
  it a thread for 5 s first: 96 silent connections would stop everyone);
- TLS per listener: a connection from a TLS listener is wrapped, and its
  handshake done, in the pool's thread (never the accepting loop), so one
  gunicorn serves HTTP and HTTPS, ``wsgi.url_scheme`` following the socket;
- the handshake and the request head must arrive within ``HEAD_TIMEOUT`` of
  the first byte (a slow loris is let go, its thread freed); any later read
  or write waits at most ``TIMEOUT`` seconds (gunicorn sets none);
- a client's mistake (a bad request line, a failed handshake) is logged at
  DEBUG, not as a warning per request;
- closing after a response never waits for the client (gunicorn lingers
  for its FIN in the accepting loop);
- at a stop, idle connections (waiting or kept alive) close at once: the
  graceful stop waits only for the requests being served.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from .limits import CONNECTIONS_PER_CLIENT

log = logging.getLogger("passerelle.portal")

FIRST_BYTE_TIMEOUT = 5.0  # seconds a new connection may wait, threadless, for its first byte
HEAD_TIMEOUT = 5.0  # seconds from the first byte to a whole request head (TLS handshake included)
TIMEOUT = 10.0  # seconds any other read or write may wait
KEEPALIVE = 5  # seconds an idle kept-alive connection stays open (threadless)
PER_ADDRESS = CONNECTIONS_PER_CLIENT  # connections open at once from one client address
MAX_CONNECTIONS = 256  # connections open at once in all (gunicorn's worker_connections)
THREADS = 96  # the pool serving requests, for every listener
WARN_EVERY = 60.0  # seconds between two log lines about one address over its cap
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset

# What a client gets wrong: answered (when it can be) and logged at DEBUG.
CLIENT_FAULTS: dict[type[Exception], tuple[int, str]] = {
    http_errors.LimitRequestHeaders: (431, "Request Header Fields Too Large"),
    http_errors.UnsupportedTransferCoding: (501, "Not Implemented"),
    http_errors.ExpectationFailed: (417, "Expectation Failed"),
    **{kind: (400, "Bad Request") for kind in (
        http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod,
        http_errors.InvalidHTTPVersion, http_errors.InvalidHeader,
        http_errors.InvalidHeaderName, http_errors.LimitRequestLine,
        http_errors.InvalidProxyLine, http_errors.ForbiddenProxyRequest,
        http_errors.InvalidSchemeHeaders, http_errors.ObsoleteFolding,
        http_errors.InvalidH2CPreface, http_errors.InvalidChunkSize,
        http_errors.ChunkMissingTerminator, http_errors.InvalidChunkExtension)},
}


class Admission:
    """How many connections are open, per client address and in all; a new
    one is admitted only under both caps."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        with self._lock:
            held = self._open.get(address, 0)
            if held >= self.per_address or self._count >= self.total:
                return False
            self._open[address] = held + 1
            self._count += 1
            return True

    def release(self, address: str) -> None:
        with self._lock:
            held = self._open.get(address, 0) - 1
            if held > 0:
                self._open[address] = held
            else:
                self._open.pop(address, None)
            self._count -= 1


def reset(sock: socket.socket) -> None:
    """Close with a reset: no FIN_WAIT/TIME_WAIT kept for a connection we refuse."""
    with contextlib.suppress(OSError):  # already gone: closing is all there is to do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


class _Reads:
    """What the request parser reads through: the socket, each read bounded
    by the connection's head deadline, else by ``TIMEOUT``. A head not in by
    its deadline reads as the end of the stream (gunicorn then drops the
    connection quietly); a body read that times out raises, so a body is
    never taken for whole when it is not."""

    def __init__(self, conn: PortalConn) -> None:
        self._conn = conn

    def recv(self, size: int) -> bytes:
        sock = self._conn.sock
        deadline = self._conn.head_deadline
        if deadline is None:
            sock.settimeout(TIMEOUT)
            data: bytes = sock.recv(size)
            return data
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        sock.settimeout(min(left, TIMEOUT))
        try:
            data = sock.recv(size)
        except TimeoutError:
            return b""
        return data

    # gunicorn's body drain bounds its reads with these.
    def gettimeout(self) -> float | None:
        timeout: float | None = self._conn.sock.gettimeout()
        return timeout

    def settimeout(self, timeout: float | None) -> None:
        self._conn.sock.settimeout(timeout)


class PortalConn(TConn):
    """gunicorn's connection, with the TLS context of its listener (None:
    plain HTTP), its request head's deadline, and its admission released
    exactly once when it closes."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any,
                 tls: ssl.SSLContext | None, release: Callable[[], None]) -> None:
        super().__init__(cfg, sock, client, server)
        self.tls = tls
        self.head_deadline: float | None = None
        self._release: Callable[[], None] | None = release

    def init(self) -> None:
        fresh = self.parser is None
        super().init()
        if fresh and hasattr(self.parser, "unreader"):
            self.parser.unreader.sock = _Reads(self)

    def close(self, graceful: bool = False) -> None:
        # gunicorn's graceful close lingers up to 2 s for the client's FIN,
        # in the accepting loop: a client that never closes would stop
        # everyone. Half-close, take only what has arrived, close.
        try:
            if graceful:
                with contextlib.suppress(OSError):  # gone, or nothing more to read
                    self.sock.shutdown(socket.SHUT_WR)
                    self.sock.setblocking(False)
                    for _ in range(16):
                        if not self.sock.recv(4096):
                            break
            util.close(self.sock)
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class PortalWorker(ThreadWorker):
    """The worker: ``self.app`` is the server's application, which names the
    TLS listeners (``tls_addresses``) and their context (``tls_context``)."""

    wsgi: Callable[..., Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission = Admission(PER_ADDRESS, MAX_CONNECTIONS)
        self._warned: dict[str, float] = {}
        self._tls_addresses: frozenset[tuple[str, int]] = frozenset(
            getattr(self.app, "tls_addresses", frozenset()))
        self._tls_context: ssl.SSLContext | None = getattr(self.app, "tls_context", None)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def scheme_from_socket(environ: dict[str, Any], start_response: Any) -> Any:
            # The listener, not a header, says whether the request came over TLS.
            tls = isinstance(environ.get("gunicorn.socket"), ssl.SSLSocket)
            environ["wsgi.url_scheme"] = "https" if tls else "http"
            return app(environ, start_response)

        self.wsgi = scheme_from_socket

    # --- the accepting loop --------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = str(client[0])
        if not self.admission.admit(address):
            self._over_cap(address)
            reset(sock)
            return
        server = listener.getsockname()
        tls = self._tls_context if tuple(server[:2]) in self._tls_addresses else None
        self.nr_conns += 1
        conn = PortalConn(self.cfg, sock, client, server, tls,
                          partial(self.admission.release, address))
        # The waiting room: gunicorn's pending connections, with our deadline.
        conn.timeout = time.monotonic() + FIRST_BYTE_TIMEOUT
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def _over_cap(self, address: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(address, -WARN_EVERY) < WARN_EVERY:
            return
        if len(self._warned) > 1024:
            self._warned.clear()
        self._warned[address] = now
        log.warning("%s: over %d connections at once from one address: new ones reset",
                    address, PER_ADDRESS)

    def _expire(self, conns: Iterable[PortalConn]) -> None:
        if not self.alive:  # stopping: idle connections go now
            for conn in conns:
                conn.timeout = 0.0

    def murder_pending(self) -> None:
        self._expire(self.pending_conns)
        super().murder_pending()

    def murder_keepalived(self) -> None:
        self._expire(self.keepalived_conns)
        super().murder_keepalived()

    # --- in a thread of the pool ---------------------------------------------

    def handle(self, conn: PortalConn) -> Any:
        conn.head_deadline = time.monotonic() + HEAD_TIMEOUT
        if conn.tls is not None and not isinstance(conn.sock, ssl.SSLSocket):
            try:
                conn.sock.settimeout(min(HEAD_TIMEOUT, TIMEOUT))
                conn.sock = conn.tls.wrap_socket(conn.sock, server_side=True,
                                                 do_handshake_on_connect=False)
                conn.sock.do_handshake()
            except (OSError, ValueError) as exc:  # SSLError and timeouts are OSErrors
                log.debug("%s: TLS handshake failed: %s", conn.client[0], exc)
                return False
        return super().handle(conn)

    def handle_request(self, req: Any, conn: PortalConn) -> Any:
        # The head is in: the app's reads and writes get TIMEOUT each.
        conn.head_deadline = None
        conn.sock.settimeout(TIMEOUT)
        if conn.tls is None:
            # Plain HTTP is where a captive client's port 80 is DNAT-ed: a
            # connection kept alive would keep that DNAT (conntrack holds it)
            # after check-in, and the browser's next page would come back here
            # instead of going out. One answer per connection on it.
            req.must_close = True
        return super().handle_request(req, conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ssl.SSLError):
            log.debug("%s: TLS error: %s", addr and addr[0], exc)
            return
        for kind, (status, reason) in CLIENT_FAULTS.items():
            if isinstance(exc, kind):
                log.debug("%s: %s: %s", addr and addr[0], reason, type(exc).__name__)
                with contextlib.suppress(Exception):  # a client gone: nothing to answer
                    util.write_error(client, status, reason, "")
                return
        super().handle_error(req, client, addr, exc)
