"""Check-in, the key page and the cookie over HTTPS only, unless the site
allows plain HTTP (and then a banner says so)."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask
from flask.testing import FlaskClient

from passerelle.gateway.control import ControlClient
from passerelle.portal.app import create_app

from .conftest import LOGIN, PASSWORD, PORTAL, SECURE, SETTINGS, Clock, FakeDaemon, check_in, get

BANNER = "This page is not encrypted"


@pytest.fixture
def strict(daemon: FakeDaemon, clock: Clock) -> FlaskClient:
    """The portal as a site gets it by default: plain HTTP not allowed."""
    settings = dataclasses.replace(SETTINGS, allow_plain_http=False)
    app: Flask = create_app(settings, ControlClient(daemon.socket, timeout=5), clock=clock)
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/?to=abc", "/welcome", "/status", "/lang/fr?next=/"])
def test_plain_http_pages_go_to_the_https_portal(strict: FlaskClient, path: str) -> None:
    r = get(strict, path)
    assert r.status_code == 302
    assert r.headers["Location"] == f"{SECURE}{path}"
    assert "Set-Cookie" not in r.headers, "no cookie over plain HTTP"


def test_a_plain_http_check_in_is_never_carried_out(strict: FlaskClient,
                                                    daemon: FakeDaemon) -> None:
    r = strict.post("/check-in", base_url=PORTAL, environ_base={"REMOTE_ADDR": "198.51.100.10"},
                    data={"login": LOGIN, "password": PASSWORD, "accept": "y"})
    assert r.status_code == 303 and r.headers["Location"] == f"{SECURE}/"
    assert not [c for c in daemon.calls if c[0] == "check_in"]


def test_captive_clients_are_sent_to_the_https_portal(strict: FlaskClient) -> None:
    r = get(strict, "/news", base="http://example.org")
    assert r.status_code == 302 and r.headers["Location"].startswith(f"{SECURE}/?to=")
    probe = get(strict, "/hotspot-detect.html", base="http://captive.apple.com")
    assert probe.headers["Location"] == f"{SECURE}/"


def test_check_in_and_key_over_https_with_a_secure_cookie(strict: FlaskClient) -> None:
    page = get(strict, "/", base=SECURE)
    assert page.status_code == 200 and BANNER not in page.get_data(as_text=True)
    r = check_in(strict, base=SECURE)
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    key = get(strict, "/welcome", base=SECURE)
    assert key.status_code == 200 and BANNER not in key.get_data(as_text=True)


def test_the_api_stays_https_only(strict: FlaskClient) -> None:
    assert get(strict, "/api/captive").status_code == 404
    assert get(strict, "/api/captive", base=SECURE).status_code == 200


def test_allowed_plain_http_says_so_on_every_page(client: FlaskClient) -> None:
    page = get(client, "/")
    assert page.status_code == 200 and BANNER in page.get_data(as_text=True)
    assert check_in(client).status_code == 303
    assert BANNER in get(client, "/welcome").get_data(as_text=True)
    assert BANNER not in get(client, "/", base=SECURE).get_data(as_text=True)
