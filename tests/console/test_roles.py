"""Every endpoint of the console, for every role (and no sign-in at all).

The endpoints come from the app's URL map: an endpoint added without a line
in ``EXPECTED`` fails here, and one without a line in the app's own access
table stops the app from starting (and is refused if it ever runs).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from passerelle.portal.console import access
from passerelle.radius.models import OperatorRole

from .conftest import ACME_HR, AXIS_MANAGER, NOC, World, sign_in, token

PUBLIC = "public"
SIGNED = "signed by a gateway"  # no operator, whatever their role: boxsync.py
OPS, SITE, COMPANY = (OperatorRole.network_ops, OperatorRole.site_manager,
                      OperatorRole.company_manager)

# Written by hand, from the issue: who may reach what.
EXPECTED: dict[str, str | set[OperatorRole]] = {
    "static": PUBLIC,
    "auth.sign_in": PUBLIC,
    "auth.sign_out": {OPS, SITE, COMPANY},
    "home": {OPS, SITE, COMPANY},
    "live.index": {OPS, SITE, COMPANY},
    "live.disconnect": {OPS, SITE, COMPANY},
    "boxes.index": {OPS, SITE},
    "enrol.enrol": PUBLIC,  # a box with a one-time code: no operator
    # The data pages: network ops everything; a company manager their own
    # company's people and credit (read-only company page); a site manager
    # their sites and boxes, read-only.
    "companies.index": {OPS, COMPANY},
    "companies.page": {OPS, COMPANY},
    "companies.new": {OPS},
    "companies.edit": {OPS},
    "companies.status": {OPS},
    "people.index": {OPS, COMPANY},
    "people.page": {OPS, COMPANY},
    "people.new": {OPS, COMPANY},
    "people.edit": {OPS, COMPANY},
    "people.active": {OPS, COMPANY},
    "people.password": {OPS, COMPANY},
    "people.credit": {OPS, COMPANY},
    "people.import_csv": {OPS, COMPANY},
    "sites.index": {OPS, SITE},
    "sites.page": {OPS, SITE},
    "sites.new": {OPS},
    "sites.edit": {OPS},
    "gateways.page": {OPS, SITE},
    "gateways.new": {OPS},
    "gateways.edit": {OPS},
    "boxsync.pull": SIGNED,
    "boxsync.rotate": SIGNED,
    "reports.index": {OPS, SITE, COMPANY},
    "reports.table_csv": {OPS, SITE, COMPANY},
    "reports.statement": {OPS, COMPANY},
    # The teleworker's pages check a person's sign-in, not an operator's:
    # tests/console/test_account.py.
    "account.sign_in": PUBLIC,
    "account.index": PUBLIC,
    "account.password": PUBLIC,
    "account.sign_out": PUBLIC,
}
# A valid form for each POST that takes one: a role allowed gets its 200 or
# 302 for doing it, not a 400 for an empty form. (The ids are in the scope
# of every role allowed: Acme's alice, the Axis Parc site and its box.)
FORMS: dict[str, dict[str, str]] = {
    "companies.new": {"name": "Initech", "status": "active", "payment": "ok",
                      "categories": "123", "services": "wifi"},
    "companies.edit": {"name": "Acme", "status": "active", "payment": "ok",
                       "categories": "12", "services": "wifi"},
    "companies.status": {"status": "suspended"},
    "people.new": {"login": "dave@acme.example", "company": "Acme", "language": "fr"},
    "people.edit": {"login": "alice@acme.example", "company": "Acme", "language": "nl"},
    "people.active": {"active": "0"},
    "people.credit": {"minutes": "60"},
    "sites.new": {"name": "Liège Guillemins", "network": "wallonia", "category": "2",
                  "days": "12345", "timezone": "Europe/Brussels"},
    "sites.edit": {"name": "Axis Parc", "network": "wallonia", "category": "3",
                   "days": "all", "timezone": "Europe/Brussels"},
    "gateways.new": {"identifier": "liege-gw", "site": "CEI", "ip": "192.0.2.40",
                     "secret": "a-shared-secret-of-24ch", "coa_port": "3799"},
    "gateways.edit": {"identifier": "axis-gw", "site": "Axis Parc", "ip": "127.0.0.1",
                      "coa_port": "3799"},
}
# Public endpoints that take JSON from a program: a form is a bad request.
JSON_ONLY = {"enrol.enrol"}
LOGINS = {OPS: NOC, SITE: AXIS_MANAGER, COMPANY: ACME_HR}


def _url(app: Flask, rule: Rule, world: World) -> str:
    # The closed session: Disconnect answers without sending a packet.
    # Any: url_for takes its own keywords (_external, ...) beside the values.
    samples: dict[str, Any] = {"filename": "console.css", "session_id": world.sessions["cei-0000"],
               "company_id": world.companies["Acme"],
               "person_id": world.people["alice@acme.example"],
               "site_id": world.sites["Axis Parc"], "gateway_id": world.gateways["axis-gw"],
               "name": "use"}
    with app.test_request_context():
        from flask import url_for
        return url_for(rule.endpoint, **{arg: samples[arg] for arg in rule.arguments})


def _cases(app: Flask) -> list[tuple[Rule, str]]:
    return [(rule, method) for rule in app.url_map.iter_rules()
            if not rule.endpoint.startswith("api.")
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]


@pytest.mark.parametrize("role", [None, OPS, SITE, COMPANY], ids=lambda r: r or "anonymous")
def test_the_whole_matrix(app: Flask, client: FlaskClient, world: World,
                          role: OperatorRole | None) -> None:
    # The API's bearer tokens have their own matrix (test_api.py).
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if not rule.endpoint.startswith("api.")}
    assert endpoints - set(EXPECTED) == set(), "an endpoint without a line in EXPECTED"
    assert set(EXPECTED) - endpoints == set(), "EXPECTED names an endpoint that is gone"
    if role is not None:
        sign_in(client, LOGINS[role])
    cases = _cases(app)
    assert len(cases) >= len(endpoints)
    for rule, method in cases:
        url = _url(app, rule, world)
        # Any: a form value is a string, or a file as (stream, name).
        data: dict[str, Any] | None = {"csrf_token": token(client)} if method == "POST" else None
        if rule.endpoint in ("auth.sign_in", "account.sign_in") and method == "POST":
            data = {**(data or {}), "login": "nobody@x.example", "password": "wrong"}
        if rule.endpoint == "auth.sign_out":
            data = {"csrf_token": token(client)}
        if method == "POST" and rule.endpoint in FORMS:
            data = {**(data or {}), **FORMS[rule.endpoint]}
        if method == "POST" and rule.endpoint == "people.import_csv":
            data = {**(data or {}), "file": (io.BytesIO(b"login,company\nerin@acme.example,Acme\n"),
                                             "people.csv")}
        answer = client.open(url, method=method, data=data)
        answer.close()
        expected = EXPECTED[rule.endpoint]
        where = f"{method} {url} as {role or 'anonymous'}: {answer.status_code}"
        to_sign_in = answer.status_code == 302 and answer.headers["Location"].startswith(
            "/sign-in")
        if rule.endpoint in JSON_ONLY:
            assert answer.status_code == 400, where
        elif expected == SIGNED:
            assert answer.status_code == 401, where  # unsigned, signed-in operator or not
        elif expected == PUBLIC:
            assert answer.status_code in (200, 302) and not (
                to_sign_in and rule.endpoint != "auth.sign_out"), where
        elif role is None:
            assert to_sign_in, where
        elif role in expected:
            assert (answer.status_code in (200, 302) and not to_sign_in) or \
                rule.endpoint == "auth.sign_out", where
        else:
            assert answer.status_code == 403, where
        if rule.endpoint == "auth.sign_out" and role is not None:
            sign_in(client, LOGINS[role])  # signed out: back in for the rest


def test_the_app_keeps_the_same_table(app: Flask) -> None:
    """The app's table and the hand-written one say the same thing."""
    for endpoint, expected in EXPECTED.items():
        rule = access.PERMISSIONS[endpoint]
        assert (rule is None) == (expected in (PUBLIC, SIGNED)), endpoint
        if rule is not None:
            assert rule == expected, endpoint


