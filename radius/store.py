"""The SQL side of the RADIUS server: read the facts the policy needs, write
decisions, fold accounting into sessions and the ledger.

Every function takes an open SQLAlchemy session inside a transaction; the
server commits. Nothing here talks to the network.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DB

from . import accounting, ledger
from .models import (
    AuthLog,
    Company,
    CreditEntry,
    Gateway,
    Person,
    Session,
    Site,
    WifiKey,
)
from .policy import PersonFacts, SiteFacts


@dataclass(frozen=True)
class Nas:
    """A gateway as the server knows it, by the address its packets come from."""

    id: int
    identifier: str
    ip: str
    secret: bytes
    require_ma: bool
    coa_port: int
    site_id: int
    site: SiteFacts


def load_gateways(db: DB) -> dict[str, Nas]:
    rows = db.execute(select(Gateway, Site).join(Site, Gateway.site_id == Site.id)).all()
    return {
        gw.ip_address: Nas(
            id=gw.id,
            identifier=gw.identifier,
            ip=gw.ip_address,
            secret=gw.secret.encode(),
            require_ma=gw.require_message_authenticator,
            coa_port=gw.coa_port,
            site_id=site.id,
            site=SiteFacts(category=site.category, opens=site.opens, closes=site.closes,
                           open_days=site.open_days, timezone=site.timezone),
        )
        for gw, site in rows
    }


@dataclass(frozen=True)
class Account:
    person_id: int
    password_hash: str
    chap_secret: str | None
    facts: PersonFacts


def find_accounts(db: DB, logins: Iterable[str]) -> dict[str, Account]:
    """The people with these logins and everything the policy needs, in one
    query for a whole batch of requests."""
    wanted = {login for login in logins if login}
    if not wanted:
        return {}
    balance = (
        select(func.coalesce(func.sum(CreditEntry.seconds), 0))
        .where(CreditEntry.person_id == Person.id)
        .scalar_subquery()
    )
    rows = db.execute(
        select(Person, Company, balance)
        .join(Company, Person.company_id == Company.id)
        .where(Person.login.in_(wanted))
    ).all()
    return {person.login: _account(person, company, int(left or 0))
            for person, company, left in rows}


def find_account(db: DB, login: str) -> Account | None:
    return find_accounts(db, [login]).get(login)


def _account(person: Person, company: Company, left: int) -> Account:
    return Account(
        person_id=person.id,
        password_hash=person.password_hash,
        chap_secret=person.chap_secret,
        facts=PersonFacts(
            active=person.active,
            company_status=company.status.value,
            company_payment=company.payment.value,
            categories=company.categories,
            services=frozenset(s.strip() for s in company.services.split(",") if s.strip()),
            balance=left,
            max_session=company.max_session,
            bandwidth_up=company.bandwidth_up,
            bandwidth_down=company.bandwidth_down,
            vlan=company.vlan,
        ),
    )


# Unambiguous characters (no 0/O, 1/l/I) so a key read off a screen types right.
KEY_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"


def new_wifi_key() -> str:
    """A personal WPA passphrase: 16 random characters in four groups
    (about 80 bits), easy to read aloud or type on a phone."""
    raw = "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def new_class() -> str:
    return "psl1:" + secrets.token_hex(16)


def record_decision(
    db: DB,
    *,
    nas: Nas,
    username: str,
    accepted: bool,
    reason: str,
    calling_station: str,
    person_id: int | None,
    class_: str,
    wifi_key: str | None,
    now: datetime,
) -> None:
    db.add(AuthLog(username=username[:253], reply="Access-Accept" if accepted else "Access-Reject",
                   reason=reason, nasipaddress=nas.ip, nasidentifier=nas.identifier,
                   callingstationid=calling_station[:64], class_=class_, person_id=person_id,
                   site_id=nas.site_id, authdate=now))
    if wifi_key is not None and person_id is not None:
        db.add(WifiKey(person_id=person_id, passphrase=wifi_key, gateway_id=nas.id,
                       class_=class_, issued=now))


def unique_id(nas: Nas, session_id: str) -> str:
    """acctuniqueid: the session id is unique on its NAS only."""
    return hashlib.md5(f"{nas.identifier}\x00{session_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What an accounting record did, for the server to act on after commit."""

    ignored: bool
    radacctid: int | None = None
    person_id: int | None = None
    charged: int = 0
    balance: int | None = None
    open: bool = False


def _person_for(db: DB, rec: accounting.Record) -> int | None:
    # Class binds the accounting to the decision that allowed it.
    if rec.class_:
        pid = db.scalar(select(AuthLog.person_id).where(AuthLog.class_ == rec.class_).limit(1))
        if pid is not None:
            return int(pid)
    if rec.username:
        pid = db.scalar(select(Person.id).where(Person.login == rec.username))
        return int(pid) if pid is not None else None
    return None


def apply_accounting(db: DB, nas: Nas, rec: accounting.Record, now: datetime) -> Outcome:
    uid = unique_id(nas, rec.session_id)
    row = db.scalars(
        select(Session).where(Session.acctuniqueid == uid).with_for_update()
    ).first()
    current = None
    if row is not None:
        current = accounting.Current(
            start=row.acctstarttime, update=row.acctupdatetime, stop=row.acctstoptime,
            session_time=row.acctsessiontime, input_octets=row.acctinputoctets,
            output_octets=row.acctoutputoctets,
        )
    change = accounting.fold(current, rec)
    if change.ignored:
        return Outcome(ignored=True, radacctid=row.radacctid if row else None)
    if row is None:
        row = Session(acctsessionid=rec.session_id, acctuniqueid=uid, nasipaddress=nas.ip,
                      nasidentifier=nas.identifier, gateway_id=nas.id, site_id=nas.site_id,
                      person_id=_person_for(db, rec), charged=0)
        db.add(row)
    for column, value in change.columns.items():
        setattr(row, column, value)
    db.flush()
    charged = ledger.charge_up_to(db, row, change.charge_to, now)
    if change.closes and row.class_:
        revoke_keys(db, row.class_, now)
    left = None
    if charged and row.person_id is not None:
        db.flush()  # the handler's session does not autoflush
        left = ledger.balance(db, row.person_id)
    return Outcome(ignored=False, radacctid=row.radacctid, person_id=row.person_id,
                   charged=charged, balance=left, open=not change.closes)


def revoke_keys(db: DB, class_: str, now: datetime) -> None:
    db.execute(update(WifiKey).where(WifiKey.class_ == class_, WifiKey.revoked.is_(None))
               .values(revoked=now))


def close_nas_sessions(db: DB, nas: Nas, event_time: datetime, cause: str) -> int:
    """Accounting-On/Off: the NAS has no session open any more.

    Each open session ends at ``event_time``; it is charged what its last
    record reported (the box was down after that, the person could not use
    it). Returns the number of sessions closed."""
    rows = db.scalars(
        select(Session)
        .where(Session.nasipaddress == nas.ip, Session.acctstoptime.is_(None))
        .with_for_update()
    ).all()
    for row in rows:
        start = row.acctstarttime or event_time
        row.acctstoptime = max(event_time, start)
        row.acctterminatecause = cause
        if row.class_:
            revoke_keys(db, row.class_, event_time)
        ledger.charge_up_to(db, row, row.acctsessiontime, event_time)
    return len(rows)
