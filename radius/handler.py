"""What the RADIUS server does with a batch of datagrams, without sockets.

The worker (server.py) hands over every datagram that arrived since its last
turn; ``Handler.process`` checks them, decides, writes everything in ONE
transaction (group commit: one commit for many requests), and only then
returns the replies to send. A reply is never sent for work that was not
committed. If the batch fails, each request is retried in a transaction of
its own, so one bad request cannot take the others down with it.

The checks, before any database work: the source is a known gateway; the
datagram decodes with its secret (messages.py: Length, attributes, Request
Authenticator of an Accounting-Request, Message-Authenticator when present);
Status-Server carries a Message-Authenticator (RFC 5997 section 3); an
Access-Request carries one when its gateway requires it (the BlastRADIUS
defence, RFC 3579 section 3.2); each port takes its kind of request
(Status-Server on both). A retransmission gets the reply already sent
(RFC 5080 section 2.2.2). Anything else is dropped with a log line.

Every decision is logged at DEBUG; a summary with the counts goes to the log
at INFO once a minute, so the log costs little at thousands of requests a
second.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, NamedTuple, assert_never, cast

import psycopg
from sqlalchemy import Table, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.refusal import SEPARATOR, Refusal

from . import accounting, answers, keys, metrics, passwords, policy, reach, store
from . import messages as m
from .attempts import Attempts, Limit
from .codec import BadValue, codec
from .loglimit import LogLimit
from .models import Gateway
from .replies import ReplyCache

log = logging.getLogger("passerelle.radius")

CUTS_REMEMBERED = 100_000  # sessions whose Disconnect-Request is remembered

# A reply echoes the request's Proxy-States (RFC 2865 section 5.33): a
# request padded with them would need a reply over 4,096 octets. A chain of
# proxies adds one each, a few octets long; more than this is refused.
PROXY_STATES_MAX = 5
PROXY_STATE_OCTETS_MAX = 1000

AUTH, ACCT = "auth", "acct"

# What each port takes (RFC 2865 section 3, RFC 2866 section 3; Status-Server
# on both, RFC 5997 section 3).
_TAKES: dict[str, tuple[type, ...]] = {
    AUTH: (m.AccessRequest, m.StatusServer),
    ACCT: (m.AccountingRequest, m.StatusServer),
}
_WRONG_PORT = {AUTH: "not an Access-Request on the authentication port",
               ACCT: "not an Accounting-Request on the accounting port"}
ServerRequest = m.AccessRequest | m.AccountingRequest | m.StatusServer


class Datagram(NamedTuple):
    data: bytes
    addr: tuple[str, int]
    port: str  # AUTH or ACCT
    nas: store.Nas | None = None  # known by its TLS certificate (radsec.py), not its address


class Reply(NamedTuple):
    addr: tuple[str, int]
    port: str
    data: bytes


@dataclass(frozen=True)
class Cut:
    """A session to disconnect after commit (its credit ran out)."""

    nas: store.Nas
    attributes: dict[str, Any]


@dataclass(slots=True)
class _Work:
    dgram: Datagram
    nas: store.Nas
    request: ServerRequest
    key: bytes
    reply: m.Reply | None = None
    data: bytes | None = None  # the reply, encoded
    cuts: list[Cut] = field(default_factory=list)
    tally: str = ""  # what the summary line counts it as
    password_ok: bool = False  # an Access-Request's credential, verified before the transaction
    open_devices: frozenset[str] = frozenset()  # the person's, when their plan limits them
    limited: Limit | None = None  # refused unverified: too many failed attempts


@dataclass
class Batch:
    """A batch between Handler.admit, run and finish."""

    now_ts: float
    replies: list[Reply] = field(default_factory=list)
    work: list[_Work] = field(default_factory=list)
    dropped: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class HandlerSettings:
    policy: policy.Settings = field(default_factory=policy.Settings)
    duplicate_window: float = 30.0  # seconds a reply is kept for retransmissions
    duplicate_entries: int = 65536  # replies kept at most
    password_cache_ttl: float = 300.0
    gateway_refresh: float = 30.0
    contact_interval: float = 60.0  # gateway.last_seen is written at most this often
    summary_interval: float = 60.0  # seconds between two summary lines
    drop_log_burst: int = 10  # drop lines per reason and source per interval
    drop_log_interval: float = 60.0
    # Failed passwords before further attempts are refused unverified, per
    # login and per gateway, within the window (see attempts.py).
    attempts_per_login: int = 5
    attempts_per_gateway: int = 100
    attempts_window: float = 300.0


class PasswordCache:
    """Remembers recent successful argon2 verifications as a keyed hash, so a
    busy site does not pay argon2's cost on every re-check of one person.
    The key lives only in this process's memory."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._entries: dict[tuple[int, str], tuple[float, bytes]] = {}

    def _mac(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode(), sha256).digest()

    def check(self, person_id: int, password_hash: str, password: str, now: float) -> bool:
        entry = self._entries.get((person_id, password_hash))
        if entry and entry[0] > now and hmac.compare_digest(entry[1], self._mac(password)):
            return True
        if not passwords.verify_password(password_hash, password):
            return False
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[(person_id, password_hash)] = (now + self.ttl, self._mac(password))
        return True


