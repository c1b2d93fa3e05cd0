"""Webhooks of the partner API: events found, queued, signed and delivered.

Events: ``session.start`` and ``session.stop`` (read from radacct by a
poller, so the accounting path is not slowed by a partner's web server)
and ``credit.low`` (a person charged below the threshold, once between two
top-ups). Each event is queued once per webhook (a unique key per event),
POSTed with ``Passerelle-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" keyed with the webhook's secret>``, retried with growing
delays until a 2xx answer or ``MAX_ATTEMPTS``; every attempt is recorded.

The rules (signature, back-off, what an attempt leads to) are pure
functions of their inputs and ``now``; the poller, the worker and
``http_post`` are the adapters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.errors import UserError

from . import admin, ledger
from .db import transaction
from .models import (
    Company,
    CreditEntry,
    CreditKind,
    Person,
    Radacct,
    Site,
    Webhook,
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
)

log = logging.getLogger("passerelle.radius")

EVENTS = ("session.start", "session.stop", "credit.low")
HEADER = "Passerelle-Signature"
MAX_ATTEMPTS = 8
FIRST_DELAY = 30  # seconds; doubles each time
MAX_DELAY = 3600
TIMEOUT = 10.0  # seconds a receiver has to answer
# A receiver should refuse a signature older than this (a replayed POST).
TOLERANCE = 300
LOW_CREDIT = 3600  # seconds left that make credit "low"
# Sessions opened longer ago than this are no longer watched for their stop
# (a box that died with them open): the poller's scan stays short.
WATCH = timedelta(days=7)
BATCH = 500


# -- the pure rules ---------------------------------------------------------------

def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance: int = TOLERANCE) -> bool:
    """What a receiver does: the signature is ours, and recent."""
    match = re.fullmatch(r"t=([0-9]{1,12}),v1=([0-9a-f]{64})", header.strip())
    if match is None:
        return False
    timestamp = int(match.group(1))
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header.strip())


@dataclass(frozen=True)
class PostResult:
    """What one POST got: an HTTP status, or an error before any."""

    status: int | None
    error: str = ""
    milliseconds: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    pass


Step = Delivered | RetryAt | GiveUp


def after_attempt(attempts: int, outcome: PostResult, now: datetime) -> Step:
    """What follows attempt number ``attempts`` (1 for the first)."""
    if outcome.ok:
        return Delivered()
    if attempts >= MAX_ATTEMPTS:
        return GiveUp()
    return RetryAt(now + timedelta(seconds=min(MAX_DELAY, FIRST_DELAY * 2 ** (attempts - 1))))


def stamp(value: datetime | None) -> str | None:
    """UTC, ISO 8601 with a Z (the API's form of every time)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def session_data(row: Radacct, person: str | None, company: str | None,
                 site: str | None) -> dict[str, Any]:
    """A session as the API and its webhooks show it."""
    return {
        "id": row.radacctid, "session_id": row.acctsessionid, "login": row.username,
        "person": person, "company": company, "site": site,
        "started": stamp(row.acctstarttime), "updated": stamp(row.acctupdatetime),
        "stopped": stamp(row.acctstoptime), "seconds": row.acctsessiontime,
        "input_octets": row.acctinputoctets, "output_octets": row.acctoutputoctets,
        "mac": row.callingstationid, "ip": row.framedipaddress,
        "terminate_cause": row.acctterminatecause,
    }


# -- webhooks, as the operator sets them --------------------------------------------

def clean_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2048:
        raise UserError(f"bad webhook URL {value[:60]!r}: give an http(s) URL")
    return value


def clean_events(value: str) -> str:
    items = [e.strip() for e in value.split(",") if e.strip()]
    unknown = [e for e in items if e not in EVENTS]
    if not items or unknown:
        raise UserError(f"bad events {value!r}: a comma list of {', '.join(EVENTS)}")
    return ",".join(dict.fromkeys(items))


def add_webhook(db: DB, name: str, url: str, now: datetime, *, events: str = ",".join(EVENTS),
                company: str | None = None, secret: str | None = None) -> tuple[Webhook, str]:
    """A new webhook and its signing secret (made when not given)."""
    name = admin.clean_name(name, "a webhook name", 64)
    if db.scalar(select(Webhook).where(Webhook.name == name)) is not None:
        raise UserError(f"webhook {name!r} already exists")
    if secret is not None and len(secret) < 16:
        raise UserError("a webhook secret has 16 characters or more")
    key = secret or "whsec_" + secrets.token_urlsafe(32)
    hook = Webhook(name=name, url=clean_url(url), secret=key, events=clean_events(events),
                   company_id=admin.get_company(db, company).id if company else None,
                   active=True, created=now)
    db.add(hook)
    db.flush()
    return hook, key


