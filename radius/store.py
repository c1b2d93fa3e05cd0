"""The SQL side of the RADIUS server: read the facts the policy needs, write
decisions, fold accounting into sessions and the ledger.

Every function takes an open SQLAlchemy session inside a transaction; the
server commits. Nothing here talks to the network.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    Table,
    TextClause,
    any_,
    bindparam,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session as DB

from . import accounting
from . import messages as m
from .ledger import balance_of
from .logins import lookup_key as _login_key
from .models import (
    AccountingQuarantine,
    AuthLog,
    Company,
    CreditEntry,
    CreditKind,
    Gateway,
    Person,
    Radacct,
    Site,
    WifiKey,
)
from .policy import PersonFacts, SiteFacts

Status = accounting.Status

# A login's normal form, remembered: the same people come back all day, and
# the IDNA and script checks of logins.py cost more than everything else of
# an Access-Request together (880 us of 1.4 ms in a profile of the handler).
# Bounded: a flood of invented logins only evicts.
lookup_key = lru_cache(maxsize=65536)(_login_key)


@dataclass(frozen=True)
class Nas:
    """A gateway as the server knows it, by the address its packets come from."""

    id: int
    identifier: str
    ip: str
    secret: bytes = field(repr=False)
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
    password_hash: str = field(repr=False)
    chap_secret: str | None = field(repr=False)
    facts: PersonFacts


def find_accounts(db: DB, logins: Iterable[str]) -> dict[str, Account]:
    """The people with these logins and everything the policy needs, in one
    query for a whole batch of requests (plain columns: no ORM objects to
    build on the hot path). A login is matched in its normal form (as
    admin.py stores it: radius/logins.py), or as sent for a row stored
    before logins were normalised."""
    keys = {raw: lookup_key(raw) for raw in logins if raw}
    wanted = set(keys) | {key for key in keys.values() if key}
    if not wanted:
        return {}
    balance = balance_of(Person.id)
    rows = db.execute(
        select(Person.id, Person.login, Person.password_hash, Person.chap_secret,
               Person.active, Company.status, Company.payment, Company.categories,
               Company.services, Company.max_session, Company.bandwidth_up,
               Company.bandwidth_down, Company.vlan, Company.max_sessions, balance)
        .join(Company, Person.company_id == Company.id)
        .where(among(db, Person.login, wanted))
    ).all()
    found = {row.login: row for row in rows}
    accounts = {}
    for raw, key in keys.items():
        row = found.get(key) if key else None
        if row is None:
            row = found.get(raw)
        if row is not None:
            accounts[raw] = _account(row)
    return accounts


def find_account(db: DB, login: str) -> Account | None:
    return find_accounts(db, [login]).get(login)


def _account(row: Any) -> Account:
    return Account(
        person_id=row.id,
        password_hash=row.password_hash,
        chap_secret=row.chap_secret,
        facts=PersonFacts(
            active=row.active,
            company_status=row.status.value,
            company_payment=row.payment.value,
            categories=row.categories,
            services=_services(row.services),
            balance=int(row[-1] or 0),
            max_session=row.max_session,
            bandwidth_up=row.bandwidth_up,
            bandwidth_down=row.bandwidth_down,
            vlan=row.vlan,
            max_sessions=row.max_sessions,
        ),
    )


@lru_cache(maxsize=1024)
def _services(text: str) -> frozenset[str]:
    # A company's list, the same for each of its people: split once.
    return frozenset(s.strip() for s in text.split(",") if s.strip())


def among(db: DB, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values`` as one statement whatever the number of values.

    PostgreSQL gets ``column = ANY(array)``: an IN list of n values is a new
    statement for every n, which psycopg prepares (and evicts) again and
    again under load; the array form is prepared once."""
    if db.get_bind().dialect.name == "postgresql":
        return cast(ColumnElement[bool],
                    column == any_(bindparam(None, list(values), type_=ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(list(values)))


def insert_rows(db: DB, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows (every dict with the same keys) in one statement.

    PostgreSQL gets ``INSERT ... SELECT ... FROM json_populate_recordset``:
    one statement, planned once, and one parameter (see rows_json);
    elsewhere an executemany."""
    if not rows:
        return
    if db.get_bind().dialect.name != "postgresql":
        db.execute(insert(table), rows)
        return
    db.execute(_statement(_insert_sql(table.name, tuple(rows[0]), "rows")),
               {"rows": rows_json(rows)})


def update_rows(db: DB, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """UPDATE many rows by ``key`` (every dict with the same keys), in one
    statement on PostgreSQL (``UPDATE ... FROM json_populate_recordset``)."""
    if not rows:
        return
    names = [n for n in rows[0] if n != key]
    if db.get_bind().dialect.name != "postgresql":
        db.execute(update(table).where(table.c[key] == bindparam("_key"))
                   .values({n: bindparam(n) for n in names}),
                   [{"_key": row[key], **{n: row[n] for n in names}} for row in rows])
        return
    db.execute(_statement(_update_sql(table.name, key, tuple(names), "rows")),
               {"rows": rows_json(rows), "rows_keys": integer_array(row[key] for row in rows)})


def rows_json(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON array, for PostgreSQL's json_populate_recordset.

    One parameter serialised in C instead of an array per column that
    psycopg dumps element by element in Python (the largest item of the
    accounting batch's profile), by orjson: the json module with a
    ``default`` for datetimes took 1.9 µs a row, orjson 0.1. Times are
    naive UTC in ISO 8601, as ``datetime.isoformat()`` writes them. (Column
    names are SQLAlchemy's subclass of str, which orjson takes as keys only
    with OPT_NON_STR_KEYS.)"""
    return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()


def _columns(names: tuple[str, ...]) -> str:
    # PostgreSQL only: every name quoted ("class" is a keyword).
    return ", ".join(f'"{n}"' for n in names)


@lru_cache(maxsize=64)
def _insert_sql(table: str, names: tuple[str, ...], param: str) -> str:
    return (f"INSERT INTO {table} ({_columns(names)}) SELECT {_columns(names)} "
            f"FROM json_populate_recordset(NULL::{table}, CAST(:{param} AS json))")


@lru_cache(maxsize=64)
def _update_sql(table: str, key: str, names: tuple[str, ...], param: str) -> str:
    """The UPDATE of update_rows; its parameters are the rows as JSON
    (``param``) and their integer keys as an array (``param``_keys)."""
    sets = ", ".join(f'"{n}" = u."{n}"' for n in names) or f'"{key}" = u."{key}"'
    rows = f"json_populate_recordset(NULL::{table}, CAST(:{param} AS json))"
    # The keys again, as an array: an index condition on the table, so the
    # rows are found by their key however small the planner believed the
    # table to be when it cached the plan (a join alone got a merge join
    # over the whole primary key index). Sent apart rather than read from
    # the JSON a second time: PostgreSQL's JSON parsing is the largest item
    # of its profile of an accounting batch.
    return (f"UPDATE {table} AS t SET {sets} FROM {rows} AS u "
            f'WHERE t."{key}" = u."{key}" '
            f'AND t."{key}" = ANY(CAST(:{param}_keys AS BIGINT[]))')


@lru_cache(maxsize=128)
def _statement(sql: str) -> TextClause:
    # text() parses the SQL for bind names on every construction: once per shape.
    return text(sql)


def fetch_pg(db: DB, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql``, a statement that returns rows (``:name`` parameters, as
    for text()), on the psycopg connection under ``db``'s transaction and
    return its rows as tuples.

    For the accounting batch's two statements on PostgreSQL: SQLAlchemy's
    result set-up (a description object per column, read again for every
    execution of a text() statement) cost more than the rest of a batch of
    one (1.6 of 6.8 ms of CPU in a profile; the locking statement returns
    the 35 columns of radacct). The statement is the same, prepared by
    psycopg as before, in the same transaction."""
    driver = db.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur:
        cur.execute(_psycopg_sql(sql), params)
        # (Not cur.description: building it is the cost avoided here.)
        return cur.fetchall()


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of texts (``{"a","b"}``), for a parameter
    cast to TEXT[]: one text that psycopg sends as it is, where a list is
    dumped element by element in Python (2-3 % of an accounting batch's
    CPU for its session ids). Every element quoted, ``\\`` and ``"`` escaped."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def integer_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (``{1,2}``), as text_array."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


@lru_cache(maxsize=128)
def _psycopg_sql(sql: str) -> str:
    # :name as psycopg's %(name)s; "::type" casts and literal % stay as they are.
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


# Unambiguous characters (no 0/O, 1/l/I) so a key read off a screen types right.
KEY_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"
# A random byte below 231 (7 x 33) names a character, uniformly; the others
# are dropped. bytes.translate does it in C.
_KEEP = len(KEY_ALPHABET) * (256 // len(KEY_ALPHABET))
_KEY_TABLE = bytes(ord(KEY_ALPHABET[b % len(KEY_ALPHABET)]) if b < _KEEP else 0
                   for b in range(256))
_KEY_DROP = bytes(range(_KEEP, 256))


def new_wifi_key() -> str:
    """A personal WPA passphrase: 16 random characters in four groups
    (about 80 bits), easy to read aloud or type on a phone."""
    # Half the CPU of sixteen divmods of one big random number (those were
    # 3 % of the authentication profile).
    raw = b""
    while len(raw) < 16:
        raw += secrets.token_bytes(32).translate(_KEY_TABLE, _KEY_DROP)
    text = raw[:16].decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def new_class() -> str:
    return "psl1:" + secrets.token_hex(16)


_AUTHLOG = cast(Table, AuthLog.__table__)
_WIFIKEY = cast(Table, WifiKey.__table__)
_RADACCT = cast(Table, Radacct.__table__)
_CREDIT = cast(Table, CreditEntry.__table__)
_QUARANTINE = cast(Table, AccountingQuarantine.__table__)


@dataclass
class Decisions:
    """The authentication log lines and Wi-Fi keys of a batch, written in
    one statement each at the end of the batch's transaction."""

    log: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    aside: list[dict[str, Any]] = field(default_factory=list)  # accounting_quarantine rows

    def add(self, *, nas: Nas, username: str, accepted: bool, reason: str,
            calling_station: str, person_id: int | None, class_: str,
            wifi_key: str | None, now: datetime, session_timeout: int | None = None) -> None:
        self.log.append({
            "username": username[:253], "reply": "Access-Accept" if accepted else "Access-Reject",
            "reason": reason, "nasipaddress": nas.ip, "nasidentifier": nas.identifier,
            "callingstationid": calling_station[:64], "class": class_, "person_id": person_id,
            "site_id": nas.site_id, "authdate": now, "sessiontimeout": session_timeout,
        })
        if wifi_key is not None and person_id is not None:
            self.keys.append({"person_id": person_id, "passphrase": wifi_key,
                              "gateway_id": nas.id, "class": class_, "issued": now,
                              "revoked": None})

    def write(self, db: DB) -> None:
        if self.log and self.keys and db.get_bind().dialect.name == "postgresql":
            # Both tables in one statement (a data-modifying CTE): one round
            # trip fewer per batch.
            keys = _insert_sql(_WIFIKEY.name, tuple(self.keys[0]), "keys")
            log_ = _insert_sql(_AUTHLOG.name, tuple(self.log[0]), "log")
            db.execute(_statement(f"WITH keys AS ({keys}) {log_}"),
                       {"keys": rows_json(self.keys), "log": rows_json(self.log)})
        else:
            insert_rows(db, _AUTHLOG, self.log)
            insert_rows(db, _WIFIKEY, self.keys)
        insert_rows(db, _QUARANTINE, self.aside)
        self.log, self.keys, self.aside = [], [], []


def unique_id(nas: Nas, session_id: str) -> str:
    """acctuniqueid: the session id is unique on its NAS only."""
    return hashlib.md5(f"{nas.identifier}\x00{session_id}".encode()).hexdigest()


@dataclass(frozen=True)
class AccountingEffect:
    """What an accounting record did, for the server to act on after commit."""

    ignored: bool
    radacctid: int | None = None
    person_id: int | None = None
    charged: int = 0
    balance: int | None = None
    open: bool = False

    @property
    def exhausted(self) -> bool:
        """The session stays open and its person has no credit left."""
        return accounting.exhausted(self.balance, self.open)


# radacct's columns in the table's order (the locking statement's rows).
_RADACCT_NAMES = tuple(c.name for c in _RADACCT.columns)
# Columns an UPDATE may write (every one but the keys), in a fixed order.
_WRITABLE = [c.name for c in _RADACCT.columns if c.name not in ("radacctid", "acctuniqueid")]
_INSERTABLE = [c.name for c in _RADACCT.columns if c.name != "radacctid"]


def _people_for(db: DB, records: list[accounting.Record],
                known: dict[str, int] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Who the new sessions of a batch belong to: by Class (it binds the
    accounting to the decision that allowed it), else by User-Name.
    ``known``: the people of Classes already looked up (_lock_pg)."""
    classes = {rec.class_ for rec in records if rec.class_}
    by_class: dict[str, int] = dict(known or {})
    classes -= by_class.keys()
    if classes:
        # wifi_key.class is indexed and every Access-Accept issues a key.
        by_class.update({c: int(p) for c, p in db.execute(
            select(WifiKey.class_, WifiKey.person_id).where(among(db, WifiKey.class_, classes)))
            if c is not None})
        missing = classes - by_class.keys()
        if missing:
            by_class.update({c: int(p) for c, p in db.execute(
                select(AuthLog.class_, AuthLog.person_id)
                .where(among(db, AuthLog.class_, missing), AuthLog.person_id.is_not(None)))
                if p is not None})
    # User-Name only where the Class did not tell (a query fewer per batch
    # when every record carries a known Class, as the box's do).
    logins = {rec.username for rec in records
              if rec.username and not (rec.class_ and rec.class_ in by_class)}
    by_login: dict[str, int] = {}
    if logins:
        keys = {raw: lookup_key(raw) for raw in logins}
        wanted = set(keys) | {key for key in keys.values() if key}
        found = {login: int(p) for login, p in db.execute(
            select(Person.login, Person.id).where(among(db, Person.login, wanted)))}
        for raw, key in keys.items():
            person = found.get(key) if key else None
            if person is None:
                person = found.get(raw)
            if person is not None:
                by_login[raw] = person
    return by_class, by_login


def _current(row: dict[str, Any]) -> accounting.Current:
    return accounting.Current(
        start=row["acctstarttime"], update=row["acctupdatetime"], stop=row["acctstoptime"],
        session_time=row["acctsessiontime"], input_octets=row["acctinputoctets"],
        output_octets=row["acctoutputoctets"], charged=row["charged"],
    )


def apply_accounting(db: DB, nas: Nas, rec: accounting.Record, now: datetime) -> AccountingEffect:
    return apply_accounting_batch(db, [(nas, rec)], now)[0]


_ABSENT = object()


@dataclass
class _Writes:
    """What the folds of a batch decided, for one write per table."""

    created: dict[str, dict[str, Any]] = field(default_factory=dict)  # by acctuniqueid
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: list[tuple[str, int, int]] = field(default_factory=list)  # uid, person, seconds
    closing: set[str] = field(default_factory=set)  # Class of the sessions that ended
    touched: set[str] = field(default_factory=lambda: {"charged"})  # columns set

    def take(self, row: dict[str, Any], change: accounting.Change) -> None:
        """Set on ``row`` what ``change`` decided, and note the writes.
        A column whose value the row already holds is not noted: an
        Interim-Update repeats the session's start, names and addresses,
        and only its counters need sending and writing."""
        touched = self.touched
        for column, value in change.columns.items():
            name = "class" if column == "class_" else column
            if row.get(name, _ABSENT) != value:
                row[name] = value
                touched.add(name)
        row["charged"] = change.charged
        if change.charge:
            self.charges.append((row["acctuniqueid"], row["person_id"], change.charge))
        if change.closes and row["class"]:
            self.closing.add(row["class"])
        if row["acctuniqueid"] not in self.created:
            self.changed[row["acctuniqueid"]] = row

    def updates(self) -> tuple[list[str], list[dict[str, Any]]]:
        # Only the columns the batch's records changed: less to send and to
        # write, and a handful of statement shapes (Interims: the counters;
        # with Stops: the stop time and cause; ...).
        writable = [c for c in _WRITABLE if c in self.touched]
        return writable, [{"radacctid": row["radacctid"], **{c: row[c] for c in writable}}
                          for row in self.changed.values()]


def apply_accounting_batch(db: DB, items: list[tuple[Nas, accounting.Record]],
                           now: datetime) -> list[AccountingEffect]:
    """Fold a batch of session records (Start, Interim-Update, Stop) into
    their sessions and charge the ledger, in a constant number of queries:
    one to read and lock every session of the batch, one to find the people
    of new sessions, then the writes (one statement on PostgreSQL). Records
    of one session in one batch are folded in the order given. What to
    write and charge is the fold's decision (accounting.fold); this only
    writes it."""
    uids = [unique_id(nas, rec.session_id) for nas, rec in items]
    known: dict[str, int] | None = None
    if db.get_bind().dialect.name == "postgresql":
        rows, known = _lock_pg(db, set(uids), {rec.class_ for _, rec in items
                                               if rec.class_ and rec.status is Status.START})
    else:
        # Locked in one order (by acctuniqueid) so two workers cannot deadlock.
        rows = {row["acctuniqueid"]: dict(row) for row in db.execute(
            select(_RADACCT).where(among(db, _RADACCT.c.acctuniqueid, set(uids)))
            .order_by(_RADACCT.c.acctuniqueid).with_for_update()).mappings()}
    fresh = [rec for (_, rec), uid in zip(items, uids, strict=True) if uid not in rows]
    by_class, by_login = _people_for(db, fresh, known) if fresh else ({}, {})
    writes = _Writes()
    results: list[tuple[str, bool, int, bool]] = []  # uid, ignored, charged, open
    for (nas, rec), uid in zip(items, uids, strict=True):
        row = rows.get(uid)
        if row is None:
            person = by_class.get(rec.class_) if rec.class_ else None
            if person is None and rec.username:
                person = by_login.get(rec.username)
        else:
            person = row["person_id"]
        change = accounting.fold(_current(row) if row else None, rec,
                                 billable=person is not None)
        if change.ignored:
            results.append((uid, True, 0, False))
            continue
        if row is None:
            row = dict(_NEW_ROW)
            row.update(acctsessionid=rec.session_id, acctuniqueid=uid, nasipaddress=nas.ip,
                       nasidentifier=nas.identifier, gateway_id=nas.id, site_id=nas.site_id,
                       person_id=person, charged=0)
            rows[uid] = writes.created[uid] = row
        writes.take(row, change)
        results.append((uid, False, change.charge, not change.closes))
    ids = {uid: row["radacctid"] for uid, row in rows.items() if uid not in writes.created}
    # Only a session that stays open can need a cut: the balance of people
    # whose charged sessions all closed in this batch is not needed.
    open_people = {rows[uid]["person_id"] for uid, ignored, charged, is_open in results
                   if charged and is_open and rows[uid]["person_id"] is not None}
    if db.get_bind().dialect.name == "postgresql":
        new_ids, before = _write_sessions_pg(db, writes, ids, open_people, now)
        ids.update(new_ids)
    else:
        before = balances_of(db, open_people)
        _write_sessions(db, writes, ids, now)
        revoke_keys(db, writes.closing, now)
    balances = accounting.balances_after(
        before, [(person, seconds) for _, person, seconds in writes.charges])
    outcomes = []
    for uid, ignored, charged, is_open in results:
        rid = ids.get(uid)
        if ignored:
            outcomes.append(AccountingEffect(ignored=True, radacctid=rid))
            continue
        person = rows[uid]["person_id"]
        outcomes.append(AccountingEffect(ignored=False, radacctid=rid, person_id=person,
                                         charged=charged,
                                         balance=balances.get(person) if charged and person
                                         else None,
                                         open=is_open))
    return outcomes


def _lock_pg(db: DB, uids: set[str], classes: set[str]
             ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The batch's sessions, read and locked (FOR UPDATE, in acctuniqueid
    order so two workers cannot deadlock), and the people of the Classes
    its Starts carry, in ONE round trip: a Start is a new session, whose
    person the Class tells (see _people_for)."""
    rows: dict[str, dict[str, Any]] = {}
    known: dict[str, int] = {}
    for row in fetch_pg(db, _lock_sql(), {"uids": text_array(sorted(uids)),
                                          "classes": text_array(sorted(classes))}):
        k_class, k_person = row[-2], row[-1]
        if k_class is None:
            session = dict(zip(_RADACCT_NAMES, row, strict=False))
            rows[session["acctuniqueid"]] = session
        elif k_person is not None:
            known[k_class] = int(k_person)
    return rows, known


@lru_cache(maxsize=1)
def _lock_sql() -> str:
    names = [c.name for c in _RADACCT.columns]
    nulls = ", ".join(f'CAST(NULL AS {_type(_RADACCT, n)}) AS "{n}"' for n in names)
    return f"""
WITH locked AS (
  SELECT * FROM radacct WHERE acctuniqueid = ANY(CAST(:uids AS TEXT[]))
  ORDER BY acctuniqueid FOR UPDATE
)
SELECT {_columns(tuple(names))}, CAST(NULL AS TEXT) AS k_class, CAST(NULL AS INTEGER) AS k_person
FROM locked
UNION ALL
SELECT {nulls}, "class", person_id FROM wifi_key
WHERE "class" = ANY(CAST(:classes AS TEXT[]))"""


def _ledger_lines(charges: list[tuple[str, int, int]], ids: Mapping[str, int | None],
                  now: datetime) -> list[dict[str, Any]]:
    return [{"person_id": person, "seconds": -seconds, "kind": CreditKind.charge.value,
             "session_id": ids[uid], "created": now, "note": ""}
            for uid, person, seconds in charges]


def _write_sessions(db: DB, writes: _Writes, ids: dict[str, int], now: datetime) -> None:
    """The writes of an accounting batch, a statement per table (SQLite)."""
    if writes.created:
        insert_rows(db, _RADACCT, list(writes.created.values()))
        wanted_ids = {uid for uid, _, _ in writes.charges if uid in writes.created}
        if wanted_ids:
            ids.update({uid: int(rid) for rid, uid in db.execute(
                select(_RADACCT.c.radacctid, _RADACCT.c.acctuniqueid)
                .where(among(db, _RADACCT.c.acctuniqueid, wanted_ids)))})
    _, updates = writes.updates()
    update_rows(db, _RADACCT, "radacctid", updates)
    insert_rows(db, _CREDIT, _ledger_lines(writes.charges, ids, now))


def _write_sessions_pg(db: DB, writes: _Writes, ids: dict[str, int], people: set[int],
                       now: datetime) -> tuple[dict[str, int], dict[int, int]]:
    """The writes of an accounting batch in ONE statement (data-modifying
    CTEs): new sessions, updated sessions, ledger lines, revoked keys (the
    statement of revoke_keys), and the balances of ``people``. One round
    trip instead of five: under load every round trip waits for the
    scheduler, twice (the separate revocation was 4 % of the accounting
    profile on durable PostgreSQL).

    Returns the ids of the new sessions and the balances of ``people``
    before the batch (the statement reads the ledger as it was before it)."""
    writable, updates = writes.updates()
    # The same ledger lines as _write_sessions; a new session's id comes
    # from the INSERT in the statement, by its acctuniqueid.
    known: dict[str, int | None] = {**dict.fromkeys(writes.created), **ids}
    lines = [{**line, "uid": uid} for line, (uid, _, _) in zip(
        _ledger_lines(writes.charges, known, now), writes.charges, strict=True)]
    params = {"created": rows_json(list(writes.created.values())),
              "updated": rows_json(updates),
              "updated_keys": integer_array(row["radacctid"] for row in updates),
              "lines": rows_json(lines),
              "people": integer_array(sorted(people)),
              **_revoke_params(writes.closing, now)}
    new_ids: dict[str, int] = {}
    before: dict[int, int] = {}
    for kind, key, total, uid in fetch_pg(db, _sessions_sql(tuple(writable)), params):
        if kind == "s":
            new_ids[uid] = int(key)
        else:
            before[int(key)] = int(total or 0)
    return new_ids, before


_LINE = ("person_id", "seconds", "kind", "session_id", "created", "note")


def _type(table: Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=postgresql.dialect()))


def _definitions(table: Table, names: tuple[str, ...]) -> str:
    return ", ".join(f'"{n}" {_type(table, n)}' for n in names)


# ledger's balance rule, as PostgreSQL SQL for the statement below.
_BALANCE_PG = str(balance_of(literal_column("p.id")).compile(
    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


@lru_cache(maxsize=64)
def _sessions_sql(writable: tuple[str, ...]) -> str:
    """_write_sessions_pg's statement for the columns the batch updates."""
    return f"""
WITH ins AS (
  {_insert_sql(_RADACCT.name, tuple(_INSERTABLE), "created")}
  RETURNING radacctid, acctuniqueid
), upd AS (
  {_update_sql(_RADACCT.name, "radacctid", writable, "updated")}
), led AS (
  INSERT INTO credit_entry ({_columns(_LINE)})
  SELECT c.person_id, c.seconds, c.kind, COALESCE(c.session_id, ins.radacctid), c.created,
         c.note
  FROM json_to_recordset(CAST(:lines AS json)) AS c({_definitions(_CREDIT, _LINE)},
                                                    uid {_type(_RADACCT, "acctuniqueid")})
  LEFT JOIN ins ON ins.acctuniqueid = c.uid
), rev AS (
  {_revoke_sql("postgresql")}
)
SELECT 'b', p.id, {_BALANCE_PG}, NULL
FROM person AS p WHERE p.id = ANY(CAST(:people AS INTEGER[]))
UNION ALL
SELECT 's', radacctid, NULL, acctuniqueid FROM ins"""


def balances_of(db: DB, people: set[int]) -> dict[int, int]:
    """Seconds of credit left of each person, in one query."""
    if not people:
        return {}
    return {int(p): int(total or 0) for p, total in db.execute(
        select(Person.id, balance_of(Person.id)).where(among(db, Person.id, people)))}


def _default(column: Any) -> Any:
    default = column.default
    if default is not None and getattr(default, "is_scalar", False):
        return getattr(default, "arg", None)
    return None


# A new session's row before its first record: every column's default.
_NEW_ROW = {c.name: _default(c) for c in _RADACCT.columns if c.name != "radacctid"}


def _json_elements(dialect: str, param: str) -> str:
    """SQL for the elements of the JSON array in parameter ``param``."""
    if dialect == "postgresql":
        return f"SELECT json_array_elements_text(CAST(:{param} AS json))"
    return f"SELECT value FROM json_each(:{param})"


@lru_cache(maxsize=4)
def _revoke_sql(dialect: str) -> str:
    """Which Wi-Fi keys die when sessions end: the keys issued with those
    sessions' Class, unless revoked already. The one statement for both
    databases, run by revoke_keys and inside _write_sessions_pg's."""
    if dialect == "postgresql":
        # An array: an index condition (IN over the JSON elements got a
        # merge join over the whole class index).
        return ('UPDATE wifi_key SET revoked = :revoked_at WHERE "class" = '
                f"ANY(ARRAY({_json_elements(dialect, 'closing')})) AND revoked IS NULL")
    return (f'UPDATE wifi_key SET revoked = :revoked_at WHERE "class" IN '
            f"({_json_elements(dialect, 'closing')}) AND revoked IS NULL")


def _revoke_params(classes: set[str], now: datetime) -> dict[str, Any]:
    return {"closing": json.dumps(sorted(classes)), "revoked_at": now}


def revoke_keys(db: DB, classes: set[str], now: datetime) -> None:
    """The Wi-Fi keys of the sessions that ended (by their Class) stop
    working, on both databases and for every way a session ends."""
    if classes:
        db.execute(_revoke_statement(db.get_bind().dialect.name), _revoke_params(classes, now))


@lru_cache(maxsize=4)
def _revoke_statement(dialect: str) -> TextClause:
    # Typed, so SQLite stores the time as SQLAlchemy reads it back.
    return text(_revoke_sql(dialect)).bindparams(
        bindparam("revoked_at", type_=_WIFIKEY.c.revoked.type))


def close_nas_sessions(db: DB, nas: Nas, event_time: datetime, cause: str) -> int:
    """Accounting-On/Off: the NAS has no session open any more; each open
    session ends as accounting.close() decides. Returns the number closed."""
    rows = [dict(row) for row in db.execute(
        select(_RADACCT)
        .where(_RADACCT.c.nasipaddress == nas.ip, _RADACCT.c.acctstoptime.is_(None))
        .order_by(_RADACCT.c.acctuniqueid).with_for_update()).mappings()]
    writes = _Writes()
    for row in rows:
        writes.take(row, accounting.close(_current(row), event_time, cause,
                                          billable=row["person_id"] is not None))
    _write_sessions(db, writes, {row["acctuniqueid"]: row["radacctid"] for row in rows},
                    event_time)
    revoke_keys(db, writes.closing, event_time)
    return len(rows)


# -- records the centre cannot store -------------------------------------------

def _highest(column: Any) -> int | None:
    # BigInteger is an Integer too: test it first.
    if isinstance(column.type, BigInteger):
        return 2**63 - 1
    if isinstance(column.type, Integer):
        return 2**31 - 1
    return None


# The largest value each integer column of radacct holds (the same on both
# databases: SQLite would store more, PostgreSQL refuses it).
_HIGHEST = {c.name: h for c in _RADACCT.columns if (h := _highest(c)) is not None}
# Which attribute a session record's number comes from, for the reason's words.
_SENT_AS = {"acctinterval": "Acct-Interim-Interval", "acctsessiontime": "Acct-Session-Time",
            "acctinputoctets": "Acct-Input-Octets/Gigawords",
            "acctoutputoctets": "Acct-Output-Octets/Gigawords"}


def out_of_range(rec: accounting.Record) -> str | None:
    """Why ``rec`` cannot be stored as sent (a number beyond its radacct
    column's range), or None. Checked before any SQL, so that such a record
    is set aside (set_aside) instead of failing its batch."""
    extra = rec.extra
    values = [("acctsessiontime", rec.session_time), ("acctinputoctets", rec.input_octets),
              ("acctoutputoctets", rec.output_octets)]
    values += [(name, extra[name]) for name in _HIGHEST.keys() & extra.keys()]
    for name, value in values:
        if isinstance(value, int) and not 0 <= value <= _HIGHEST[name]:
            return (f"{_SENT_AS.get(name, name)} {value} is beyond what the centre stores "
                    f"({name}: 0 to {_HIGHEST[name]})")
    return None


def quarantine_row(nas: Nas, request: m.AccountingRequest, datagram: bytes, reason: str,
                   now: datetime) -> dict[str, Any]:
    """The accounting_quarantine row of a record set aside: what was sent
    (the decoded attributes as JSON, the datagram in hex), whence and why."""
    attributes = {}
    for name in request.__dataclass_fields__:
        value = getattr(request, name)
        if value is None or value == () or name in ("authenticator", "problems"):
            continue
        if isinstance(value, m.AcctStatus | m.TerminateCause):
            value = value.label
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = [v.hex() if isinstance(v, bytes) else repr(v) for v in value]
        attributes[name] = value
    return {"received": now, "gateway_id": nas.id, "nasidentifier": nas.identifier[:64],
            "nasipaddress": nas.ip, "status": _status_label(request.status),
            "acctsessionid": (request.session_id or "")[:64], "reason": reason[:512],
            "attributes": json.dumps(attributes, default=repr, sort_keys=True),
            "datagram": datagram.hex()}


def _status_label(status: m.AcctStatus | int) -> str:
    return status.label if isinstance(status, m.AcctStatus) else f"Acct-Status-Type {status}"


def set_aside(db: DB, rows: list[dict[str, Any]]) -> None:
    insert_rows(db, _QUARANTINE, rows)
