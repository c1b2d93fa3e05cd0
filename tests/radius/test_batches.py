"""The handler in process, one batch at a time: records of one session that
arrive together are charged exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import ledger
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import ACCT, Datagram, Handler
from passerelle.radius.models import CreditEntry, CreditKind, Radacct, WifiKey
from tests.radius import seed
from tests.radius.peers import RawClient

GATEWAY = ("127.0.0.1", 40000)


# Any: each attribute's value is of the type the dictionary gives it.
def datagrams(*records: tuple[str, dict[str, Any]],
              session: str = "batch-1") -> list[Datagram]:
    maker = RawClient(1, seed.SECRET.encode())  # builds packets; nothing is sent
    try:
        out = []
        for status, attrs in records:
            pkt = maker.accounting_request(status, session, User_Name="alice@acme.example",
                                           **attrs)
            out.append(Datagram(pkt.RequestPacket(), GATEWAY, ACCT))
        return out
    finally:
        maker.close()


def charged(factory: sessionmaker[DB], person: int) -> int:
    with factory() as s:
        total = s.scalar(select(func.coalesce(func.sum(CreditEntry.seconds), 0)).where(
            CreditEntry.person_id == person, CreditEntry.kind == CreditKind.charge))
    return -int(total or 0)


def test_interim_creating_the_session_and_its_stop_in_one_batch(engine: Engine,
                                                                world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    handler = Handler(factory)
    batch = datagrams(("Interim-Update", {"Acct_Session_Time": 100}),
                      ("Stop", {"Acct_Session_Time": 160,
                                "Acct_Terminate_Cause": "User-Request"}))
    replies, _ = handler.process(batch)
    assert len(replies) == 2
    alice = world.people["alice"]
    assert charged(factory, alice) == 160
    with factory() as s:
        (row,) = s.scalars(select(Radacct).where(Radacct.acctsessionid == "batch-1")).all()
    assert row.acctstoptime is not None and row.person_id == alice
    assert row.acctsessiontime == 160 and row.charged == 160

    # The same datagrams again (a client that did not hear the replies), and
    # a fresh copy in another batch: nothing more is charged.
    assert len(handler.process(batch)[0]) == 2
    again = datagrams(("Stop", {"Acct_Session_Time": 160, "Acct_Terminate_Cause": "User-Request"}))
    assert len(handler.process(again)[0]) == 1
    assert charged(factory, alice) == 160
    with factory() as s:
        assert ledger.balance(s, alice) == 600 * 60 - 160


def test_start_interim_stop_in_one_batch(engine: Engine, world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    replies, _ = Handler(factory).process(datagrams(
        ("Start", {}), ("Interim-Update", {"Acct_Session_Time": 60}),
        ("Stop", {"Acct_Session_Time": 90, "Acct_Terminate_Cause": "Idle-Timeout"})))
    assert len(replies) == 3
    assert charged(factory, world.people["alice"]) == 90


def issue_key(factory: sessionmaker[DB], person: int, class_: str) -> None:
    with factory() as s, s.begin():
        s.add(WifiKey(person_id=person, passphrase="abcd-efgh-ijkm-npqr", class_=class_,
                      issued=seed.now()))


def revoked(factory: sessionmaker[DB], class_: str) -> bool:
    with factory() as s:
        return s.scalar(select(WifiKey.revoked).where(WifiKey.class_ == class_)) is not None


def test_a_whole_session_retransmitted_in_one_batch_is_charged_once(engine: Engine,
                                                                    world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    alice = world.people["alice"]
    issue_key(factory, alice, "psl1:whole")
    session: list[tuple[str, dict[str, Any]]] = [
        ("Start", {"Class": b"psl1:whole"}),
        ("Interim-Update", {"Acct_Session_Time": 60, "Class": b"psl1:whole"}),
        ("Stop", {"Acct_Session_Time": 90, "Acct_Terminate_Cause": "Idle-Timeout",
                  "Class": b"psl1:whole"})]
    # Every record twice, the copies after the Stop (new Identifiers: not
    # caught by the duplicate cache, only by the fold).
    replies, cuts = Handler(factory).process(datagrams(*session, *session))
    assert len(replies) == 6 and cuts == []
    assert charged(factory, alice) == 90
    with factory() as s:
        (row,) = s.scalars(select(Radacct).where(Radacct.acctsessionid == "batch-1")).all()
        assert (row.acctsessiontime, row.charged, row.person_id) == (90, 90, alice)
        assert row.acctterminatecause == "Idle-Timeout"
        assert ledger.balance(s, alice) == 600 * 60 - 90
    assert revoked(factory, "psl1:whole")


def test_accounting_on_closes_charges_and_revokes_once(engine: Engine, world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    alice = world.people["alice"]
    issue_key(factory, alice, "psl1:open")
    handler = Handler(factory)
    handler.process(datagrams(("Start", {"Class": b"psl1:open"}),
                              ("Interim-Update", {"Acct_Session_Time": 120,
                                                  "Class": b"psl1:open"})))
    assert charged(factory, alice) == 120 and not revoked(factory, "psl1:open")
    # The box rebooted; a record of the old session after it changes nothing.
    replies, _ = handler.process(datagrams(
        ("Accounting-On", {}), ("Interim-Update", {"Acct_Session_Time": 500}),
        session="batch-1"))
    assert len(replies) == 2
    assert charged(factory, alice) == 120 and revoked(factory, "psl1:open")
    with factory() as s:
        (row,) = s.scalars(select(Radacct).where(Radacct.acctsessionid == "batch-1")).all()
        assert row.acctterminatecause == "NAS-Reboot" and row.acctstoptime is not None
        assert row.acctsessiontime == 120 and row.charged == 120


def test_an_interim_writes_only_what_it_changed() -> None:
    """An Interim-Update repeats the session's start, login, Class and
    addresses: the batch's UPDATE sends and writes only the counters it
    changed (and the charged mark), not what the row already holds."""
    from datetime import datetime, timedelta

    from passerelle.radius import accounting, store

    start = datetime(2026, 3, 2, 9, 0)
    extra = {"framedipaddress": "198.51.100.7", "callingstationid": "02-00-00-00-00-07"}
    row = {**store._NEW_ROW, "radacctid": 7, "acctuniqueid": "u" * 32, "person_id": 3,
           "username": "alice@acme.example", "class": "psl1:x", "acctstarttime": start,
           "acctupdatetime": start, "charged": 0, **extra}
    interim = accounting.Record(status=accounting.Status.INTERIM_UPDATE, session_id="s",
                                event_time=start + timedelta(seconds=300),
                                username="alice@acme.example", session_time=300,
                                input_octets=10, output_octets=20, class_="psl1:x",
                                extra=extra)
    writes = store._Writes()
    writes.take(row, accounting.fold(store._current(row), interim, billable=True))
    columns, rows = writes.updates()
    assert set(columns) == {"acctupdatetime", "acctsessiontime", "acctinputoctets",
                            "acctoutputoctets", "charged"}
    assert rows == [{"radacctid": 7, "acctupdatetime": start + timedelta(seconds=300),
                     "acctsessiontime": 300, "acctinputoctets": 10, "acctoutputoctets": 20,
                     "charged": 300}]


def test_the_disconnects_already_queued_are_remembered_within_a_bound(
        engine: Engine, world: seed.World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One Disconnect-Request per session whose credit ran out, however many
    of its records arrive; the memory of them is bounded (oldest forgotten
    first), and the outbox that sends them forgets answered ones after a
    week (tests/console/test_reach.py)."""
    from passerelle.radius import handler as handler_module

    monkeypatch.setattr(handler_module, "CUTS_REMEMBERED", 3)
    handler = Handler(make_sessionmaker(engine))
    assert handler._first_cut(1) and not handler._first_cut(1)
    for radacctid in range(2, 10):
        assert handler._first_cut(radacctid)
    assert len(handler._cut_sent) == 3 and list(handler._cut_sent) == [7, 8, 9]
    assert handler._first_cut(1), "forgotten once over the bound"
