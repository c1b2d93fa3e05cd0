"""Fixtures for the portal's Flask tests: the app, talking to a real
``ControlServer`` on a Unix socket, with a small fake daemon behind it."""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from passerelle.gateway.control import ControlClient, ControlError, ControlServer
from passerelle.portal.app import create_app
from passerelle.portal.settings import PortalSettings

PORTAL = "http://portal.test"
SECURE = "https://portal.test:8443"
IP = "198.51.100.10"
MAC = "02:50:00:00:00:10"
KEY = 'k3y;with,odd:chars"\\'
PASSWORD = "correct horse"
LOGIN = "alice@acme.example"
PRIVATE_SSID = "Passerelle-Private"
NEW_KEY = "n3w-personal-key"

SETTINGS = PortalSettings(
    hostname="portal.test", http_port=8080, https_port=8443,
    api_url="https://portal.test:8443/api/captive", ssid="Passerelle", site_name="Axis Parc",
    box_ipv4="198.51.100.1", box_ipv6="2001:db8:1::1", venue_url="https://axis.example/venue",
    terms_url="https://axis.example/terms", mac_failures=3, mac_window=300,
    login_failures=4, login_window=900,
    # Most tests speak plain HTTP to the portal (test_https.py: the default).
    allow_plain_http=True)


class FakeDaemon:
    """What the portal sees of the gateway daemon, behind the real socket."""

    def __init__(self) -> None:
        self.clients = {IP: MAC, "198.51.100.11": "02:50:00:00:00:11",
                        "198.51.100.12": "02:50:00:00:00:12"}
        # login -> the centre's refusal code ("crash": the daemon fails), or
        # None: accepted with PASSWORD
        self.accounts: dict[str, str | None] = {LOGIN: None}
        self.sessions_by_ip: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.down = False
        self.socket = Path()
        self.hold: threading.Event | None = None  # check-ins wait for it: a slow centre
        # Addresses the daemon finds under another MAC than their session's.
        self.taken: set[str] = set()
        self.private_ssid = PRIVATE_SSID
        self.serial = 1
        self.rotate_refusal: str | None = None  # the centre's answer to a rotation
        # What the check-in page offers a station found by its key, by address.
        self.offers: dict[str, dict[str, Any]] = {}

    def _claimed(self, ip: str) -> None:
        if ip in self.taken:
            raise ControlError(409, "address-taken", f"{ip} belongs to another device")

    def status(self) -> dict[str, Any]:
        return {"identifier": "axis-gw", "sessions": len(self.sessions_by_ip)}

    def who(self, ip: str) -> dict[str, Any]:
        self.calls.append(("who", ip))
        self._claimed(ip)
        return {"ip": ip, "mac": self.clients.get(ip), "session": self.sessions_by_ip.get(ip)}

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.sessions_by_ip.values())

    def check_in(self, ip: str, login: str, password: str, chap: bool) -> dict[str, Any]:
        self.calls.append(("check_in", ip, login))
        if self.hold is not None:
            self.hold.wait(10)
        if self.down:
            raise ControlError(503, "centre-unreachable", "the centre did not answer")
        self._claimed(ip)
        if ip not in self.clients:
            raise ControlError(503, "unknown-client", f"no client with address {ip}")
        if login not in self.accounts:
            raise ControlError(403, "bad-credentials", "unknown login")
        code = self.accounts[login]
        if code == "crash":
            raise RuntimeError("the daemon failed")
        if code is not None:
            raise ControlError(403, code, "refused")
        if password != PASSWORD:
            raise ControlError(403, "bad-credentials", "wrong password")
        session = {"session_id": "s1", "login": login, "mac": self.clients[ip], "ip": ip,
                   "started": 1000.0, "seconds_used": 125, "seconds_left": 7260,
                   "bytes_up": 1_234_567, "bytes_down": 98_765_432, "wifi_key": KEY,
                   "idle_timeout": 900, "bandwidth_up": None, "bandwidth_down": None}
        self.sessions_by_ip[ip] = session
        return session

    def key_of(self, ip: str) -> dict[str, Any]:
        self.calls.append(("key_of", ip))
        self._claimed(ip)
        session = self.sessions_by_ip.get(ip)
        if session is None:
            raise ControlError(403, "no-session", f"no session for {ip}")
        return {"login": session["login"], "session_id": session["session_id"],
                "key": session["wifi_key"], "serial": self.serial, "ssid": self.private_ssid}

    def rotate_key(self, ip: str) -> dict[str, Any]:
        self.calls.append(("rotate_key", ip))
        self._claimed(ip)
        if ip not in self.sessions_by_ip:
            raise ControlError(403, "no-session", f"no session for {ip}")
        if self.rotate_refusal is not None:
            raise ControlError(503, self.rotate_refusal, "the centre did not answer")
        self.serial += 1
        self.sessions_by_ip[ip]["wifi_key"] = NEW_KEY
        return self.key_of(ip)

    def check_out(self, ip: str) -> dict[str, Any]:
        self.calls.append(("check_out", ip))
        self._claimed(ip)
        if ip not in self.sessions_by_ip:
            raise ControlError(403, "no-session", f"no session for {ip}")
        return {"ended": self.sessions_by_ip.pop(ip)["session_id"]}

    def offer(self, ip: str) -> dict[str, Any]:
        self.calls.append(("offer", ip))
        self._claimed(ip)
        return {"ip": ip, "mac": self.clients.get(ip), "login": None, "mode": "tap",
                "refusal": None, **self.offers.get(ip, {})}

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        """One tap: the offer's person, refused as the centre would refuse them."""
        self.calls.append(("check_in_by_key", ip))
        login = self.offers.get(ip, {}).get("login")
        if login is None:
            raise ControlError(503, "unknown-client", f"no key known for {ip}")
        code = self.accounts.get(login, "key-not-current")
        if code is not None:
            raise ControlError(403, code, "refused")
        return self.check_in(ip, login, PASSWORD, False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()
    # A short path: Unix socket paths are limited to 108 octets.
    with tempfile.TemporaryDirectory(prefix="portal-") as tmp:
        fake.socket = Path(tmp) / "control.sock"
        server = ControlServer(fake.socket, fake)
        server.start()
        try:
            yield fake
        finally:
            server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(daemon: FakeDaemon, clock: Clock) -> Flask:
    return create_app(SETTINGS, ControlClient(daemon.socket, timeout=5), clock=clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def get(client: FlaskClient, url: str, ip: str = IP, base: str = PORTAL,
        **kwargs: Any) -> TestResponse:
    return client.get(url, base_url=base, environ_base={"REMOTE_ADDR": ip}, **kwargs)


def post(client: FlaskClient, url: str, data: dict[str, Any], ip: str = IP,
         base: str = PORTAL, **kwargs: Any) -> TestResponse:
    return client.post(url, base_url=base, data=data, environ_base={"REMOTE_ADDR": ip},
                       **kwargs)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def check_in(client: FlaskClient, login: str = LOGIN, password: str = PASSWORD,
             ip: str = IP, to: str = "", base: str = PORTAL, **extra: Any) -> Any:
    page = get(client, f"/?to={to}" if to else "/", ip=ip, base=base)
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "login": login,
            "password": password, "accept": "y", "to": to, **extra}
    return post(client, "/check-in", data, ip=ip, base=base)
