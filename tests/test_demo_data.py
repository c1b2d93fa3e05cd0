"""`passerelle demo-data` on SQLite and PostgreSQL: what it loads, that a
second run adds nothing, and that a real `passerelle radius serve` then
answers FreeRADIUS's `radtest` for the demo people."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from passerelle.radius import db, demo_data, ledger, passwords
from passerelle.radius.models import Company, Gateway, Network, Person, Site
from tests.need import tool

from .radius.conftest import start_server
from .radius.peers import Answer

BIN = Path(sys.executable).parent / "passerelle"


@pytest.fixture
def env(key_file: Path) -> dict[str, str]:
    """The environment of the commands: a key file of this test only (this
    process reads the sealed gateway secrets with it too)."""
    environ = {**os.environ, "PASSERELLE_KEY_FILE": str(key_file)}
    environ.pop("PASSERELLE_DB", None)
    return environ


def passerelle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@contextmanager
def session(db_url: str) -> Iterator[Session]:
    engine = db.make_engine(db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            yield s
    finally:
        engine.dispose()


def need(name: str) -> str:
    return tool(name, "freeradius-utils")


def radtest(user: str, password: str, port: int, secret: str, *,
            chap: bool = False) -> Answer:
    """FreeRADIUS's radtest (it adds Message-Authenticator), parsed."""
    cmd = [need("radtest"), *(["-t", "chap"] if chap else []), user, password,
           f"127.0.0.1:{port}", "0", secret]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return parse_radclient(out.stdout + out.stderr)


def parse_radclient(text: str) -> Answer:
    match = re.search(r"^Received (\S+) Id", text, re.M)
    if not match:
        return Answer(None, output=text)
    attrs = []
    for line in text[match.end():].splitlines()[1:]:
        if not line.startswith("\t"):
            break
        name, _, value = line.strip().partition(" = ")
        attrs.append((name, value.strip('"')))
    return Answer(match.group(1), attrs, text)


def counts(db_url: str) -> dict[str, int]:
    with session(db_url) as s:
        return {model.__name__: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Network, Site, Gateway, Company, Person)}


def test_demo_data_loads_the_demo_network(db_url: str, env: dict[str, str]) -> None:
    run = passerelle(env, "demo-data", "--db", db_url)
    assert run.returncode == 0, run.stderr
    assert "added 2 networks, 11 sites, 11 gateways" in run.stdout
    # The logins and the password are printed.
    assert demo_data.PASSWORD in run.stdout
    for demo in demo_data.PEOPLE:
        assert demo.login in run.stdout
    assert counts(db_url) == {"Network": 2, "Site": 11, "Gateway": 11, "Company": 6,
                              "Person": 9}
    with session(db_url) as s:
        sites = {site.name: site for site in s.scalars(select(Site))}
        assert set(sites) == {
            "Axis Parc", "CEI", "@trium Crealys", "Negundo", "La Lanterne",
            "Centre d'Entreprise Champagne Landas", "Barchon", "BDE Group", "Laptop Lounge",
            "BioPark", "Galaxia"}
        assert {site.network.name for site in sites.values()} == {"wallonia", "brussels"}
        assert {site.category for site in sites.values()} == {1, 2, 3}
        assert all(site.capacity > 0 and site.timezone == "Europe/Brussels"
                   for site in sites.values())
        barchon = sites["Barchon"]
        assert (barchon.staffed, barchon.opens, barchon.closes, barchon.open_days) == \
            (False, None, None, "1234567")
        staffed_with_hours = [s_ for s_ in sites.values() if s_.opens is not None]
        assert len(staffed_with_hours) == 9
        for site in staffed_with_hours:
            assert site.staffed and "12345" in site.open_days
            assert site.opens is not None and site.closes is not None
            assert "07:00" <= site.opens < "09:00" and "17:00" <= site.closes <= "20:00"
        gateways = {gw.site.name: gw for gw in s.scalars(select(Gateway))}
        axis = gateways.pop("Axis Parc")
        assert (axis.ip_address, axis.secret, axis.require_message_authenticator) == \
            ("127.0.0.1", demo_data.LOCAL_SECRET, True)
        assert len(demo_data.LOCAL_SECRET) >= 16  # RFC 2865 §3
        lab = ipaddress.ip_network("192.0.2.0/24")
        assert all(ipaddress.ip_address(gw.ip_address) in lab for gw in gateways.values())
        secrets = [gw.secret for gw in gateways.values()]
        assert len(set(secrets)) == 10 and all(len(x) >= 20 for x in secrets)
        companies = {c.name: c for c in s.scalars(select(Company))}
        assert {c.status.value for c in companies.values()} == {"active", "suspended", "closed"}
        assert any(c.payment.value == "overdue" for c in companies.values())
        assert any(c.bandwidth_down for c in companies.values())
        assert any(c.categories != "123" for c in companies.values())
        people = {p.login: p for p in s.scalars(select(Person))}
        for person in people.values():
            assert passwords.verify_password(person.password_hash, demo_data.PASSWORD)
        assert ledger.balance(s, people[demo_data.ACCEPTED].id) > 0
        assert people[demo_data.SUSPENDED].company.status.value == "suspended"
        chap = people[demo_data.CHAP_USER].chap_secret
        key = Fernet(Path(env["PASSERELLE_KEY_FILE"]).read_bytes().strip())
        assert chap is not None and passwords.open_chap_secret(chap, key) == demo_data.PASSWORD
        assert people["alice@acme.example"].chap_secret is None


