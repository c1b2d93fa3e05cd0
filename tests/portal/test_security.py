"""CSRF, brute-force limits, headers, cookies, hostile input, and what is logged."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from .conftest import (
    IP,
    LOGIN,
    PASSWORD,
    PORTAL,
    SECURE,
    Clock,
    FakeDaemon,
    check_in,
    csrf_token,
    get,
    post,
)


def test_check_in_without_csrf_token_is_refused(client: FlaskClient, daemon: FakeDaemon) -> None:
    get(client, "/")
    r = post(client, "/check-in", {"login": LOGIN, "password": PASSWORD, "accept": "y"})
    assert r.status_code == 400 and "too old" in r.get_data(as_text=True)
    assert not [c for c in daemon.calls if c[0] == "check_in"]


def test_a_token_from_another_session_is_refused(app: object, daemon: FakeDaemon) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    one, two = app.test_client(), app.test_client()
    token = csrf_token(get(one, "/").get_data(as_text=True))
    get(two, "/")
    r = post(two, "/check-in", {"csrf_token": token, "login": LOGIN, "password": PASSWORD,
                                "accept": "y"})
    assert r.status_code == 400


def test_check_out_needs_the_csrf_token(client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    r = post(client, "/check-out", {})
    assert r.status_code == 400 and IP in daemon.sessions_by_ip


def test_csrf_works_over_https_without_a_referer(client: FlaskClient) -> None:
    r = check_in(client, base=SECURE)
    assert r.status_code == 303


def test_failures_per_mac_are_limited_with_a_clear_message(
        client: FlaskClient, daemon: FakeDaemon, clock: Clock) -> None:
    for i in range(3):  # mac_failures = 3 in the test settings
        assert check_in(client, login=f"u{i}@x.example").status_code == 403
    r = check_in(client)  # even the right password waits
    assert r.status_code == 429
    assert "Too many failed check-ins" in r.get_data(as_text=True)
    assert 0 < int(r.headers["Retry-After"]) <= 300
    calls = [c for c in daemon.calls if c[0] == "check_in"]
    assert len(calls) == 3, "a held-back attempt never reaches the centre"
    assert check_in(client, ip="198.51.100.11").status_code == 303, "another device may"
    clock.now += 301
    assert check_in(client).status_code == 303, "after the window"


def test_failures_per_login_are_limited_across_devices(
        client: FlaskClient, clock: Clock) -> None:
    ips = ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
    for i in range(4):  # login_failures = 4
        assert check_in(client, password="wrong", ip=ips[i % 2]).status_code == 403
    assert check_in(client, ip="198.51.100.12").status_code == 429
    clock.now += 901
    assert check_in(client, ip=ips[2]).status_code == 303


def test_success_clears_the_count(client: FlaskClient) -> None:
    for _ in range(2):
        check_in(client, password="wrong")
    assert check_in(client).status_code == 303
    token = csrf_token(get(client, "/status").get_data(as_text=True))
    post(client, "/check-out", {"csrf_token": token})
    for _ in range(2):
        assert check_in(client, password="wrong").status_code == 403


HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@pytest.mark.parametrize(("url", "base"), [
    ("/", PORTAL), ("/", SECURE), ("/static/portal.css", PORTAL), ("/nope", PORTAL),
    ("/generate_204", "http://connectivitycheck.gstatic.com"), ("/x", "http://example.org"),
    ("/api/captive", SECURE),
])
def test_security_headers_on_every_answer(client: FlaskClient, url: str, base: str) -> None:
    r = get(client, url, base=base)
    r.close()
    for name, value in HEADERS.items():
        assert r.headers[name] == value
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'none'" in csp and "unsafe-inline" not in csp


def test_pages_are_not_cached(client: FlaskClient) -> None:
    assert get(client, "/").headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_samesite_and_secure_on_https(client: FlaskClient) -> None:
    plain = get(client, "/").headers.get_all("Set-Cookie")
    assert plain and all("HttpOnly" in c and "SameSite=Lax" in c for c in plain)
    assert not any("Secure" in c for c in plain)
    secure = get(client, "/", base=SECURE).headers.get_all("Set-Cookie")
    assert secure and all("Secure" in c and "HttpOnly" in c for c in secure)
    assert plain[0].startswith("portal_session=") and secure[0].startswith("portal_session_tls=")
    assert check_in(client).status_code == 303, "plain HTTP still works after a visit on HTTPS"


def test_language_cookie_flags(client: FlaskClient) -> None:
    r = get(client, "/lang/fr?next=/", base=SECURE)
    (cookie,) = r.headers.get_all("Set-Cookie")
    assert "lang=fr" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_the_password_is_never_logged(client: FlaskClient, daemon: FakeDaemon,
                                      caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Pa55word"
    daemon.accounts["pw@x.example"] = None
    with caplog.at_level(logging.DEBUG):
        check_in(client, login="pw@x.example", password=secret)
        check_in(client, login=LOGIN, password=secret)
    assert caplog.records, "check-ins are logged"
    assert all(secret not in r.getMessage() for r in caplog.records)


HOSTILE_FORMS = [
    {"login": "a" * 100_000, "password": "x"},  # over MAX_CONTENT_LENGTH
    {"login": "a" * 300, "password": "x"},
    {"login": LOGIN, "password": "p" * 129},
    {"login": LOGIN, "password": "é" * 65},  # 65 characters, 130 octets
    {"login": "é" * 127 + "@x", "password": PASSWORD},
    {"login": "al\x00ice@acme.example", "password": PASSWORD},
    {"login": LOGIN, "password": "pass\r\nword"},
    {"login": "\x1b[31m", "password": "\x7f"},
    {"login": LOGIN, "password": PASSWORD, "to": "t" * 9000},
]


@pytest.mark.parametrize("fields", HOSTILE_FORMS)
def test_hostile_form_fields_get_a_clean_4xx(client: FlaskClient, daemon: FakeDaemon,
                                             fields: dict[str, str]) -> None:
    token = csrf_token(get(client, "/").get_data(as_text=True))
    r = post(client, "/check-in", {"csrf_token": token, "accept": "y", **fields})
    assert r.status_code in (400, 413)
    assert not [c for c in daemon.calls if c[0] == "check_in"]


def test_odd_encodings_get_a_clean_answer(client: FlaskClient) -> None:
    token = csrf_token(get(client, "/").get_data(as_text=True))
    body = (f"csrf_token={token}&accept=y&login=%FF%FE%C3%28&password=%C0%AF").encode()
    r = client.post("/check-in", base_url=PORTAL, data=body, environ_base={"REMOTE_ADDR": IP},
                    content_type="application/x-www-form-urlencoded; charset=utf-8")
    assert 400 <= r.status_code < 500 or r.status_code == 403
    r = client.post("/check-in", base_url=PORTAL, data=b"\xff\xfe\x00garbage",
                    environ_base={"REMOTE_ADDR": IP}, content_type="multipart/form-data")
    assert 400 <= r.status_code < 500
    r = get(client, "/?to=%FF%00%0A")
    assert r.status_code == 200


@pytest.mark.parametrize("host", [
    "evil.example/<script>", "a b", "portal.test:99999999", "x" * 300, "bad\x01host",
    "[::1", "user@portal.test",
])
def test_forged_host_headers_get_400(client: FlaskClient, host: str) -> None:
    r = client.get("/", headers={"Host": host}, environ_base={"REMOTE_ADDR": IP})
    assert r.status_code == 400
    assert "<script>" not in r.get_data(as_text=True)


def test_a_missing_host_is_sent_to_the_portal(client: FlaskClient) -> None:
    r = client.get("/", environ_overrides={"HTTP_HOST": ""}, environ_base={"REMOTE_ADDR": IP})
    assert r.status_code == 302 and r.headers["Location"] == "http://portal.test/"


def test_long_and_odd_paths_on_captive_hosts(client: FlaskClient) -> None:
    r = get(client, "/" + "a" * 5000, base="http://example.org")
    assert r.status_code == 302 and r.headers["Location"] == "http://portal.test/"
    r = get(client, "/%00%ff%0d%0aSet-Cookie:x=1", base="http://example.org")
    assert r.status_code == 302 and "\n" not in r.headers["Location"]


def test_the_language_switch_is_no_open_redirect(client: FlaskClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"):
        r = get(client, f"/lang/fr?next={target}")
        assert r.status_code == 303 and r.headers["Location"] == "/", target


def test_post_on_a_captive_host_does_not_check_in(client: FlaskClient,
                                                  daemon: FakeDaemon) -> None:
    r = post(client, "/check-in", {"login": LOGIN, "password": PASSWORD}, base="http://x.example")
    assert r.status_code == 302 and r.headers["Location"] == "http://portal.test/"
    assert not [c for c in daemon.calls if c[0] == "check_in"]


def test_script_in_fields_is_escaped(client: FlaskClient, daemon: FakeDaemon) -> None:
    login = '<script>alert(1)</script>"@x.example'
    daemon.accounts[login] = "no-credit"
    body = check_in(client, login=login).get_data(as_text=True)
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_a_device_on_another_s_address_sees_no_session_and_cannot_check_out(
        app: object, daemon: FakeDaemon) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    victim, thief = app.test_client(), app.test_client()
    assert check_in(victim).status_code == 303
    token = csrf_token(get(victim, "/status").get_data(as_text=True))
    daemon.taken.add(IP)  # another MAC now holds the victim's address
    for path in ("/", "/status", "/welcome"):
        r = get(thief, path)
        assert r.status_code == 409, path
        assert LOGIN not in r.get_data(as_text=True)
        assert "Another device is using this device" in r.get_data(as_text=True)
    r = post(victim, "/check-out", {"csrf_token": token})
    assert r.status_code == 409 and IP in daemon.sessions_by_ip, "the daemon refuses it"
