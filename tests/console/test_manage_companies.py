"""The companies pages through Flask's test client, on SQLite and PostgreSQL:
the scoped list, a company's page, create / edit / suspend / close through
radius/admin.py (its messages next to the fields), and the history."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import admin
from passerelle.radius.db import transaction
from passerelle.radius.models import CompanyStatus

from .conftest import ACME_HR, AXIS_MANAGER, NOC, World, sign_in, token

PLAN = {"status": "active", "payment": "ok", "categories": "123", "services": "wifi"}


def error_of(body: str, field: str) -> str:
    """The message shown next to a form field."""
    found = re.search(rf'<span class="error" id="{field}-error">([^<]*)</span>', body)
    return found.group(1) if found else ""


def test_the_list_is_scoped(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    body = client.get("/companies/").get_data(as_text=True)
    assert "Acme" in body and "Globex" in body and 'href="/companies/new"' in body
    client.post("/sign-out", data={"csrf_token": token(client, "/companies/")})
    sign_in(client, ACME_HR)
    body = client.get("/companies/").get_data(as_text=True)
    assert "Acme" in body and "Globex" not in body and "/companies/new" not in body
    client.post("/sign-out", data={"csrf_token": token(client, "/companies/")})
    sign_in(client, AXIS_MANAGER)
    assert client.get("/companies/").status_code == 403


def test_a_company_page(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(payment="overdue", bandwidth_up="2M",
                                                 bandwidth_down="10M", max_session="8h",
                                                 vlan="20", categories="12"))
    sign_in(client, ACME_HR)
    page = client.get(f"/companies/{world.companies['Acme']}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    for shown in ("overdue", "2M / 10M bit/s", "8:00:00", "<dd>20</dd>", "<dd>12</dd>",
                  "wifi"):
        assert shown in body, shown
    # A company manager reads it; the buttons are network ops'.
    assert "/edit" not in body and "Suspend" not in body
    assert client.get(f"/companies/{world.companies['Globex']}").status_code == 404
    assert client.get("/companies/999999").status_code == 404
    assert client.get("/companies/99999999999").status_code == 404


def test_create(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, NOC)
    form = client.get("/companies/new").get_data(as_text=True)
    assert 'value="123"' in form and 'value="wifi"' in form
    answer = client.post("/companies/new", data={
        "csrf_token": token(client, "/companies/new"), "name": " Initech ", **PLAN,
        "bandwidth_up": "500k", "vlan": "30", "max_session": "90m"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        initech = admin.get_company(db, "Initech")
        assert (initech.bandwidth_up, initech.bandwidth_down, initech.vlan,
                initech.max_session) == (500_000, None, 30, 5400)
    page = client.get(answer.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "Company Initech added." in page
    history = page.split('id="history"')[1]
    assert NOC in history and "create" in history and "vlan: - → 30" in history


def test_bad_input_shows_admins_message_next_to_the_field(client: FlaskClient,
                                                          factory: sessionmaker[DB],
                                                          world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/companies/new", data={
        "csrf_token": token(client, "/companies/new"), **PLAN, "name": "",
        "status": "frozen", "categories": "45", "services": "Wi Fi", "bandwidth_up": "lots",
        "max_session": "-1", "vlan": "5000"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400
    # The words are radius/admin.py's, one per field.
    expected = {"name": "the name must not be empty",
                "status": "bad status &#39;frozen&#39;: active, suspended or closed",
                "categories": "bad categories &#39;45&#39;",
                "services": "bad service name &#39;wi fi&#39;",
                "bandwidth_up": "bad upload cap &#39;lots&#39;",
                "max_session": "bad longest session &#39;-1&#39;",
                "vlan": "bad VLAN &#39;5000&#39;: 1 to 4094, or none"}
    for field, words in expected.items():
        assert words in error_of(body, field), (field, error_of(body, field))
    assert 'aria-invalid="true"' in body
    # A rule only the database can answer: next to the name too.
    answer = client.post("/companies/new", data={
        "csrf_token": token(client, "/companies/new"), **PLAN, "name": "Globex"})
    assert answer.status_code == 400
    assert error_of(answer.get_data(as_text=True), "name") == \
        "company &#39;Globex&#39; already exists"
    with transaction(factory) as db:
        assert len(admin.list_companies(db)) == 2


def test_edit(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, NOC)
    acme = world.companies["Acme"]
    form = client.get(f"/companies/{acme}/edit").get_data(as_text=True)
    assert 'value="Acme"' in form
    answer = client.post(f"/companies/{acme}/edit", data={
        "csrf_token": token(client, f"/companies/{acme}/edit"), **PLAN, "name": "Acme SA",
        "payment": "overdue", "bandwidth_down": "10M", "vlan": "12"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        company = admin.get_company(db, "Acme SA")
        assert (company.payment.value, company.bandwidth_down, company.vlan) == (
            "overdue", 10_000_000, 12)
    history = client.get(f"/companies/{acme}").get_data(as_text=True).split('id="history"')[1]
    assert "name: Acme → Acme SA" in history and "payment: ok → overdue" in history
    # Emptying a cap clears it ("none").
    answer = client.post(f"/companies/{acme}/edit", data={
        "csrf_token": token(client, f"/companies/{acme}/edit"), **PLAN, "name": "Acme SA"})
    with transaction(factory) as db:
        assert admin.get_company(db, "Acme SA").vlan is None
    # A name taken by another company.
    answer = client.post(f"/companies/{acme}/edit", data={
        "csrf_token": token(client, f"/companies/{acme}/edit"), **PLAN, "name": "Globex"})
    assert answer.status_code == 400
    assert "already exists" in error_of(answer.get_data(as_text=True), "name")


def test_suspend_close_and_reactivate(client: FlaskClient, factory: sessionmaker[DB],
                                      world: World) -> None:
    sign_in(client, NOC)
    globex = world.companies["Globex"]
    page = client.get(f"/companies/{globex}").get_data(as_text=True)
    assert ">Suspend</button>" in page and ">Close</button>" in page
    assert ">Reactivate</button>" not in page
    for status, verb in (("suspended", "suspend"), ("closed", "close"),
                         ("active", "reactivate")):
        answer = client.post(f"/companies/{globex}/status", data={
            "csrf_token": token(client, f"/companies/{globex}"), "status": status})
        assert answer.status_code == 302
        with transaction(factory) as db:
            assert admin.get_company(db, "Globex").status is CompanyStatus(status)
        page = client.get(f"/companies/{globex}").get_data(as_text=True)
        assert f"Globex is now {status}." in page and verb in page.split('id="history"')[1]
    answer = client.post(f"/companies/{globex}/status", data={
        "csrf_token": token(client, f"/companies/{globex}"), "status": "deleted"})
    assert "Choose suspend, close or reactivate." in client.get(
        answer.headers["Location"]).get_data(as_text=True)
    # Without the CSRF token: refused, nothing changes.
    answer = client.post(f"/companies/{globex}/status", data={"status": "closed"})
    with transaction(factory) as db:
        assert admin.get_company(db, "Globex").status is CompanyStatus.active
