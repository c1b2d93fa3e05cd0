"""What the API does, on a database session and for one caller's scope.

The rules are admin.py's (names, plans, logins, passwords, credit): this
module finds things by the partner platform's ids and turns rows into JSON.
A company token's scope is its company: anything outside it is "not found",
the same answer as something that does not exist.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError
from passerelle.radius import admin, ledger, policy, store, webhooks
from passerelle.radius.models import (
    Company,
    CreditEntry,
    CreditKind,
    IdempotentCall,
    Person,
    Radacct,
    Site,
)

from ..scope import Scope
from .errors import ApiError, bad, conflict, invalid, not_found
from .inputs import external_id

MAX_PEOPLE = 500  # per bulk call: a bigger batch is split by the caller
LANGUAGES = admin.LANGUAGES


def _string(data: dict[str, Any], key: str) -> str | None:
    """A string field if given (null is not a string: a 400, as any wrong type)."""
    if key not in data:
        return None
    if not isinstance(data[key], str):
        raise bad(f"{key} must be a string")
    return str(data[key])


# -- companies ----------------------------------------------------------------

def company_json(company: Company) -> dict[str, Any]:
    return {
        "external_id": company.external_id, "name": company.name,
        "status": company.status.value, "payment": company.payment.value,
        "categories": company.categories,
        "services": [s for s in company.services.split(",") if s],
        "max_session": company.max_session, "bandwidth_up": company.bandwidth_up,
        "bandwidth_down": company.bandwidth_down, "vlan": company.vlan,
    }


def find_company(db: DB, scope: Scope, ext: str) -> Company:
    found = db.scalar(select(Company).where(Company.external_id == ext))
    if found is None or (scope.company is not None and found.id != scope.company):
        raise not_found(f"company {ext!r}")
    return found


def list_companies(db: DB, scope: Scope) -> list[Company]:
    query = select(Company).where(Company.external_id.is_not(None))
    if scope.company is not None:
        query = query.where(Company.id == scope.company)
    return list(db.scalars(query.order_by(Company.external_id)))


def _word(value: object, what: str) -> str | None:
    """A JSON number or null as admin.CompanyTerms's text ("none" clears a cap)."""
    if value is None:
        return "none"
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{what} must be a whole number or null")
    return str(value)


PLAN_FIELDS = {"name", "status", "payment", "categories", "services", "max_session",
               "bandwidth_up", "bandwidth_down", "vlan"}


def _plan(data: dict[str, Any]) -> admin.CompanyTerms:
    plan = admin.CompanyTerms()
    for key in ("status", "payment", "categories"):
        if key in data:
            setattr(plan, key, _string(data, key))
    if "services" in data:
        services = data["services"]
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise bad("services must be a list of strings, e.g. [\"wifi\", \"printing\"]")
        # admin.clean_services wants at least one: an empty list says so there.
        plan.services = ",".join(services) if services else ""
    for key in ("max_session", "bandwidth_up", "bandwidth_down", "vlan"):
        if key in data:
            setattr(plan, key, _word(data[key], key))
    return plan


def put_company(db: DB, ext: str, data: dict[str, Any]) -> tuple[Company, bool]:
    """Create or update the company ``ext``; True when created."""
    plan = _plan(data)
    name = _string(data, "name")
    found = db.scalar(select(Company).where(Company.external_id == ext))
    try:
        if found is None:
            if name is None:
                raise bad("name is required to create a company")
            if db.scalar(select(Company.id).where(Company.name == name.strip())) is not None:
                raise conflict(f"a company named {name.strip()[:128]!r} exists already under "
                               "another external id (or none)")
            company = admin.add_company(db, name, plan)
            company.external_id = ext
            db.flush()
            return company, True
        return admin.set_company(db, found.name, plan, new_name=name), False
    except UserError as exc:
        raise invalid(str(exc)) from None


# -- people -------------------------------------------------------------------

