"""The partner API through Flask's test client, on SQLite and PostgreSQL:
every endpoint for every kind of token, idempotent provisioning and
top-ups, keyset paging, the policy's answer, and bad input."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

from passerelle.cli import main
from passerelle.portal.console import access
from passerelle.radius import tokens
from passerelle.radius.db import transaction
from passerelle.radius.models import ApiRole, Company, CreditEntry, IdempotentCall, Person

from .conftest import NOW, World

EXTERNAL = {"Acme": "acme-1", "Globex": "globex-1",
            "alice@acme.example": "p-alice", "bob@globex.example": "p-bob",
            "carol@globex.example": "p-carol"}


@dataclass
class Tokens:
    partner: str
    acme: str
    globex: str
    revoked: str


@pytest.fixture
def keys(factory: sessionmaker[DB], world: World) -> Tokens:
    """External ids on the console's test network, and a token of each kind."""
    with transaction(factory) as db:
        for name, ext in EXTERNAL.items():
            if name in world.companies:
                db.execute(update(Company).where(Company.id == world.companies[name])
                           .values(external_id=ext))
            else:
                db.execute(update(Person).where(Person.id == world.people[name])
                           .values(external_id=ext))
        made = Tokens(partner=tokens.add_token(db, "platform", "partner", NOW)[1],
                      acme=tokens.add_token(db, "acme", "company", NOW, "Acme")[1],
                      globex=tokens.add_token(db, "globex", "company", NOW, "Globex")[1],
                      revoked=tokens.add_token(db, "old", "partner", NOW)[1])
        tokens.revoke_token(db, "old", NOW)
    return made


def call(client: FlaskClient, method: str, url: str, token: str | None,
         body: object = None, **headers: str) -> TestResponse:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = client.open(url, method=method, headers=headers,
                         json=body if body is not None else None)
    assert answer.mimetype == "application/json", (method, url, answer.status_code)
    return answer


def error(answer: TestResponse) -> str:
    data = answer.get_json()
    assert set(data) == {"error", "message"} and data["message"], data
    return str(data["error"])


# -- tokens and roles -------------------------------------------------------------

# Every API endpoint, with a URL naming Globex's data: the Acme token must
# never get past "not found" (or "forbidden" for the partner's calls).
GLOBEX_URLS: dict[str, tuple[str, str, object]] = {
    "api.companies": ("GET", "/api/v1/companies", None),
    "api.company": ("GET", "/api/v1/companies/globex-1", None),
    "api.put_company": ("PUT", "/api/v1/companies/globex-1", {"status": "closed"}),
    "api.company_usage": ("GET", "/api/v1/companies/globex-1/usage", None),
    "api.people": ("GET", "/api/v1/people?company=globex-1", None),
    "api.put_people": ("PUT", "/api/v1/people", {"people": [{"external_id": "p-bob",
                                                             "active": False}]}),
    "api.person": ("GET", "/api/v1/people/p-bob", None),
    "api.person_usage": ("GET", "/api/v1/people/p-bob/usage", None),
    "api.top_up": ("POST", "/api/v1/people/p-bob/credit", {"minutes": 60}),
    "api.sessions": ("GET", "/api/v1/sessions?person=p-bob", None),
    "api.decision": ("GET", "/api/v1/decision?person=p-bob&site=CEI", None),
    "api.openapi": ("GET", "/api/v1/openapi.json", None),
}


def test_every_endpoint_is_in_the_matrix(app: Flask) -> None:
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    assert endpoints == set(GLOBEX_URLS) == set(access.API_ROLES)


@pytest.mark.parametrize("endpoint", sorted(GLOBEX_URLS))
def test_no_token_no_data(client: FlaskClient, keys: Tokens, endpoint: str) -> None:
    method, url, body = GLOBEX_URLS[endpoint]
    for token in (None, keys.revoked, "psl_" + "x" * 43, "not-a-token"):
        answer = call(client, method, url, token, body, **{"Idempotency-Key": "k1"})
        if access.API_ROLES[endpoint] is None:
            assert answer.status_code == 200
            continue
        assert answer.status_code == 401, (endpoint, token)
        assert error(answer) == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", sorted(GLOBEX_URLS))
