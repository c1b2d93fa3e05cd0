"""The console's fixtures: a small network on the test database (made with
the admin functions), its operators, and the app with a clock the tests move."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.dae_server import CoaChange, DaeServer, Selector
from passerelle.gateway.radclient import NasIdentity
from passerelle.portal.console.app import create_app
from passerelle.portal.console.settings import ConsoleSettings
from passerelle.radius import admin
from passerelle.radius.db import transaction
from passerelle.radius.models import AuthLog, Radacct

NOW = datetime(2026, 12, 1, 10, 0, 0)
PASSWORD = "a long console pass"
SECRET = "dae-secret-16-octets"
NOC, AXIS_MANAGER, ACME_HR, GLOBEX_HR = ("noc@passerelle.example", "axis@passerelle.example",
                                         "hr@acme.example", "hr@globex.example")


class Clock:
    """Wall-clock seconds the tests move by hand."""

    def __init__(self) -> None:
        self.t = NOW.replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class World:
    """Ids of what the network holds, by name."""

    sites: dict[str, int] = field(default_factory=dict)
    companies: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)  # by Acct-Session-Id
    gateways: dict[str, int] = field(default_factory=dict)  # by identifier


def _session(db: DB, world: World, sid: str, login: str, site: str, gateway_id: int,
             started: timedelta, updated: timedelta | None = None,
             stopped: timedelta | None = None, mac: str = "", ip: str = "",
             up: int = 0, down: int = 0) -> None:
    row = Radacct(acctsessionid=sid, acctuniqueid=sid.replace("-", "")[:32], username=login,
                  nasipaddress="127.0.0.1", nasidentifier=site.lower().split()[0] + "-gw",
                  acctstarttime=NOW - started,
                  acctupdatetime=NOW - updated if updated is not None else None,
                  acctstoptime=NOW - stopped if stopped is not None else None,
                  callingstationid=mac, framedipaddress=ip, acctinputoctets=up,
                  acctoutputoctets=down, person_id=world.people.get(login),
                  gateway_id=gateway_id, site_id=world.sites[site])
    db.add(row)
    db.flush()
    world.sessions[sid] = row.radacctid


def build_world(factory: sessionmaker[DB]) -> World:
    world = World()
    with transaction(factory) as db:
        admin.add_network(db, "wallonia")
        gateways = {}
        for n, name in enumerate(("Axis Parc", "CEI", "Barchon"), start=1):
            world.sites[name] = admin.add_site(db, name, "wallonia").id
            ident = name.lower().split()[0] + "-gw"
            gateways[name] = admin.add_gateway(db, ident, name, f"127.0.0.{n}", SECRET).id
            world.gateways[ident] = gateways[name]
        for name in ("Acme", "Globex"):
            world.companies[name] = admin.add_company(db, name).id
        for login, company in (("alice@acme.example", "Acme"), ("bob@globex.example", "Globex"),
                               ("carol@globex.example", "Globex")):
            world.people[login] = admin.add_person(db, login, company, "pw", name=login[:5]
                                                   .title()).id
        hour = timedelta(hours=1)
        _session(db, world, "axis-0001", "alice@acme.example", "Axis Parc", gateways["Axis Parc"],
                 started=hour, updated=timedelta(minutes=2), mac="02-00-5E-00-53-01",
                 ip="198.51.100.10", up=1_234_567, down=98_765_432)
        _session(db, world, "cei-0001", "bob@globex.example", "CEI", gateways["CEI"],
                 started=timedelta(minutes=30), updated=timedelta(minutes=20),
                 mac="02-00-5E-00-53-02", ip="198.51.100.11")
        _session(db, world, "axis-0002", "carol@globex.example", "Axis Parc",
                 gateways["Axis Parc"], started=timedelta(minutes=5),
                 mac="02-00-5E-00-53-03", ip="198.51.100.12")
        _session(db, world, "axis-0003", "mallory@nowhere.example", "Axis Parc",
                 gateways["Axis Parc"], started=timedelta(minutes=1),
                 mac="02-00-5E-00-53-04", ip="198.51.100.13")
        _session(db, world, "cei-0000", "alice@acme.example", "CEI", gateways["CEI"],
                 started=4 * hour, updated=3 * hour, stopped=3 * hour,
                 mac="02-00-5E-00-53-01", ip="198.51.100.14")
        db.add(AuthLog(username="alice@acme.example", reply="Access-Accept",
                       nasipaddress="127.0.0.1", nasidentifier="axis-gw",
                       authdate=NOW - timedelta(seconds=30)))
        admin.add_operator(db, NOC, PASSWORD, "network-ops", NOW, name="Night Desk")
        admin.add_operator(db, AXIS_MANAGER, PASSWORD, "site-manager", NOW,
                           sites=["Axis Parc"])
        admin.add_operator(db, ACME_HR, PASSWORD, "company-manager", NOW, company="Acme")
        admin.add_operator(db, GLOBEX_HR, PASSWORD, "company-manager", NOW, company="Globex")
    return world


@pytest.fixture
def world(factory: sessionmaker[DB]) -> World:
    return build_world(factory)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(factory: sessionmaker[DB], world: World, clock: Clock) -> Flask:
    app = create_app(factory, settings=ConsoleSettings(refresh=15), clock=clock)
    app.testing = True
    return app


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def token(client: FlaskClient, path: str = "/sign-in") -> str:
    """The CSRF token of the form on ``path`` (signed in, the sign-in page
    leads to the live view and its sign-out form)."""
    page = client.get(path, follow_redirects=True)
    found = TOKEN.search(page.get_data(as_text=True))
    assert found, (path, page.status_code)
    return found.group(1)


def sign_in(client: FlaskClient, login: str, password: str = PASSWORD) -> None:
    answer = client.post("/sign-in", data={"login": login, "password": password,
                                           "csrf_token": token(client)})
    assert answer.status_code == 302, answer.get_data(as_text=True)


# -- axis-gw's RFC 5176 server, for the Disconnect button ------------------------

@dataclass
class Daemon:
    """The box's live sessions, by Acct-Session-Id and User-Name."""

    live: dict[str, str] = field(default_factory=lambda: {
        "axis-0001": "alice@acme.example", "axis-0003": "mallory@nowhere.example"})
    cut: list[Selector] = field(default_factory=list)

    def disconnect(self, selector: Selector) -> int:
        self.cut.append(selector)
        found = [sid for sid, user in self.live.items()
                 if selector.acct_session_id in (None, sid) and selector.user_name in (None, user)]
        for sid in found:
            del self.live[sid]
        return len(found)

    def change(self, selector: Selector, change: CoaChange) -> int:
        return 0


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


@pytest.fixture
def box(daemon: Daemon, factory: sessionmaker[DB], world: World) -> Iterator[DaeServer]:
    """axis-gw's RFC 5176 server, on a free port of 127.0.0.1 (its address)."""
    server = DaeServer("127.0.0.1", 0, {"127.0.0.1": SECRET.encode()},
                       NasIdentity("axis-gw", "127.0.0.1"), daemon)
    server.start()
    with transaction(factory) as db:
        admin.set_gateway(db, "axis-gw", admin.GatewayChanges(coa_port=server.port))
    try:
        yield server
    finally:
        server.stop()