def test_an_endpoint_without_a_rule(app: Flask, client: FlaskClient) -> None:
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    with pytest.raises(RuntimeError, match="without an access rule: forgotten"):
        access.check_complete(app)
    # Had it started, the hook would refuse it, signed in or not.
    assert client.get("/forgotten").status_code == 403
    sign_in(client, NOC)
    assert client.get("/forgotten").status_code == 403


# -- never another company's (or site's) data, by any URL ---------------------------

def _data_rules(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] in ("companies", "people", "sites", "gateways")
            and rule.arguments]


@pytest.mark.parametrize(("login", "others"), [
    (ACME_HR, {"company_id": ("Globex",), "person_id": ("bob@globex.example",),
               "site_id": ("CEI",), "gateway_id": ("cei-gw",)}),
    (AXIS_MANAGER, {"company_id": ("Acme",), "person_id": ("alice@acme.example",),
                    "site_id": ("CEI",), "gateway_id": ("cei-gw",)}),
], ids=["company-manager", "site-manager"])
def test_no_url_reaches_what_is_not_theirs(app: Flask, client: FlaskClient, world: World,
                                           login: str, others: dict[str, tuple[str]]) -> None:
    """Every data URL, GET and POST (with a valid form), with the ids of
    what the operator does not manage: 404 or 403, and nothing changes."""
    ids = {"company_id": world.companies, "person_id": world.people, "site_id": world.sites,
           "gateway_id": world.gateways}
    sign_in(client, login)
    rules = _data_rules(app)
    assert {r.endpoint for r in rules} >= {"companies.page", "people.credit", "sites.edit",
                                           "gateways.page"}
    for rule in rules:
        values: dict[str, Any] = {arg: ids[arg][others[arg][0]] for arg in rule.arguments}
        with app.test_request_context():
            from flask import url_for
            url = url_for(rule.endpoint, **values)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            data = None
            if method == "POST":
                data = {"csrf_token": token(client, "/live/"), **FORMS.get(rule.endpoint, {})}
                if rule.endpoint == "people.active":
                    data["active"] = "0"
                if rule.endpoint == "people.password":
                    data["password"] = "taken over"
            answer = client.open(url, method=method, data=data)
            body = answer.get_data(as_text=True)
            assert answer.status_code in (403, 404), f"{method} {url} as {login}: " \
                                                     f"{answer.status_code}"
            for secret in ("bob@globex.example", "Globex", "cei-gw"):
                if login == ACME_HR:
                    assert secret not in body, (method, url, secret)
    # Nothing changed: bob is active, has his password and no credit.
    sign_in(client, NOC)
    page = client.get(f"/people/{world.people['bob@globex.example']}").get_data(as_text=True)
    assert "deactivated" not in page and "The ledger is empty." in page
    assert "No change recorded from the console." in page


def test_a_company_manager_lists_only_their_company(client: FlaskClient, world: World) -> None:
    sign_in(client, ACME_HR)
    for path in ("/companies/", "/people/", f"/people/?company={world.companies['Globex']}",
                 "/people/?q=globex", "/people/new", "/people/import"):
        body = client.get(path).get_data(as_text=True)
        assert "Globex" not in body and "bob@" not in body and "carol@" not in body, path
    assert "alice@acme.example" in client.get("/people/").get_data(as_text=True)
