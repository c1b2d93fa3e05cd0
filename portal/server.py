"""Serving a Flask app (the portal, and the centre's console) over HTTP and HTTPS.

gunicorn, run from here (not its command line): one arbiter and one gthread
worker process serving every listener, HTTP and HTTPS alike. One worker,
so the portal's in-memory limits (limits.py) and the console's stay in one
process; its pool of threads is bounded, and so are its connections, per
address and in all, their wait for a first byte (threadless), for a whole
request head and for each read or write (``gunicorn_worker.py``, which also
does TLS per listener). docs/portal.md says why gunicorn.

No name is ever looked up: listeners are IP addresses (a name is refused),
bound here before gunicorn starts (an IPv6 one even while still tentative
after boot), with no reverse look-up of the bound address: the portal
listens at once when the box boots with the WAN's DNS down. Under systemd
(Type=notify) gunicorn's arbiter says READY=1 once it has the sockets; this
module adds WATCHDOG=1 while the worker's loop runs, and STOPPING=1.

Two ways to run: ``serve()`` makes this process the arbiter until SIGTERM
(the ``run`` commands); ``Server.start()`` forks one (the demo, the tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import select
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from gunicorn import glogging
from gunicorn import sock as gsock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from passerelle import systemd
from passerelle.systemd import notify as sd_notify  # its callers' name for it

from .gunicorn_worker import (
    FIRST_BYTE_TIMEOUT,
    HEAD_TIMEOUT,
    KEEPALIVE,
    MAX_CONNECTIONS,
    PER_ADDRESS,
    THREADS,
    TIMEOUT,
    Admission,
    PortalWorker,
)

__all__ = ["FIRST_BYTE_TIMEOUT", "HEAD_TIMEOUT", "KEEPALIVE", "MAX_CONNECTIONS",
           "PER_ADDRESS", "THREADS", "TIMEOUT", "Admission", "Listener", "Server", "bind",
           "portal_listeners", "sd_notify", "serve"]

log = logging.getLogger("passerelle.portal")

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; Python 3.11 lacks the name
BACKLOG = 128  # connections the kernel holds while the worker is at MAX_CONNECTIONS
PR_SET_PDEATHSIG = 1  # prctl(2)
STALE = 10.0  # seconds without the worker's heartbeat before the watchdog goes unfed
GRACE = 5  # seconds a stop waits for the requests being served


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


def _listen(listener: Listener) -> socket.socket:
    six = ":" in listener.host
    sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if six:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # An IPv6 address is unusable for a second or so after boot
            # (duplicate address detection): bind it anyway.
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((listener.host, listener.port))  # an address: nothing to look up
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class _Log(glogging.Logger):
    """gunicorn's messages go to the portal's logger and our handlers. No
    access log: a query string carries the way-on token; each request's
    method, path and status are logged at DEBUG."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self.error_log = log
        self.access_log = log
        logging.getLogger("gunicorn.error").propagate = True  # its wsgi.errors

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        log.debug("%s %s %s %s", environ.get("REMOTE_ADDR"), environ.get("REQUEST_METHOD"),
                  str(environ.get("PATH_INFO", ""))[:200], resp.status)


class _Arbiter(Arbiter):
    """gunicorn's arbiter on the sockets we bound, feeding systemd's watchdog
    while its worker's loop runs, and saying STOPPING=1."""

    app: _Application

    def __init__(self, app: _Application) -> None:
        super().__init__(app)
        self._watchdog = systemd.watchdog_interval()
        self._fed = 0.0

    def start(self) -> None:
        # gunicorn's wrappers take (and close) a descriptor: give them copies.
        self.LISTENERS = [
            (gsock.TCP6Socket if s.family == socket.AF_INET6 else gsock.TCPSocket)(
                s.getsockname(), self.cfg, self.log, fd=os.dup(s.fileno()))
            for s in self.app.sockets]
        for s in self.app.sockets:
            s.close()
        super().start()

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self._watchdog is not None:
            timeout = min(timeout, self._watchdog)
        signals: list[int] = super().wait_for_signals(timeout)
        now = time.monotonic()
        if self._watchdog is not None and now - self._fed >= self._watchdog and self._alive():
            self._fed = now
            sd_notify("WATCHDOG=1")
        return signals

    def _alive(self) -> bool:
        # gthread's loop writes its heartbeat at least once a second.
        workers = list(self.WORKERS.values())
        return bool(workers) and all(time.monotonic() - w.tmp.last_update() < STALE
                                     for w in workers)

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        sd_notify("STOPPING=1")
        super().halt(reason, exit_status)

    # One worker, one process: the limits in memory are the worker's.
    def handle_ttin(self) -> None:
        self.log.warning("one worker only: SIGTTIN ignored")

    def handle_usr2(self) -> None:
        # A new arbiter would bind our addresses again: restart the service instead.
        self.log.warning("no upgrade in place: SIGUSR2 ignored")


