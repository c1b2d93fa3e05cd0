"""Changes reach the sites (issue 8) and Disconnects are retried (issue 13,
finding 12), over real UDP: the centre's outbox (radius/reach.py) sends to
the box's own RFC 5176 server (``gateway.dae_server.DaeServer``) on
127.0.0.1, with the daemon's port standing in for the daemon. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.dae_server import CoaChange, DaeServer, Selector
from passerelle.gateway.radclient import NasIdentity
from passerelle.radius import admin, keys, outbox, reach
from passerelle.radius.db import transaction
from passerelle.radius.models import DaeRequest, DaeState

from .conftest import NOC, NOW, SECRET, Daemon, World, sign_in
from .test_disconnect import flash, press


@dataclass
class ChangingDaemon(Daemon):
    """The box's sessions, and the CoA changes it applied."""

    changed: list[tuple[Selector, CoaChange]] = field(default_factory=list)

    def change(self, selector: Selector, change: CoaChange) -> int:
        self.changed.append((selector, change))
        return 1 if selector.acct_session_id in self.live else 0


@pytest.fixture
def daemon() -> ChangingDaemon:
    return ChangingDaemon()


def requests(factory: sessionmaker[DB]) -> list[DaeRequest]:
    with transaction(factory) as db:
        found = list(db.scalars(select(DaeRequest).order_by(DaeRequest.id)))
        db.expunge_all()
    return found


def send_round(factory: sessionmaker[DB], retry: outbox.Retry | None = None,
               at: datetime | None = None) -> int:
    return reach.send_due(factory, reach.one_try, retry or outbox.Retry(),
                          clock=(lambda: at) if at else reach.utcnow)


def test_suspending_a_company_disconnects_its_people(factory: sessionmaker[DB], world: World,
                                                     box: DaeServer,
                                                     daemon: ChangingDaemon) -> None:
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(status="suspended"))
    [queued] = requests(factory)  # alice's one open session (the CEI one is stopped)
    assert (queued.kind, queued.state, queued.reason) == (
        "disconnect", DaeState.pending, "company suspended")
    assert queued.radacct_id == world.sessions["axis-0001"]
    assert send_round(factory) == 1
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]
    [done] = requests(factory)
    assert (done.state, done.attempts) == (DaeState.acked, 1)
    # Suspended again: no change of standing, nothing more to send.
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(status="suspended"))
    assert len(requests(factory)) == 1


def test_deactivating_or_removing_a_person_disconnects_them(
        factory: sessionmaker[DB], world: World, box: DaeServer,
        daemon: ChangingDaemon) -> None:
    with transaction(factory) as db:
        admin.set_person(db, "carol@globex.example", admin.PersonChanges(active=False))
        admin.remove_person(db, "alice@acme.example")
    queued = requests(factory)
    assert [(q.radacct_id, q.reason) for q in queued] == [
        (world.sessions["axis-0002"], "person deactivated"),
        (world.sessions["axis-0001"], "person removed")]
    send_round(factory)
    carol, alice = requests(factory)
    # The box had no session for carol: a NAK, in the outbox as such.
    assert (carol.state, carol.error_cause) == (DaeState.naked, 503)
    assert alice.state is DaeState.acked


def test_revoking_a_key_disconnects_its_owner(factory: sessionmaker[DB], world: World,
                                             box: DaeServer, daemon: ChangingDaemon) -> None:
    with transaction(factory) as db:
        keys.rotate(db, world.people["alice@acme.example"], NOW)  # she has a key
        keys.revoke(db, world.people["alice@acme.example"], NOW)
    [queued] = requests(factory)
    assert (queued.radacct_id, queued.reason) == (world.sessions["axis-0001"], "key revoked")
    send_round(factory)
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]
    assert requests(factory)[0].state is DaeState.acked


def test_a_new_bandwidth_cap_goes_out_by_coa(factory: sessionmaker[DB], world: World,
                                             box: DaeServer, daemon: ChangingDaemon) -> None:
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(bandwidth_up="2M", bandwidth_down="10M"))
    [queued] = requests(factory)
    assert queued.kind == "coa"
    assert json.loads(queued.attributes) == {
        "Acct-Session-Id": "axis-0001", "User-Name": "alice@acme.example",
        "NAS-Identifier": "axis-gw", "WISPr-Bandwidth-Max-Up": 2_000_000,
        "WISPr-Bandwidth-Max-Down": 10_000_000}
    send_round(factory)
    [(selector, change)] = daemon.changed
    assert selector.acct_session_id == "axis-0001"
    assert (change.bandwidth_up, change.bandwidth_down) == (2_000_000, 10_000_000)
    assert requests(factory)[0].state is DaeState.acked


