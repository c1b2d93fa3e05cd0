"""The portal's server (gunicorn, portal/server.py and gunicorn_worker.py) on
real sockets of 127.0.0.0/8: HTTP and HTTPS from one gunicorn with the right
scheme each, and the bounds that keep it up on an open Wi-Fi (a flood of
idle connections, the per-address cap, a slow loris, a TLS client that
never says hello)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from passerelle.portal import cli as portal_cli
from passerelle.portal import server, tls
from tests.gateway.conftest import require_lab

from .conftest import LOGIN, MAC, PASSWORD, FakeDaemon, csrf_token

HOST = "portal.test"


@pytest.fixture
def servers(app: Flask, tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    cert, key = tls.ensure_certificate(HOST, tmp_path)
    served = server.bind(app, server.portal_listeners(["127.0.0.1"], 0, 0),
                         tls.server_context(cert, key))
    served.start()
    try:
        http_port, https_port = served.ports
        yield http_port, https_port, cert
    finally:
        served.stop()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def _https(port: int, cert: Path, path: str, source: str = "127.0.0.1",
           headers: dict[str, str] | None = None) -> Answer:
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    # Validate the certificate against the portal's name, not the address.
    conn.sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)),
        server_hostname=HOST)
    try:
        conn.request("GET", path, headers={"Host": f"{HOST}:{port}", **(headers or {})})
        answer = conn.getresponse()
        return Answer(answer.status, answer.headers, answer.read())
    finally:
        conn.close()


def test_http_and_https_serve_the_portal_each_with_its_scheme(
        servers: tuple[int, int, Path]) -> None:
    http_port, https_port, cert = servers
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    # A client cannot make plain HTTP look like HTTPS: the listener decides
    # (gunicorn trusts this header from 127.0.0.1 unless told otherwise).
    conn.request("GET", "/", headers={"Host": HOST, "X-Forwarded-Proto": "https",
                                      "X-Forwarded-Ssl": "on"})
    page = conn.getresponse()
    assert page.status == 200 and b'name="login"' in page.read()
    assert "Secure" not in (page.getheader("Set-Cookie") or ""), "http: no Secure cookie"
    conn.close()

    api = _https(https_port, cert, "/api/captive")
    assert api.status == 200 and api.headers["Content-Type"] == "application/captive+json"
    assert json.loads(api.body)["captive"] is True

    secure_page = _https(https_port, cert, "/", headers={"X-Forwarded-Proto": "http"})
    assert "Secure" in (secure_page.headers["Set-Cookie"] or ""), "https: a Secure cookie"


def test_plain_http_answers_once_per_connection(servers: tuple[int, int, Path]) -> None:
    """A captive client's port 80 reaches the portal by DNAT: a kept-alive
    connection would carry the DNAT past check-in, so the next page the
    browser asks for on it would come back to the portal."""
    http_port, _, _ = servers
    with socket.create_connection(("127.0.0.1", http_port), timeout=5) as sock:
        sock.sendall(f"GET /hotspot-detect.html HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):  # until the server closes
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 ") and "connection: close" in head


def test_a_client_failing_the_handshake_is_dropped_quietly(
        servers: tuple[int, int, Path]) -> None:
    _, https_port, cert = servers
    with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")  # plain HTTP on TLS
        with contextlib.suppress(ConnectionResetError):
            assert not raw.recv(1024).startswith(b"HTTP"), "no answer in clear text"
    assert _https(https_port, cert, "/api/captive").status == 200


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (EOF or reset), without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


# Why the connects that returned None failed, for the assertions' messages.
_FAILED: list[str] = []


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket | None:
    """A connection that says nothing; None when the server reset it already
    (the connect itself then fails)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    # The source port is chosen at connect(), per destination: bound first
    # with port 0, a socket takes a port of its own out of the whole range,
    # which a busy CI machine's other tests (TIME_WAIT) can leave short.
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
    try:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except OSError as exc:
        _FAILED.append(f"{type(exc).__name__}: {exc}")
        sock.close()
        return None
    return sock


def _check_in_from(address: str, port: int) -> int:
    """A person's check-in over a new connection per request, from ``address``."""
    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                          source_address=(address, 0))
    conn = connect()
    conn.request("GET", "/", headers={"Host": HOST})
    page = conn.getresponse()
    body, cookie = page.read().decode(), page.getheader("Set-Cookie", "").split(";")[0]
    conn.close()
    form = (f"csrf_token={csrf_token(body)}&login={LOGIN}&password={PASSWORD}&accept=y"
            .replace("@", "%40").replace(" ", "+"))
    conn = connect()
    conn.request("POST", "/check-in", body=form,
                 headers={"Host": HOST, "Cookie": cookie,
                          "Content-Type": "application/x-www-form-urlencoded"})
    status = conn.getresponse().status
    conn.close()
    return status


