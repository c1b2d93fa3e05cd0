"""The accounting spool: durable, in order, exactly once."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, NoServer, RadiusClient
from passerelle.gateway.spool import Spool, SpoolSender
from passerelle.radius import ledger
from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.models import CreditEntry, Radacct
from tests.radius import seed
from tests.radius.conftest import Server, start_server

T0 = 1_790_000_000.0


def rec(n: int, status: m.AcctStatus = m.AcctStatus.INTERIM_UPDATE,
        session: str = "s-1") -> AccountingRecord:
    stop = status == m.AcctStatus.STOP
    return AccountingRecord(status, session, "alice", "02:00:00:00:00:01", "198.51.100.9",
                            b"cls", session_time=n, input_octets=n * 2**31,
                            terminate_cause=m.TerminateCause.USER_REQUEST if stop else None,
                            event_time=T0 + n)


class Recorder:
    """A Sender that remembers what it was given; fails when told to."""

    def __init__(self) -> None:
        self.sent: list[AccountingRecord] = []
        self.fail_at: set[int] = set()  # call numbers (1-based) that fail
        self.calls = 0
        self.error: type[Exception] = NoServer

    def account(self, record: AccountingRecord) -> None:
        self.calls += 1
        if self.calls in self.fail_at:
            raise self.error("down")
        self.sent.append(record)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "state" / "spool.db")
    yield s
    s.close()


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_records_survive_reopening_in_order(spool: Spool) -> None:
    seqs = [spool.put(rec(n)) for n in range(5)]
    assert seqs == sorted(seqs) and spool.pending() == 5
    spool.close()
    again = Spool(spool.path)
    try:
        sender = Recorder()
        assert again.deliver(sender) == 5
        assert sender.sent == [rec(n) for n in range(5)]
        assert again.pending() == 0
    finally:
        again.close()


def test_the_file_is_in_wal_mode(spool: Spool) -> None:
    # (synchronous=FULL is per connection and cannot be seen from outside;
    # the kill -9 test below is what shows the durability.)
    spool.put(rec(1))
    with sqlite3.connect(spool.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_delivery_stops_at_the_first_failure_and_resumes_in_order(spool: Spool) -> None:
    for n in range(6):
        spool.put(rec(n))
    sender = Recorder()
    sender.fail_at = {3}
    assert spool.deliver(sender) == 2
    assert spool.pending() == 4
    assert spool.deliver(sender) == 4
    assert sender.sent == [rec(n) for n in range(6)]  # each once, in order


def test_limit(spool: Spool) -> None:
    for n in range(3):
        spool.put(rec(n))
    sender = Recorder()
    assert spool.deliver(sender, limit=2) == 2
    assert spool.pending() == 1 and sender.sent == [rec(0), rec(1)]


def test_concurrent_deliveries_keep_order_and_send_once(spool: Spool) -> None:
    for n in range(40):
        spool.put(rec(n))
    sender = Recorder()
    threads = [threading.Thread(target=spool.deliver, args=(sender,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sender.sent == [rec(n) for n in range(40)]


def test_an_unreadable_record_is_set_aside_not_blocking(
        spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    spool.put(rec(1))
    with sqlite3.connect(spool.path) as db:
        db.execute("INSERT INTO records (record) VALUES ('{\"status\": \"Bogus\"}')")
    spool.put(rec(2))
    sender = Recorder()
    with caplog.at_level(logging.ERROR, "passerelle.gateway"):
        assert spool.deliver(sender) == 2
    assert sender.sent == [rec(1), rec(2)]
    assert spool.rejected() == 1
    assert "unreadable" in caplog.text


# Rows as the box wrote them before the message layer (json.dumps of the
# record, keys sorted): a box upgraded with records waiting sends them.
EARLIER_ROWS = [
    '{"class_": "Y2xz", "event_time": 1790000000.0, "input_octets": 0, "input_packets": 0, '
    '"ipv4": "198.51.100.9", "mac": "02:00:00:00:00:01", "output_octets": 0, '
    '"output_packets": 0, "session_id": "s-old", "session_time": 0, "status": "Start", '
    '"terminate_cause": "", "username": "alice"}',
    '{"class_": "Y2xz", "event_time": 1790000060.0, "input_octets": 4294967297, '
    '"input_packets": 3, "ipv4": "198.51.100.9", "mac": "02:00:00:00:00:01", '
    '"output_octets": 9, "output_packets": 4, "session_id": "s-old", "session_time": 60, '
    '"status": "Stop", "terminate_cause": "Idle-Timeout", "username": "alice"}',
    '{"class_": null, "event_time": 1790000061.0, "input_octets": 0, "input_packets": 0, '
    '"ipv4": "", "mac": "", "output_octets": 0, "output_packets": 0, "session_id": "", '
    '"session_time": 0, "status": "Accounting-Off", "terminate_cause": "", "username": ""}',
]


def test_records_spooled_by_the_earlier_version_are_delivered(spool: Spool) -> None:
    with sqlite3.connect(spool.path) as db:
        db.executemany("INSERT INTO records (record) VALUES (?)", [(r,) for r in EARLIER_ROWS])
    sender = Recorder()
    assert spool.deliver(sender) == 3
    assert spool.rejected() == 0 and spool.pending() == 0
    start, stop, off = sender.sent
    assert (start.status, start.session_id, start.class_) == (m.AcctStatus.START, "s-old",
                                                              b"cls")
    assert (stop.status, stop.terminate_cause) == (m.AcctStatus.STOP,
                                                   m.TerminateCause.IDLE_TIMEOUT)
    assert (stop.input_octets, stop.session_time, stop.event_time) == (2**32 + 1, 60,
                                                                       1_790_000_060.0)
    assert (off.status, off.terminate_cause) == (m.AcctStatus.ACCOUNTING_OFF, None)
    sent = stop.request(1_790_000_100.0)
    assert (sent.terminate_cause, sent.delay_time) == (m.TerminateCause.IDLE_TIMEOUT, 40)
    # And the rows written today are the same text.
    for text, record in zip(EARLIER_ROWS, sender.sent, strict=True):
        assert json.dumps(record.to_json(), sort_keys=True) == text


def test_nothing_is_lost_on_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    child = textwrap.dedent(f"""
        import sys
        from passerelle.gateway.acct import AccountingRecord
        from passerelle.gateway.spool import Spool
        from passerelle.radius.messages import AcctStatus
        spool = Spool(__import__("pathlib").Path({str(path)!r}))
        n = 0
        while True:
            n += 1
            spool.put(AccountingRecord(AcctStatus.INTERIM_UPDATE, "s-k", session_time=n))
            print(n, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 50:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    spool = Spool(path)
    try:
        sender = Recorder()
        spool.deliver(sender)
    finally:
        spool.close()
    times = [r.session_time for r in sender.sent]
    # Every put that returned is there, in order, once.
    assert times[:acknowledged] == list(range(1, acknowledged + 1))
    assert times == list(range(1, len(times) + 1))


def test_sender_thread_delivers_when_woken_and_on_its_timer(spool: Spool) -> None:
    sender = Recorder()
    thread = SpoolSender(spool, sender, interval=1.5)
    thread.start()
    try:
        time.sleep(0.1)  # the thread now waits on its timer
        thread.put(rec(1))
        wait_for(lambda: len(sender.sent) == 1, timeout=1.0)  # woken, not the timer
        spool.put(rec(2))  # no wake: the timer must find it
        wait_for(lambda: len(sender.sent) == 2, timeout=5.0)
    finally:
        thread.stop(timeout=5)
    assert sender.sent == [rec(1), rec(2)] and spool.pending() == 0


def test_sender_thread_survives_a_failure(spool: Spool,
                                          caplog: pytest.LogCaptureFixture) -> None:
    sender = Recorder()
    sender.fail_at = {1, 2}
    sender.error = RuntimeError
    thread = SpoolSender(spool, sender, interval=0.05)
    with caplog.at_level(logging.ERROR, "passerelle.gateway"):
        thread.start()
        try:
            thread.put(rec(1))
            wait_for(lambda: len(sender.sent) == 1)
        finally:
            thread.stop(timeout=5)
    assert "delivery failed" in caplog.text
    assert sender.sent == [rec(1)]


# -- against `passerelle radius serve`: the centre goes away and comes back ----------


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "server.key"
    monkeypatch.setenv("PASSERELLE_KEY_FILE", str(path))
    return path


def centre_client(srv: Server, *, timeout: float, tries: int) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", seed.SECRET.encode(), srv.auth_port,
                                      srv.acct_port)], NasIdentity("axis-gw", "127.0.0.1"),
                        timeout=timeout, tries=tries)