def test_a_company_token_never_sees_another_company(client: FlaskClient, keys: Tokens,
                                                     endpoint: str) -> None:
    method, url, body = GLOBEX_URLS[endpoint]
    answer = call(client, method, url, keys.acme, body, **{"Idempotency-Key": "k1"})
    allowed = access.API_ROLES[endpoint]
    if allowed is None:
        assert answer.status_code == 200
    elif ApiRole.company not in allowed:
        assert answer.status_code == 403 and error(answer) == "forbidden"
    elif endpoint == "api.companies":
        assert [c["external_id"] for c in answer.get_json()["items"]] == ["acme-1"]
    elif endpoint == "api.put_people":  # each item on its own: bob is not found
        assert answer.status_code == 200
        assert answer.get_json()["results"] == [{
            "external_id": "p-bob", "result": "failed", "error": "not-found",
            "message": "no person 'p-bob' (or not yours to see)"}]
    else:
        assert answer.status_code == 404 and error(answer) == "not-found", endpoint
    # The partner sees it all; Globex's own token its own data.
    for token in (keys.partner, keys.globex):
        again = call(client, method, url, token, body, **{"Idempotency-Key": "k1"})
        if token == keys.partner or (allowed and ApiRole.company in allowed):
            assert again.status_code in (200, 201), (endpoint, again.get_json())


def test_a_company_token_lists_its_own_only(client: FlaskClient, keys: Tokens) -> None:
    sessions = call(client, "GET", "/api/v1/sessions", keys.acme).get_json()["items"]
    assert {s["person"] for s in sessions} == {"p-alice"} and len(sessions) == 2
    people = call(client, "GET", "/api/v1/people", keys.acme).get_json()["items"]
    assert [p["external_id"] for p in people] == ["p-alice"]
    usage = call(client, "GET", "/api/v1/companies/acme-1/usage", keys.acme).get_json()
    assert [p["person"] for p in usage["people"]] == ["p-alice"]
    assert call(client, "GET", "/api/v1/people?company=globex-1", keys.acme).status_code == 404


def test_tokens_are_kept_hashed(factory: sessionmaker[DB], keys: Tokens) -> None:
    with transaction(factory) as db:
        stored = {t.digest for t in tokens.list_tokens(db)}
        assert keys.partner not in stored and tokens.digest(keys.partner) in stored
        caller = tokens.authenticate(db, keys.acme, NOW)
        assert caller is not None and caller.role == ApiRole.company
        assert tokens.authenticate(db, keys.revoked, NOW) is None


# -- companies --------------------------------------------------------------------

def test_put_a_company_is_idempotent(client: FlaskClient, keys: Tokens) -> None:
    body = {"name": "Initech", "status": "active", "payment": "ok",
            "services": ["wifi", "printing"], "max_session": 14400, "vlan": None}
    first = call(client, "PUT", "/api/v1/companies/initech-7", keys.partner, body)
    assert first.status_code == 201
    assert first.get_json()["services"] == ["wifi", "printing"]
    again = call(client, "PUT", "/api/v1/companies/initech-7", keys.partner, body)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    changed = call(client, "PUT", "/api/v1/companies/initech-7", keys.partner,
                   {"payment": "overdue", "max_session": None})
    assert changed.get_json()["payment"] == "overdue"
    assert changed.get_json()["max_session"] is None
    listed = call(client, "GET", "/api/v1/companies", keys.partner).get_json()["items"]
    assert [c["external_id"] for c in listed] == ["acme-1", "globex-1", "initech-7"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"status": "active"}, 400, "bad-request"),  # no name to create it
    ({"name": "Acme"}, 409, "conflict"),  # the name is another company's
    ({"name": "X", "categories": "9"}, 422, "invalid"),
    ({"name": "X", "services": []}, 422, "invalid"),
    ({"name": "X", "services": "wifi"}, 400, "bad-request"),
    ({"name": "X", "vlan": 5000}, 422, "invalid"),
    ({"name": "X", "vlan": True}, 400, "bad-request"),
    ({"name": "X", "max_session": 2**80}, 422, "invalid"),
    ({"name": 5}, 400, "bad-request"),
    ({"name": "X", "colour": "red"}, 400, "bad-request"),
    ({"name": "\x01"}, 422, "invalid"),
    ({"name": "\x00"}, 400, "bad-request"),
    ({"name": "X", "services": ["wifi\x00"]}, 400, "bad-request"),
])
def test_bad_companies(client: FlaskClient, keys: Tokens, body: dict[str, Any], status: int,
                       code: str) -> None:
    answer = call(client, "PUT", "/api/v1/companies/new-co", keys.partner, body)
    assert answer.status_code == status and error(answer) == code, answer.get_json()


