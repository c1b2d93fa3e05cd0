"""A small world for the RADIUS tests, written straight through the models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import ledger, passwords
from passerelle.radius.models import (
    Company,
    CompanyStatus,
    Gateway,
    Network,
    PaymentStatus,
    Person,
    Site,
)

SECRET = "s3cret-for-tests"
PASSWORD = "correct horse"


@dataclass
class World:
    gateway_ip: str
    secret: str
    people: dict[str, int]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def person(db: DB, login: str, company: Company, password: str = PASSWORD,
           credit_minutes: int = 600, active: bool = True, chap: bool = False) -> Person:
    p = Person(login=login, company=company, password_hash=passwords.hash_password(password),
               active=active, chap_secret=passwords.seal_chap_secret(password) if chap else None)
    db.add(p)
    db.flush()
    if credit_minutes:
        ledger.top_up(db, p.id, credit_minutes * 60, now())
    return p


def build(factory: sessionmaker[DB], gateway_ip: str = "127.0.0.1", coa_port: int = 3799,
          require_ma: bool = True, site_hours: tuple[str, str] | None = None) -> World:
    with factory() as db, db.begin():
        net = Network(name="wallonia")
        site = Site(name="Axis Parc", network=net, category=3, capacity=40,
                    opens=site_hours[0] if site_hours else None,
                    closes=site_hours[1] if site_hours else None)
        db.add(Gateway(identifier="axis-gw", site=site, ip_address=gateway_ip, secret=SECRET,
                       coa_port=coa_port, require_message_authenticator=require_ma))
        acme = Company(name="Acme", vlan=101)
        capped = Company(name="Slowco", bandwidth_up=2_000_000, bandwidth_down=10_000_000,
                         max_session=1800)
        suspended = Company(name="Gone", status=CompanyStatus.suspended)
        closed = Company(name="Closed", status=CompanyStatus.closed)
        overdue = Company(name="Latepay", payment=PaymentStatus.overdue)
        small = Company(name="Twostar", categories="12")
        db.add_all([acme, capped, suspended, closed, overdue, small])
        people = {
            "alice": person(db, "alice@acme.example", acme, chap=True),
            "bob": person(db, "bob@slowco.example", capped),
            "carol": person(db, "carol@gone.example", suspended),
            "dan": person(db, "dan@closed.example", closed),
            "erin": person(db, "erin@latepay.example", overdue),
            "frank": person(db, "frank@twostar.example", small),
            "grace": person(db, "grace@acme.example", acme, credit_minutes=0),
            "heidi": person(db, "heidi@acme.example", acme, active=False),
            "ivan": person(db, "ivan@acme.example", acme, credit_minutes=2),
        }
        ids = {k: v.id for k, v in people.items()}
    return World(gateway_ip, SECRET, ids)