@pytest.mark.integration
def test_centre_down_then_back_drains_once_in_order(db_url: str, engine: Engine, key_file: Path,
                                                    tmp_path: Path) -> None:
    world = seed.build(make_sessionmaker(engine))
    alice = world.people["alice"]
    first = start_server(db_url, tmp_path)
    c = centre_client(first, timeout=1.0, tries=3)
    result = c.authenticate("alice@acme.example", seed.PASSWORD, mac="02:00:00:00:00:01",
                            ipv4="198.51.100.9")
    assert result.accepted
    first.stop()

    spool = Spool(tmp_path / "spool.db")
    now = time.time()
    record = partial(AccountingRecord, session_id="gw-spool-1", username="alice@acme.example",
                     mac="02:00:00:00:00:01", ipv4="198.51.100.9", class_=result.class_)
    records = [
        record(m.AcctStatus.START, event_time=now - 300),
        record(m.AcctStatus.INTERIM_UPDATE, session_time=120, input_octets=2**32 + 1,
               output_octets=10, event_time=now - 180),
        record(m.AcctStatus.STOP, session_time=300, input_octets=2**32 + 2, output_octets=20,
               terminate_cause=m.TerminateCause.USER_REQUEST, event_time=now),
    ]
    try:
        for r in records:
            spool.put(r)
        down = centre_client(first, timeout=0.1, tries=2)
        assert spool.deliver(down) == 0
        assert spool.pending() == 3

        second = start_server(db_url, tmp_path)
        try:
            assert spool.deliver(centre_client(second, timeout=1.0, tries=3)) == 3
            assert spool.pending() == 0
            with make_sessionmaker(engine)() as db:
                row = db.scalars(select(Radacct)).one()
                charged = db.scalars(select(CreditEntry.seconds).where(
                    CreditEntry.session_id == row.radacctid)).all()
                balance = ledger.balance(db, alice)
            assert row.acctsessiontime == 300 and row.acctterminatecause == "User-Request"
            assert (row.acctinputoctets, row.acctoutputoctets) == (2**32 + 2, 20)
            assert row.acctstoptime is not None
            assert sum(charged) == -300 and balance == 600 * 60 - 300
            # A crash between the answer and the delete sends the Stop again:
            # the centre must not count it twice.
            spool.put(records[2])
            assert spool.deliver(centre_client(second, timeout=1.0, tries=3)) == 1
            with make_sessionmaker(engine)() as db:
                assert db.scalars(select(Radacct)).one().acctsessiontime == 300
                assert ledger.balance(db, alice) == balance
        finally:
            second.stop()
    finally:
        spool.close()
