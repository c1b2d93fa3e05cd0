"""The portal's pages through Flask's test client, against a real control socket."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from passerelle.portal import origin

from .conftest import (
    IP,
    KEY,
    LOGIN,
    MAC,
    PASSWORD,
    PORTAL,
    FakeDaemon,
    check_in,
    csrf_token,
    get,
    post,
)


def test_a_captive_request_goes_to_the_portal_with_a_signed_way_on(client: FlaskClient) -> None:
    r = get(client, "/news?id=7", base="http://example.org")
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("http", "portal.test", "/")
    (token,) = parse_qs(location.query)["to"]
    assert origin.unsign(client.application.extensions["passerelle.portal"].secret,
                         token) == "http://example.org/news?id=7"


def test_check_in_page_has_the_site_the_fields_and_the_terms(client: FlaskClient) -> None:
    r = get(client, "/")
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and r.content_type == "text/html; charset=utf-8"
    assert "Axis Parc" in body
    assert '<label for="login">' in body and '<label for="password">' in body
    assert 'type="password"' in body and 'name="accept"' in body
    assert 'href="https://axis.example/terms"' in body
    assert "<script" not in body


def test_check_in_shows_the_key_the_qr_code_and_the_way_on(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    first = get(client, "/news?id=7", base="http://example.org")
    token = parse_qs(urlsplit(first.headers["Location"]).query)["to"][0]
    r = check_in(client, to=token)
    assert r.status_code == 303
    assert urlsplit(r.headers["Location"]).path == "/welcome"
    assert ("check_in", IP, LOGIN) in daemon.calls
    page = get(client, r.headers["Location"])
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'<code class="wifi-key">{escape(KEY)}</code>' in body
    # The private network the key opens, with what to do next.
    assert '<dd class="ssid">Passerelle-Private</dd>' in body
    assert "What to do next" in body
    assert re.search(r'<svg [^>]*role="img"', body) and "<path" in body
    assert 'href="http://example.org/news?id=7"' in body
    assert "2 h 01 min" in body  # 7260 s left


def test_without_a_token_there_is_no_way_on(client: FlaskClient) -> None:
    check_in(client)
    body = get(client, "/welcome").get_data(as_text=True)
    assert "Go on to" not in body and "See your session" in body


@pytest.mark.parametrize("token", [
    "garbage",
    origin.sign(b"another portal's secret", "http://evil.example/"),
    "x" * 9000,
], ids=["garbage", "signed-elsewhere", "huge"])  # stable ids: the signature holds the time
def test_a_forged_token_is_never_followed(client: FlaskClient, token: str) -> None:
    check_in(client)
    r = get(client, f"/welcome?to={token}")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert "evil.example" not in body and "Go on to" not in body


def test_an_altered_token_is_refused(client: FlaskClient) -> None:
    r = get(client, "/", base="http://example.org")
    token = parse_qs(urlsplit(r.headers["Location"]).query)["to"][0]
    _payload, rest = token.split(".", 1)
    forged = origin.sign(b"x", "http://evil.example/").split(".", 1)[0] + "." + rest
    check_in(client)
    assert "evil.example" not in get(client, f"/welcome?to={forged}").get_data(as_text=True)


def test_status_shows_time_data_site_and_checks_out(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    r = get(client, "/status")
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Axis Parc" in body and LOGIN in body
    assert '<dd class="left">2 h 01 min</dd>' in body
    assert "1.2 MB" in body and "98.8 MB" in body
    home = get(client, "/").get_data(as_text=True)
    assert '<dd class="left">' in home and "/check-out" in home, "home: the status once in"
    out = post(client, "/check-out", {"csrf_token": csrf_token(body)})
    assert out.status_code == 200 and "You are checked out" in out.get_data(as_text=True)
    assert ("check_out", IP) in daemon.calls and IP not in daemon.sessions_by_ip
    assert get(client, "/status").status_code == 303
    assert get(client, "/welcome").status_code == 303


def test_check_out_without_a_session_goes_home(client: FlaskClient) -> None:
    token = csrf_token(get(client, "/").get_data(as_text=True))
    r = post(client, "/check-out", {"csrf_token": token})
    assert r.status_code == 303 and urlsplit(r.headers["Location"]).path == "/"


def test_a_second_device_is_not_the_first_ones_session(client: FlaskClient) -> None:
    check_in(client)
    r = get(client, "/status", ip="198.51.100.11")
    assert r.status_code == 303, "the session belongs to 198.51.100.10"


REFUSALS = {
    "bad-credentials": "The login or the password is wrong.",
    "account-disabled": "Your account is disabled.",
    "company-closed": "account is closed.",
    "company-suspended": "account is suspended.",
    "payment-overdue": "payment is overdue.",
    "site-not-allowed": "does not allow you to work at this site.",
    "service-not-allowed": "does not include this service here.",
    "site-closed": "This site is closed at this hour.",
    "no-credit": "You have no telework credit left.",
    "something-new": "Access was refused.",
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_a_refusal_says_why_in_plain_words(
        client: FlaskClient, daemon: FakeDaemon, code: str) -> None:
    daemon.accounts["x@y.example"] = code
    r = check_in(client, login="x@y.example")
    body = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 403
    assert REFUSALS[code] in body
    assert "Check-in refused" in body and 'name="login"' in body, "the form to try again"
    assert PASSWORD not in body, "the password is not sent back"


def test_the_box_own_troubles_are_503_and_not_counted(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.down = True
    for _ in range(5):
        r = check_in(client)
        assert r.status_code == 503
        assert "does not answer right now" in html.unescape(r.get_data(as_text=True))
    daemon.down = False
    assert check_in(client).status_code == 303, "no limit for the centre being down"


def test_an_unknown_device_is_told_to_reconnect(client: FlaskClient) -> None:
    r = check_in(client, ip="198.51.100.99")
    assert r.status_code == 503
    assert "not known on this network" in r.get_data(as_text=True)


def test_form_errors_are_400_with_messages(client: FlaskClient) -> None:
    token = csrf_token(get(client, "/").get_data(as_text=True))
    r = post(client, "/check-in", {"csrf_token": token, "login": "", "password": ""})
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Enter your login." in body and "Enter your password." in body
    assert "Accept the terms of use to check in." in body
    assert 'aria-invalid="true"' in body


@pytest.mark.parametrize("base", ["http://198.51.100.1:8080", "http://[2001:db8:1::1]:8080"])
def test_the_portal_is_also_reached_by_the_box_addresses(client: FlaskClient,
                                                         base: str) -> None:
    r = get(client, "/", base=base)
    assert r.status_code == 200 and 'name="login"' in r.get_data(as_text=True)


def test_daemon_down_is_a_clear_503(client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.socket.unlink()
    r = get(client, "/")
    assert r.status_code == 503
    assert "starting or unavailable" in r.get_data(as_text=True)


def test_static_stylesheet_is_served_and_has_no_external_resources(client: FlaskClient) -> None:
    r = get(client, "/static/portal.css")
    css = r.get_data(as_text=True)
    r.close()
    assert r.status_code == 200 and "max-width" in css and ":focus-visible" in css
    assert "http" not in css and "@import" not in css and "@font-face" not in css


def test_unknown_paths_are_404(client: FlaskClient) -> None:
    r = get(client, "/admin")
    assert r.status_code == 404 and "Not found" in r.get_data(as_text=True)


def test_wifi_key_absent_says_so(client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    daemon.sessions_by_ip[IP]["wifi_key"] = None
    body = get(client, "/welcome").get_data(as_text=True)
    assert "No personal key was issued" in body and "<svg" not in body


def test_mac_is_what_the_limits_use(daemon: FakeDaemon) -> None:
    assert daemon.clients[IP] == MAC and PORTAL.startswith("http://")


def test_small_amounts_of_data_are_in_kilobytes(client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    daemon.sessions_by_ip[IP]["bytes_up"] = 41_600
    body = get(client, "/status").get_data(as_text=True)
    assert "<dd>42 kB</dd>" in body and "98.8 MB" in body


def test_status_shows_the_credit_left_the_box_reports(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    body = get(client, "/status").get_data(as_text=True)
    assert "Credit left" not in body, "a centre that does not say: no line"
    daemon.sessions_by_ip[IP]["credit_seconds_left"] = 6_900
    body = get(client, "/status").get_data(as_text=True)
    assert "<dt>Credit left</dt>" in body and '<dd class="credit">1 h 55 min</dd>' in body
    daemon.sessions_by_ip[IP]["credit_seconds_left"] = 0
    assert '<dd class="credit">0 min</dd>' in get(client, "/status").get_data(as_text=True)


def test_the_key_is_shown_only_in_the_browser_that_checked_in(
        app: Flask, daemon: FakeDaemon) -> None:
    mine, other = app.test_client(), app.test_client()
    check_in(mine)
    assert KEY[:5] in get(mine, "/welcome").get_data(as_text=True)
    # Another device borrowing the address (or another browser) sees no key ...
    body = get(other, "/welcome").get_data(as_text=True)
    assert "shown only in the browser you checked in with" in body
    assert KEY[:5] not in body and "<svg" not in body
    # ... not even by checking in again: the daemon would return the session.
    token = csrf_token(get(other, "/status").get_data(as_text=True))
    r = post(other, "/check-in", {"csrf_token": token, "login": "x@y.example",
                                  "password": "guess", "accept": "y"})
    assert r.status_code == 303 and urlsplit(r.headers["Location"]).path == "/status"
    assert KEY[:5] not in get(other, "/welcome").get_data(as_text=True)
    assert [c for c in daemon.calls if c[0] == "check_in"] == [("check_in", IP, LOGIN)]


@pytest.mark.parametrize("code, status", [("already-checked-in", 409), ("bad-request", 400),
                                          ("centre-unreachable", 503)])
def test_a_refusal_page_has_the_refusal_s_status(
        client: FlaskClient, daemon: FakeDaemon, code: str, status: int) -> None:
    daemon.accounts["x@y.example"] = code
    assert check_in(client, login="x@y.example").status_code == status


def test_a_daemon_failure_during_check_in_is_the_box_being_unavailable(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.accounts["x@y.example"] = "crash"  # the fake daemon raises: a 500 "internal"
    for _ in range(8):
        r = check_in(client, login="x@y.example")
        assert r.status_code == 503
        assert "starting or unavailable" in r.get_data(as_text=True)
    assert check_in(client).status_code == 303, "not counted as failed attempts"
