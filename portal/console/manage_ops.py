"""The data pages' reads, each through the operator's scope.

Changes go through radius/admin.py (the one copy of the data rules); this
module only finds things, and finds nothing outside the scope: a company
manager asking for another company's person gets None, as for a person
that does not exist (the page answers 404 either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import contains_eager

from passerelle.radius import admin, ledger
from passerelle.radius.models import (
    Company,
    Gateway,
    Network,
    Person,
    Radacct,
    Site,
)

from .filters import like_pattern
from .scope import Scope

MAX_PEOPLE_SHOWN = 500


def company(db: DB, scope: Scope, company_id: int) -> Company | None:
    if scope.sites is not None or scope.company not in (None, company_id):
        return None
    return db.get(Company, company_id)


def companies(db: DB, scope: Scope) -> list[tuple[Company, int]]:
    """Each company in scope with its number of people."""
    if scope.sites is not None:
        return []
    return [(c, n) for c, n in admin.list_companies(db)
            if scope.company in (None, c.id)]


def person(db: DB, scope: Scope, person_id: int) -> Person | None:
    found = db.get(Person, person_id)
    if found is None or scope.sites is not None or scope.company not in (None,
                                                                         found.company_id):
        return None
    return found


@dataclass(frozen=True)
class PeopleView:
    rows: list[tuple[Person, int]]  # each person and their balance in seconds
    total: int


def people(db: DB, scope: Scope, company_id: int | None, search: str) -> PeopleView:
    """People in scope (of one company if given), matching ``search`` on
    login or name, with their balance."""
    if scope.sites is not None:
        return PeopleView([], 0)
    query = (select(Person, ledger.balance_of(Person.id)).join(Company)
             .options(contains_eager(Person.company))
             .order_by(Company.name, Person.login))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    if company_id is not None:
        query = query.where(Person.company_id == company_id)
    if search:
        pattern = like_pattern(search)
        query = query.where(or_(Person.login.ilike(pattern, escape="\\"),
                                Person.name.ilike(pattern, escape="\\")))
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = [(p, int(left or 0)) for p, left in db.execute(query.limit(MAX_PEOPLE_SHOWN))]
    return PeopleView(rows, total)


@dataclass(frozen=True)
class SessionsSummary:
    count: int
    open: int
    seconds: int  # time connected, all sessions
    octets_up: int
    octets_down: int
    last_start: datetime | None
    recent: list[Radacct]


def sessions_summary(db: DB, person_id: int, recent: int = 10) -> SessionsSummary:
    count, still_open, seconds, up, down, last = db.execute(
        select(func.count(), func.count().filter(Radacct.acctstoptime.is_(None)),
               func.coalesce(func.sum(Radacct.acctsessiontime), 0),
               func.coalesce(func.sum(Radacct.acctinputoctets), 0),
               func.coalesce(func.sum(Radacct.acctoutputoctets), 0),
               func.max(Radacct.acctstarttime))
        .where(Radacct.person_id == person_id)).one()
    rows = list(db.scalars(select(Radacct).where(Radacct.person_id == person_id)
                           .order_by(Radacct.acctstarttime.desc(), Radacct.radacctid.desc())
                           .limit(recent)))
    return SessionsSummary(int(count), int(still_open), int(seconds), int(up), int(down),
                           last, rows)


def site_names(db: DB, ids: list[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return dict(db.execute(select(Site.id, Site.name).where(Site.id.in_(wanted))).all())


def sites(db: DB, scope: Scope) -> list[tuple[Site, int]]:
    """Sites in scope, each with its number of gateways."""
    if scope.company is not None:
        return []
    per_site = select(Gateway.site_id, func.count()).group_by(Gateway.site_id)
    counts: dict[int, int] = {site_id: int(n) for site_id, n in db.execute(per_site)}
    query = (select(Site).join(Network).options(contains_eager(Site.network))
             .order_by(Network.name, Site.name))
    if scope.sites is not None:
        query = query.where(Site.id.in_(sorted(scope.sites)))
    return [(s, int(counts.get(s.id, 0))) for s in db.scalars(query)]


def site(db: DB, scope: Scope, site_id: int) -> Site | None:
    if scope.company is not None or (scope.sites is not None and site_id not in scope.sites):
        return None
    return db.get(Site, site_id)


def gateway(db: DB, scope: Scope, gateway_id: int) -> Gateway | None:
    found = db.get(Gateway, gateway_id)
    if found is None or site(db, scope, found.site_id) is None:
        return None
    return found


def gateways(db: DB, site_id: int) -> list[Gateway]:
    return list(db.scalars(select(Gateway).where(Gateway.site_id == site_id)
                           .order_by(Gateway.identifier)))


def network_names(db: DB) -> list[str]:
    return list(db.scalars(select(Network.name).order_by(Network.name)))


def company_names(db: DB) -> list[str]:
    return list(db.scalars(select(Company.name).order_by(Company.name)))


def site_choices(db: DB) -> list[str]:
    return list(db.scalars(select(Site.name).order_by(Site.name)))


def changed(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What differs, for the history: "status: active → suspended, vlan: - → 20"."""
    def shown(value: Any) -> str:
        return "-" if value is None or value == "" else str(getattr(value, "value", value))
    return ", ".join(f"{k}: {shown(before.get(k))} → {shown(v)}" for k, v in after.items()
                     if before.get(k) != v)