# -- people -----------------------------------------------------------------------

def test_bulk_people_each_on_its_own(client: FlaskClient, keys: Tokens,
                                     factory: sessionmaker[DB]) -> None:
    people = [
        {"external_id": "p-dave", "company": "acme-1", "login": "dave@acme.example",
         "password": "pw-dave", "name": "Dave"},
        {"external_id": "p-erin", "company": "acme-1", "login": "erin@acme.example",
         "password": "pw-erin"},
        {"external_id": "p-frank", "company": "acme-1", "login": "alice@acme.example",
         "password": "x"},  # a login taken
        {"external_id": "p-gina", "company": "nowhere", "login": "g@x.example",
         "password": "x"},
        {"external_id": "p-hal", "login": "hal@x.example"},  # no company nor password
        {"external_id": "p-ian", "company": "acme-1", "login": "ian@x.example",
         "password": "x" * 200},  # longer than RADIUS carries
    ]
    first = call(client, "PUT", "/api/v1/people", keys.partner, {"people": people})
    assert first.status_code == 200
    data = first.get_json()
    assert (data["created"], data["updated"], data["failed"]) == (2, 0, 4)
    assert [r["result"] for r in data["results"]] == ["created", "created"] + ["failed"] * 4
    assert [r.get("error") for r in data["results"][2:]] == [
        "invalid", "not-found", "invalid", "invalid"]
    assert "already exists" in data["results"][2]["message"]
    # Again, the same: no new person, the two are updated; then a change.
    again = call(client, "PUT", "/api/v1/people", keys.partner, {"people": people[:2]})
    assert (again.get_json()["created"], again.get_json()["updated"]) == (0, 2)
    moved = call(client, "PUT", "/api/v1/people", keys.partner, {"people": [
        {"external_id": "p-dave", "company": "globex-1", "active": False}]})
    assert moved.get_json()["updated"] == 1
    dave = call(client, "GET", "/api/v1/people/p-dave", keys.partner).get_json()
    assert (dave["company"], dave["active"], dave["balance_seconds"]) == ("globex-1", False, 0)
    with transaction(factory) as db:
        assert db.scalar(select(func.count()).select_from(Person)) == 5


@pytest.mark.parametrize("item", [
    "not an object", {"external_id": "bad id!"}, {"login": "no-id@x.example"},
    {"external_id": "p-x", "active": "yes"}, {"external_id": "p-x", "language": "de"},
    {"external_id": "p-x", "login": None}, {"external_id": "p-x", "company": 7},
    {"external_id": "p-x", "shoe_size": 44},
])
def test_a_malformed_item_refuses_the_call(client: FlaskClient, keys: Tokens,
                                           factory: sessionmaker[DB], item: object) -> None:
    good = {"external_id": "p-dave", "company": "acme-1", "login": "dave@acme.example",
            "password": "pw"}
    answer = call(client, "PUT", "/api/v1/people", keys.partner, {"people": [good, item]})
    assert answer.status_code == 400 and "people[1]" in answer.get_json()["message"]
    twice = call(client, "PUT", "/api/v1/people", keys.partner, {"people": [good, good]})
    assert twice.status_code == 400
    with transaction(factory) as db:
        assert db.scalar(select(func.count()).select_from(Person)) == 3