def get_webhook(db: DB, name: str) -> Webhook:
    found = db.scalar(select(Webhook).where(Webhook.name == name))
    if found is None:
        raise UserError(f"unknown webhook {name!r} (see: passerelle admin webhook list)")
    return found


def list_webhooks(db: DB) -> list[Webhook]:
    return list(db.scalars(select(Webhook).order_by(Webhook.name)))


def remove_webhook(db: DB, name: str) -> None:
    db.delete(get_webhook(db, name))
    db.flush()


def attempts_of(db: DB, name: str, limit: int = 50) -> list[tuple[WebhookDelivery,
                                                                 WebhookAttempt]]:
    hook = get_webhook(db, name)
    return [(d, a) for d, a in db.execute(
        select(WebhookDelivery, WebhookAttempt)
        .join(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
        .where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookAttempt.id.desc()).limit(limit))]


# -- the poller: events into the queue ----------------------------------------------

def _cursor(db: DB, name: str) -> WebhookCursor:
    found = db.get(WebhookCursor, name)
    if found is None:
        found = WebhookCursor(name=name, value=0)
        db.add(found)
    return found


def _known(db: DB, keys: list[str]) -> set[tuple[int, str]]:
    """(webhook, event key) pairs already queued, among ``keys``."""
    if not keys:
        return set()
    return {(hook, key) for hook, key in db.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.event_key)
        .where(WebhookDelivery.event_key.in_(keys)))}


def _queue(db: DB, hooks: list[Webhook], known: set[tuple[int, str]], event: str, key: str,
           company_id: int | None, data: Mapping[str, Any], now: datetime) -> int:
    """Queue the event for each webhook that wants it and has not had it."""
    fresh = [h for h in hooks if event in h.events.split(",")
             and h.company_id in (None, company_id) and (h.id, key) not in known]
    if not fresh:
        return 0
    body = json.dumps({"id": key, "type": event, "created": stamp(now), "data": data},
                      separators=(",", ":"))
    for hook in fresh:
        db.add(WebhookDelivery(webhook_id=hook.id, event=event, event_key=key, payload=body,
                               created=now, attempts=0, next_attempt=now, done=False,
                               outcome=""))
        known.add((hook.id, key))
    return len(fresh)


def _sessions(db: DB, batch: int, *conditions: Any) -> list[Any]:
    return list(db.execute(
        select(Radacct, Person.external_id, Company.external_id, Site.name,
               Person.company_id)
        .outerjoin(Person, Radacct.person_id == Person.id)
        .outerjoin(Company, Person.company_id == Company.id)
        .outerjoin(Site, Radacct.site_id == Site.id)
        .where(*conditions).order_by(Radacct.radacctid).limit(batch)))


def _session_events(db: DB, hooks: list[Webhook], event: str, rows: list[Any],
                    now: datetime) -> int:
    keys = [f"{event}:{row[0].radacctid}" for row in rows]
    known = _known(db, keys)
    return sum(_queue(db, hooks, known, event, key, company_id,
                      session_data(row, person, company, site), now)
               for key, (row, person, company, site, company_id) in zip(keys, rows,
                                                                       strict=True))


def poll(db: DB, now: datetime, low_credit: int = LOW_CREDIT, batch: int = BATCH) -> int:
    """Queue the events since the last pass; how many deliveries were queued."""
    hooks = list(db.scalars(select(Webhook).where(Webhook.active.is_(True))))
    queued = 0
    started = _cursor(db, "session.start")
    while rows := _sessions(db, batch, Radacct.radacctid > started.value):
        queued += _session_events(db, hooks, "session.start", rows, now)
        started.value = rows[-1][0].radacctid
    # Stops: every stopped session above the floor (the oldest one still
    # open at the last pass), page by page; the keys already queued are
    # skipped, so each stop is queued once.
    stopped = _cursor(db, "session.stop")
    after = stopped.value
    while rows := _sessions(db, batch, Radacct.radacctid > after,
                           Radacct.acctstoptime.is_not(None)):
        queued += _session_events(db, hooks, "session.stop", rows, now)
        after = rows[-1][0].radacctid
    oldest_open = db.scalar(select(func.min(Radacct.radacctid)).where(
        Radacct.radacctid > stopped.value, Radacct.acctstoptime.is_(None),
        Radacct.radacctid <= started.value,
        func.coalesce(Radacct.acctstarttime, now) > now - WATCH))
    stopped.value = (oldest_open - 1) if oldest_open is not None else started.value
    queued += _poll_credit(db, hooks, now, low_credit)
    return queued


