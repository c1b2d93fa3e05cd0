"""OS probes before and after check-in, and the RFC 8908 API."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from passerelle.portal.probes import PROBES

from .conftest import IP, PORTAL, SECURE, FakeDaemon, check_in, csrf_token, get, post

EXPECTED = {
    ("captive.apple.com", "/hotspot-detect.html"):
        (200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"),
    ("connectivitycheck.gstatic.com", "/generate_204"): (204, b""),
    ("www.google.com", "/gen_204"): (204, b""),
    ("play.googleapis.com", "/generate_204"): (204, b""),
    ("clients3.google.com", "/generate_204"): (204, b""),
    ("www.gstatic.com", "/generate_204"): (204, b""),
    ("www.msftconnecttest.com", "/connecttest.txt"): (200, b"Microsoft Connect Test"),
    ("www.msftncsi.com", "/ncsi.txt"): (200, b"Microsoft NCSI"),
    ("detectportal.firefox.com", "/success.txt"): (200, b"success\n"),
    ("detectportal.firefox.com", "/canonical.html"): (
        200, b'<meta http-equiv="refresh" '
             b'content="0;url=https://support.mozilla.org/kb/captive-portal"/>'),
}


def test_every_protocols_md_probe_is_known() -> None:
    assert set(EXPECTED) <= set(PROBES)


@pytest.mark.parametrize(("host", "path"), sorted(PROBES))
def test_before_check_in_a_probe_is_sent_to_the_portal(
        client: FlaskClient, host: str, path: str) -> None:
    r = get(client, path, base=f"http://{host}")
    assert r.status_code == 302
    assert r.headers["Location"] == "http://portal.test/"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("host", "path"), sorted(EXPECTED))
def test_after_check_in_a_probe_gets_what_its_os_expects(
        client: FlaskClient, host: str, path: str) -> None:
    check_in(client)
    r = get(client, path, base=f"http://{host}")
    status, body = EXPECTED[(host, path)]
    assert (r.status_code, r.get_data()) == (status, body)
    assert r.headers["Cache-Control"] == "no-store"
    other = get(client, path, base=f"http://{host}", ip="198.51.100.11")
    assert other.status_code == 302, "another client is still captive"


def test_probe_hosts_match_with_port_case_and_trailing_dot(client: FlaskClient) -> None:
    check_in(client)
    r = get(client, "/generate_204", base="http://ConnectivityCheck.GStatic.com.:80")
    assert r.status_code == 204


def test_a_probe_host_with_another_path_is_an_ordinary_page(client: FlaskClient) -> None:
    check_in(client)
    r = get(client, "/other", base="http://captive.apple.com")
    assert r.status_code == 302


def test_probes_fail_closed_when_the_daemon_is_down(client: FlaskClient,
                                                    daemon: FakeDaemon) -> None:
    check_in(client)
    daemon.socket.unlink()
    r = get(client, "/generate_204", base="http://connectivitycheck.gstatic.com")
    assert r.status_code == 302


def test_api_while_captive(client: FlaskClient) -> None:
    r = get(client, "/api/captive", base=SECURE)
    assert r.status_code == 200
    assert r.content_type == "application/captive+json"
    assert json.loads(r.get_data()) == {
        "captive": True, "user-portal-url": "https://portal.test:8443/",
        "venue-info-url": "https://axis.example/venue"}


def test_api_once_checked_in(client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    doc = json.loads(get(client, "/api/captive", base=SECURE).get_data())
    assert doc == {"captive": False, "user-portal-url": "https://portal.test:8443/",
                   "venue-info-url": "https://axis.example/venue", "seconds-remaining": 7260,
                   "can-extend-session": False}
    daemon.sessions_by_ip[IP]["bytes_left"] = 5_000_000
    doc = json.loads(get(client, "/api/captive", base=SECURE).get_data())
    assert doc["bytes-remaining"] == 5_000_000


def test_api_is_https_only(client: FlaskClient) -> None:
    r = get(client, "/api/captive", base=PORTAL)
    assert r.status_code == 404 and "HTTPS only" in r.get_data(as_text=True)


def test_api_when_the_daemon_is_down_says_captive(client: FlaskClient,
                                                  daemon: FakeDaemon) -> None:
    daemon.socket.unlink()
    r = get(client, "/api/captive", base=SECURE)
    assert r.status_code == 200 and json.loads(r.get_data())["captive"] is True


def test_probes_are_answered_while_check_ins_wait_for_a_slow_centre(
        app: Flask, daemon: FakeDaemon) -> None:
    check_in(app.test_client())
    daemon.hold = threading.Event()
    waiting = []
    started = time.monotonic()
    try:
        for i in range(6):
            browser = app.test_client()
            token = csrf_token(get(browser, "/", ip="198.51.100.11").get_data(as_text=True))
            data = {"csrf_token": token, "login": f"u{i}@x.example", "password": "p",
                    "accept": "y"}
            thread = threading.Thread(target=post, args=(browser, "/check-in", data),
                                      kwargs={"ip": "198.51.100.11"})
            thread.start()
            waiting.append(thread)
        while len([c for c in daemon.calls if c[0] == "check_in"]) < 7:
            time.sleep(0.01)
        r = get(app.test_client(), "/generate_204", base="http://connectivitycheck.gstatic.com")
        assert r.status_code == 204
        # Well under the control client's 5 s timeout, which would free a held call.
        assert time.monotonic() - started < 3
    finally:
        daemon.hold.set()
        for thread in waiting:
            thread.join(10)