def test_a_big_bulk_call_fits(client: FlaskClient, keys: Tokens) -> None:
    """The console's 16 KiB form limit is not the API's: 500 items pass."""
    people = [{"external_id": f"p-{n}", "company": "gone", "login": f"p{n}@x.example",
               "password": "a password", "name": "A Name " * 5} for n in range(500)]
    assert len(json.dumps({"people": people})) > 64 * 1024
    answer = call(client, "PUT", "/api/v1/people", keys.partner, {"people": people})
    assert answer.status_code == 200 and answer.get_json()["failed"] == 500


def test_bulk_people_limits(client: FlaskClient, keys: Tokens) -> None:
    for people in ([], None, "x", [{"external_id": f"p{i}"} for i in range(501)]):
        answer = call(client, "PUT", "/api/v1/people", keys.partner, {"people": people})
        assert answer.status_code == 400 and error(answer) == "bad-request"


# -- credit -----------------------------------------------------------------------

def _ledger(factory: sessionmaker[DB], world: World, login: str) -> list[int]:
    with transaction(factory) as db:
        return list(db.scalars(select(CreditEntry.seconds)
                               .where(CreditEntry.person_id == world.people[login])))


def test_a_top_up_counts_once_per_key(client: FlaskClient, keys: Tokens, world: World,
                                      factory: sessionmaker[DB]) -> None:
    url = "/api/v1/people/p-alice/credit"
    first = call(client, "POST", url, keys.partner, {"minutes": 90, "note": "INV-1"},
                 **{"Idempotency-Key": "inv-1"})
    assert first.status_code == 201
    assert first.get_json()["added_seconds"] == 5400
    assert first.get_json()["balance_seconds"] == 5400
    # The same key and body (spacing and key order aside): the first answer.
    again = client.post(url, data='{ "note":"INV-1",  "minutes": 90 }',
                        content_type="application/json",
                        headers={"Authorization": f"Bearer {keys.partner}",
                                 "Idempotency-Key": "inv-1"})
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = call(client, "POST", url, keys.partner, {"minutes": 91, "note": "INV-1"},
                 **{"Idempotency-Key": "inv-1"})
    assert other.status_code == 409 and error(other) == "conflict"
    elsewhere = call(client, "POST", "/api/v1/people/p-bob/credit", keys.partner,
                     {"minutes": 90, "note": "INV-1"}, **{"Idempotency-Key": "inv-1"})
    assert elsewhere.status_code == 409
    assert _ledger(factory, world, "alice@acme.example") == [5400]
    second = call(client, "POST", url, keys.partner, {"minutes": 10},
                  **{"Idempotency-Key": "inv-2"})
    assert second.get_json()["balance_seconds"] == 6000


@pytest.mark.parametrize(("body", "key", "status"), [
    ({"minutes": 10}, None, 400),
    ({"minutes": 10}, "a key with spaces", 400),
    ({"minutes": 10}, "k" * 129, 400),
    ({"minutes": 0}, "k", 422),
    ({"minutes": -5}, "k", 422),
    ({"minutes": 10**30}, "k", 422),
    ({"minutes": "10"}, "k", 400),
    ({"minutes": 1.5}, "k", 400),
    ({"minutes": True}, "k", 400),
    ({}, "k", 400),
    ({"minutes": 10, "note": 5}, "k", 400),
    ({"minutes": 10, "extra": 1}, "k", 400),
])
def test_bad_top_ups(client: FlaskClient, keys: Tokens, world: World,
                     factory: sessionmaker[DB], body: dict[str, Any], key: str | None,
                     status: int) -> None:
    headers = {"Idempotency-Key": key} if key is not None else {}
    answer = call(client, "POST", "/api/v1/people/p-alice/credit", keys.partner, body,
                  **headers)
    assert answer.status_code == status, answer.get_json()
    assert _ledger(factory, world, "alice@acme.example") == []
    # A refused call is not kept: the key serves for the corrected call.
    if key == "k":
        fixed = call(client, "POST", "/api/v1/people/p-alice/credit", keys.partner,
                     {"minutes": 10}, **headers)
        assert fixed.status_code == 201


