"""The demo network: the first customer's eleven sites, invented companies,
people and credit.

``load`` adds what is missing and keeps what is there, so running it twice
adds nothing; something in the way (say, another gateway on 127.0.0.1) is a
``UserError``. Everything goes through admin.py, with its checks.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from . import admin
from .models import Company, Gateway, Network, Person, Site

# One password for every demo person, printed by `passerelle demo-data`.
PASSWORD = "demo-wifi-2024"
# The loopback gateway, so `radtest` on this machine is a site's box.
LOCAL_GATEWAY = "axis-gw"
LOCAL_IP = "127.0.0.1"
# At least 16 octets (RFC 2865 §3), as admin.py requires of every gateway.
LOCAL_SECRET = "axis-parc-demo-secret"
ACCEPTED = "alice@acme.example"
CHAP_USER = "adam@acme.example"
SUSPENDED = "sam@dewaele.example"


@dataclass(frozen=True)
class DemoSite:
    name: str
    city: str
    network: str
    category: int
    capacity: int
    gateway: str
    ip: str
    opens: str | None = "08:00"
    closes: str | None = "18:00"
    days: str = "12345"
    staffed: bool = True


NETWORKS = ("wallonia", "brussels")

SITES = (
    # Axis Parc is the site behind 127.0.0.1: its members badge in around the
    # clock, so the demo answers radtest at any hour.
    DemoSite("Axis Parc", "Mont-Saint-Guibert", "wallonia", 3, 40, LOCAL_GATEWAY, LOCAL_IP,
             opens=None, closes=None, days="1234567"),
    DemoSite("CEI", "Louvain-la-Neuve", "wallonia", 3, 60, "cei-gw", "192.0.2.11",
             opens="07:30", closes="19:00"),
    DemoSite("@trium Crealys", "Les Isnes", "wallonia", 2, 25, "crealys-gw", "192.0.2.12"),
    DemoSite("Negundo", "Froyennes", "wallonia", 2, 30, "negundo-gw", "192.0.2.13",
             closes="18:30"),
    DemoSite("La Lanterne", "Enghien", "wallonia", 1, 12, "lanterne-gw", "192.0.2.14",
             opens="08:30", closes="17:30"),
    DemoSite("Centre d'Entreprise Champagne Landas", "Saintes", "wallonia", 2, 20,
             "landas-gw", "192.0.2.15"),
    DemoSite("Barchon", "Barchon", "wallonia", 1, 6, "barchon-gw", "192.0.2.16",
             opens=None, closes=None, days="1234567", staffed=False),
    DemoSite("BDE Group", "Brussels", "brussels", 3, 50, "bde-gw", "192.0.2.17",
             opens="07:30", closes="20:00", days="123456"),
    DemoSite("Laptop Lounge", "Wemmel", "brussels", 2, 35, "lounge-gw", "192.0.2.18",
             closes="20:00", days="123456"),
    DemoSite("BioPark", "Gosselies", "brussels", 2, 24, "biopark-gw", "192.0.2.19"),
    DemoSite("Galaxia", "Redu", "brussels", 1, 15, "galaxia-gw", "192.0.2.20",
             opens="08:30", closes="17:00"),
)


@dataclass(frozen=True)
class DemoCompany:
    name: str
    plan: admin.CompanyTerms
    what: str  # what its people see, for the printed list


COMPANIES = (
    DemoCompany("Acme", admin.CompanyTerms(vlan="101"), "accepted"),
    DemoCompany("Brightlane", admin.CompanyTerms(bandwidth_up="2M", bandwidth_down="10M",
                                         max_session="4h", vlan="102"),
                "accepted, 2M/10M and 4 h at most"),
    DemoCompany("Kapok Design", admin.CompanyTerms(categories="12"),
                "site-not-allowed at 3-star sites (Axis Parc)"),
    DemoCompany("Dewaele & Fils", admin.CompanyTerms(status="suspended"), "company-suspended"),
    DemoCompany("Moulin Logistics", admin.CompanyTerms(payment="overdue"), "payment-overdue"),
    DemoCompany("Old Harbour", admin.CompanyTerms(status="closed"), "company-closed"),
)


@dataclass(frozen=True)
class DemoPerson:
    login: str
    name: str
    company: str
    minutes: int
    chap: bool = False
    active: bool = True
    language: str = "fr"
    note: str = ""  # when it differs from the company's


PEOPLE = (
    DemoPerson(ACCEPTED, "Alice Lambert", "Acme", 600),
    DemoPerson(CHAP_USER, "Adam Peeters", "Acme", 1200, chap=True, language="nl",
               note="accepted, PAP or CHAP"),
    DemoPerson("zoe@acme.example", "Zoé Dubois", "Acme", 0, note="no-credit"),
    DemoPerson("hugo@acme.example", "Hugo Martin", "Acme", 300, active=False,
               note="account-disabled"),
    DemoPerson("bea@brightlane.example", "Béatrice Claes", "Brightlane", 900, language="en"),
    DemoPerson("karim@kapok.example", "Karim Benali", "Kapok Design", 480),
    DemoPerson(SUSPENDED, "Sam Dewaele", "Dewaele & Fils", 600),
    DemoPerson("lea@moulin.example", "Léa Moulin", "Moulin Logistics", 600),
    DemoPerson("tom@oldharbour.example", "Tom Jacobs", "Old Harbour", 60),
)


@dataclass
class LoadSummary:
    created: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, created: bool) -> None:
        into = self.created if created else self.kept
        into[kind] = into.get(kind, 0) + 1

    def summary(self) -> str:
        made = ", ".join(f"{n} {k}" for k, n in self.created.items()) or "nothing"
        kept = ", ".join(f"{n} {k}" for k, n in self.kept.items())
        return f"demo data: added {made}" + (f"; already there: {kept}" if kept else "")

    @staticmethod
    def logins_text() -> str:
        expect = {c.name: c.what for c in COMPANIES}
        width = max(len(p.login) for p in PEOPLE)
        lines = [f"Demo people (password for all: {PASSWORD}), at Axis Parc "
                 f"(gateway {LOCAL_IP}, secret {LOCAL_SECRET}):"]
        lines += [f"  {p.login.ljust(width)}  {p.company}: {p.note or expect[p.company]}"
                  for p in PEOPLE]
        return "\n".join(lines)


def load(db: DB, now: datetime) -> LoadSummary:
    """Add the demo data that is missing; return what was added and kept."""
    report = LoadSummary()
    for name in NETWORKS:
        exists = db.scalar(select(Network).where(Network.name == name)) is not None
        if not exists:
            admin.add_network(db, name)
        report.count("networks", not exists)
    for s in SITES:
        exists = db.scalar(select(Site).where(Site.name == s.name)) is not None
        if not exists:
            admin.add_site(db, s.name, s.network, category=s.category, capacity=s.capacity,
                           city=s.city, opens=s.opens, closes=s.closes, days=s.days,
                           staffed=s.staffed)
        report.count("sites", not exists)
        exists = db.scalar(select(Gateway).where(Gateway.identifier == s.gateway)) is not None
        if not exists:
            secret = LOCAL_SECRET if s.ip == LOCAL_IP else secrets.token_urlsafe(18)
            admin.add_gateway(db, s.gateway, s.name, s.ip, secret)
        report.count("gateways", not exists)
    for c in COMPANIES:
        exists = db.scalar(select(Company).where(Company.name == c.name)) is not None
        if not exists:
            admin.add_company(db, c.name, c.plan)
        report.count("companies", not exists)
    for p in PEOPLE:
        exists = db.scalar(select(Person).where(Person.login == p.login)) is not None
        if not exists:
            admin.add_person(db, p.login, p.company, PASSWORD, name=p.name, chap=p.chap,
                             active=p.active, language=p.language)
            # Credit only with the person: a second run must not top up again.
            if p.minutes:
                admin.add_credit(db, p.login, p.minutes, now, note="demo top-up")
        report.count("people", not exists)
    return report