def test_a_silent_box_is_asked_again_until_it_answers(
        client: FlaskClient, factory: sessionmaker[DB], world: World, box: DaeServer,
        daemon: ChangingDaemon) -> None:
    port = box.port
    box.stop()  # the box is down
    sign_in(client, NOC)
    html = press(client, world.sessions["axis-0001"])
    assert flash(html).startswith(f"wait: No answer yet from axis-gw (127.0.0.1 port {port}): "
                                  "the box may be down or unreachable; the centre keeps trying")
    [pending] = requests(factory)
    assert (pending.state, pending.attempts) == (DaeState.pending, 1)
    # Not due yet: nothing is sent before its next try.
    assert send_round(factory, at=pending.next_try - timedelta(seconds=0.5)) == 0
    # The box is back, on its port: the next try gets the ACK.
    again = DaeServer("127.0.0.1", port, {"127.0.0.1": SECRET.encode()},
                      NasIdentity("axis-gw", "127.0.0.1"), daemon)
    again.start()
    try:
        assert send_round(factory, at=pending.next_try) == 1
    finally:
        again.stop()
    [done] = requests(factory)
    assert (done.state, done.attempts) == (DaeState.acked, 2)
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]
    page = client.get("/live/").get_data(as_text=True)
    assert "ACK from axis-gw: alice@acme.example is disconnected." in page


def test_a_box_that_never_answers_is_given_up(client: FlaskClient, factory: sessionmaker[DB],
                                              world: World, box: DaeServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    box.stop()
    with transaction(factory) as db:
        admin.set_person(db, "alice@acme.example", admin.PersonChanges(active=False))
    retry = outbox.Retry(first=0.01, max_attempts=2)
    send_round(factory, retry)
    time.sleep(0.05)
    send_round(factory, retry)
    [given_up] = requests(factory)
    assert (given_up.state, given_up.attempts) == (DaeState.gave_up, 2)
    assert "gave up after 2 tries without an answer" in caplog.text
    sign_in(client, NOC)
    page = client.get("/live/").get_data(as_text=True)
    assert f"Gave up: no answer from axis-gw (127.0.0.1 port {box.port}) after 2 tries" in page


def test_the_courier_sends_what_is_queued(factory: sessionmaker[DB], world: World,
                                          box: DaeServer, daemon: ChangingDaemon) -> None:
    courier = reach.Courier(factory, poll=0.05)
    courier.start()
    try:
        with transaction(factory) as db:
            admin.set_company(db, "Acme", admin.CompanyTerms(status="closed"))
        deadline = time.monotonic() + 10
        while requests(factory)[0].state is DaeState.pending and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        courier.stop()
    assert requests(factory)[0].state is DaeState.acked
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]


def test_answered_requests_are_forgotten_after_a_while(factory: sessionmaker[DB],
                                                       world: World, box: DaeServer) -> None:
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(status="suspended"))
        admin.set_company(db, "Globex", admin.CompanyTerms(status="suspended"))
    send_round(factory)  # alice's ACK, carol's NAK; bob's box (CEI) is silent: pending
    states = sorted(r.state.value for r in requests(factory))
    assert states == ["acked", "naked", "pending"]
    with transaction(factory) as db:
        assert reach.prune(db, reach.utcnow() + timedelta(days=8), keep=7 * 86400) == 2
    assert [r.state for r in requests(factory)] == [DaeState.pending]



def test_the_courier_leaves_a_console_disconnect_to_the_console(
        factory: sessionmaker[DB], world: World, box: DaeServer,
        daemon: ChangingDaemon) -> None:
    """The console sends its Disconnect once itself right after queueing it;
    a courier polling meanwhile must not send it too (the box would ACK one
    and NAK the other, and the operator would read the NAK)."""
    from passerelle.portal.console.live_ops import CONSOLE_FIRST_TRY, queue_disconnect
    from passerelle.portal.console.scope import Scope

    now = reach.utcnow()
    with transaction(factory) as db:
        queued = queue_disconnect(db, Scope(), world.sessions["axis-0001"], now, NOC)
    assert queued is not None
    assert send_round(factory, at=now) == 0, "the courier waits"
    assert send_round(factory, at=now + timedelta(seconds=CONSOLE_FIRST_TRY - 1)) == 0
    # The console's own try, by id, goes at once; nothing is left to send.
    assert reach.send_due(factory, reach.one_try, outbox.Retry(), clock=lambda: now,
                          ids=[queued]) == 1
    assert send_round(factory, at=now + timedelta(seconds=CONSOLE_FIRST_TRY + 1)) == 0
    [done] = requests(factory)
    assert (done.state, done.attempts) == (DaeState.acked, 1)
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]
