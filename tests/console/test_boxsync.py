"""The boxes' signed channel on the console (boxsync.py): a good pull, and
each refusal (wrong signature, replay, stale time, unknown gateway) with
its log line; a rotation only for a person checked in at the asking box."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway import keysync
from passerelle.radius import keys
from passerelle.radius.db import transaction
from passerelle.radius.models import PersonKey

from .conftest import NOW, SECRET, Clock, World

ALICE, BOB, CAROL = "alice@acme.example", "bob@globex.example", "carol@globex.example"


def _signed(client: FlaskClient, path: str, body: dict[str, Any], clock: Clock, *,
            gateway: str = "axis-gw", secret: str = SECRET, skew: float = 0.0,
            headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode()
    stamp = str(int(clock() + skew))
    sent = headers if headers is not None else {
        keysync.H_GATEWAY: gateway, keysync.H_TIME: stamp,
        keysync.H_SIGNATURE: keysync.signature(secret.encode(), "POST", path, stamp, data)}
    return client.post(path, data=data, headers=sent, content_type="application/json")


@pytest.fixture
def issued(factory: sessionmaker[DB], world: World) -> dict[str, PersonKey]:
    with transaction(factory) as db:
        made = {login: keys.issue_if_missing(db, world.people[login], NOW)
                for login in (ALICE, BOB, CAROL)}
        for key in made.values():
            db.expunge(key)
    return made


def test_a_signed_pull_returns_the_keys_allowed_at_the_site(
        client: FlaskClient, clock: Clock, issued: dict[str, PersonKey]) -> None:
    r = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = r.get_json()
    assert {k["login"] for k in doc["keys"]} == {ALICE, BOB, CAROL}
    alice = next(k for k in doc["keys"] if k["login"] == ALICE)
    assert alice["passphrase"] == issued[ALICE].passphrase
    assert alice["pmk"] == issued[ALICE].pmk and doc["ssid"] == "Passerelle-Private"
    assert doc["cursor"] == max(k.id for k in issued.values())
    # Since the cursor: nothing new, but every key still allowed, by id.
    again = _signed(client, keysync.KEYS_PATH, {"since": doc["cursor"]}, clock).get_json()
    assert again["keys"] == [] and set(again["allowed"]) == {str(k["id"]) for k in doc["keys"]}


def test_a_rotation_and_a_revocation_show_in_the_next_pull(
        client: FlaskClient, clock: Clock, factory: sessionmaker[DB], world: World,
        issued: dict[str, PersonKey]) -> None:
    cursor = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock).get_json()["cursor"]
    with transaction(factory) as db:
        new = keys.rotate(db, world.people[ALICE], NOW).id
        keys.revoke(db, world.people[BOB], NOW)
    clock.advance(1)
    doc = _signed(client, keysync.KEYS_PATH, {"since": cursor}, clock).get_json()
    assert [k["id"] for k in doc["keys"]] == [new]
    assert set(doc["allowed"]) == {str(new), str(issued[CAROL].id)}


@pytest.mark.parametrize("case, word", [
    ("wrong secret", "bad-signature"),
    ("unknown gateway", "unknown-gateway"),
    ("stale", "stale"),
    ("unsigned", "unsigned"),
    ("altered body", "bad-signature"),
])
def test_refusals_are_401_with_a_log_line(client: FlaskClient, clock: Clock,
                                          issued: dict[str, PersonKey], case: str, word: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "passerelle.portal"):
        if case == "wrong secret":
            r = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock,
                        secret="not-the-secret-16")
        elif case == "unknown gateway":
            r = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock, gateway="nobody-gw")
        elif case == "stale":
            r = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock, skew=-300)
        elif case == "unsigned":
            r = _signed(client, keysync.KEYS_PATH, {"since": 0}, clock, headers={})
        else:
            stamp = str(int(clock()))
            sig = keysync.signature(SECRET.encode(), "POST", keysync.KEYS_PATH, stamp,
                                    b'{"since": 5}')
            r = client.post(keysync.KEYS_PATH, data=b'{"since": 0}', headers={
                keysync.H_GATEWAY: "axis-gw", keysync.H_TIME: stamp,
                keysync.H_SIGNATURE: sig})
    assert r.status_code == 401 and r.get_json() == {"error": word}
    assert f"box sync: POST {keysync.KEYS_PATH}" in caplog.text and f"({word})" in caplog.text
    assert "passphrase" not in r.get_data(as_text=True)


def test_a_replayed_request_is_refused(client: FlaskClient, clock: Clock,
                                       issued: dict[str, PersonKey],
                                       caplog: pytest.LogCaptureFixture) -> None:
    data = b'{"since": 0}'
    stamp = str(int(clock()))
    headers = {keysync.H_GATEWAY: "axis-gw", keysync.H_TIME: stamp,
               keysync.H_SIGNATURE: keysync.signature(SECRET.encode(), "POST",
                                                      keysync.KEYS_PATH, stamp, data)}
    assert client.post(keysync.KEYS_PATH, data=data, headers=headers).status_code == 200
    with caplog.at_level(logging.WARNING, "passerelle.portal"):
        again = client.post(keysync.KEYS_PATH, data=data, headers=headers)
    assert again.status_code == 401 and again.get_json() == {"error": "replayed"}
    assert "a replay" in caplog.text


def test_a_bad_body_is_400(client: FlaskClient, clock: Clock) -> None:
    r = _signed(client, keysync.KEYS_PATH, {"since": -1}, clock)
    assert r.status_code == 400 and r.get_json() == {"error": "bad-request"}


def test_a_box_rotates_the_key_of_a_person_checked_in_there_only(
        client: FlaskClient, clock: Clock, factory: sessionmaker[DB], world: World,
        issued: dict[str, PersonKey], caplog: pytest.LogCaptureFixture) -> None:
    # As typed at check-in on the box: the centre finds the stored form.
    r = _signed(client, keysync.ROTATE_PATH, {"login": "Alice@ACME.example"}, clock)
    assert r.status_code == 200, r.get_data(as_text=True)
    made = r.get_json()
    assert made["serial"] == 2 and made["passphrase"] != issued[ALICE].passphrase
    with transaction(factory) as db:
        current = keys.current(db, world.people[ALICE])
        assert current is not None and current.passphrase == made["passphrase"]
    # Bob's session is at CEI, not at this box.
    clock.advance(1)
    with caplog.at_level(logging.WARNING, "passerelle.portal"):
        refused = _signed(client, keysync.ROTATE_PATH, {"login": BOB}, clock)
    assert refused.status_code == 403 and refused.get_json() == {"error": "not-checked-in"}
    assert "has no open session there" in caplog.text


def test_the_channel_needs_no_operator_and_no_csrf_token(client: FlaskClient,
                                                         clock: Clock) -> None:
    # Signed and nothing else: not sent to the sign-in page, not a CSRF error.
    assert _signed(client, keysync.KEYS_PATH, {}, clock).status_code == 200
    assert client.get(keysync.KEYS_PATH).status_code == 405