def person_json(person: Person, balance: int | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "external_id": person.external_id, "login": person.login, "name": person.name,
        "company": person.company.external_id, "active": person.active,
        "language": person.language,
    }
    if balance is not None:
        answer["balance_seconds"] = balance
    return answer


def find_person(db: DB, scope: Scope, ext: str) -> Person:
    found = db.scalar(select(Person).where(Person.external_id == ext))
    if found is None or (scope.company is not None and found.company_id != scope.company):
        raise not_found(f"person {ext!r}")
    return found


def list_people(db: DB, scope: Scope, company: str | None, after: int,
                limit: int) -> list[tuple[Person, int]]:
    query = (select(Person, ledger.balance_of(Person.id))
             .where(Person.external_id.is_not(None), Person.id > after)
             .order_by(Person.id).limit(limit))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    if company is not None:
        query = query.where(Person.company_id == find_company(db, scope, company).id)
    return [(person, int(left or 0)) for person, left in db.execute(query).all()]


PERSON_FIELDS = {"external_id", "company", "login", "name", "password", "active", "language"}


@dataclass(frozen=True)
class PersonItem:
    """One item of a bulk call, of the right shape; None: not given."""

    external_id: str
    company: str | None
    login: str | None
    name: str | None
    password: str | None = field(repr=False)
    active: bool | None
    language: str | None


def person_item(item: object) -> PersonItem:
    """The item's shape (types, fields, ids): a malformed item is the
    caller's bug and refuses the whole call."""
    if not isinstance(item, dict):
        raise bad("each item must be a JSON object")
    extra = sorted(set(item) - PERSON_FIELDS)
    if extra:
        raise bad(f"unknown field(s): {', '.join(k[:40] for k in extra[:5])}")
    if "active" in item and not isinstance(item["active"], bool):
        raise bad("active must be true or false")
    language = _string(item, "language")
    if language is not None and language not in LANGUAGES:
        raise bad(f"language must be one of {', '.join(LANGUAGES)}")
    return PersonItem(
        external_id=external_id(item.get("external_id"), "external_id"),
        company=external_id(item["company"], "company") if "company" in item else None,
        login=_string(item, "login"), name=_string(item, "name"),
        password=_string(item, "password"), active=item.get("active"), language=language)


def _apply_person(db: DB, scope: Scope, item: PersonItem) -> bool:
    """Create or update one person by the data rules; True when created.
    A company token's items stay within its company: another company's
    person, or a move to another company, is "not found"; a person it
    creates without ``company`` is its company's."""
    company_name = None
    if item.company is not None:
        company = find_company(db, scope, item.company)
        company_name = company.name
    found = db.scalar(select(Person).where(Person.external_id == item.external_id))
    if found is not None and scope.company is not None and found.company_id != scope.company:
        raise not_found(f"person {item.external_id!r}")
    if found is None and company_name is None and scope.company is not None:
        own = db.get(Company, scope.company)
        if own is None:
            raise not_found("the token's company")
        company_name = own.name
    try:
        if found is None:
            if item.login is None or company_name is None or item.password is None:
                raise invalid("login, company and password are needed to create a person")
            person = admin.add_person(db, item.login, company_name, item.password,
                                      name=item.name or "",
                                      active=True if item.active is None else item.active,
                                      language=item.language or "fr")
            person.external_id = item.external_id
            db.flush()
            return True
        admin.set_person(db, found.login, admin.PersonChanges(
            login=item.login, company=company_name, password=item.password,
            name=item.name, active=item.active, language=item.language))
        return False
    except UserError as exc:
        raise invalid(str(exc)) from None