def _worker_threads() -> int:
    """Threads of the gunicorn worker: the one grandchild of this process."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    grandchildren = [pid for child in children
                     for pid in Path(f"/proc/{child}/task/{child}/children").read_text().split()]
    assert len(grandchildren) == 1, grandchildren
    return len(os.listdir(f"/proc/{grandchildren[0]}/task"))


def test_a_flood_of_idle_connections_is_bounded_and_check_in_goes_on(
        servers: tuple[int, int, Path], daemon: FakeDaemon) -> None:
    http_port, _, _ = servers
    daemon.clients["127.0.0.2"] = MAC
    flood = [s for s in (_connect(http_port) for _ in range(200)) if s is not None]
    try:
        time.sleep(0.5)
        kept = [s for s in flood if not _closed(s)]
        assert len(kept) <= server.PER_ADDRESS, "over the cap: reset at once"
        started = time.monotonic()
        assert _check_in_from("127.0.0.2", http_port) == 303
        assert time.monotonic() - started < 2.0, "another person is not held up"
        assert _worker_threads() <= server.THREADS + 2, "a bounded pool"

        time.sleep(server.FIRST_BYTE_TIMEOUT + 1.5)
        assert all(_closed(s) for s in kept), "silent connections end at their first-byte wait"
    finally:
        for s in flood:
            s.close()


def test_one_address_gets_at_most_its_share_of_connections(
        servers: tuple[int, int, Path]) -> None:
    http_port, _, _ = servers
    held = [_connect(http_port) for _ in range(server.PER_ADDRESS)]
    try:
        assert all(s is not None for s in held), _FAILED[-1:]
        time.sleep(0.3)
        assert not any(_closed(s) for s in held if s is not None), "under the cap: kept"
        over = _connect(http_port)  # the kernel accepts it; the worker resets it
        if over is None:
            # Reset before connect() returned (the client's thread was not
            # scheduled in time, on a loaded machine): the same reset.
            assert _FAILED[-1].startswith("ConnectionResetError"), _FAILED[-1:]
        else:
            time.sleep(0.3)
            assert _closed(over), "one over the cap: reset at once"
            over.close()
        other = _connect(http_port, "127.0.0.3")
        assert other is not None, _FAILED[-1:]
        time.sleep(0.3)
        assert not _closed(other), "another address is not counted with it"
        other.close()
        first = held.pop()
        assert first is not None
        first.close()
        time.sleep(0.3)
        again = _connect(http_port)
        assert again is not None, _FAILED[-1:]
        held.append(again)
        time.sleep(0.3)
        assert not _closed(again), "a slot freed is free again"
    finally:
        for s in held:
            if s is not None:
                s.close()


def test_a_slow_loris_does_not_block_others_and_is_let_go(
        servers: tuple[int, int, Path], daemon: FakeDaemon) -> None:
    http_port, _, _ = servers
    daemon.clients["127.0.0.2"] = MAC
    # More than the pool has threads, one byte of a request head every 2 s.
    loris = [s for s in (_connect(http_port) for _ in range(server.THREADS + 20))
             if s is not None]
    started = time.monotonic()
    try:
        for s in loris:
            with contextlib.suppress(OSError):  # the ones over the cap are gone
                s.send(b"G")
        time.sleep(0.5)
        slow = [s for s in loris if not _closed(s)]
        assert slow, "the slow ones were taken in"
        t = time.monotonic()
        assert _check_in_from("127.0.0.2", http_port) == 303
        assert time.monotonic() - t < 2.0, "another person is not held up"
        alive = list(slow)
        for byte in b"ET / HTTP/1.1\r\nHost: portal.test\r\n":
            if time.monotonic() - started > server.HEAD_TIMEOUT + 2.5:
                break
            time.sleep(2)
            alive = [s for s in alive if not _closed(s)]
            for s in alive:
                s.setblocking(True)
                with contextlib.suppress(OSError):
                    s.send(bytes([byte]))
        assert all(_closed(s) for s in slow), "a head that never ends is let go"
    finally:
        for s in loris:
            s.close()


def test_tls_clients_that_never_say_hello_do_not_stop_https(
        servers: tuple[int, int, Path]) -> None:
    _, https_port, cert = servers
    # More than the pool has threads, from several addresses (under the cap each).
    sources = [f"127.0.0.{n}" for n in range(10, 14)]
    silent = [s for s in (_connect(https_port, sources[i % len(sources)])
                          for i in range(server.THREADS + 20)) if s is not None]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert _https(https_port, cert, "/api/captive", source="127.0.0.20").status == 200
        assert time.monotonic() - started < 2.0, "HTTPS answers the others at once"
    finally:
        for s in silent:
            s.close()


# --- binding looks no name up ---------------------------------------------------

RESOLVER = "192.0.2.1"  # the namespace's own address, and its resolver, which swallows DNS

# Any Flask app, served the way `passerelle portal run` serves the portal.
SERVE = """
import sys, time
from pathlib import Path
from flask import Flask
from passerelle.portal import cli as portal_cli
from passerelle.portal import server, tls
from tests.gateway.conftest import require_lab
app = Flask("any")
app.get("/")(lambda: "hello")
context = tls.server_context(Path(sys.argv[2]), Path(sys.argv[3]))
print(time.monotonic(), flush=True)
server.serve(app, [server.Listener(sys.argv[1], 0), server.Listener(sys.argv[1], 0, True)],
             context, name="test")