def _poll_credit(db: DB, hooks: list[Webhook], now: datetime, low_credit: int) -> int:
    charged = _cursor(db, "credit")
    rows = db.execute(select(CreditEntry.id, CreditEntry.person_id)
                      .where(CreditEntry.id > charged.value,
                             CreditEntry.kind == CreditKind.charge)
                      .order_by(CreditEntry.id).limit(BATCH * 10)).all()
    if not rows:
        return 0
    charged.value = rows[-1].id
    people = {row.person_id for row in rows}
    found = db.execute(
        select(Person.id, Person.external_id, Person.login, Person.company_id,
               Company.external_id,
               ledger.balance_of(Person.id),
               select(func.coalesce(func.max(CreditEntry.id), 0))
               .where(CreditEntry.person_id == Person.id,
                      CreditEntry.kind == CreditKind.topup).scalar_subquery())
        .join(Company, Person.company_id == Company.id)
        .where(Person.id.in_(people))).all()
    queued = 0
    for person_id, ext, login, company_id, company_ext, left, last_topup in found:
        if int(left) < low_credit:
            # Once between two top-ups: the key names the last one.
            key = f"credit.low:{person_id}:{last_topup}"
            queued += _queue(db, hooks, _known(db, [key]), "credit.low", key, company_id,
                             {"person": ext, "login": login, "company": company_ext,
                              "balance_seconds": int(left)}, now)
    return queued


# -- the worker: deliveries out ------------------------------------------------------

Post = Callable[[str, bytes, dict[str, str], float], PostResult]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer, not an order: the signed POST is not replayed
    # to another address.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect())


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    started = time.monotonic()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return PostResult(None, str(reason)[:256], _ms(started))
    return PostResult(status, "", _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def deliver_due(factory: sessionmaker[DB], now: Callable[[], datetime],
                post: Post = http_post, limit: int = 100) -> int:
    """POST the deliveries that are due, one at a time; how many were tried.
    One worker at a time (the deliveries are not locked between workers)."""
    with transaction(factory) as db:
        due = [(d.id, d.attempts, d.payload, h.url, h.secret, h.name) for d, h in db.execute(
            select(WebhookDelivery, Webhook).join(Webhook)
            .where(WebhookDelivery.done.is_(False), WebhookDelivery.next_attempt <= now(),
                   Webhook.active.is_(True))
            .order_by(WebhookDelivery.next_attempt, WebhookDelivery.id).limit(limit))]
    for delivery_id, attempts, payload, url, secret, name in due:
        body = payload.encode()
        moment = now()
        headers = {"Content-Type": "application/json", "User-Agent": "passerelle-webhooks",
                   HEADER: sign(secret, int(moment.replace(tzinfo=UTC).timestamp()), body)}
        # Outside any transaction: the receiver's time is not the database's.
        outcome = post(url, body, headers, TIMEOUT)
        _record(factory, delivery_id, attempts + 1, outcome, now(), name)
    return len(due)


def _record(factory: sessionmaker[DB], delivery_id: int, attempts: int, outcome: PostResult,
            at: datetime, name: str) -> None:
    step = after_attempt(attempts, outcome, at)
    with transaction(factory) as db:
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return  # the webhook was removed meanwhile
        db.add(WebhookAttempt(delivery_id=delivery_id, at=at, status=outcome.status,
                              error=outcome.error, milliseconds=outcome.milliseconds))
        delivery.attempts = attempts
        match step:
            case Delivered():
                delivery.done, delivery.outcome = True, "delivered"
            case RetryAt(at=later):
                delivery.next_attempt = later
                log.info("webhook %s: %s attempt %d failed (%s), again at %s", name,
                         delivery.event_key, attempts, outcome.status or outcome.error,
                         later.strftime("%H:%M:%S"))
            case GiveUp():
                delivery.done, delivery.outcome = True, "gave-up"
                log.warning("webhook %s: gave up %s after %d attempts (%s)", name,
                            delivery.event_key, attempts, outcome.status or outcome.error)
            case _:
                assert_never(step)