def put_people(db: DB, scope: Scope, items: object) -> dict[str, Any]:
    """A malformed call is refused whole (400); then each item on its own (a
    savepoint each): one item the data rules refuse does not stop the
    others, and the answer says what became of each, in order."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PEOPLE:
        raise bad(f"people must be a list of 1 to {MAX_PEOPLE} items")
    shaped = []
    for n, item in enumerate(items):
        try:
            shaped.append(person_item(item))
        except ApiError as exc:
            raise bad(f"people[{n}]: {exc.message}") from None
    if len({item.external_id for item in shaped}) != len(shaped):
        raise bad("an external_id is given twice in one call")
    results: list[dict[str, Any]] = []
    counts = {"created": 0, "updated": 0, "failed": 0}
    for item in shaped:
        try:
            with db.begin_nested():
                created = _apply_person(db, scope, item)
        except ApiError as exc:
            counts["failed"] += 1
            results.append({"external_id": item.external_id, "result": "failed",
                            "error": exc.code, "message": exc.message})
            continue
        outcome = "created" if created else "updated"
        counts[outcome] += 1
        results.append({"external_id": item.external_id, "result": outcome})
    return {**counts, "results": results}


# -- credit ---------------------------------------------------------------------

def call_digest(method: str, path: str, data: dict[str, Any]) -> str:
    """The same call whatever the JSON's spacing or key order."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status: int
    response: dict[str, Any]


def earlier_call(db: DB, token_id: int, key: str, digest: str) -> Replay | None:
    """The first answer to this key, or None; 409 for the key with another call."""
    found = db.scalar(select(IdempotentCall).where(IdempotentCall.token_id == token_id,
                                                   IdempotentCall.key == key))
    if found is None:
        return None
    if found.request_digest != digest:
        raise conflict("this Idempotency-Key was used for another call (another body or "
                       "URL): use a new key for a new call")
    return Replay(found.status, json.loads(found.response))