def test_concurrent_copies_charge_once(app: Flask, keys: Tokens, world: World,
                                       factory: sessionmaker[DB]) -> None:
    """Eight copies of one call at once, on the real database: one top-up.
    (PostgreSQL runs them side by side, and the unique key decides; SQLite
    queues writers at BEGIN IMMEDIATE, and the first one's key is found.)"""
    barrier = threading.Barrier(8)
    answers: list[tuple[int, Any]] = []

    def one() -> None:
        with app.test_client() as client:
            barrier.wait()
            answer = call(client, "POST", "/api/v1/people/p-bob/credit", keys.partner,
                          {"minutes": 30}, **{"Idempotency-Key": "race"})
            answers.append((answer.status_code, answer.get_json()))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [201] * 8
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert _ledger(factory, world, "bob@globex.example") == [1800]
    with transaction(factory) as db:
        assert db.scalar(select(func.count()).select_from(IdempotentCall)) == 1


# -- sessions and usage -----------------------------------------------------------

def test_sessions_page_by_keyset(client: FlaskClient, keys: Tokens, world: World) -> None:
    seen: list[int] = []
    after = 0
    while True:
        page = call(client, "GET", f"/api/v1/sessions?limit=2&after={after}",
                    keys.partner).get_json()
        seen += [s["id"] for s in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == sorted(world.sessions.values())
    first = call(client, "GET", "/api/v1/sessions?limit=1", keys.partner).get_json()["items"]
    assert first[0]["session_id"] == "axis-0001" and first[0]["company"] == "acme-1"
    assert first[0]["started"] == "2026-12-01T09:00:00Z" and first[0]["stopped"] is None


@pytest.mark.parametrize(("query", "expected"), [
    ("site=CEI", {"cei-0001", "cei-0000"}),
    ("company=globex-1", {"cei-0001", "axis-0002"}),
    ("person=p-alice", {"axis-0001", "cei-0000"}),
    ("person=p-alice&site=CEI", {"cei-0000"}),
    ("since=2026-12-01T09:30:00Z", {"cei-0001", "axis-0002", "axis-0003"}),
    ("until=2026-12-01T09:30:00%2B00:00", {"axis-0001", "cei-0000"}),
    ("since=2026-12-02", set()),
])
def test_session_filters(client: FlaskClient, keys: Tokens, world: World, query: str,
                         expected: set[str]) -> None:
    page = call(client, "GET", f"/api/v1/sessions?{query}", keys.partner)
    assert page.status_code == 200, page.get_json()
    assert {s["session_id"] for s in page.get_json()["items"]} == expected


@pytest.mark.parametrize("query", [
    "after=-1", "after=x", "after=99999999999999999999", "limit=0", "limit=1001",
    "since=yesterday", "until=2026-13-01", "company=", "person=a%20b", "site=" + "x" * 200,
    "site=%00", "site=a%0Ab", "since=2026-12-01T00:00:00%00",
])
def test_bad_session_queries(client: FlaskClient, keys: Tokens, query: str) -> None:
    answer = call(client, "GET", f"/api/v1/sessions?{query}", keys.partner)
    assert answer.status_code == 400 and error(answer) == "bad-request"


def test_unknown_filter_values_are_not_found(client: FlaskClient, keys: Tokens) -> None:
    for query in ("site=Atlantis", "company=nope", "person=nope"):
        assert call(client, "GET", f"/api/v1/sessions?{query}",
                    keys.partner).status_code == 404


def test_usage(client: FlaskClient, keys: Tokens) -> None:
    usage = call(client, "GET", "/api/v1/people/p-alice/usage", keys.partner).get_json()
    assert (usage["sessions"], usage["credit_used_seconds"]) == (2, 0)
    today = call(client, "GET", "/api/v1/companies/globex-1/usage?since=2026-12-01"
                 "&until=2026-12-02", keys.partner).get_json()
    assert today["totals"]["sessions"] == 2
    assert {p["person"]: p["sessions"] for p in today["people"]} == {"p-bob": 1, "p-carol": 1}


# -- the policy -------------------------------------------------------------------

def test_a_decision_per_service(client: FlaskClient, keys: Tokens) -> None:
    url = "/api/v1/decision?person=p-alice&site=CEI"
    refused = call(client, "GET", url, keys.partner).get_json()
    assert (refused["allowed"], refused["reason"]) == (False, "no-credit")
    call(client, "POST", "/api/v1/people/p-alice/credit", keys.partner, {"minutes": 60},
         **{"Idempotency-Key": "d1"})
    wifi = call(client, "GET", url, keys.acme).get_json()
    assert (wifi["allowed"], wifi["service"], wifi["seconds"]) == (True, "wifi", 3600)
    printing = call(client, "GET", url + "&service=printing", keys.acme).get_json()
    assert (printing["allowed"], printing["reason"]) == (False, "service-not-allowed")
    call(client, "PUT", "/api/v1/companies/acme-1", keys.partner,
         {"services": ["wifi", "printing"]})
    assert call(client, "GET", url + "&service=printing", keys.acme).get_json()["allowed"]
    call(client, "PUT", "/api/v1/companies/acme-1", keys.partner, {"payment": "overdue"})
    overdue = call(client, "GET", url + "&service=printing", keys.acme).get_json()
    assert (overdue["allowed"], overdue["reason"]) == (False, "payment-overdue")


def test_bad_decisions(client: FlaskClient, keys: Tokens) -> None:
    assert call(client, "GET", "/api/v1/decision?site=CEI", keys.partner).status_code == 400
    assert call(client, "GET", "/api/v1/decision?person=p-alice", keys.partner
                ).status_code == 400
    assert call(client, "GET", "/api/v1/decision?person=p-alice&site=Nowhere", keys.partner
                ).status_code == 404


# -- bad requests -----------------------------------------------------------------

def test_bodies_that_are_not_json_objects(client: FlaskClient, keys: Tokens) -> None:
    auth = {"Authorization": f"Bearer {keys.partner}"}
    url = "/api/v1/companies/x1"
    cases = [("{", "application/json", 400), ("[1]", "application/json", 400),
             ("name=x", "application/x-www-form-urlencoded", 415),
             ("x" * (2 * 1024 * 1024), "application/json", 413)]
    for data, kind, status in cases:
        answer = client.put(url, data=data, content_type=kind, headers=auth)
        assert answer.status_code == status, (data[:10], answer.status_code)
        assert answer.mimetype == "application/json" and error(answer)


def test_unknown_urls_and_methods_answer_json(client: FlaskClient, keys: Tokens) -> None:
    auth = {"Authorization": f"Bearer {keys.partner}"}
    assert error(client.get("/api/v1/nothing", headers=auth)) == "not-found"
    assert error(client.delete("/api/v1/companies/acme-1", headers=auth)) == \
        "method-not-allowed"
    long_id = "/api/v1/companies/" + "a" * 200
    assert client.get(long_id, headers=auth).status_code == 400


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    """`passerelle ARGS` in this process, as the console script runs it."""
    monkeypatch.setattr(sys, "argv", ["passerelle", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_token_commands(db_url: str, world: World, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(monkeypatch, capsys, "admin", "token", "add", "crm", "--role",
                          "company", "--company", "Acme", "--db", db_url)
    assert code == 0 and "not shown again" in err, err
    clear = out.strip()
    assert clear.startswith("psl_") and len(clear) == 47
    code, out, _ = _run(monkeypatch, capsys, "admin", "token", "list", "--db", db_url)
    assert "crm" in out and "Acme" in out and clear not in out
    for bad, words in ((["--role", "boss"], "bad token role"),
                       (["--role", "company"], "needs --company"),
                       (["--role", "partner", "--company", "Acme"], "no --company"),
                       (["--role", "company", "--company", "Nope"], "unknown company")):
        code, out, err = _run(monkeypatch, capsys, "admin", "token", "add", "t2", *bad,
                              "--db", db_url)
        assert code == 2 and err.startswith("Error:") and words in err, err
    assert _run(monkeypatch, capsys, "admin", "token", "revoke", "crm", "--db", db_url)[0] == 0
    code, _, err = _run(monkeypatch, capsys, "admin", "token", "revoke", "crm", "--db", db_url)
    assert code == 2 and "was revoked" in err


# -- a company token manages its own people, as its manager does in the console --

def _put(client: FlaskClient, token: str, *people: dict[str, Any]) -> list[dict[str, Any]]:
    answer = call(client, "PUT", "/api/v1/people", token, {"people": list(people)})
    assert answer.status_code == 200, answer.get_json()
    return list(answer.get_json()["results"])


def test_a_company_token_manages_its_own_people(client: FlaskClient, keys: Tokens,
                                                factory: sessionmaker[DB]) -> None:
    made = _put(client, keys.acme,
                {"external_id": "p-dave", "login": "dave@acme.example", "password": "pw-dave"},
                {"external_id": "p-erin", "company": "acme-1", "login": "erin@acme.example",
                 "password": "pw-erin", "name": "Erin"})
    assert [r["result"] for r in made] == ["created", "created"]
    assert _put(client, keys.acme, {"external_id": "p-alice", "name": "Alice B."},
                {"external_id": "p-dave", "active": False, "language": "nl"}) == [
        {"external_id": "p-alice", "result": "updated"},
        {"external_id": "p-dave", "result": "updated"}]
    with transaction(factory) as db:
        found = {p.external_id: (p.company.name, p.name, p.active, p.language)
                 for p in db.scalars(select(Person).where(Person.external_id.is_not(None)))}
    assert found["p-dave"] == ("Acme", "", False, "nl")
    assert found["p-erin"] == ("Acme", "Erin", True, "fr")
    assert found["p-alice"][:2] == ("Acme", "Alice B.")
    listed = call(client, "GET", "/api/v1/people", keys.acme).get_json()["items"]
    assert [p["external_id"] for p in listed] == ["p-alice", "p-dave", "p-erin"]


def test_a_company_token_never_touches_another_company(client: FlaskClient, keys: Tokens,
                                                       factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        before = {p.login: (p.company_id, p.name, p.active) for p in db.scalars(select(Person))}
    results = _put(client, keys.acme,
                   {"external_id": "p-bob", "active": False},  # Globex's
                   {"external_id": "p-carol", "company": "acme-1"},  # taking her over
                   {"external_id": "p-alice", "company": "globex-1"},  # moving ours away
                   {"external_id": "p-zed", "company": "globex-1", "login": "zed@x.example",
                    "password": "pw-zed"})  # adding to Globex
    assert [(r["result"], r.get("error")) for r in results] == [("failed", "not-found")] * 4
    with transaction(factory) as db:
        after = {p.login: (p.company_id, p.name, p.active) for p in db.scalars(select(Person))}
    assert after == before
    # Never credit nor a company's status, its own included: the partner's calls.
    for method, url, body in (("POST", "/api/v1/people/p-alice/credit", {"minutes": 60}),
                              ("PUT", "/api/v1/companies/acme-1", {"status": "active"})):
        answer = call(client, method, url, keys.acme, body, **{"Idempotency-Key": "k2"})
        assert answer.status_code == 403 and error(answer) == "forbidden"
    with transaction(factory) as db:
        assert db.scalar(select(func.count()).select_from(CreditEntry)) == 0


def test_the_api_roles_follow_the_console(app: Flask) -> None:
    """A token may call what the console lets the role it stands for do on
    the same pages, but add credit (the partner's)."""
    from passerelle.radius.models import OperatorRole

    for endpoint, pages in access.API_LIKE.items():
        for token, role in access.TOKEN_ROLES.items():
            console_allows = all(role in (access.PERMISSIONS[p] or ()) for p in pages)
            assert (token in (access.API_ROLES[endpoint] or ())) == console_allows, endpoint
    assert access.API_ROLES["api.put_people"] == frozenset(ApiRole)
    assert access.API_ROLES["api.put_company"] == access.API_ROLES["api.top_up"] == frozenset(
        {ApiRole.partner})
    assert OperatorRole.company_manager not in (access.PERMISSIONS["companies.status"] or ())