def test_demo_data_twice_adds_nothing(db_url: str, env: dict[str, str]) -> None:
    assert passerelle(env, "demo-data", "--db", db_url).returncode == 0
    with session(db_url) as s:
        before = {p.login: ledger.balance(s, p.id) for p in s.scalars(select(Person))}
        secrets = {gw.identifier: gw.secret for gw in s.scalars(select(Gateway))}
    again = passerelle(env, "demo-data", "--db", db_url)
    assert again.returncode == 0, again.stderr
    assert "added nothing; already there: 2 networks, 11 sites" in again.stdout
    assert counts(db_url) == {"Network": 2, "Site": 11, "Gateway": 11, "Company": 6,
                              "Person": 9}
    with session(db_url) as s:
        assert {p.login: ledger.balance(s, p.id) for p in s.scalars(select(Person))} == before
        assert {gw.identifier: gw.secret for gw in s.scalars(select(Gateway))} == secrets


def test_demo_data_in_the_way_fails_clearly(db_url: str, env: dict[str, str]) -> None:
    """Another gateway on 127.0.0.1: one line, and nothing half loaded."""
    for args in (["network", "add", "lab"],
                 ["site", "add", "Lab", "--network", "lab"],
                 ["gateway", "add", "lab-gw", "--site", "Lab", "--ip", "127.0.0.1",
                  "--secret", "sixteen octets.."]):
        assert passerelle(env, "admin", *args, "--db", db_url).returncode == 0
    run = passerelle(env, "demo-data", "--db", db_url)
    assert run.returncode == 2
    assert run.stderr.strip() == \
        "Error: IP address 127.0.0.1 is already gateway 'lab-gw''s"
    assert counts(db_url) == {"Network": 1, "Site": 1, "Gateway": 1, "Company": 0,
                              "Person": 0}


@pytest.mark.integration
def test_demo_people_get_their_answers(db_url: str, env: dict[str, str],
                                       tmp_path: Path) -> None:
    """A real server on the demo data answers radtest from 127.0.0.1 with the
    demo secret: Accept for a demo person (PAP and CHAP), Reject with the
    reason for the suspended company and the others."""
    need("radtest")
    assert passerelle(env, "demo-data", "--db", db_url).returncode == 0
    server = start_server(db_url, tmp_path)  # same key file: tmp_path / "server.key"
    try:
        port, pw, secret = server.auth_port, demo_data.PASSWORD, demo_data.LOCAL_SECRET
        accepted = radtest(demo_data.ACCEPTED, pw, port, secret)
        assert accepted.code == "Access-Accept", accepted.output + server.logs()
        assert accepted.attrs[0][0] == "Message-Authenticator"
        # Axis Parc is open around the clock: the credit (600 min) is the limit.
        assert accepted.one("Session-Timeout") == str(600 * 60)
        assert accepted.one("Tunnel-Private-Group-Id:1") == "101"
        chap = radtest(demo_data.CHAP_USER, pw, port, secret, chap=True)
        assert chap.code == "Access-Accept", chap.output + server.logs()
        capped = radtest("bea@brightlane.example", pw, port, secret)
        assert capped.code == "Access-Accept"
        assert capped.one("Session-Timeout") == str(4 * 3600)
        assert capped.one("WISPr-Bandwidth-Max-Down") == "10000000"
        expected = {
            demo_data.SUSPENDED: "company-suspended",
            "lea@moulin.example": "payment-overdue",
            "tom@oldharbour.example": "company-closed",
            "karim@kapok.example": "site-not-allowed",
            "zoe@acme.example": "no-credit",
            "hugo@acme.example": "account-disabled",
        }
        for login, reason in expected.items():
            answer = radtest(login, pw, port, secret)
            assert answer.code == "Access-Reject", (login, answer.output)
            assert answer.one("Reply-Message").startswith(f"{reason}: "), login
        wrong = radtest(demo_data.ACCEPTED, "not the password", port, secret)
        assert wrong.one("Reply-Message").startswith("bad-credentials: ")
    finally:
        server.stop()