def top_up(db: DB, person: Person, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    minutes = data.get("minutes")
    note = _string(data, "note") or ""
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise bad("minutes must be a whole number")
    try:
        entry = admin.add_credit(db, person.login, minutes, now, note)
    except UserError as exc:
        raise invalid(str(exc)) from None
    return {"person": person.external_id, "entry": entry.id, "added_seconds": entry.seconds,
            "balance_seconds": ledger.balance(db, person.id),
            "at": webhooks.stamp(entry.created)}


def record_call(db: DB, token_id: int, key: str, digest: str, status: int,
                response: dict[str, Any], now: datetime) -> None:
    """Kept in the transaction of the work itself; a second copy of the
    call fails here on the unique (token, key) and rolls its work back."""
    db.add(IdempotentCall(token_id=token_id, key=key, request_digest=digest, status=status,
                          response=json.dumps(response), created=now))
    db.flush()


# -- sessions and usage -------------------------------------------------------

@dataclass(frozen=True)
class SessionFilter:
    after: int = 0
    limit: int = 100
    company: str | None = None
    person: str | None = None
    site: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def find_site(db: DB, name: str) -> Site:
    found = db.scalar(select(Site).where(Site.name == name))
    if found is None:
        raise not_found(f"site {name!r}")
    return found


def sessions_query(db: DB, scope: Scope, wanted: SessionFilter) -> Select[*tuple[Any, ...]]:
    """Keyset paging on radacct's key: a page costs the same at any depth."""
    query = (select(Radacct, Person.external_id, Company.external_id, Site.name)
             .outerjoin(Person, Radacct.person_id == Person.id)
             .outerjoin(Company, Person.company_id == Company.id)
             .outerjoin(Site, Radacct.site_id == Site.id)
             .where(Radacct.radacctid > wanted.after)
             .order_by(Radacct.radacctid).limit(wanted.limit))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    if wanted.company is not None:
        query = query.where(Person.company_id == find_company(db, scope, wanted.company).id)
    if wanted.person is not None:
        query = query.where(Radacct.person_id == find_person(db, scope, wanted.person).id)
    if wanted.site is not None:
        query = query.where(Radacct.site_id == find_site(db, wanted.site).id)
    if wanted.since is not None:
        query = query.where(Radacct.acctstarttime >= wanted.since)
    if wanted.until is not None:
        query = query.where(Radacct.acctstarttime < wanted.until)
    return query


def list_sessions(db: DB, scope: Scope, wanted: SessionFilter) -> dict[str, Any]:
    rows = db.execute(sessions_query(db, scope, wanted)).all()
    items = [webhooks.session_data(*row) for row in rows]
    following = items[-1]["id"] if len(items) == wanted.limit else None
    return {"items": items, "next": following}


def usage(db: DB, people: Select[Any], since: datetime | None,
          until: datetime | None) -> list[dict[str, Any]]:
    """Per person (of the ``people`` query of Person.id): sessions started in
    the range, their time and octets, and the credit charged in it."""
    ids = people.subquery()
    started: list[ColumnElement[bool]] = [Radacct.person_id.in_(select(ids.c.id))]
    charged: list[ColumnElement[bool]] = [CreditEntry.person_id.in_(select(ids.c.id)),
                                          CreditEntry.kind == CreditKind.charge]
    if since is not None:
        started.append(Radacct.acctstarttime >= since)
        charged.append(CreditEntry.created >= since)
    if until is not None:
        started.append(Radacct.acctstarttime < until)
        charged.append(CreditEntry.created < until)
    sessions = {row.person_id: row for row in db.execute(
        select(Radacct.person_id, func.count().label("n"),
               func.coalesce(func.sum(Radacct.acctsessiontime), 0).label("seconds"),
               func.coalesce(func.sum(Radacct.acctinputoctets), 0).label("up"),
               func.coalesce(func.sum(Radacct.acctoutputoctets), 0).label("down"))
        .where(and_(*started)).group_by(Radacct.person_id))}
    credit = {person_id: int(total) for person_id, total in db.execute(
        select(CreditEntry.person_id, func.coalesce(func.sum(CreditEntry.seconds), 0))
        .where(and_(*charged)).group_by(CreditEntry.person_id))}
    result = []
    for person in db.scalars(select(Person).where(Person.id.in_(select(ids.c.id)))
                             .order_by(Person.id)):
        row = sessions.get(person.id)
        result.append({
            "person": person.external_id, "login": person.login,
            "sessions": int(row.n) if row else 0,
            "seconds": int(row.seconds) if row else 0,
            "input_octets": int(row.up) if row else 0,
            "output_octets": int(row.down) if row else 0,
            "credit_used_seconds": -int(credit.get(person.id, 0)),
        })
    return result


def company_usage(db: DB, company: Company, since: datetime | None,
                  until: datetime | None) -> dict[str, Any]:
    people = usage(db, select(Person.id).where(Person.company_id == company.id), since, until)
    totals = {key: sum(p[key] for p in people) for key in
              ("sessions", "seconds", "input_octets", "output_octets", "credit_used_seconds")}
    return {"company": company.external_id, "since": webhooks.stamp(since),
            "until": webhooks.stamp(until), "totals": totals, "people": people}


def person_usage(db: DB, person: Person, since: datetime | None,
                 until: datetime | None) -> dict[str, Any]:
    rows = usage(db, select(Person.id).where(Person.id == person.id), since, until)
    return {"since": webhooks.stamp(since), "until": webhooks.stamp(until), **rows[0]}


# -- the policy -----------------------------------------------------------------

def decision(db: DB, person: Person, site: Site, service: str,
             now: datetime, settings: policy.Settings) -> dict[str, Any]:
    """radius/policy.py's answer for this person, site and service now (the
    password is not asked: the partner platform has signed the person in)."""
    account = store.find_account(db, person.login)
    facts = policy.SiteFacts(category=site.category, opens=site.opens, closes=site.closes,
                             open_days=site.open_days, timezone=site.timezone)
    decided = policy.decide(account.facts if account else None, account is not None, facts,
                            now, settings, service=service)
    return {
        "person": person.external_id, "site": site.name, "service": service,
        "allowed": decided.accept,
        "reason": decided.reason.value if decided.reason else None,
        "message": policy.MESSAGES[decided.reason] if decided.reason else None,
        "seconds": decided.session_timeout if decided.accept else 0,
    }
