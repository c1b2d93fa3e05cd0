"""Webhooks against a real HTTP receiver on 127.0.0.1: events found by the
poller, queued once, signed, retried with back-off, every attempt recorded."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.cli import main
from passerelle.radius import webhooks
from passerelle.radius.db import transaction
from passerelle.radius.models import (
    CreditEntry,
    CreditKind,
    Radacct,
    WebhookAttempt,
    WebhookDelivery,
)

from .conftest import NOW, World
from .test_api import keys  # noqa: F401  (the fixture: external ids on the test network)

SECRET = "a-receiver-secret-of-some-length"


@dataclass
class Receiver:
    """A partner's endpoint: answers the statuses queued, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.got.append((dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


# -- the pure rules -------------------------------------------------------------

def test_signatures() -> None:
    body = b'{"id":"x"}'
    header = webhooks.sign(SECRET, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=") and len(header) == 16 + 64
    assert webhooks.verify(SECRET, header, body, 1_800_000_100)
    assert not webhooks.verify(SECRET, header, body + b" ", 1_800_000_100)
    assert not webhooks.verify("another secret of length", header, body, 1_800_000_100)
    assert not webhooks.verify(SECRET, header, body, 1_800_000_000 + 301)  # a replay
    assert not webhooks.verify(SECRET, "v1=abc", body, 1_800_000_000)


def test_back_off() -> None:
    failed = webhooks.PostResult(500)
    delays = []
    for attempt in range(1, webhooks.MAX_ATTEMPTS):
        step = webhooks.after_attempt(attempt, failed, NOW)
        assert isinstance(step, webhooks.RetryAt)
        delays.append(int((step.at - NOW).total_seconds()))
    assert delays == [30, 60, 120, 240, 480, 960, 1920]
    assert isinstance(webhooks.after_attempt(webhooks.MAX_ATTEMPTS, failed, NOW),
                      webhooks.GiveUp)
    assert isinstance(webhooks.after_attempt(3, webhooks.PostResult(204), NOW),
                      webhooks.Delivered)
    assert not webhooks.PostResult(None, "refused").ok and not webhooks.PostResult(302).ok


# -- the poller ------------------------------------------------------------------

def _queued(factory: sessionmaker[DB]) -> list[tuple[str, str]]:
    with transaction(factory) as db:
        return sorted((d.event_key, str(d.webhook_id)) for d in db.scalars(
            select(WebhookDelivery)))


@pytest.mark.usefixtures("keys")
def test_events_are_queued_once_per_webhook(factory: sessionmaker[DB], world: World,
                                            receiver: Receiver) -> None:
    with transaction(factory) as db:
        network, _ = webhooks.add_webhook(db, "platform", receiver.url, NOW, secret=SECRET)
        globex, _ = webhooks.add_webhook(db, "globex", receiver.url, NOW,
                                         events="session.start,credit.low", company="Globex",
                                         secret=SECRET)
        ids = network.id, globex.id
        assert webhooks.poll(db, NOW) == 5 + 2 + 1  # starts, Globex's starts, one stop
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW) == 0
        db.execute(update(Radacct).where(Radacct.radacctid == world.sessions["cei-0001"])
                   .values(acctstoptime=NOW, acctterminatecause="User-Request"))
        # Bob's charges leave him 600 s: low, once until he is topped up.
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=1200,
                           kind=CreditKind.topup, created=NOW))
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=-600,
                           kind=CreditKind.charge, created=NOW))
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW) == 1 + 2  # the stop; credit.low to both hooks
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=-60,
                           kind=CreditKind.charge, created=NOW))
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW) == 0  # still low: said already
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=600,
                           kind=CreditKind.topup, created=NOW))
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=-60,
                           kind=CreditKind.charge, created=NOW))
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW) == 2  # low again after a top-up
    events = _queued(factory)
    network_events = sorted(k.split(":")[0] for k, hook in events if hook == str(ids[0]))
    assert network_events == ["credit.low"] * 2 + ["session.start"] * 5 + ["session.stop"] * 2
    globex_keys = {k for k, hook in events if hook == str(ids[1])}
    assert {k for k in globex_keys if k.startswith("session.start")} == {
        f"session.start:{world.sessions[s]}" for s in ("cei-0001", "axis-0002")}
    with transaction(factory) as db:
        stop = db.scalar(select(WebhookDelivery).where(
            WebhookDelivery.event_key == f"session.stop:{world.sessions['cei-0001']}"))
        assert stop is not None
        payload = json.loads(stop.payload)
    assert payload["type"] == "session.stop"
    assert payload["data"]["person"] == "p-bob" and payload["data"]["company"] == "globex-1"
    assert payload["data"]["stopped"] == "2026-12-01T10:00:00Z"