class _Application(BaseApplication):
    """The Flask app and gunicorn's settings; the worker reads the TLS
    listeners' addresses and context from here."""

    def __init__(self, flask: Flask, sockets: Sequence[socket.socket],
                 tls_addresses: frozenset[tuple[str, int]], tls_context: ssl.SSLContext | None,
                 name: str, hooks: dict[str, Callable[..., None]]) -> None:
        self.flask = flask
        self.sockets = list(sockets)
        self.tls_addresses = tls_addresses
        self.tls_context = tls_context
        self._name = name
        self._hooks = hooks
        super().__init__()

    def load_config(self) -> None:
        def where(s: socket.socket) -> str:
            host, port = s.getsockname()[:2]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

        settings: dict[str, Any] = {
            "bind": [where(s) for s in self.sockets],
            "workers": 1,  # the in-memory limits stay in one process
            "worker_class": PortalWorker,
            "threads": THREADS,
            "worker_connections": MAX_CONNECTIONS,
            "backlog": BACKLOG,
            "keepalive": KEEPALIVE,
            "timeout": 30,  # the worker's loop silent that long: restarted
            "graceful_timeout": GRACE,
            # gunicorn's most: a captive client's long URL still gets its redirect.
            "limit_request_line": 8190,
            "limit_request_fields": 50,
            "limit_request_field_size": 8190,
            "sendfile": False,  # never on TLS; our pages are small
            "http_protocols": "h1",
            "http_parser": "python",  # what gunicorn_worker's head deadline reads through
            "forwarded_allow_ips": "",  # no client sets the scheme or its address by header
            "secure_scheme_headers": {},
            "control_socket_disable": True,
            "proc_name": f"passerelle-{self._name}",
            "logger_class": _Log,
            **self._hooks,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.flask

    def run(self) -> None:
        _Arbiter(self).run()


class Server:
    """``app`` on every listener: the sockets bound when built, served by
    gunicorn once ``run()`` (in this process) or ``start()`` (forked)."""

    def __init__(self, app: Flask, listeners: Sequence[Listener],
                 tls: ssl.SSLContext | None = None, name: str = "portal",
                 after_fork: Callable[[], None] | None = None) -> None:
        for listener in listeners:
            if listener.tls and tls is None:
                raise ValueError(f"{listener.host}:{listener.port} is a TLS listener: "
                                 "a TLS context is needed")
        self.app = app
        self.name = name
        self.tls = tls
        self._after_fork = after_fork
        self.sockets: list[socket.socket] = []
        try:
            for listener in listeners:
                self.sockets.append(_listen(listener))
        except BaseException:
            self.close()
            raise
        # (host, port) per listener, the port the one bound (0 picks one).
        self.addresses = [(str(s.getsockname()[0]), int(s.getsockname()[1]))
                          for s in self.sockets]
        self._tls = frozenset(a for a, listener in zip(self.addresses, listeners, strict=True)
                              if listener.tls)
        self.pid: int | None = None

    @property
    def ports(self) -> list[int]:
        return [port for _, port in self.addresses]

    @property
    def port(self) -> int:
        """The first listener's port."""
        return self.addresses[0][1]

    @property
    def where(self) -> str:
        return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses)

    def _application(self, hooks: dict[str, Callable[..., None]]) -> _Application:
        if self._after_fork is not None:
            after = self._after_fork
            hooks = {**hooks, "post_fork": lambda server, worker: after()}
        return _Application(self.app, self.sockets, self._tls, self.tls, self.name, hooks)

    def run(self) -> None:
        """Serve in this process until SIGTERM or SIGINT (gunicorn's arbiter;
        it ends the process by SystemExit, in the worker too)."""
        log.info("%s listening on %s", self.name, self.where)
        print(f"{self.name} listening on {self.where}", flush=True)
        self._application({}).run()

    def start(self, timeout: float = 10.0) -> None:
        """Serve from a forked arbiter; back once its worker serves. The
        arbiter ends with the calling thread: call it from the main one."""
        ready_r, ready_w = os.pipe()

        def ready(worker: Any) -> None:
            # A worker started again later finds the pipe closed: no matter.
            with contextlib.suppress(OSError):
                os.write(ready_w, b"!")

        application = self._application({"post_worker_init": ready})
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the arbiter, and (by gunicorn's fork) its worker
            code = 1
            try:
                os.close(ready_r)
                _end_with(parent)
                application.run()
                code = 0
            except SystemExit as end:
                code = end.code if isinstance(end.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid
        os.close(ready_w)
        self.close()
        try:
            readable, _, _ = select.select([ready_r], [], [], timeout)
            if not readable or not os.read(ready_r, 1):
                self.stop()
                raise RuntimeError(f"{self.name}: gunicorn did not start within {timeout} s")
        finally:
            os.close(ready_r)

    def stop(self, timeout: float = GRACE + 5.0) -> None:
        """End a started server: SIGTERM, then SIGKILL past ``timeout``."""
        pid, self.pid = self.pid, None
        if pid is None:
            self.close()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def close(self) -> None:
        """Close this process's copies of the sockets."""
        for s in self.sockets:
            s.close()


def _end_with(parent: int) -> None:
    """SIGTERM to this forked arbiter when the thread that forked it ends: a
    demo killed before it could stop its console leaves no server behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG): %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # gone already, before prctl
        os._exit(0)


def bind(app: Flask, listeners: Sequence[Listener], tls: ssl.SSLContext | None = None,
         name: str = "portal", after_fork: Callable[[], None] | None = None) -> Server:
    """A server on every listener, bound and listening, not yet serving."""
    return Server(app, listeners, tls, name, after_fork)


def serve(app: Flask, listeners: Sequence[Listener], tls: ssl.SSLContext | None = None,
          name: str = "portal", after_fork: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on every listener until SIGTERM or SIGINT."""
    bind(app, listeners, tls, name, after_fork).run()


def portal_listeners(hosts: Sequence[str], http_port: int, https_port: int) -> list[Listener]:
    """The portal's: HTTP and HTTPS on each of ``hosts``."""
    return [Listener(host, port, tls) for host in hosts
            for port, tls in ((http_port, False), (https_port, True))]
