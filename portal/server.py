"""Serving a Flask app (the portal, and the centre's console) over HTTP and HTTPS.

Werkzeug's WSGI server (docs/portal.md says why it and not another), with
its connections bounded, because the portal faces an open Wi-Fi:

- at most ``PER_ADDRESS`` connections open at once from one client address
  and ``MAX_CONNECTIONS`` in all; one over the cap is closed at once (reset);
- a new connection waits for its first byte in a waiting room (one thread
  and a selector for all of them), at most ``FIRST_BYTE_TIMEOUT`` seconds:
  a silent connection holds no thread and is closed when its time is up;
- a connection that has spoken is served by a bounded pool of ``WORKERS``
  threads, with ``TIMEOUT`` seconds for each read; the TLS handshake happens
  in that worker, not in the accepting thread, so a client that connects and
  says nothing cannot stop HTTPS for everyone else.

No name is ever looked up: listeners are IP addresses (a name is refused),
and binding skips http.server's reverse look-up of the bound address
(``socket.getfqdn``), which waits for the resolver's timeout, 10 s per
socket, whenever the WAN's DNS does not answer: exactly when a box boots
with its cable pulled. Once every socket is bound, systemd is told (sd_notify
READY=1), so the unit's readiness means "listening".
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import selectors
import signal
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from passerelle import systemd
from passerelle.systemd import notify as sd_notify  # its callers' name for it

log = logging.getLogger("passerelle.portal")

TIMEOUT = 10  # seconds a connection that has spoken may stay silent (TLS handshake included)
FIRST_BYTE_TIMEOUT = 5.0  # seconds a new connection may wait before its first byte
PER_ADDRESS = 32  # connections open at once from one client address (a browser opens ~6)
MAX_CONNECTIONS = 256  # connections open at once in all, waiting or served
WORKERS = 96  # threads serving requests, per listening socket: 3 addresses to fill
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; Python 3.11 lacks the name
WARN_EVERY = 60.0  # seconds between two log lines about one address over its cap


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


def _reset(sock: socket.socket) -> None:
    """Close with a reset: no FIN_WAIT/TIME_WAIT kept for a connection we refuse."""
    with contextlib.suppress(OSError):  # already gone: closing is all there is to do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


Job = tuple[socket.socket, Any]


class _WaitingRoom:
    """New connections wait here for their first byte: one thread and one
    selector for all, however many there are. A connection with something to
    read goes to ``ready``; one silent for ``timeout`` seconds to ``expired``."""

    def __init__(self, timeout: float, ready: Callable[[socket.socket, Any], None],
                 expired: Callable[[socket.socket, Any], None]) -> None:
        self.timeout = timeout
        self._ready = ready
        self._expired = expired
        self._inbox: queue.SimpleQueue[tuple[socket.socket, Any, float]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self, name: str) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()

    def put(self, sock: socket.socket, address: Any) -> None:
        self._inbox.put((sock, address, time.monotonic() + self.timeout))
        self._wake()

    def _wake(self) -> None:
        # BlockingIOError (an OSError): a wake-up is pending already.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        waiting: dict[socket.socket, tuple[Any, float]] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopped.is_set():
                while True:
                    try:
                        sock, address, deadline = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    waiting[sock] = (address, deadline)
                    selector.register(sock, selectors.EVENT_READ)
                now = time.monotonic()
                soonest = min((d for _, d in waiting.values()), default=now + 1.0)
                for key, _ in selector.select(max(0.0, min(soonest - now, 1.0))):
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(4096)
                        continue
                    sock = key.fileobj  # type: ignore[assignment]
                    selector.unregister(sock)
                    address, _ = waiting.pop(sock)
                    self._ready(sock, address)
                now = time.monotonic()
                for sock, (address, deadline) in list(waiting.items()):
                    if deadline <= now:
                        selector.unregister(sock)
                        del waiting[sock]
                        self._expired(sock, address)
            for sock, (address, _) in waiting.items():
                self._expired(sock, address)

    def close(self) -> None:
        """Stop the room and drop who waits; closing twice (werkzeug's
        serve_forever closes its server too) waits for the first."""
        with self._lock:
            if self._closed:
                return
            self._stopped.set()
            self._wake()
            if self._thread is not None:
                self._thread.join(timeout=5)
            while True:  # what was put after the room's thread ended
                try:
                    sock, address, _ = self._inbox.get_nowait()
                except queue.Empty:
                    break
                self._expired(sock, address)
            for end in (self._wake_r, self._wake_w):
                end.close()
            self._closed = True


class Server(ThreadedWSGIServer):
    """One listening socket serving ``app``; bound when built. Connections
    are admitted under the caps, wait for their first byte without a
    thread, then are served by at most ``WORKERS`` threads."""

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
        self.admission = Admission(PER_ADDRESS, MAX_CONNECTIONS)
        self._room = _WaitingRoom(FIRST_BYTE_TIMEOUT, self._dispatch, self._drop)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: it sets server_name = getfqdn(address),
        # a reverse DNS look-up. The address itself names the server here.
        if self.address_family == socket.AF_INET6:
            # An IPv6 address is unusable for a second or so after boot
            # (duplicate address detection): bind it anyway.
            self.socket.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._room.start(f"wait-{self.port}")
        super().serve_forever(poll_interval)

    # --- admission, in the accepting thread ------------------------------------

    def verify_request(self, request: Any, client_address: Any) -> bool:
        address = str(client_address[0])
        if self.admission.admit(address):
            return True
        self._over_cap(address)
        with contextlib.suppress(OSError):
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        return False  # socketserver closes it at once

    def _over_cap(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(address, -WARN_EVERY) < WARN_EVERY:
                return
            if len(self._warned) > 1024:
                self._warned.clear()
            self._warned[address] = now
        log.warning("%s: over %d connections at once from one address or %d in all: "
                    "new ones closed", address, PER_ADDRESS, MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._room.put(request, client_address)

    # --- the waiting room's two ends ---------------------------------------------

    def _drop(self, request: socket.socket, client_address: Any) -> None:
        self.admission.release(str(client_address[0]))
        _reset(request)

    def _dispatch(self, request: socket.socket, client_address: Any) -> None:
        with self._lock:
            if self._idle == 0 and len(self._workers) < WORKERS:
                worker = threading.Thread(target=self._work, daemon=True,
                                          name=f"http-{self.port}-{len(self._workers)}")
                self._workers.append(worker)
                worker.start()
        self._jobs.put((request, client_address))

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                return
            request, client_address = job
            conn = request
            try:
                if self.tls is not None:
                    # Here, not in the accepting thread: a slow handshake
                    # holds this worker only.
                    request.settimeout(TIMEOUT)
                    conn = self.tls.wrap_socket(request, server_side=True)
                self.finish_request(conn, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                # Released before the close: a client that reconnects as soon
                # as it sees the close finds its slot free.
                self.admission.release(str(client_address[0]))
                self.shutdown_request(conn)

    def shutdown_request(self, request: Any) -> None:
        # After a TLS wrap the plain socket is detached (its fd is -1).
        if isinstance(request, socket.socket) and request.fileno() == -1:
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or fails the TLS handshake: not our fault.
        log.debug("connection from %s ended badly", client_address, exc_info=True)

    def server_close(self) -> None:
        # werkzeug's serve_forever calls this too: closing twice is harmless.
        super().server_close()
        self._room.close()
        with self._lock:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._jobs.put(None)


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


def serve(app: Flask, listeners: Sequence[Listener], tls: ssl.SSLContext | None = None,
          name: str = "portal") -> None:
    """Serve ``app`` on every listener until SIGTERM or SIGINT; systemd is
    told READY=1 once every socket is bound (and STOPPING=1 at the end)."""
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    servers = bind(app, listeners, tls)
    threads = start(servers)
    where = ", ".join(f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"
                      for s in servers)
    log.info("%s listening on %s", name, where)
    print(f"{name} listening on {where}", flush=True)
    sd_notify(f"READY=1\nSTATUS=listening on {where}")
    # Alive means every listener's thread still accepts.
    watchdog = systemd.Watchdog(lambda: all(t.is_alive() for t in threads))
    watchdog.start()
    try:
        stopped.wait()
    finally:
        sd_notify("STOPPING=1")
        watchdog.stop()
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