@pytest.mark.usefixtures("keys")
def test_every_stop_is_found_page_by_page(factory: sessionmaker[DB], world: World,
                                          receiver: Receiver) -> None:
    """An old open session holds the floor; stops above it, more than a
    page of them, are all found, each once."""
    with transaction(factory) as db:
        webhooks.add_webhook(db, "platform", receiver.url, NOW, events="session.stop",
                             secret=SECRET)
        assert webhooks.poll(db, NOW, batch=2) == 1
        db.execute(update(Radacct).where(Radacct.radacctid.in_(
            [world.sessions[s] for s in ("cei-0001", "axis-0002", "axis-0003")]))
            .values(acctstoptime=NOW))
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW, batch=2) == 3
        assert webhooks.poll(db, NOW, batch=2) == 0
        db.execute(update(Radacct).where(Radacct.radacctid == world.sessions["axis-0001"])
                   .values(acctstoptime=NOW))
    with transaction(factory) as db:
        assert webhooks.poll(db, NOW, batch=2) == 1
    assert len(_queued(factory)) == 5


# -- the worker --------------------------------------------------------------------

@pytest.mark.usefixtures("keys")
def test_delivery_signed_retried_and_recorded(factory: sessionmaker[DB], world: World,
                                              receiver: Receiver) -> None:
    with transaction(factory) as db:
        webhooks.add_webhook(db, "platform", receiver.url, NOW, events="session.stop",
                             secret=SECRET)
        assert webhooks.poll(db, NOW) == 1
    clock = Clock()
    receiver.statuses = [500, 503]
    assert webhooks.deliver_due(factory, clock) == 1
    assert webhooks.deliver_due(factory, clock) == 0  # not due before 30 s
    clock.now += timedelta(seconds=30)
    assert webhooks.deliver_due(factory, clock) == 1
    clock.now += timedelta(seconds=59)
    assert webhooks.deliver_due(factory, clock) == 0  # 60 s the second time
    clock.now += timedelta(seconds=1)
    assert webhooks.deliver_due(factory, clock) == 1
    clock.now += timedelta(days=1)
    assert webhooks.deliver_due(factory, clock) == 0  # delivered: done
    assert len(receiver.got) == 3
    bodies = {body for _, body in receiver.got}
    assert len(bodies) == 1  # the same event each time
    for (headers, body), at in zip(receiver.got, (NOW, NOW + timedelta(seconds=30),
                                                  NOW + timedelta(seconds=90)), strict=True):
        stamp = at.replace(tzinfo=UTC).timestamp()
        assert webhooks.verify(SECRET, headers[webhooks.HEADER], body, stamp)
        assert headers["Content-Type"] == "application/json"
    with transaction(factory) as db:
        attempts = [a.status for a in db.scalars(select(WebhookAttempt)
                                                  .order_by(WebhookAttempt.id))]
        delivery = db.scalars(select(WebhookDelivery)).one()
    assert attempts == [500, 503, 200]
    assert (delivery.done, delivery.outcome, delivery.attempts) == (True, "delivered", 3)


@pytest.mark.usefixtures("keys")
def test_an_unreachable_receiver_is_given_up(factory: sessionmaker[DB], world: World,
                                             receiver: Receiver) -> None:
    closed = "http://127.0.0.1:9/nothing"  # discard: nothing listens there
    with transaction(factory) as db:
        webhooks.add_webhook(db, "gone", closed, NOW, events="session.stop", secret=SECRET)
        webhooks.poll(db, NOW)
    clock = Clock()
    for _ in range(webhooks.MAX_ATTEMPTS):
        assert webhooks.deliver_due(factory, clock) == 1
        clock.now += timedelta(seconds=webhooks.MAX_DELAY)
    assert webhooks.deliver_due(factory, clock) == 0
    with transaction(factory) as db:
        delivery = db.scalars(select(WebhookDelivery)).one()
        errors = list(db.scalars(select(WebhookAttempt.error)))
        count = db.scalar(select(func.count()).select_from(WebhookAttempt))
    assert (delivery.done, delivery.outcome) == (True, "gave-up")
    assert count == webhooks.MAX_ATTEMPTS and all(errors)


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["passerelle", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("keys")
def test_the_webhook_commands(db_url: str, world: World, receiver: Receiver,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(monkeypatch, capsys, "admin", "webhook", "add", "crm", receiver.url,
                          "--events", "session.start", "--db", db_url)
    assert code == 0 and out.strip().startswith("whsec_"), err
    secret = out.strip()
    for bad, words in ((["ftp://x/"], "bad webhook URL"),
                       ([receiver.url, "--events", "session.end"], "bad events"),
                       ([receiver.url, "--company", "Nope"], "unknown company")):
        code, _, err = _run(monkeypatch, capsys, "admin", "webhook", "add", "w2", *bad,
                            "--db", db_url)
        assert code == 2 and words in err, err
    code, _, err = _run(monkeypatch, capsys, "admin", "webhook", "run", "--once", "--db", db_url)
    assert code == 0 and "5 queued, 5 attempted" in err, err
    assert len(receiver.got) == 5
    headers, body = receiver.got[0]
    assert webhooks.verify(secret, headers[webhooks.HEADER], body,
                           datetime.now(UTC).timestamp())
    code, out, _ = _run(monkeypatch, capsys, "admin", "webhook", "attempts", "crm",
                        "--db", db_url)
    assert out.count("delivered") == 5
    assert _run(monkeypatch, capsys, "admin", "webhook", "remove", "crm", "--db", db_url)[0] == 0
