"""Each page of the console through Flask's test client, on SQLite and
PostgreSQL: what each role sees, the filters, sign-in and its limits, expiry,
and hostile input."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import admin
from passerelle.radius.db import transaction

from .conftest import (
    ACME_HR,
    AXIS_MANAGER,
    GLOBEX_HR,
    NOC,
    PASSWORD,
    Clock,
    World,
    sign_in,
    token,
)

ALL_OPEN = ("alice@acme.example", "bob@globex.example", "carol@globex.example",
            "mallory@nowhere.example")


def shown(client: FlaskClient, query: str = "") -> set[str]:
    """The logins the live view lists."""
    page = client.get("/live/" + query)
    assert page.status_code == 200, page.get_data(as_text=True)
    table = page.get_data(as_text=True).split('<section id="live"', 1)[1]
    return {login for login in ALL_OPEN if login in table}


def test_sign_in_page_and_headers(client: FlaskClient) -> None:
    page = client.get("/sign-in")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and "http://" not in html
    assert 'name="viewport"' in html


def test_anonymous_goes_to_sign_in_and_comes_back(client: FlaskClient) -> None:
    answer = client.get("/live/?site=1")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/sign-in?next=")
    answer = client.post("/sign-in?next=/live/?site%3D1",
                         data={"login": NOC, "password": PASSWORD, "csrf_token": token(client)})
    assert (answer.status_code, answer.headers["Location"]) == (302, "/live/?site=1")


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/",
                                    "/\\evil.example", "javascript:alert(1)", "live"])
def test_sign_in_never_sends_elsewhere(client: FlaskClient, target: str) -> None:
    answer = client.post("/sign-in", query_string={"next": target},
                         data={"login": NOC, "password": PASSWORD, "csrf_token": token(client)})
    assert (answer.status_code, answer.headers["Location"]) == (302, "/")


def test_wrong_password_unknown_login_and_disabled_account_read_the_same(
        client: FlaskClient, factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        admin.set_operator(db, ACME_HR, admin.OperatorChanges(active=False))
    pages = []
    for login, password in ((NOC, "not the password"), ("nobody@x.example", PASSWORD),
                            (ACME_HR, PASSWORD)):
        answer = client.post("/sign-in", data={"login": login, "password": password,
                                               "csrf_token": token(client)})
        assert answer.status_code == 200
        pages.append(answer.get_data(as_text=True))
        assert "Wrong login or password." in pages[-1]
    assert client.get("/live/").status_code == 302


def test_attempt_limits(client: FlaskClient, clock: Clock) -> None:
    def attempt(login: str, password: str) -> int:
        return client.post("/sign-in", data={"login": login, "password": password,
                                             "csrf_token": token(client)}).status_code
    for _ in range(5):
        assert attempt(NOC, "wrong") == 200
    # Locked: even the right password waits, and says for how long.
    answer = client.post("/sign-in", data={"login": NOC.upper(), "password": PASSWORD,
                                           "csrf_token": token(client)})
    assert answer.status_code == 429
    assert "try again in 15 minutes" in answer.get_data(as_text=True)
    # Another login from the same address is not locked yet ...
    assert attempt(ACME_HR, PASSWORD) == 302
    client.post("/sign-out", data={"csrf_token": token(client, "/live/")})
    # ... until the address has failed 20 times.
    for n in range(15):
        assert attempt(f"guess{n}@x.example", "wrong") == 200
    assert attempt(AXIS_MANAGER, PASSWORD) == 429
    clock.advance(15 * 60 + 1)
    assert attempt(NOC, PASSWORD) == 302


def test_csrf_is_required(client: FlaskClient, world: World) -> None:
    assert client.post("/sign-in", data={"login": NOC, "password": PASSWORD}).status_code == 400
    sign_in(client, NOC)
    session_id = world.sessions["axis-0001"]
    answer = client.post(f"/live/{session_id}/disconnect", data={})
    assert answer.status_code == 400
    assert "reload the page" in answer.get_data(as_text=True)
    assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/live/").status_code == 200  # still signed in


def test_sign_out(app: Flask, client: FlaskClient) -> None:
    sign_in(client, NOC)
    cookie = client.get_cookie("console_session")
    assert cookie is not None
    answer = client.post("/sign-out", data={"csrf_token": token(client, "/live/")})
    assert answer.status_code == 302
    assert client.get("/live/").status_code == 302
    # A copy of the cookie taken before signing out opens nothing.
    with app.test_client() as thief:
        thief.set_cookie("console_session", cookie.value)
        assert thief.get("/live/").status_code == 302


def test_idle_and_absolute_expiry(client: FlaskClient, clock: Clock) -> None:
    sign_in(client, NOC)
    clock.advance(29 * 60)
    assert client.get("/live/").status_code == 200
    clock.advance(31 * 60)
    answer = client.get("/live/")
    assert answer.status_code == 302 and "expired=1" in answer.headers["Location"]
    assert "Your session has ended" in client.get(answer.headers["Location"]).get_data(
        as_text=True)
    sign_in(client, NOC)
    start = clock.t
    for _ in range(12 * 3 + 1):  # busy all day, a request every 20 minutes
        clock.advance(20 * 60)
        if client.get("/live/").status_code != 200:
            break
    else:
        pytest.fail("a sign-in outlived the longest session")
    assert clock.t - start == 12 * 3600 + 20 * 60


def test_a_changed_account_ends_its_sessions(client: FlaskClient,
                                             factory: sessionmaker[DB]) -> None:
    sign_in(client, AXIS_MANAGER)
    assert client.get("/boxes/").status_code == 200
    with transaction(factory) as db:
        admin.set_operator(db, AXIS_MANAGER, admin.OperatorChanges(role="company-manager",
                                                                   company="Acme"))
    assert client.get("/boxes/").status_code == 302
    sign_in(client, AXIS_MANAGER)
    assert client.get("/boxes/").status_code == 403
    with transaction(factory) as db:
        admin.remove_operator(db, AXIS_MANAGER)
    assert client.get("/live/").status_code == 302


def test_ops_see_every_open_session(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    assert shown(client) == set(ALL_OPEN)
    html = client.get("/live/").get_data(as_text=True)
    # alice's row: company, site, device, duration, bytes, last update and its age.
    for text in ("Acme", "Axis Parc", "02-00-5E-00-53-01", "198.51.100.10",
                 "2026-12-01 09:00:00", "1:00:00", "1.2 MB", "98.8 MB", "0:02:00 ago",
                 "<strong>4</strong> open sessions", 'data-refresh="15"',
                 "/static/console.js"):
        assert text in html, text
    assert "198.51.100.14" not in html  # the closed session


def test_filters(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    assert shown(client, f"?site={world.sites['CEI']}") == {"bob@globex.example"}
    assert shown(client, f"?company={world.companies['Globex']}") == {
        "bob@globex.example", "carol@globex.example"}
    assert shown(client, f"?person={world.people['alice@acme.example']}") == {
        "alice@acme.example"}
    assert shown(client, f"?site={world.sites['Axis Parc']}&company="
                         f"{world.companies['Globex']}") == {"carol@globex.example"}
    assert shown(client, "?q=MALLORY") == {"mallory@nowhere.example"}
    assert shown(client, "?q=02:00:5e:00:53:02") == {"bob@globex.example"}
    assert shown(client, "?q=198.51.100.12") == {"carol@globex.example"}
    assert shown(client, "?q=Globex&site=") == {"bob@globex.example", "carol@globex.example"}
    # LIKE's wildcards are plain characters.
    assert shown(client, "?q=%25") == set() and shown(client, "?q=_") == set()
    assert shown(client, f"?site={world.sites['Barchon']}") == set()
    html = client.get(f"/live/?person={world.people['alice@acme.example']}").get_data(
        as_text=True)
    assert "Sessions of alice@acme.example" in html


@pytest.mark.parametrize("query", [
    "site=abc", "site=-1", "site=0", "company=1.5", "person=1e3", "site=99999999999999999999",
    "company=2147483648", "site=%D9%A1", "q=" + "x" * 101, "q=a%00b", "q=%1b[31m",
])
def test_bad_filters_are_400(client: FlaskClient, query: str) -> None:
    sign_in(client, NOC)
    answer = client.get(f"/live/?{query}")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert ("bad " in html or "search" in html) and "Traceback" not in html


def test_huge_and_odd_session_ids(client: FlaskClient) -> None:
    sign_in(client, NOC)
    form = {"csrf_token": token(client, "/live/")}
    assert client.post(f"/live/{2**64}/disconnect", data=form).status_code == 404
    assert client.post("/live/-1/disconnect", data=form).status_code == 404
    assert client.post("/live/abc/disconnect", data=form).status_code == 404
    answer = client.post(f"/live/{2**63 - 1}/disconnect", data=form)
    assert answer.status_code == 302
    assert "is not open" in client.get(answer.headers["Location"]).get_data(as_text=True)
    assert client.get("/live/1/disconnect").status_code == 405


def test_a_site_manager_sees_their_sites(client: FlaskClient, world: World) -> None:
    sign_in(client, AXIS_MANAGER)
    assert shown(client) == {"alice@acme.example", "carol@globex.example",
                             "mallory@nowhere.example"}
    assert shown(client, f"?site={world.sites['CEI']}") == set()
    html = client.get("/live/").get_data(as_text=True)
    assert ">CEI</option>" not in html and ">Axis Parc</option>" in html


def test_a_company_manager_sees_only_their_company(client: FlaskClient, world: World) -> None:
    sign_in(client, ACME_HR)
    assert shown(client) == {"alice@acme.example"}
    # No URL shows another company's people.
    assert shown(client, f"?company={world.companies['Globex']}") == set()
    assert shown(client, f"?person={world.people['bob@globex.example']}") == set()
    assert shown(client, "?q=globex") == set()
    html = client.get("/live/").get_data(as_text=True)
    assert "Globex" not in html and "Boxes" not in html
    assert client.get("/boxes/").status_code == 403
    # Nor can they end another company's session (nothing is sent: no box listens).
    answer = client.post(f"/live/{world.sessions['cei-0001']}/disconnect",
                         data={"csrf_token": token(client, "/live/")})
    assert "not yours to end" in client.get(answer.headers["Location"]).get_data(as_text=True)
    client.post("/sign-out", data={"csrf_token": token(client, "/live/")})
    sign_in(client, GLOBEX_HR)
    assert shown(client) == {"bob@globex.example", "carol@globex.example"}


def test_boxes(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    html = client.get("/boxes/").get_data(as_text=True)
    rows = {m.group(2): m.group(1) for m in re.finditer(
        r'<tr class="(\w+)">\s*<td data-label="Box">([\w-]+)', html)}
    # axis-gw signed someone in 30 s ago; cei-gw's last interim is 20 minutes
    # old (more than 5); barchon-gw never spoke.
    assert rows == {"axis-gw": "ok", "cei-gw": "silent", "barchon-gw": "never"}
    assert "2 silent</strong>" in html and "2026-12-01 09:59:30" in html
    assert "2026-12-01 09:40:00" in html  # cei-gw's last interim
    live = re.findall(r'data-label="Live clients">(\d+)<', html)
    assert live == ["3", "0", "1"]  # by site: Axis Parc, Barchon, CEI


def test_boxes_of_a_site_manager(client: FlaskClient) -> None:
    sign_in(client, AXIS_MANAGER)
    html = client.get("/boxes/").get_data(as_text=True)
    assert "axis-gw" in html and "cei-gw" not in html and "barchon-gw" not in html


def test_home_and_unknown_pages(client: FlaskClient) -> None:
    sign_in(client, GLOBEX_HR)
    assert client.get("/").headers["Location"] == "/live/"
    assert client.get("/nothing-here").status_code == 404
    script = client.get("/static/console.js")
    assert script.status_code == 200 and b"setInterval" in script.data
    script.close()
    assert client.get("/static/../app.py").status_code == 404


@pytest.mark.parametrize(("back", "location"), [
    ("site=2&q=bob", "/live/?site=2&q=bob"), ("site=abc", "/live/"),
    ("//evil.example/", "/live/"), ("q=%00", "/live/"), ("x" * 500, "/live/"),
])
def test_disconnect_goes_back_only_to_the_live_view(client: FlaskClient, world: World,
                                                    back: str, location: str) -> None:
    sign_in(client, NOC)
    # The closed session: nothing is sent, the answer comes back at once.
    answer = client.post(f"/live/{world.sessions['cei-0000']}/disconnect",
                         data={"csrf_token": token(client, "/live/"), "back": back[:400]})
    assert (answer.status_code, answer.headers["Location"]) == (302, location)
