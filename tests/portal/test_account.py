"""The account page: the person's own key, and changing it (issue 14)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from .conftest import (
    IP,
    KEY,
    NEW_KEY,
    PRIVATE_SSID,
    SECURE,
    FakeDaemon,
    check_in,
    csrf_token,
    get,
    post,
)


def _rotate(client: FlaskClient, page: str = "/account", **kwargs: Any) -> TestResponse:
    token = csrf_token(get(client, page).get_data(as_text=True))
    return post(client, "/account/rotate", {"csrf_token": token}, **kwargs)


def test_the_account_page_shows_the_key_its_network_and_the_way_to_change_it(
        client: FlaskClient) -> None:
    check_in(client)
    body = get(client, "/account").get_data(as_text=True)
    assert f'<code class="wifi-key">{escape(KEY)}</code>' in body
    assert f'<dd class="ssid">{PRIVATE_SSID}</dd>' in body and "<svg" in body
    assert 'action="/account/rotate"' in body and "Change my key" in body
    # The key page leads there.
    assert 'href="/account"' in get(client, "/welcome").get_data(as_text=True)


def test_changing_the_key_shows_the_new_one(client: FlaskClient, daemon: FakeDaemon) -> None:
    check_in(client)
    r = _rotate(client)
    assert r.status_code == 303 and r.headers["Location"].endswith("/account?rotated=1")
    assert ("rotate_key", IP) in daemon.calls
    body = get(client, r.headers["Location"]).get_data(as_text=True)
    assert f'<code class="wifi-key">{NEW_KEY}</code>' in body and escape(KEY) not in body
    assert "Your new key is below" in body


def test_a_rotation_without_the_form_token_is_refused(client: FlaskClient,
                                                      daemon: FakeDaemon) -> None:
    check_in(client)
    r = post(client, "/account/rotate", {})
    assert r.status_code == 400
    assert ("rotate_key", IP) not in daemon.calls


def test_another_browser_sees_no_key_and_cannot_change_it(
        app: Flask, daemon: FakeDaemon) -> None:
    mine, other = app.test_client(), app.test_client()
    check_in(mine)
    body = get(other, "/account").get_data(as_text=True)
    assert escape(KEY) not in body and "shown only in the browser you checked in with" in body
    r = _rotate(other, page="/status")
    assert r.status_code == 403
    assert ("rotate_key", IP) not in daemon.calls


def test_a_rotation_the_centre_cannot_make_says_so(client: FlaskClient,
                                                    daemon: FakeDaemon) -> None:
    check_in(client)
    daemon.rotate_refusal = "centre-unreachable"
    r = _rotate(client)
    assert r.status_code == 503
    assert "could not be changed now" in r.get_data(as_text=True)


def test_without_a_session_the_account_page_goes_home(client: FlaskClient) -> None:
    r = get(client, "/account")
    assert r.status_code == 303 and r.headers["Location"].endswith("/")


def test_over_plain_http_the_account_page_goes_to_https(daemon: FakeDaemon) -> None:
    from passerelle.gateway.control import ControlClient
    from passerelle.portal.app import create_app

    from .conftest import SETTINGS

    strict = create_app(SETTINGS.__class__(**{**SETTINGS.__dict__, "allow_plain_http": False}),
                        ControlClient(daemon.socket, timeout=5))
    r = get(strict.test_client(), "/account")
    assert r.status_code == 302 and r.headers["Location"] == f"{SECURE}/account"
