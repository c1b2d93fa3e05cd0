"""The teleworker's own account on the centre, on SQLite and PostgreSQL:
sign-in with the Wi-Fi login and password, credit left, sessions, password
change, attempt limits, CSRF and expiry; and apart from operators."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import admin, keys, passwords
from passerelle.radius.db import transaction
from passerelle.radius.models import Radacct

from .conftest import NOC, NOW, Clock, World, sign_in, token

ALICE = "alice@acme.example"


def _account_sign_in(client: FlaskClient, login: str = ALICE, password: str = "pw") -> int:
    answer = client.post("/account/sign-in", data={
        "login": login, "password": password, "csrf_token": token(client, "/account/sign-in")})
    return answer.status_code


def test_credit_left_and_sessions(client: FlaskClient, world: World,
                                  factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        admin.add_credit(db, ALICE, 90, NOW - timedelta(days=1))
    assert client.get("/account/").headers["Location"].startswith("/account/sign-in")
    assert _account_sign_in(client) == 302
    page = client.get("/account/").get_data(as_text=True)
    assert '<strong id="credit-left">1:30:00</strong>' in page
    # Her open session at Axis Parc (an hour so far) and the closed one at CEI.
    rows = re.findall(r'<td data-label="Site">([^<]*)</td>', page)
    assert rows == ["Axis Parc", "CEI"]
    assert "still connected" in page and "1:00:00" in page
    assert "bob@" not in page


def test_the_key_is_shown_to_its_owner_while_checked_in(
        client: FlaskClient, world: World, factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        made = keys.rotate(db, world.people[ALICE], NOW)
        bobs = keys.rotate(db, world.people["bob@globex.example"], NOW)
        clear, ssid, bob_clear = made.passphrase, made.ssid, bobs.passphrase
    assert _account_sign_in(client) == 302
    page = client.get("/account/").get_data(as_text=True)
    assert f'<code class="mono" id="wifi-key">{clear}</code>' in page and ssid in page
    assert bob_clear not in page
    # Checked out everywhere: the key is no longer shown.
    with transaction(factory) as db:
        db.execute(update(Radacct).where(Radacct.person_id == world.people[ALICE])
                   .values(acctstoptime=NOW))
    assert clear not in client.get("/account/").get_data(as_text=True)


def test_wrong_passwords_are_limited(client: FlaskClient, world: World, clock: Clock) -> None:
    for _ in range(5):
        assert _account_sign_in(client, password="wrong") == 200
    assert _account_sign_in(client) == 429  # even the right one, for a while
    clock.advance(15 * 60 + 1)
    assert _account_sign_in(client) == 302
    assert _account_sign_in(client, login="nobody@acme.example") == 200


def test_the_form_needs_its_token(client: FlaskClient, world: World) -> None:
    answer = client.post("/account/sign-in", data={"login": ALICE, "password": "pw"})
    assert answer.status_code == 400
    assert _account_sign_in(client) == 302
    assert client.post("/account/password", data={
        "current": "pw", "new": "a new password", "repeat": "a new password"}).status_code == 400


def test_a_password_change(app: Flask, world: World, factory: sessionmaker[DB]) -> None:
    # Two devices, neither holding on to its last request's context.
    client, other_device = app.test_client(), app.test_client()
    assert _account_sign_in(client) == 302
    assert _account_sign_in(other_device) == 302
    form = {"csrf_token": token(client, "/account/password")}
    wrong = client.post("/account/password", data={
        **form, "current": "not it", "new": "a new password", "repeat": "a new password"})
    assert wrong.status_code == 400
    assert "current password is not right" in wrong.get_data(as_text=True)
    differ = client.post("/account/password", data={
        **form, "current": "pw", "new": "a new password", "repeat": "another one"})
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    done = client.post("/account/password", data={
        **form, "current": "pw", "new": "a new password", "repeat": "a new password"})
    assert done.status_code == 302
    assert client.get("/account/").status_code == 200  # this device stays in
    # The other device signed in with the old password: out.
    assert other_device.get("/account/").headers["Location"] == \
        "/account/sign-in?expired=1"
    with transaction(factory) as db:
        assert passwords.verify_password(admin.get_person(db, ALICE).password_hash,
                                         "a new password")


def test_sessions_expire(client: FlaskClient, world: World, clock: Clock) -> None:
    assert _account_sign_in(client) == 302
    clock.advance(29 * 60)
    assert client.get("/account/").status_code == 200
    clock.advance(31 * 60)
    assert client.get("/account/").headers["Location"] == "/account/sign-in?expired=1"


def test_people_and_operators_stay_apart(client: FlaskClient, world: World) -> None:
    assert _account_sign_in(client) == 302
    assert client.get("/live/").headers["Location"].startswith("/sign-in")
    assert client.get("/reports/").headers["Location"].startswith("/sign-in")
    sign_in(client, NOC)
    assert client.get("/account/").headers["Location"].startswith("/account/sign-in")
    # An operator's login and password are no teleworker's.
    assert _account_sign_in(client, NOC, "a long console pass") == 200


def test_sign_out(client: FlaskClient, world: World) -> None:
    assert _account_sign_in(client) == 302
    client.post("/account/sign-out", data={"csrf_token": token(client, "/account/")})
    assert client.get("/account/").headers["Location"].startswith("/account/sign-in")
