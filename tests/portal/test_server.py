"""The portal's servers on real sockets (127.0.0.1): HTTP, HTTPS with the
certificate validated, and a silent client that must not stop HTTPS."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from passerelle.portal import server, tls

HOST = "portal.test"


@pytest.fixture
def servers(app: Flask, tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    cert, key = tls.ensure_certificate(HOST, tmp_path)
    built = server.make_servers(app, "127.0.0.1", 0, 0, tls.server_context(cert, key))
    server.start(built)
    try:
        yield built[0].port, built[1].port, cert
    finally:
        server.stop(built)


def _https(port: int, cert: Path, path: str) -> http.client.HTTPResponse:
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    # Validate the certificate against the portal's name, not the address.
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                    server_hostname=HOST)
    conn.request("GET", path, headers={"Host": f"{HOST}:{port}"})
    return conn.getresponse()


def test_http_and_https_serve_the_portal(servers: tuple[int, int, Path]) -> None:
    http_port, https_port, cert = servers
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    conn.request("GET", "/", headers={"Host": HOST})
    page = conn.getresponse()
    assert page.status == 200 and b'name="login"' in page.read()
    assert "Secure" not in (page.getheader("Set-Cookie") or "")

    api = _https(https_port, cert, "/api/captive")
    assert api.status == 200 and api.getheader("Content-Type") == "application/captive+json"
    assert json.loads(api.read())["captive"] is True

    secure_page = _https(https_port, cert, "/")
    secure_page.read()
    assert "Secure" in (secure_page.getheader("Set-Cookie") or "")


def test_a_silent_client_does_not_stop_https(servers: tuple[int, int, Path]) -> None:
    _, https_port, cert = servers
    silent = [socket.create_connection(("127.0.0.1", https_port)) for _ in range(3)]
    try:
        started = time.monotonic()
        answer = _https(https_port, cert, "/api/captive")
        assert answer.status == 200
        assert time.monotonic() - started < 3
    finally:
        for s in silent:
            s.close()


def test_a_client_failing_the_handshake_is_dropped_quietly(
        servers: tuple[int, int, Path]) -> None:
    _, https_port, cert = servers
    with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")  # plain HTTP on TLS
        with contextlib.suppress(ConnectionResetError):
            assert not raw.recv(1024).startswith(b"HTTP"), "no answer in clear text"
    assert _https(https_port, cert, "/api/captive").status == 200