"""


@pytest.fixture
def swallowing_dns() -> Iterator[str]:
    """A network namespace whose resolver (RESOLVER, per its resolv.conf)
    drops every DNS query: a look-up there waits the resolver's timeout."""
    require_lab()
    name = f"portal-dns-{secrets.token_hex(3)}"
    etc = Path("/etc/netns") / name
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{RESOLVER}/32", "dev", "lo"],
                    ["nft", "add table inet swallow; add chain inet swallow input { type filter "
                     "hook input priority 0; }; add rule inet swallow input udp dport 53 drop; "
                     "add rule inet swallow input tcp dport 53 drop"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        etc.mkdir(parents=True)
        # `ip netns exec` puts this file over /etc/resolv.conf.
        (etc / "resolv.conf").write_text(f"nameserver {RESOLVER}\noptions timeout:2 attempts:1\n")
        yield name
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def test_binding_looks_no_name_up_and_tells_systemd(swallowing_dns: str,
                                                    tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate(HOST, tmp_path)
    # The proof that a look-up there is slow: a reverse one of the address we bind.
    lookup = subprocess.Popen(_in(swallowing_dns, sys.executable, "-c",
                                  "import socket, time; t = time.monotonic(); "
                                  f"socket.getfqdn('{RESOLVER}'); print(time.monotonic() - t)"),
                              stdout=subprocess.PIPE, text=True)
    with lookup, tempfile.TemporaryDirectory(prefix="notify-") as short, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(f"{short}/notify")
        notify.settimeout(15)
        env = {**os.environ, "NOTIFY_SOCKET": f"{short}/notify"}
        with subprocess.Popen(_in(swallowing_dns, sys.executable, "-c", SERVE, RESOLVER,
                                  str(cert), str(key)),
                              stdout=subprocess.PIPE, text=True, env=env) as served:
            try:
                assert served.stdout is not None
                binding = float(served.stdout.readline())
                ready = notify.recv(4096).decode()
                bound_in = time.monotonic() - binding
                listening = served.stdout.readline()
                assert "listening on" in listening, listening
                assert ready.startswith("READY=1\n"), ready  # gunicorn's arbiter, once bound
                assert bound_in < 1.0, f"{bound_in:.1f} s from binding to READY=1"
                ports = [int(part.rsplit(":", 1)[1]) for part in
                         listening.split(" on ", 1)[1].strip().split(", ")]
                answer = subprocess.run(_in(swallowing_dns, "curl", "-sS", "-m", "5", "-k",
                                            f"http://{RESOLVER}:{ports[0]}/",
                                            f"https://{RESOLVER}:{ports[1]}/"),
                                        capture_output=True, text=True, check=False)
                assert answer.stdout == "hellohello", answer.stderr
                served.terminate()
                assert served.wait(10) == 0
                assert notify.recv(4096) == b"STOPPING=1"
            finally:
                if served.poll() is None:
                    served.kill()
        out, _ = lookup.communicate(timeout=30)
    assert float(out) >= 1.5, "the namespace's resolver answered: the test proves nothing"


def test_sd_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"passerelle-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert server.sd_notify("READY=1")
        assert notify.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not server.sd_notify("READY=1"), "not under systemd: nothing to tell"


@pytest.mark.parametrize("host", ["localhost", "portal.test", "", "198.51.100.300"])
def test_a_listener_is_an_address_never_a_name(host: str) -> None:
    with pytest.raises(ValueError):
        server.Listener(host, 8080)


def test_a_tls_listener_needs_a_context(app: Flask) -> None:
    with pytest.raises(ValueError, match="TLS context"):
        server.bind(app, [server.Listener("127.0.0.1", 0, tls=True)])


def test_the_command_refuses_a_name_to_listen_on() -> None:
    refused = CliRunner().invoke(portal_cli.portal, ["run", "--listen", "portal.test"])
    assert refused.exit_code == 2 and "is not an IP address" in refused.output


def test_a_stop_does_not_wait_for_idle_connections(app: Flask) -> None:
    served = server.bind(app, [server.Listener("127.0.0.1", 0)])
    served.start()
    idle = [_connect(served.port) for _ in range(3)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        served.stop()
        assert time.monotonic() - started < 2.0, "idle connections are closed at once"
    finally:
        for s in idle:
            if s is not None:
                s.close()
