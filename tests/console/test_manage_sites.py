"""The sites and gateways pages through Flask's test client, on SQLite and
PostgreSQL: network ops create and edit them through radius/admin.py; a
site manager sees their own, read-only; a shared secret is never shown."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import admin
from passerelle.radius.db import transaction
from passerelle.radius.models import AuditEntry

from .conftest import AXIS_MANAGER, NOC, SECRET, World, sign_in, token

SITE = {"network": "wallonia", "category": "2", "capacity": "12", "city": "Liège",
        "opens": "08:00", "closes": "18:00", "days": "mon-fri", "staffed": "y",
        "timezone": "Europe/Brussels"}
NEW_SECRET = "another-secret-of-24-chars"


def error_of(body: str, field: str) -> str:
    found = re.search(rf'<span class="error" id="{field}-error">([^<]*)</span>', body)
    return found.group(1) if found else ""


def test_a_site_manager_sees_their_sites_read_only(client: FlaskClient, world: World) -> None:
    sign_in(client, AXIS_MANAGER)
    body = client.get("/sites/").get_data(as_text=True)
    assert "Axis Parc" in body and "CEI" not in body and "Barchon" not in body
    assert "/sites/new" not in body
    page = client.get(f"/sites/{world.sites['Axis Parc']}").get_data(as_text=True)
    assert "axis-gw" in page and "/edit" not in page and "Add a gateway" not in page
    assert client.get(f"/sites/{world.sites['CEI']}").status_code == 404
    assert client.get(f"/gateways/{world.gateways['cei-gw']}").status_code == 404
    gateway = client.get(f"/gateways/{world.gateways['axis-gw']}").get_data(as_text=True)
    assert "127.0.0.1" in gateway and SECRET not in gateway and "/edit" not in gateway
    assert client.get(f"/sites/{world.sites['Axis Parc']}/edit").status_code == 403
    assert client.get("/gateways/new").status_code == 403


def test_create_and_edit_a_site(client: FlaskClient, factory: sessionmaker[DB],
                                world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/sites/new", data={"csrf_token": token(client, "/sites/new"),
                                             "name": "Liège Guillemins", **SITE})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        site = admin.get_site(db, "Liège Guillemins")
        assert (site.category, site.capacity, site.opens, site.closes, site.open_days,
                site.staffed) == (2, 12, "08:00", "18:00", "12345", True)
        site_id = site.id
    answer = client.post(f"/sites/{site_id}/edit", data={
        "csrf_token": token(client, f"/sites/{site_id}/edit"), "name": "Liège Guillemins",
        **SITE, "opens": "", "closes": "", "staffed": "", "category": "3"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        site = admin.get_site(db, "Liège Guillemins")
        assert (site.opens, site.closes, site.staffed, site.category) == (None, None, False, 3)
    page = client.get(f"/sites/{site_id}").get_data(as_text=True)
    assert "always open" in page
    history = page.split('id="history"')[1]
    assert "create" in history and "opens: 08:00 → -" in history and "staffed: True → False" \
        in history


def test_site_mistakes_in_admins_words(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/sites/new", data={
        "csrf_token": token(client, "/sites/new"), **SITE, "name": "Axis Parc",
        "category": "4", "capacity": "-1", "opens": "25:00", "days": "weekend",
        "timezone": "Mars/Olympus"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "a site has 1, 2 or 3 stars" in error_of(body, "category")
    assert "bad capacity -1" in error_of(body, "capacity")
    assert "bad time for opening &#39;25:00&#39;" in error_of(body, "opens")
    assert "bad days" in error_of(body, "days")
    assert "unknown time zone" in error_of(body, "timezone")
    answer = client.post("/sites/new", data={
        "csrf_token": token(client, "/sites/new"), **SITE, "name": "Axis Parc"})
    assert "already exists" in error_of(answer.get_data(as_text=True), "name")
    answer = client.post("/sites/new", data={
        "csrf_token": token(client, "/sites/new"), **SITE, "name": "New", "closes": ""})
    assert "give both" in error_of(answer.get_data(as_text=True), "opens")
    answer = client.post("/sites/new", data={
        "csrf_token": token(client, "/sites/new"), **SITE, "name": "New", "network": "mars"})
    assert "unknown network &#39;mars&#39;" in error_of(answer.get_data(as_text=True),
                                                        "network")


def test_gateways(client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, NOC)
    form = client.get(f"/gateways/new?site={world.sites['CEI']}").get_data(as_text=True)
    assert re.search(r'<option (selected )?value="CEI"( selected)?>', form)
    answer = client.post("/gateways/new", data={
        "csrf_token": token(client, "/gateways/new"), "identifier": "cei-gw2", "site": "CEI",
        "ip": "192.0.2.20", "secret": NEW_SECRET, "coa_port": "3799", "require_ma": "y"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        gateway = admin.get_gateway(db, "cei-gw2")
        assert (gateway.ip_address, gateway.secret, gateway.require_message_authenticator) \
            == ("192.0.2.20", NEW_SECRET, True)
        gateway_id = gateway.id
    # The secret is never shown again, nor kept in the history.
    edit = client.get(f"/gateways/{gateway_id}/edit").get_data(as_text=True)
    assert NEW_SECRET not in edit and "192.0.2.20" in edit
    answer = client.post(f"/gateways/{gateway_id}/edit", data={
        "csrf_token": token(client, f"/gateways/{gateway_id}/edit"), "identifier": "cei-gw2",
        "site": "Barchon", "ip": "192.0.2.21", "secret": "", "coa_port": "1700"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with transaction(factory) as db:
        gateway = admin.get_gateway(db, "cei-gw2")
        assert (gateway.site.name, gateway.ip_address, gateway.coa_port, gateway.secret,
                gateway.require_message_authenticator) == ("Barchon", "192.0.2.21", 1700,
                                                           NEW_SECRET, False)
    answer = client.post(f"/gateways/{gateway_id}/edit", data={
        "csrf_token": token(client, f"/gateways/{gateway_id}/edit"), "identifier": "cei-gw2",
        "site": "Barchon", "ip": "192.0.2.21", "secret": "x" * 24, "coa_port": "1700"})
    assert answer.status_code == 302
    page = client.get(f"/gateways/{gateway_id}").get_data(as_text=True)
    history = page.split('id="history"')[1]
    assert "ip: 192.0.2.20 → 192.0.2.21" in history and "new shared secret" in history
    with transaction(factory) as db:
        details = " ".join(e.detail for e in db.scalars(select(AuditEntry)))
    assert NEW_SECRET not in details and "x" * 24 not in details and NEW_SECRET not in page


def test_gateway_mistakes_in_admins_words(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/gateways/new", data={
        "csrf_token": token(client, "/gateways/new"), "identifier": "", "site": "CEI",
        "ip": "300.1.1.1", "secret": "short", "coa_port": "70000"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "must not be empty" in error_of(body, "identifier")
    assert "bad IP address &#39;300.1.1.1&#39;" in error_of(body, "ip")
    assert "give at least 16" in error_of(body, "secret")
    assert "bad CoA port 70000: 1 to 65535" in error_of(body, "coa_port")
    answer = client.post("/gateways/new", data={
        "csrf_token": token(client, "/gateways/new"), "identifier": "dup", "site": "CEI",
        "ip": "127.0.0.2", "secret": NEW_SECRET, "coa_port": "3799"})
    assert "already gateway &#39;cei-gw&#39;" in error_of(answer.get_data(as_text=True), "ip")
