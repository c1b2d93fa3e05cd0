"""The box's local control interface: JSON over HTTP on a Unix socket.

The captive portal (and `passerelle gateway ...` commands) ask the daemon
who a client is, check it in or out, and how the box is. A Unix socket
keeps it off every network; its file mode (0660) and group (the portal
user's) say who may use it. The
portal's failure never touches enforced sessions: they live in the kernel
and the daemon, not here.

    GET  /v1/status               the box, its sessions, the centre, the spool
    GET  /v1/clients/<ip>         who is this IP, and its session if any
    GET  /v1/sessions             every open session
    POST /v1/check-in             {"ip", "login", "password", "chap"?}
    POST /v1/check-out            {"ip"}
    GET  /v1/key/<ip>             the personal key of the person checked in at ip
    POST /v1/key/rotate           {"ip"}: a new key for them, made by the centre
    GET  /v1/offer/<ip>           what the check-in page offers a station found by its key
    POST /v1/check-in/key         {"ip"}: one tap, the station's key as the proof
"""

from __future__ import annotations

import grp
import http.client
import json
import logging
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol

from passerelle.refusal import Refusal

log = logging.getLogger("passerelle.gateway")

MAX_BODY = 16 * 1024


class ControlError(Exception):
    """A refused call: ``status`` is the HTTP status, ``code`` a stable word
    (a ``Refusal``'s code, or one of the socket's own: not-found, too-large,
    internal)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @classmethod
    def refused(cls, refusal: Refusal, message: str) -> ControlError:
        return cls(refusal.status, refusal.value, message)

    @property
    def refusal(self) -> Refusal | None:
        """The refusal the code names; None for the socket's own errors."""
        return Refusal.from_code(self.code)


class Backend(Protocol):
    def status(self) -> dict[str, Any]: ...
    def who(self, ip: str) -> dict[str, Any]: ...
    def sessions(self) -> list[dict[str, Any]]: ...
    def check_in(self, ip: str, login: str, password: str, chap: bool) -> dict[str, Any]: ...
    def check_out(self, ip: str) -> dict[str, Any]: ...
    def key_of(self, ip: str) -> dict[str, Any]: ...
    def rotate_key(self, ip: str) -> dict[str, Any]: ...
    def offer(self, ip: str) -> dict[str, Any]: ...
    def check_in_by_key(self, ip: str) -> dict[str, Any]: ...


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ControlError.refused(Refusal.bad_request, f"{key}: a non-empty string is required")
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise ControlError.refused(Refusal.bad_request,
                                   f"{key}: too long or has control characters")
    return value


def route(backend: Backend, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The pure router: a call in, a JSON-able answer out, or ControlError."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] != ["v1"]:
        raise ControlError(404, "not-found", f"no such path: {path}")
    match method, parts[1:]:
        case "GET", ["status"]:
            return backend.status()
        case "GET", ["sessions"]:
            return {"sessions": backend.sessions()}
        case "GET", ["clients", ip]:
            return backend.who(ip)
        case "POST", ["check-in"]:
            return backend.check_in(_text(body, "ip", 45), _text(body, "login", 253),
                                    _text(body, "password", 128), bool(body.get("chap")))
        case "POST", ["check-out"]:
            return backend.check_out(_text(body, "ip", 45))
        case "GET", ["key", ip]:
            return backend.key_of(ip)
        case "POST", ["key", "rotate"]:
            return backend.rotate_key(_text(body, "ip", 45))
        case "GET", ["offer", ip]:
            return backend.offer(ip)
        case "POST", ["check-in", "key"]:
            return backend.check_in_by_key(_text(body, "ip", 45))
    raise ControlError(404, "not-found", f"no such call: {method} {path}")


class _Handler(BaseHTTPRequestHandler):
    server: ControlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control: " + format, *args)

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError as exc:  # the caller went away; nothing to do about it
            log.debug("control: answer not delivered: %s", exc)

    def _call(self, method: str) -> None:
        try:
            body: dict[str, Any] = {}
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ControlError(413, "too-large", "request body too large")
            if length:
                parsed = json.loads(self.rfile.read(length))
                if not isinstance(parsed, dict):
                    raise ControlError.refused(Refusal.bad_request,
                                               "the body must be a JSON object")
                body = parsed
            self._answer(200, route(self.server.backend, method, self.path, body))
        except ControlError as exc:
            self._answer(exc.status, {"error": exc.code, "message": str(exc)})
        except (ValueError, UnicodeDecodeError) as exc:
            self._answer(Refusal.bad_request.status,
                         {"error": Refusal.bad_request.value, "message": f"bad JSON: {exc}"})
        except Exception:  # the boundary: log it, answer, keep serving
            log.exception("control call %s %s failed", method, self.path)
            self._answer(500, {"error": "internal", "message": "internal error, see the log"})

    def do_GET(self) -> None:
        self._call("GET")

    def do_POST(self) -> None:
        self._call("POST")


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # The default backlog of 5 overflowed when many clients arrived at once.
    request_queue_size = 128

    def __init__(self, path: Path, backend: Backend, *, mode: int = 0o660,
                 group: str | int | None = None) -> None:
        """``mode``: the socket's permissions (0660: its owner and group
        only); ``group``: its group, by name or id (the portal user's);
        None: the daemon's own group."""
        self.backend = backend
        self.path = path
        gid = grp.getgrnam(group).gr_gid if isinstance(group, str) else group
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        old = os.umask(0o777 & ~mode)  # created with ``mode``: never wider for a moment
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old)
        if gid is not None:
            os.chown(path, -1, gid)
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[Any, Any]:
        # BaseHTTPRequestHandler expects a (host, port) client address.
        request, _ = super().get_request()
        return request, ("local", 0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.unix_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """What the portal and the CLI use to talk to the daemon."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload: dict[str, Any] = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status != 200:
            raise ControlError(resp.status, payload.get("error", "error"),
                               payload.get("message", ""))
        return payload

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/v1/status")

    def who(self, ip: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/clients/{ip}")

    def sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/v1/sessions")["sessions"]
        return result

    def check_in(self, ip: str, login: str, password: str, chap: bool = False) -> dict[str, Any]:
        return self.call("POST", "/v1/check-in",
                         {"ip": ip, "login": login, "password": password, "chap": chap})

    def check_out(self, ip: str) -> dict[str, Any]:
        return self.call("POST", "/v1/check-out", {"ip": ip})

    def key_of(self, ip: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/key/{ip}")

    def rotate_key(self, ip: str) -> dict[str, Any]:
        return self.call("POST", "/v1/key/rotate", {"ip": ip})

    def offer(self, ip: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/offer/{ip}")

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        return self.call("POST", "/v1/check-in/key", {"ip": ip})