class Contacts:
    """When each gateway's last contact was written to ``gateway.last_seen``,
    so that it is written at most once per ``interval`` (batches run in
    several threads: hence the lock)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._written: dict[int, float] = {}
        self._lock = threading.Lock()

    def due(self, gateways: Iterable[int], now: float) -> list[int]:
        """The gateways to write now; they count as written from now on."""
        with self._lock:
            out = []
            for gateway in set(gateways):
                if now - self._written.get(gateway, -1e18) >= self.interval:
                    self._written[gateway] = now
                    out.append(gateway)
            return sorted(out)

    def forget(self, gateways: Iterable[int]) -> None:
        """Their write was rolled back: the next batch writes them."""
        with self._lock:
            for gateway in gateways:
                self._written.pop(gateway, None)


_GATEWAY = cast(Table, Gateway.__table__)


def write_contacts(db: DB, gateways: list[int], now: datetime) -> None:
    """gateway.last_seen = now, in one statement. A row another transaction
    is writing is skipped (it writes the same news), so two workers never
    wait for each other here (PostgreSQL; SQLite has one writer anyway).
    The lock is FOR NO KEY UPDATE: it does not stop the batches that insert
    rows referring to the gateway (they hold FOR KEY SHARE on it)."""
    if not gateways:
        return
    free = select(_GATEWAY.c.id).where(_GATEWAY.c.id.in_(gateways)) \
        .with_for_update(skip_locked=True, key_share=True)
    db.execute(update(_GATEWAY).where(_GATEWAY.c.id.in_(free)).values(last_seen=now))


def write_gateway(db: DB, gateway: int, **values: Any) -> None:
    """What a box told (heartbeat, Accounting-On/Off) on its row, skipped
    like write_contacts when another transaction holds the row: the next
    heartbeat tells it again, and no worker waits for another."""
    free = select(_GATEWAY.c.id).where(_GATEWAY.c.id == gateway) \
        .with_for_update(skip_locked=True, key_share=True)
    db.execute(update(_GATEWAY).where(_GATEWAY.c.id.in_(free)).values(**values))


class Handler:
    def __init__(self, factory: sessionmaker[DB], settings: HandlerSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.factory = factory
        self.settings = settings or HandlerSettings()
        self.clock = clock
        self.duplicates = ReplyCache(self.settings.duplicate_window,
                                     self.settings.duplicate_entries)
        self.passwords = PasswordCache(self.settings.password_cache_ttl)
        self.contacts = Contacts(self.settings.contact_interval)
        self.attempts = Attempts(self.settings.attempts_per_login,
                                 self.settings.attempts_per_gateway,
                                 self.settings.attempts_window)
        self._attempts_lock = threading.Lock()
        self.gateways: dict[str, store.Nas] = {}
        self._gateways_loaded = -1e9
        # Sessions already sent a Disconnect, newest last; bounded (the
        # oldest are long closed, or were cut again by their next record).
        self._cut_sent: OrderedDict[int, None] = OrderedDict()
        self._cut_lock = threading.Lock()
        # Requests being processed, by duplicate-cache key: retransmissions
        # that arrive meanwhile wait here for the original's reply.
        self._in_flight: dict[bytes, list[Datagram]] = {}
        # Counted by admit and finish (the event loop's thread) for the summary.
        self._tally: Counter[str] = Counter()
        self._tally_since: float | None = None
        # Drop lines, at most a burst per reason and source (a flood of bad
        # datagrams must not flood the log); used in the event loop's thread.
        self._drop_log: LogLimit[tuple[str, str]] = LogLimit(self.settings.drop_log_burst,
                                  self.settings.drop_log_interval)

    # -- gateways ---------------------------------------------------------

    def refresh_gateways(self, force: bool = False) -> None:
        now = time.monotonic()
        # An unknown source forces a reload, at most every 5 s, so a flood
        # of spoofed sources cannot hammer the database.
        if force and now - self._gateways_loaded < 5:
            return
        if not force and now - self._gateways_loaded < self.settings.gateway_refresh:
            return
        with self.factory() as db:
            self.gateways = store.load_gateways(db)
        self._gateways_loaded = now

    def _nas_for(self, ip: str) -> store.Nas | None:
        nas = self.gateways.get(ip)
        if nas is None:
            self.refresh_gateways(force=True)
            nas = self.gateways.get(ip)
        return nas

    # -- the batch --------------------------------------------------------

    def process(self, batch: list[Datagram]) -> tuple[list[Reply], list[Cut]]:
        """A batch in, replies out: the three steps below in this thread."""
        admitted = self.admit(batch)
        self.run(admitted)
        return self.finish(admitted)

    def admit(self, batch: list[Datagram]) -> Batch:
        """Checks before any database work (the event loop's thread): cached
        replies for retransmissions, drops for bad datagrams."""
        now_ts = self.clock()
        admitted = Batch(now_ts)
        try:
            self._admit_all(batch, admitted)
        except BaseException:
            # A bug in a check must not leave keys in flight for ever: their
            # retransmissions would wait for a reply that never comes.
            for item in admitted.work:
                self._in_flight.pop(item.key, None)
            raise
        return admitted

    def _admit_all(self, batch: list[Datagram], admitted: Batch) -> None:
        now_ts = admitted.now_ts
        self.refresh_gateways()
        for dgram in batch:
            data, (ip, port) = dgram.data, dgram.addr
            # A retransmission is the same Code, Identifier, Length and
            # Request Authenticator from the same source to the same port.
            key = b"%s|%s|%s|%d" % (data[:20], dgram.port.encode(), ip.encode(), port)
            cached = self.duplicates.get(key, now_ts)
            if cached is not None:
                log.info("duplicate request id %d from %s:%d: resent the cached reply",
                         data[1], ip, port)
                admitted.replies.append(Reply(dgram.addr, dgram.port, cached))
                admitted.duplicates += 1
                continue
            waiting = self._in_flight.get(key)
            if waiting is not None:
                # Its original is being processed (in this batch or another
                # one): both get the same reply when that is committed.
                waiting.append(dgram)
                admitted.duplicates += 1
                continue
            item = self._admit(dgram, key)
            if item is None:
                admitted.dropped += 1
            else:
                self._in_flight[key] = []
                admitted.work.append(item)

    def run(self, admitted: Batch, committing: Callable[[], None] | None = None) -> None:
        """The database work of a batch: the passwords are verified first,
        outside any transaction (argon2 takes tens of milliseconds each: a
        transaction that waited for them would hold up every other request),
        then everything is decided and written in one transaction. Safe to
        call from another thread while the event loop admits the next batch.
        ``committing`` is called when the work is done and only the commit
        is left (the worker then lets the next batch start)."""
        if admitted.work:
            accounts = self._verify(admitted.work, admitted.now_ts)
            self._run(admitted.work, admitted.now_ts, accounts, committing)

    def _verify(self, work: list[_Work], now_ts: float) -> dict[str, store.Account]:
        """The accounts the batch's Access-Requests name (one short read,
        its transaction closed before any hashing) and each credential's
        verdict in ``item.password_ok``."""
        access = [item for item in work if isinstance(item.request, m.AccessRequest)]
        if not access:
            return {}
        with self.factory() as db:
            if db.get_bind().dialect.name == "postgresql":
                # One statement, nothing to roll back: no BEGIN and ROLLBACK
                # around it (two round trips fewer per batch).
                db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            accounts = store.find_accounts(db, [cast(m.AccessRequest, item.request).user_name
                                                or "" for item in access])
            # Only the people whose plan limits their sessions at once.
            limited = {a.person_id for a in accounts.values()
                       if a.facts.max_sessions is not None}
            devices = reach.open_devices(db, limited) if limited else {}
            proven = key_proofs(db, access, accounts)
        for item in access:
            item.password_ok = id(item) in proven or self._attempt(item, accounts, now_ts)
            account = accounts.get(cast(m.AccessRequest, item.request).user_name or "")
            if account is not None and account.person_id in devices:
                item.open_devices = frozenset(devices[account.person_id])
        return accounts

    def _attempt(self, item: _Work, accounts: dict[str, store.Account], now_ts: float) -> bool:
        request = cast(m.AccessRequest, item.request)
        username = request.user_name or ""
        account = accounts.get(username) if username else None
        if request.credential is None:
            return False  # not an attempt: nothing to verify
        # One person under every spelling of their login; an unknown login
        # as sent (it costs a verification like a known one).
        who: tuple[str, int | str] = (("person", account.person_id) if account
                                      else ("login", username))
        with self._attempts_lock:
            item.limited = self.attempts.refused(who, item.nas.id, now_ts)
        if item.limited is not None:
            log.debug("%r at %s refused unverified: too many failed attempts per %s",
                      username, item.nas.identifier, item.limited.value)
            return False
        ok = self._credential_ok(request.credential, account, username)
        with self._attempts_lock:
            if ok:
                self.attempts.succeeded(who)
                return True
            reached = self.attempts.failed(who, item.nas.id, now_ts)
        for limit in reached:
            what = f"login {username!r}" if limit is Limit.LOGIN else "this gateway"
            log.warning("%d failed passwords for %s at %s within %d s: further attempts "
                        "are refused unverified until the oldest leaves the window",
                        self.attempts.per_login if limit is Limit.LOGIN
                        else self.attempts.per_gateway, what, item.nas.identifier,
                        round(self.attempts.window))
        return False

    def finish(self, admitted: Batch) -> tuple[list[Reply], list[Cut]]:
        """Replies to send and sessions to cut, now that the work is committed
        (the event loop's thread)."""
        replies = admitted.replies
        cuts: list[Cut] = []
        tally = self._tally
        for item in admitted.work:
            waiting = self._in_flight.pop(item.key, [])
            data = item.data
            if data is None:
                tally["unanswered"] += 1
                continue
            tally[item.tally] += 1
            self.duplicates.put(item.key, data, admitted.now_ts)
            replies.append(Reply(item.dgram.addr, item.dgram.port, data))
            for dgram in waiting:
                replies.append(Reply(dgram.addr, dgram.port, data))
            cuts.extend(item.cuts)
        if admitted.dropped:
            tally["dropped"] += admitted.dropped
        if admitted.duplicates:
            tally["duplicate"] += admitted.duplicates
        self._summarise(admitted.now_ts)
        metrics.count(admitted)
        for (reason, ip), n in self._drop_log.due(admitted.now_ts):
            log.warning("%d more lines suppressed: %s from %s", n, reason, ip)
        return replies, cuts

    def _drop(self, reason: str, ip: str, msg: str, *args: object) -> None:
        """A drop's log line, unless its reason and source have written
        their share of lines lately; the next line written says how many were
        suppressed."""
        verdict = self._drop_log.allow((reason, ip), self.clock())
        if not verdict.write:
            return
        if verdict.suppressed:
            msg += " (%d more lines suppressed)"
            args += (verdict.suppressed,)
        if verdict.last:
            msg += " (further such lines suppressed for %d s)"
            args += (round(self._drop_log.interval),)
        log.warning(msg, *args)

    def _summarise(self, now_ts: float) -> None:
        since = self._tally_since
        if since is None:
            self._tally_since = now_ts
            return
        if now_ts - since < self.settings.summary_interval:
            return
        if self._tally:
            log.info("last %d s: %s", round(now_ts - since), summary(self._tally))
            self._tally.clear()
        self._tally_since = now_ts

    def _run(self, work: list[_Work], now_ts: float,
             accounts: dict[str, store.Account],
             committing: Callable[[], None] | None = None) -> None:
        now = datetime.fromtimestamp(now_ts, UTC).replace(tzinfo=None)
        contacts = self.contacts.due((item.nas.id for item in work), now_ts)
        try:
            with metrics.BATCH_SECONDS.time(), self.factory() as db, db.begin():
                self._handle_all(db, work, now, accounts)
                # Last, so the gateway rows are locked only until the commit.
                write_contacts(db, contacts, now)
                if committing is not None:
                    committing()
            return
        except Exception as exc:
            self.contacts.forget(contacts)
            if _constraint(exc):
                # Expected now and then: two central nodes storing the same
                # new session at once (the database lets one in).
                log.warning("batch of %d requests hit a constraint (%s); retrying each in "
                            "a savepoint", len(work), str(exc).splitlines()[0])
            else:
                log.exception("batch of %d requests failed; retrying each in a savepoint",
                              len(work))
        self._run_each(work, now, accounts)

    def _run_each(self, work: list[_Work], now: datetime,
                  accounts: dict[str, store.Account]) -> None:
        """The batch again, each request in a savepoint of one transaction
        (one commit, not one per request): a request the database refuses
        is rolled back alone and answered anyway (_cannot_store), so one
        bad record never holds up the others nor the box's spool behind it.
        Only when the transaction itself fails (the database is gone) is
        nothing answered: the gateways retransmit."""
        try:
            with self.factory() as db, db.begin():
                for item in work:
                    item.reply, item.data, item.cuts = None, None, []
                    try:
                        with db.begin_nested():
                            self._handle_all(db, [item], now, accounts)
                    except Exception as exc:
                        item.reply, item.data, item.cuts = None, None, []
                        self._cannot_store(db, item, now, _why(exc))
        except Exception:
            for item in work:
                item.reply, item.data, item.cuts = None, None, []
            log.exception("batch of %d requests failed again; no answer sent", len(work))

    def _cannot_store(self, db: DB, item: _Work, now: datetime, reason: str) -> None:
        """Answer a request the database refused: an Accounting-Request is
        set aside in accounting_quarantine for ops and acknowledged; an
        Access-Request is rejected. One log line each."""
        request, nas = item.request, item.nas
        match request:
            case m.AccountingRequest():
                self._set_aside(item, request, reason, now, db=db)
            case m.AccessRequest():
                log.error("Access-Request id %d for %r from %s could not be decided (%s): "
                          "rejected", request.identifier, request.user_name, nas.identifier,
                          reason)
                item.reply, item.tally = _CANNOT_DECIDE, "reject (centre error)"
                item.data = _encode(item)
            case m.StatusServer():
                log.error("Status-Server id %d from %s failed (%s); no answer sent",
                          request.identifier, nas.identifier, reason)
            case _:
                assert_never(request)

    def _set_aside(self, item: _Work, request: m.AccountingRequest, reason: str,
                   now: datetime, *, db: DB | None = None,
                   decisions: store.Decisions | None = None) -> None:
        """Keep a record the centre cannot store in accounting_quarantine
        (now with ``db``, or with the batch's ``decisions``) and acknowledge
        it: the box's spool moves on, ops see it (``passerelle admin
        accounting quarantine list``)."""
        row = store.quarantine_row(item.nas, request, item.dgram.data, reason, now)
        if decisions is not None:
            decisions.aside.append(row)
        else:
            assert db is not None
            try:
                with db.begin_nested():
                    store.set_aside(db, [row])
            except Exception:
                log.exception("%s id %d from %s could not be set aside either; no answer sent",
                              row["status"], request.identifier, item.nas.identifier)
                return
        log.warning("%s id %d for session %r from %s set aside for ops: %s", row["status"],
                    request.identifier, row["acctsessionid"], item.nas.identifier, reason)
        item.reply, item.tally = answers.ACCOUNTING_RESPONSE, "set aside"
        item.data = _encode(item)

    # -- checks before any database work ---------------------------------

    def _admit(self, dgram: Datagram, key: bytes) -> _Work | None:
        ip, port = dgram.addr
        nas = dgram.nas or self._nas_for(ip)
        if nas is None:
            self._drop("unknown client", ip, "dropped a datagram from unknown client %s:%d",
                       ip, port)
            return None
        try:
            request = m.decode_request(dgram.data, nas.secret)
        except m.MalformedPacket as exc:
            self._drop("malformed", ip, "dropped a malformed datagram from %s (%s): %s",
                       nas.identifier, ip, exc)
            return None
        except m.Drop as exc:
            self._drop(type(exc).__name__, ip, "dropped %s id %d from %s (%s): %s",
                       _code_name(dgram.data[0]), dgram.data[1], nas.identifier, ip, exc)
            return None
        problem = _refusal(nas, dgram.port, request)
        if problem:
            self._drop(problem, ip, "dropped %s id %d from %s (%s): %s", request.CODE.label,
                       request.identifier, nas.identifier, ip, problem)
            return None
        for problem in request.problems:
            log.warning("%s id %d from %s (%s): %s", request.CODE.label, request.identifier,
                        nas.identifier, ip, problem)
        return _Work(dgram, nas, cast(ServerRequest, request), key)

    # -- per request ------------------------------------------------------

    def _handle_all(self, db: DB, work: list[_Work], now: datetime,
                    accounts: dict[str, store.Account]) -> None:
        """Every request of a batch, in a constant number of statements: one
        write per table for the Access-Requests' decisions (their accounts
        read and passwords verified before, by _verify), and the session
        records folded in runs (see store.apply_accounting_batch)."""
        decisions = store.Decisions()
        keyring = keys.ForBatch(db, (a.person_id for a in accounts.values()), now)
        accepted: dict[int, set[str]] = {}  # devices accepted in this batch, by person
        health: dict[int, tuple[str | None, int | None]] = {}  # heartbeats, by gateway
        sessions: list[tuple[_Work, accounting.Record]] = []
        for item in work:
            request = item.request
            match request:
                case m.StatusServer():
                    item.reply = answers.status_reply(item.dgram.port == ACCT)
                    item.tally = "Status-Server"
                    health[item.nas.id] = told(request)
                case m.AccessRequest():
                    item.reply = self._access(item.nas, request, item, now, accounts, decisions,
                                              keyring, accepted)
                case m.AccountingRequest():
                    if sessions and request.status in (m.AcctStatus.ACCOUNTING_ON,
                                                       m.AcctStatus.ACCOUNTING_OFF):
                        # An Accounting-On/Off closes what came before it, not after.
                        self._sessions(db, sessions, now)
                        sessions = []
                    rec = self._accounting(db, item, request, now)
                    problem = store.out_of_range(rec) if rec is not None else None
                    if problem is not None:
                        self._set_aside(item, request, problem, now, decisions=decisions)
                    elif rec is not None:
                        sessions.append((item, rec))
                case _:
                    assert_never(request)
        if sessions:
            self._sessions(db, sessions, now)
        decisions.write(db)
        for gateway, (version, depth) in health.items():
            write_gateway(db, gateway, last_status=now, software_version=version,
                          spool_depth=depth)
        for item in work:
            if item.reply is not None and item.data is None:
                item.data = _encode(item)

    def _access(self, nas: store.Nas, request: m.AccessRequest, item: _Work, now: datetime,
                accounts: dict[str, store.Account],
                decisions: store.Decisions,
                keyring: keys.ForBatch,
                accepted: dict[int, set[str]]) -> m.AccessAccept | m.AccessReject:
        username = request.user_name or ""
        if request.nas_identifier is not None and request.nas_identifier != nas.identifier:
            log.warning("client %s calls itself %r", nas.identifier, request.nas_identifier)
        account = accounts.get(username) if username else None
        facts = account.facts if account else None
        this = None  # the device, for a person whose plan limits their sessions at once
        if account is not None and facts is not None and facts.max_sessions is not None:
            this = reach.device(request.calling_station_id)
            # Other devices only: this one checking in again is no new session.
            others = (item.open_devices | accepted.get(account.person_id, set())) - {this}
            facts = replace(facts, open_sessions=len(others))
        decision = policy.decide(facts, item.password_ok, nas.site, now, self.settings.policy)
        class_, key = "", None
        if decision.accept:
            assert account is not None  # decide() accepts only a known person
            # The person's own key, the same at every check-in (radius/keys.py).
            class_, key = store.new_class(), keyring.passphrase(account.person_id, nas.site_id)
            if this is not None:
                accepted.setdefault(account.person_id, set()).add(this)
            log.debug("accept %r at %s for %d s", username, nas.identifier,
                      decision.session_timeout)
            item.tally = "accept"
        else:
            assert decision.reason is not None
            log.debug("reject %r at %s: %s", username, nas.identifier, decision.reason.value)
            item.tally = "reject " + decision.reason.value
            if item.limited is not None:
                item.tally += f" (too many attempts per {item.limited.value})"
        decisions.add(
            nas=nas, username=username, accepted=decision.accept,
            reason=decision.reason.value if decision.reason else "",
            calling_station=request.calling_station_id or "",
            person_id=account.person_id if account else None,
            class_=class_, wifi_key=None, now=now,
            session_timeout=decision.session_timeout if decision.accept else None,
        )
        return answers.access_reply(decision, class_, key, facts.balance if facts else None)

    def _credential_ok(self, credential: m.Password | m.Chap | None,
                       account: store.Account | None, username: str) -> bool:
        match credential:
            case m.Password(text=clear):
                if clear is None:
                    log.info("User-Password for %r is not UTF-8 text: refused", username)
                    return False
                if account is None:
                    # An unknown login costs what a wrong password costs: the
                    # answer's timing must not tell which logins exist.
                    passwords.spend_verification(clear)
                    return False
                return self.passwords.check(account.person_id, account.password_hash, clear,
                                            self.clock())
            case m.Chap() as chap:
                if account is not None and account.chap_secret:
                    secret = passwords.open_chap_secret(account.chap_secret)
                    return secret is not None and chap.verify(secret)
                if account is not None:
                    log.info("CHAP for %r refused: CHAP is not enabled for this person",
                             username)
                return False
            case None:
                return False
            case _:
                assert_never(credential)

    def _accounting(self, db: DB, item: _Work, request: m.AccountingRequest,
                    now: datetime) -> accounting.Record | None:
        """A session record to fold, or None when the request is answered
        (or dropped) here: Accounting-On/Off, types we do not track, bad ones."""
        nas, status = item.nas, request.status
        if status in (m.AcctStatus.ACCOUNTING_ON, m.AcctStatus.ACCOUNTING_OFF):
            # RFC 2866 section 5.1: the NAS (re)started or stops; whatever
            # it had open is over.
            cause = m.TerminateCause.NAS_REBOOT if status == m.AcctStatus.ACCOUNTING_ON \
                else m.TerminateCause.ADMIN_REBOOT
            closed = store.close_nas_sessions(db, nas, accounting.event_time(request, now),
                                              cause.label)
            column = "last_accounting_on" if status == m.AcctStatus.ACCOUNTING_ON \
                else "last_accounting_off"
            write_gateway(db, nas.id, **{column: now})
            # Session records after this one read the sessions with plain SQL.
            db.flush()
            log.info("%s from %s: closed %d open sessions", m.AcctStatus(status).label,
                     nas.identifier, closed)
            item.reply, item.tally = answers.ACCOUNTING_RESPONSE, "Accounting-On/Off"
            return None
        if status not in (m.AcctStatus.START, m.AcctStatus.INTERIM_UPDATE, m.AcctStatus.STOP):
            # Tunnel and failed-status types (RFC 2867) we do not track:
            # acknowledge them.
            item.reply, item.tally = answers.ACCOUNTING_RESPONSE, "accounting not tracked"
            return None
        rec = accounting.session_record(request, now)
        if rec is None:
            log.warning("dropped Accounting-Request from %s without Acct-Session-Id",
                        nas.identifier)
        return rec

    def _first_cut(self, radacctid: int) -> bool:
        # Batches run in several threads: one Disconnect-Request per session.
        with self._cut_lock:
            if radacctid in self._cut_sent:
                return False
            self._cut_sent[radacctid] = None
            while len(self._cut_sent) > CUTS_REMEMBERED:
                self._cut_sent.popitem(last=False)
            return True

    def _sessions(self, db: DB, batch: list[tuple[_Work, accounting.Record]],
                  now: datetime) -> None:
        outcomes = store.apply_accounting_batch(
            db, [(item.nas, rec) for item, rec in batch], now)
        for (item, rec), outcome in zip(batch, outcomes, strict=True):
            item.reply, item.tally = answers.ACCOUNTING_RESPONSE, rec.status.label
            if (outcome.exhausted and outcome.radacctid is not None
                    and self._first_cut(outcome.radacctid)):
                cut = Cut(item.nas, _session_selector(rec, item.nas))
                item.cuts.append(cut)
                # Sent (and sent again until answered) by the outbox's courier.
                reach.queue(db, item.nas.id, outcome.radacctid, reach.DISCONNECT,
                            cut.attributes, now, reason="credit exhausted")
                log.info("credit of %r exhausted: disconnecting session %s at %s",
                         rec.username, rec.session_id, item.nas.identifier)


_VERSION = codec().key("Passerelle-Software-Version")
_SPOOL_DEPTH = codec().key("Passerelle-Spool-Depth")


def told(request: m.StatusServer) -> tuple[str | None, int | None]:
    """The software version and spool depth a box's heartbeat tells
    (gateway/heartbeat.py); None for what it does not, or not readably."""
    version, depth = None, None
    for key, raw in request.other:
        try:
            if key == _VERSION:
                version = str(codec().value(key, raw))[:64]
            elif key == _SPOOL_DEPTH:
                depth = min(int(codec().value(key, raw)), 2**31 - 1)
        except BadValue as exc:
            log.info("Status-Server id %d: %s", request.identifier, exc)
    return version, depth


def _refusal(nas: store.Nas, port: str, request: m.Request) -> str | None:
    """Why a request that decoded is still not taken, or None."""
    if not isinstance(request, _TAKES[port]):
        return _WRONG_PORT[port]
    if isinstance(request, m.AccessRequest) and not request.message_authenticator \
            and nas.require_ma:
        return "no Message-Authenticator (required for this client: BlastRADIUS)"
    if len(request.proxy_state) > PROXY_STATES_MAX \
            or sum(map(len, request.proxy_state)) > PROXY_STATE_OCTETS_MAX:
        return (f"more than {PROXY_STATES_MAX} Proxy-States or {PROXY_STATE_OCTETS_MAX} "
                "octets of them (its reply would not fit)")
    return None


# An Access-Request the centre could not decide (the database refused its
# decision): refused, with a reason the box reads as a plain refusal.
_CANNOT_DECIDE = m.AccessReject(
    reply_message=f"{Refusal.rejected.value}{SEPARATOR}The centre could not decide this request")


def _why(exc: Exception) -> str:
    """A failure in one line: the database's own words when it refused."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    words = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {words[0] if words else ''}"


def _encode(item: _Work) -> bytes | None:
    """The reply's datagram; None (no answer, a log line) for one that would
    be over 4,096 octets. Proxy-States are limited on admission, so only a
    bug can get here: the rest of the batch is still answered."""
    assert item.reply is not None
    try:
        return item.reply.encode(item.nas.secret, item.request)
    except m.TooLong as exc:
        log.error("no answer to %s id %d from %s: the %s would not fit (%s)",
                  item.request.CODE.label, item.request.identifier, item.nas.identifier,
                  item.reply.CODE.label, exc)
        item.tally = "reply too long"
        return None


def summary(tally: Counter[str]) -> str:
    """The counts of a summary line, the commonest first:
    ``120 accept, 3 reject bad-credentials, 240 Interim-Update, 1 dropped``."""
    return ", ".join(f"{n} {what}" for what, n in tally.most_common())


def _session_selector(rec: accounting.Record, nas: store.Nas) -> dict[str, Any]:
    attrs: dict[str, Any] = {"Acct-Session-Id": rec.session_id, "NAS-Identifier": nas.identifier}
    if rec.username:
        attrs["User-Name"] = rec.username
    calling = rec.extra.get("callingstationid")
    if calling:
        attrs["Calling-Station-Id"] = calling
    return attrs


def _code_name(code: int) -> str:
    try:
        return m.Code(code).label
    except ValueError:
        return f"code {code}"


_KEY_ID = codec().key("Passerelle-Key-Id")


def key_claim(request: m.AccessRequest) -> int | None:
    """The id of the person's key a box sends instead of a password (its
    one-tap check-in, docs/keys.md), or None. Taken only from a request
    signed with Message-Authenticator and carrying no password."""
    if request.credential is not None or not request.message_authenticator:
        return None
    for key, raw in request.other:
        if key == _KEY_ID:
            try:
                return int(codec().value(key, raw))
            except (BadValue, ValueError):
                return None
    return None


def key_proofs(db: DB, work: list[_Work], accounts: dict[str, store.Account]) -> set[int]:
    """The ``id()`` of the batch's Access-Requests whose key claim holds:
    the key is the named person's current, unrevoked one. The box that sent
    it is authenticated (its secret, Message-Authenticator); the policy then
    decides as for a password (site, company, credit, sessions)."""
    claims: dict[int, tuple[int, int]] = {}
    for item in work:
        request = cast(m.AccessRequest, item.request)
        key_id = key_claim(request)
        account = accounts.get(request.user_name or "")
        if key_id is not None and account is not None:
            claims[id(item)] = (account.person_id, key_id)
    if not claims:
        return set()
    holds = keys.in_force(db, claims.values())
    for item in work:
        claim = claims.get(id(item))
        if claim is not None and claim not in holds:
            log.info("key claim for %r from %s: key %d is not their current key",
                     cast(m.AccessRequest, item.request).user_name, item.nas.identifier,
                     claim[1])
    return {ident for ident, claim in claims.items() if claim in holds}


def _constraint(exc: BaseException) -> bool:
    """A uniqueness or constraint error, through the ORM or the driver's own
    cursor (the accounting batch's PostgreSQL statements)."""
    return isinstance(exc, IntegrityError | psycopg.IntegrityError | sqlite3.IntegrityError)
