"""Every endpoint of the console, for every role (and no sign-in at all).

The endpoints come from the app's URL map: an endpoint added without a line
in ``EXPECTED`` fails here, and one without a line in the app's own access
table stops the app from starting (and is refused if it ever runs).
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from passerelle.portal.console import access
from passerelle.radius.models import OperatorRole

from .conftest import ACME_HR, AXIS_MANAGER, NOC, World, sign_in, token

PUBLIC = "public"
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
LOGINS = {OPS: NOC, SITE: AXIS_MANAGER, COMPANY: ACME_HR}


def _url(app: Flask, rule: Rule, world: World) -> str:
    # The closed session: Disconnect answers without sending a packet.
    samples = {"filename": "console.css", "session_id": world.sessions["cei-0000"],
               "name": "use"}
    with app.test_request_context():
        from flask import url_for
        return url_for(rule.endpoint, **{arg: samples[arg] for arg in rule.arguments})


def _cases(app: Flask) -> list[tuple[Rule, str]]:
    return [(rule, method) for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]


@pytest.mark.parametrize("role", [None, OPS, SITE, COMPANY], ids=lambda r: r or "anonymous")
def test_the_whole_matrix(app: Flask, client: FlaskClient, world: World,
                          role: OperatorRole | None) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(EXPECTED) == set(), "an endpoint without a line in EXPECTED"
    assert set(EXPECTED) - endpoints == set(), "EXPECTED names an endpoint that is gone"
    if role is not None:
        sign_in(client, LOGINS[role])
    cases = _cases(app)
    assert len(cases) >= len(endpoints)
    for rule, method in cases:
        url = _url(app, rule, world)
        data = {"csrf_token": token(client)} if method == "POST" else None
        if rule.endpoint in ("auth.sign_in", "account.sign_in") and method == "POST":
            data = {**(data or {}), "login": "nobody@x.example", "password": "wrong"}
        if rule.endpoint == "auth.sign_out":
            data = {"csrf_token": token(client)}
        answer = client.open(url, method=method, data=data)
        answer.close()
        expected = EXPECTED[rule.endpoint]
        where = f"{method} {url} as {role or 'anonymous'}: {answer.status_code}"
        to_sign_in = answer.status_code == 302 and answer.headers["Location"].startswith(
            "/sign-in")
        if expected == PUBLIC:
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
        assert (rule is None) == (expected == PUBLIC), endpoint
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
