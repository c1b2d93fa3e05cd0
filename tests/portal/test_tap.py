"""The one-tap check-in on the portal: a station the box found by its key
(the access point's request) is greeted by name with one "Check in" button;
the site may ask for the password instead; a key that is no longer current
and a refusal give the ordinary form with the reason. The real control
socket, a fake daemon behind it (conftest.py)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from .conftest import IP, LOGIN, FakeDaemon, csrf_token, get, post


def _tap(client: FlaskClient) -> Any:
    page = get(client, "/")
    return post(client, "/check-in/key", {"csrf_token": csrf_token(page.get_data(as_text=True))})


def test_the_person_is_greeted_and_one_tap_checks_in(client: FlaskClient,
                                                    daemon: FakeDaemon) -> None:
    daemon.offers[IP] = {"login": LOGIN}
    html = get(client, "/").get_data(as_text=True)
    assert f"Welcome back to Axis Parc, {LOGIN}." in html
    assert 'action="/check-in/key"' in html and "no password needed" in html
    assert "Not you?" in html, "the ordinary form stays below"
    answer = _tap(client)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/welcome")
    assert ("check_in_by_key", IP) in daemon.calls
    welcome = get(client, "/welcome").get_data(as_text=True)
    assert "Passerelle-Private" in welcome, "the key is shown to the browser that tapped"


def test_the_site_may_ask_for_the_password(client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.offers[IP] = {"login": LOGIN, "mode": "password"}
    html = get(client, "/").get_data(as_text=True)
    assert f"Welcome back to Axis Parc, {LOGIN}." in html
    assert "/check-in/key" not in html and "Enter your password to check in." in html
    assert f'value="{LOGIN}"' in html, "the login is filled in"


def test_an_unknown_station_gets_the_ordinary_page(client: FlaskClient) -> None:
    html = get(client, "/").get_data(as_text=True)
    assert "Welcome back" not in html and "/check-in/key" not in html
    assert "Check in with your telework account" in html


def test_a_key_no_longer_current_gets_the_form_with_the_reason(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.offers[IP] = {"refusal": "key-not-current"}
    html = get(client, "/").get_data(as_text=True)
    assert "no longer your current key" in html and "/check-in/key" not in html
    assert 'name="password"' in html


def test_a_refusal_of_the_centre_gives_the_form_with_the_reason(
        client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.offers[IP] = {"login": LOGIN}
    daemon.accounts[LOGIN] = "no-credit"
    answer = _tap(client)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 403
    assert "You have no telework credit left." in html and 'name="password"' in html
    # A refusal on joining is told on the page too.
    daemon.offers[IP] = {"login": LOGIN, "refusal": "no-credit"}
    assert "You have no telework credit left." in get(client, "/").get_data(as_text=True)


def test_a_tap_needs_the_page_s_token(client: FlaskClient, daemon: FakeDaemon) -> None:
    daemon.offers[IP] = {"login": LOGIN}
    assert post(client, "/check-in/key", {}).status_code == 400
    assert ("check_in_by_key", IP) not in daemon.calls
