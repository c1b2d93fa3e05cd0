"""The people pages through Flask's test client, on SQLite and PostgreSQL:
list and search, a person's page (sessions, ledger), add / edit /
deactivate, password reset, credit top-up, history; and a company manager
kept to their own company's people."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import admin, passwords
from passerelle.radius.db import transaction

from .conftest import ACME_HR, NOC, World, sign_in, token


def error_of(body: str, field: str) -> str:
    found = re.search(rf'<span class="error" id="{field}-error">([^<]*)</span>', body)
    return found.group(1) if found else ""


def listed(client: FlaskClient, query: str = "") -> set[str]:
    body = client.get("/people/" + query).get_data(as_text=True)
    return set(re.findall(r'href="/people/\d+">([^<]+)</a>', body))


def generated_on(body: str) -> str:
    found = re.search(r'<code class="secret">([^<]+)</code>', body)
    assert found, body
    return found.group(1)


def test_list_search_and_filter(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    everyone = {"alice@acme.example", "bob@globex.example", "carol@globex.example"}
    assert listed(client) == everyone
    assert listed(client, f"?company={world.companies['Globex']}") == everyone - {
        "alice@acme.example"}
    assert listed(client, "?q=CAROL") == {"carol@globex.example"}
    assert listed(client, "?q=Bob") == {"bob@globex.example"}  # the name, "Bob@G"
    assert listed(client, "?q=%25") == set()  # % is a character, not a wildcard
    assert client.get("/people/?company=abc").status_code == 400
    assert client.get("/people/?q=" + "x" * 101).status_code == 400


def test_a_company_manager_sees_only_their_people(client: FlaskClient, world: World) -> None:
    sign_in(client, ACME_HR)
    assert listed(client) == {"alice@acme.example"}
    assert listed(client, f"?company={world.companies['Globex']}") == set()
    assert client.get(f"/people/{world.people['bob@globex.example']}").status_code == 404


def test_a_persons_page(client: FlaskClient, factory: sessionmaker[DB], world: World,
                        clock: object) -> None:
    alice = world.people["alice@acme.example"]
    with transaction(factory) as db:
        admin.add_credit(db, "alice@acme.example", 600, admin.datetime(2026, 11, 30),
                         "invoice 7")
    sign_in(client, ACME_HR)
    body = client.get(f"/people/{alice}").get_data(as_text=True)
    sessions = body.split('id="sessions"')[1].split('id="credit"')[0]
    assert "2 sessions" in sessions and "1 open now" in sessions
    assert "CEI" in sessions and "Axis Parc" in sessions
    credit = body.split('id="credit"')[1]
    assert "invoice 7" in credit and "+10:00" in credit and "<strong>10:00</strong>" in body


def test_add_a_person(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, NOC)
    form = client.get(f"/people/new?company={world.companies['Globex']}").get_data(
        as_text=True)
    assert '<option selected value="Globex">' in form or 'selected value="Globex"' in form \
        or 'value="Globex" selected' in form
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "Dave@Globex.example",
        "name": "Dave", "company": "Globex", "language": "en", "password": "dave pass"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        dave = admin.get_person(db, "dave@globex.example")
        assert (dave.name, dave.company.name, dave.language) == ("Dave", "Globex", "en")
        assert passwords.verify_password(dave.password_hash, "dave pass")
    # No password typed: one is made and shown on this answer only.
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "erin@globex.example",
        "company": "Globex", "language": "fr"})
    assert answer.status_code == 200
    shown = generated_on(answer.get_data(as_text=True))
    with transaction(factory) as db:
        erin = admin.get_person(db, "erin@globex.example")
        assert passwords.verify_password(erin.password_hash, shown)
    assert shown not in client.get(f"/people/{erin.id}").get_data(as_text=True)
    assert "create" in client.get(f"/people/{erin.id}").get_data(as_text=True).split(
        'id="history"')[1]


def test_add_refused_with_admins_words(client: FlaskClient, factory: sessionmaker[DB],
                                       world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "not an address",
        "name": "x\x01y", "company": "Globex", "language": "de", "password": "p" * 129})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "bad login" in error_of(body, "login")
    assert "cannot be typed" in error_of(body, "name")
    assert "bad language &#39;de&#39;" in error_of(body, "language")
    assert "RADIUS carries at most 128" in error_of(body, "password")
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "ALICE@acme.example",
        "company": "Globex", "language": "fr", "password": "x"})
    assert "already exists" in error_of(answer.get_data(as_text=True), "login")
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "new@acme.example",
        "company": "Initech", "language": "fr", "password": "x"})
    assert "unknown company &#39;Initech&#39;" in error_of(answer.get_data(as_text=True),
                                                           "company")


def test_a_company_manager_adds_to_their_company_only(client: FlaskClient,
                                                      factory: sessionmaker[DB],
                                                      world: World) -> None:
    sign_in(client, ACME_HR)
    form = client.get("/people/new").get_data(as_text=True)
    assert "Globex" not in form and "<strong>Acme</strong>" in form
    answer = client.post("/people/new", data={
        "csrf_token": token(client, "/people/new"), "login": "frank@acme.example",
        "company": "Globex", "language": "fr", "password": "frank pass"})
    assert answer.status_code == 302
    with transaction(factory) as db:
        assert admin.get_person(db, "frank@acme.example").company.name == "Acme"


def test_edit(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    alice = world.people["alice@acme.example"]
    sign_in(client, NOC)
    assert 'value="alice@acme.example"' in client.get(f"/people/{alice}/edit").get_data(
        as_text=True)
    answer = client.post(f"/people/{alice}/edit", data={
        "csrf_token": token(client, f"/people/{alice}/edit"), "login": "alice.m@acme.example",
        "name": "Alice M", "company": "Globex", "language": "nl"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        person = admin.get_person(db, "alice.m@acme.example")
        assert (person.name, person.company.name, person.language) == ("Alice M", "Globex",
                                                                       "nl")
    history = client.get(f"/people/{alice}").get_data(as_text=True).split('id="history"')[1]
    assert "login: alice@acme.example → alice.m@acme.example" in history
    assert "company: Acme → Globex" in history
    answer = client.post(f"/people/{alice}/edit", data={
        "csrf_token": token(client, f"/people/{alice}/edit"), "login": "bob@globex.example",
        "company": "Globex", "language": "nl"})
    assert answer.status_code == 400
    assert "already exists" in error_of(answer.get_data(as_text=True), "login")


def test_a_company_manager_cannot_move_someone_out(client: FlaskClient,
                                                   factory: sessionmaker[DB],
                                                   world: World) -> None:
    alice = world.people["alice@acme.example"]
    sign_in(client, ACME_HR)
    answer = client.post(f"/people/{alice}/edit", data={
        "csrf_token": token(client, f"/people/{alice}/edit"), "login": "alice@acme.example",
        "company": "Globex", "language": "en"})
    assert answer.status_code == 302
    with transaction(factory) as db:
        person = admin.get_person(db, "alice@acme.example")
        assert (person.company.name, person.language) == ("Acme", "en")


def test_deactivate_and_reactivate(client: FlaskClient, factory: sessionmaker[DB],
                                   world: World) -> None:
    bob = world.people["bob@globex.example"]
    sign_in(client, NOC)
    assert ">Deactivate</button>" in client.get(f"/people/{bob}").get_data(as_text=True)
    client.post(f"/people/{bob}/active", data={"csrf_token": token(client, f"/people/{bob}"),
                                               "active": "0"})
    with transaction(factory) as db:
        assert admin.get_person(db, "bob@globex.example").active is False
    page = client.get(f"/people/{bob}").get_data(as_text=True)
    assert "deactivated" in page and ">Reactivate</button>" in page
    assert "deactivate" in page.split('id="history"')[1]
    client.post(f"/people/{bob}/active", data={"csrf_token": token(client, f"/people/{bob}"),
                                               "active": "1"})
    with transaction(factory) as db:
        assert admin.get_person(db, "bob@globex.example").active is True
    answer = client.post(f"/people/{bob}/active", data={
        "csrf_token": token(client, f"/people/{bob}"), "active": "maybe"})
    assert "Choose deactivate or reactivate." in client.get(
        answer.headers["Location"]).get_data(as_text=True)


def test_password_reset(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    alice = world.people["alice@acme.example"]
    sign_in(client, ACME_HR)
    answer = client.post(f"/people/{alice}/password", data={
        "csrf_token": token(client, f"/people/{alice}"), "password": "typed by HR"})
    assert answer.status_code == 302
    with transaction(factory) as db:
        assert passwords.verify_password(admin.get_person(db, "alice@acme.example")
                                         .password_hash, "typed by HR")
    answer = client.post(f"/people/{alice}/password", data={
        "csrf_token": token(client, f"/people/{alice}")})
    assert answer.status_code == 200
    shown = generated_on(answer.get_data(as_text=True))
    with transaction(factory) as db:
        assert passwords.verify_password(admin.get_person(db, "alice@acme.example")
                                         .password_hash, shown)
    page = client.get(f"/people/{alice}").get_data(as_text=True)
    assert shown not in page and "typed by HR" not in page
    history = page.split('id="history"')[1]
    assert "typed by the operator" in history and "generated" in history
    answer = client.post(f"/people/{alice}/password", data={
        "csrf_token": token(client, f"/people/{alice}"), "password": "é" * 65})
    assert answer.status_code == 400
    assert "130 octets" in error_of(answer.get_data(as_text=True), "password")


def test_credit_top_up(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    alice = world.people["alice@acme.example"]
    sign_in(client, ACME_HR)
    answer = client.post(f"/people/{alice}/credit", data={
        "csrf_token": token(client, f"/people/{alice}"), "minutes": "90", "note": "PO 12"})
    assert answer.status_code == 302
    page = client.get(f"/people/{alice}").get_data(as_text=True)
    assert "alice@acme.example: +1:30 of credit." in page and "PO 12" in page
    assert "+90 min: PO 12" in page.split('id="history"')[1]
    for minutes, words in (("-5", "a top-up adds 1 minute or more"),
                           ("0", "a top-up adds 1 minute or more"),
                           ("ten", "bad number of minutes &#39;ten&#39;: a whole number"),
                           ("99999999", "19 years")):
        answer = client.post(f"/people/{alice}/credit", data={
            "csrf_token": token(client, f"/people/{alice}"), "minutes": minutes})
        assert answer.status_code == 400, minutes
        assert words in error_of(answer.get_data(as_text=True), "minutes"), minutes
    with transaction(factory) as db:
        assert admin.show_credit(db, "alice@acme.example").balance == 90 * 60
