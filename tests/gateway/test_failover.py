"""Two central nodes on one PostgreSQL, and the box failing over between them.

Two real `passerelle radius serve` processes on 127.0.0.1 (different ports,
the same database); the box's own RADIUS client (two servers, Status-Server
probing of a dead one, a dead time) and its accounting spool, as
`passerelle gateway run` builds them. What is proven, at the database:

- the first node SIGKILLed while the spool drains a few hundred records:
  the box goes on with the second, the spool empties, every session is in
  radacct once with all its time, and is charged exactly that, once;
- the first node stores a record but its answer never reaches the box (a
  relay drops the answers): the box sends the record to the second node,
  which charges nothing more;
- the same records sent to both nodes at the same instant (two INSERTs of
  one new session racing): still one session, charged once;
- over RadSec, one radsecproxy per node as the service builds them: node 1
  killed mid-load, and node 1 hung (SIGSTOP): no check-in refused, node 2
  answering at once once node 1 is dead, the spool going on with node 2,
  node 1 used again once woken; charged once.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, NoServer, RadiusClient
from passerelle.gateway.service import RadsecParts, radius_client, radsec_parts
from passerelle.gateway.spool import Spool, SpoolSender
from passerelle.radius import messages as m
from passerelle.radius.models import AccountingQuarantine, CreditEntry, CreditKind, Radacct
from tests.gateway.test_radsec import Sessions, enrolled_config, free_udp_ports
from tests.need import tool
from tests.radius import seed
from tests.radius.conftest import Server, start_server
from tests.radius.test_radsec import free_port

NAS = NasIdentity(identifier="axis-gw", ipv4="203.0.113.2")
# Billed people with credit to spare (600 min each in the seed world).
PEOPLE = ("alice@acme.example", "bob@slowco.example", "erin@latepay.example",
          "frank@twostar.example")
SESSIONS = 60
INTERIMS = 3
STEP = 120  # seconds of session time between two records of a session

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def nodes(db_url: str, factory: sessionmaker[DB], key_file: Path,
          tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two central nodes on the same database, the box registered at 127.0.0.1."""
    seed.build(factory, gateway_ip="127.0.0.1")
    first = start_server(db_url, tmp_path)
    second = start_server(db_url, tmp_path)
    try:
        yield first, second
    finally:
        for node in (first, second):
            node.stop()  # also closes the pipe of one already killed


def server(node: Server | tuple[str, int]) -> RadiusServer:
    port = node.acct_port if isinstance(node, Server) else node[1]
    auth = node.auth_port if isinstance(node, Server) else node[1]
    return RadiusServer("127.0.0.1", seed.SECRET.encode(), auth_port=auth, acct_port=port)


def records(sessions: int, prefix: str) -> list[AccountingRecord]:
    """The spool of a busy box: every session's Start, Interims and Stop,
    interleaved across sessions as they happen."""
    now = time.time() - STEP * (INTERIMS + 2)
    out: list[AccountingRecord] = []
    for step in range(INTERIMS + 2):
        for n in range(sessions):
            record = partial(AccountingRecord, session_id=f"{prefix}{n:03d}",
                             username=PEOPLE[n % len(PEOPLE)],
                             mac=f"02:00:00:00:{n // 256:02x}:{n % 256:02x}",
                             ipv4=f"198.51.100.{10 + n % 200}", event_time=now + step * STEP)
            if step == 0:
                out.append(record(m.AcctStatus.START))
            elif step <= INTERIMS:
                out.append(record(m.AcctStatus.INTERIM_UPDATE, session_time=step * STEP,
                                  input_octets=1000 * step))
            else:
                out.append(record(m.AcctStatus.STOP, session_time=step * STEP,
                                  input_octets=1000 * step,
                                  terminate_cause=m.TerminateCause.USER_REQUEST))
    return out


def assert_charged_once(factory: sessionmaker[DB], prefix: str, sessions: int,
                        seconds: int) -> None:
    """One radacct row per session, stopped, with all its time, charged that
    time exactly; nothing set aside."""
    with factory() as db:
        rows = list(db.scalars(select(Radacct).where(Radacct.acctsessionid.like(f"{prefix}%"))))
        charges: dict[int | None, int] = {session: int(total) for session, total in db.execute(
            select(CreditEntry.session_id, func.sum(CreditEntry.seconds))
            .where(CreditEntry.kind == CreditKind.charge).group_by(CreditEntry.session_id))}
        aside = db.scalar(select(func.count()).select_from(AccountingQuarantine))
    ids = Counter(r.acctsessionid for r in rows)
    assert len(ids) == sessions and set(ids.values()) == {1}, ids
    for row in rows:
        assert row.acctstoptime is not None, row.acctsessionid
        assert row.acctsessiontime == seconds == row.charged, (row.acctsessionid,
                                                                 row.acctsessiontime,
                                                                 row.charged)
        assert charges.get(row.radacctid) == -seconds, (row.acctsessionid,
                                                         charges.get(row.radacctid))
    assert aside == 0


def test_the_first_node_killed_mid_load_the_spool_drains_to_the_second_exactly_once(
        nodes: tuple[Server, Server], factory: sessionmaker[DB], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    first, second = nodes
    caplog.set_level(logging.INFO, logger="passerelle.gateway")
    client = RadiusClient([server(first), server(second)], NAS, timeout=0.3, tries=3,
                          max_timeout=1.0, dead_time=2.0, probe=True, checkin_budget=4.0)
    spool = Spool(tmp_path / "spool.db")
    load = records(SESSIONS, "FO")
    for record in load:
        spool.put(record)
    sender = SpoolSender(spool, client, interval=0.2)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while spool.pending() > len(load) * 2 // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.proc.kill()  # SIGKILL: no goodbye, whatever it was doing
        first.proc.wait()
        at_kill = spool.pending()
        assert 0 < at_kill < len(load), at_kill
        # A check-in meanwhile is answered by the second node, within its budget.
        started = time.monotonic()
        accepted = client.authenticate("alice@acme.example", seed.PASSWORD,
                                       mac="02:11:22:33:44:55", ipv4="198.51.100.99")
        accepted_in = time.monotonic() - started
        assert accepted.accepted and accepted_in < 4.5
        while spool.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = time.monotonic() - started
        assert spool.pending() == 0 and spool.rejected() == 0, (at_kill, second.logs())
    finally:
        sender.stop(10)
        spool.close()
    print(f"UDP: {at_kill} records left at the kill, check-in "
          f"{accepted_in:.2f} s, drained {drained:.1f} s after the kill")
    assert f"RADIUS server 127.0.0.1 ({first.auth_port}/{first.acct_port}) did not answer" \
        in caplog.text
    assert_charged_once(factory, "FO", SESSIONS, (INTERIMS + 1) * STEP)
    assert "Traceback" not in second.logs()


class AnswerEater:
    """A UDP relay in front of a node that forwards every request and drops
    every answer: the node stores the record, the box never hears of it."""

    def __init__(self, node: Server) -> None:
        self.node = ("127.0.0.1", node.acct_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.settimeout(0.1)
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.settimeout(0.1)
        self.forwarded = 0
        self.eaten = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._forward, daemon=True),
                         threading.Thread(target=self._eat, daemon=True)]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.front.getsockname()
        return str(host), int(port)

    def __enter__(self) -> AnswerEater:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.front.close()
        self.back.close()

    def _forward(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.front.recvfrom(4096)
            except TimeoutError:
                continue
            self.back.sendto(data, self.node)
            self.forwarded += 1

    def _eat(self) -> None:
        while not self._stop.is_set():
            try:
                self.back.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.eaten += 1


def test_a_record_stored_by_the_first_node_whose_answer_was_lost_is_charged_once(
        nodes: tuple[Server, Server], factory: sessionmaker[DB]) -> None:
    first, second = nodes
    with AnswerEater(first) as relay:
        # No dead time: every record goes to the first node, is stored there,
        # its answer lost, then the box sends it to the second.
        client = RadiusClient([server(relay.address), server(second)], NAS, timeout=0.3,
                              tries=2, max_timeout=0.6, dead_time=0.0)
        load = records(4, "LOST")
        for record in load:
            client.account(record)
        assert relay.forwarded >= len(load)
        # The first node answered each one: it answers only after its commit.
        assert relay.eaten >= len(load), first.logs()
    assert_charged_once(factory, "LOST", 4, (INTERIMS + 1) * STEP)


def test_the_same_records_at_both_nodes_at_once_are_charged_once(
        nodes: tuple[Server, Server], factory: sessionmaker[DB]) -> None:
    first, second = nodes
    clients = [RadiusClient([server(node)], NAS, timeout=1.0, tries=3, max_timeout=2.0)
               for node in nodes]
    load = records(12, "RACE")
    for record in load:
        # Both nodes get the record at the same instant: for a Start, both
        # find no session and insert; the database lets one in.
        gate = threading.Barrier(2)
        errors: list[BaseException] = []

        def send(client: RadiusClient, record: AccountingRecord = record,
                 gate: threading.Barrier = gate, errors: list[BaseException] = errors) -> None:
            try:
                gate.wait(5)
                client.account(record)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not errors, (errors, first.logs(), second.logs())
    assert_charged_once(factory, "RACE", 12, (INTERIMS + 1) * STEP)


NODES_CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "state"

[radius]
transport = "radsec"
radsec_port = {port}
local_port = {local}
{radius}

[[radius.servers]]
host = "127.0.0.1"
secret = "{secret}"

[[radius.servers]]
host = "127.0.0.2"
secret = "{secret}"
"""


@contextmanager
def radsec_box(db_url: str, factory: sessionmaker[DB], tmp_path: Path,
               radius: str) -> Iterator[tuple[RadiusClient, RadsecParts, Server, Server]]:
    """Two nodes over TLS (127.0.0.1 and 127.0.0.2, one database) and the
    box as `passerelle gateway run` builds it for RadSec: its client and
    one radsecproxy per node, started; ``radius``: more [radius] keys."""
    tool("radsecproxy", "radsecproxy")
    seed.build(factory, gateway_ip="192.0.2.77")  # over TLS the certificate tells who
    port, local = free_port(), free_udp_ports(2)
    cfg = enrolled_config(factory, tmp_path, NODES_CONFIG, port=port, local=local,
                          radius=radius)
    first, second = (start_server(db_url, tmp_path, extra=(
        "--listen", host, "--radsec-port", str(port), "--radsec-name", host))
        for host in ("127.0.0.1", "127.0.0.2"))
    client = radius_client(cfg)
    # radsec_parts needs only the daemon's Sessions side (Disconnect, CoA).
    parts = radsec_parts(cfg, NAS, Sessions())
    assert parts is not None
    parts.start()
    try:
        yield client, parts, first, second
    finally:
        for node in (first, second):
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
        parts.stop()
        first.stop()
        second.stop()


def test_through_radsecproxy_the_first_node_killed_mid_load_drains_to_the_second(
        db_url: str, factory: sessionmaker[DB], key_file: Path, tmp_path: Path) -> None:
    """The same with RadSec, as an enrolled box runs: the box's client speaks
    UDP to one radsecproxy per node on the loopback, each holds TLS to its
    node; the client fails over from the first proxy to the second and
    retries what it did not get an answer for."""
    with radsec_box(db_url, factory, tmp_path,
                    "timeout = 0.5\ntries = 3\ndead_time = 1") as (client, _, first, second):
        spool = Spool(tmp_path / "spool.db")
        load = records(SESSIONS, "RS")
        for record in load:
            spool.put(record)
        sender = SpoolSender(spool, client, interval=0.2)
        try:
            sender.start()
            deadline = time.monotonic() + 120
            while spool.pending() > len(load) * 2 // 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            first.proc.kill()
            first.proc.wait()
            at_kill = spool.pending()
            assert 0 < at_kill < len(load), at_kill
            killed = time.monotonic()
            while spool.pending() and time.monotonic() < deadline:
                time.sleep(0.05)
            drained = time.monotonic() - killed
            assert spool.pending() == 0, (at_kill, second.logs())
        finally:
            sender.stop(10)
            spool.close()
        print(f"radsecproxy per node: {at_kill} records left at the kill, drained in "
              f"{drained:.1f} s")
        assert "radsec: 127.0.0.1:" in second.logs()
    assert_charged_once(factory, "RS", SESSIONS, (INTERIMS + 1) * STEP)


BUDGET = 2.0  # the check-in budget: radius.timeout with RadSec
SLACK = 0.6  # a loaded test machine
HANG = 14.0  # seconds node 1 stays hung: more than two of its dead times
DEAD_TIME = 5.0


def test_through_radsecproxy_a_hung_node_costs_one_share_then_nothing(
        db_url: str, factory: sessionmaker[DB], key_file: Path, tmp_path: Path) -> None:
    """Node 1 hangs (SIGSTOP: its connections stay up, nothing answers) while
    the spool drains and people check in, the box as `passerelle gateway
    run` builds it for RadSec. The box's client gives node 1's proxy its
    share of the first check-in's budget, marks it dead and asks node 2:
    no check-in is refused, none waits more than its budget, and while node
    1 is dead they go to node 2 at once (its probe, over TLS to the node,
    costs a fraction of a share each dead time). The spool goes on with node
    2. Node 1 back (SIGCONT) answers the probe and is used again. Every
    session is charged once, though node 1 stores what it held when woken."""
    with radsec_box(db_url, factory, tmp_path,
                    f"tries = 2\ndead_time = {DEAD_TIME:g}") as (client, parts, first, second):
        for _ in range(5):
            try:
                assert check_in(client)
                break
            except NoServer:
                time.sleep(1)
        spool = Spool(tmp_path / "spool.db")
        load = records(SESSIONS, "HUNG")
        for record in load:
            spool.put(record)
        sender = SpoolSender(spool, client, interval=0.2)
        tries: list[tuple[float, bool, float]] = []  # since the hang, accepted, took
        back: list[tuple[bool, float]] = []  # node 1 back: accepted, took
        try:
            sender.start()
            deadline = time.monotonic() + 120
            while spool.pending() > len(load) * 2 // 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            first.proc.send_signal(signal.SIGSTOP)
            hung = time.monotonic()
            at_hang = spool.pending()
            drained = None
            while time.monotonic() - hung < HANG:
                tries.append((time.monotonic() - hung, *timed_check_in(client)))
                if drained is None and not spool.pending():
                    drained = time.monotonic() - hung
                time.sleep(0.3)
            while spool.pending() and time.monotonic() < deadline:
                time.sleep(0.05)
            drained = drained or time.monotonic() - hung
            assert spool.pending() == 0, (at_hang, second.logs())
            first.proc.send_signal(signal.SIGCONT)
            woken = time.monotonic()
            while time.monotonic() - woken < DEAD_TIME + 2:
                back.append(timed_check_in(client))
                time.sleep(0.3)
            # Node 2 hangs in turn: check-ins now go to node 1, first in order,
            # without waiting for node 2 at all.
            second.proc.send_signal(signal.SIGSTOP)
            only_first = [timed_check_in(client) for _ in range(3)]
            second.proc.send_signal(signal.SIGCONT)
        finally:
            sender.stop(10)
            spool.close()
        proxies_alive = all(p.alive() for p in parts.proxies)
        # What node 1 held when it hung, it stores when woken: let it finish.
        time.sleep(2)
    first_took = tries[0][2]
    later = sorted(took for _, _, took in tries[1:])
    print(f"hung node 1: {len(tries)} check-ins over {HANG:g} s, none refused; the first "
          f"took {first_took:.2f} s, then median {later[len(later) // 2] * 1000:.0f} ms, "
          f"max {later[-1]:.2f} s; spool ({at_hang} records left at the hang) drained "
          f"{drained:.1f} s after it; node 1 back: {len(back)} check-ins, max "
          f"{max(t for _, t in back):.2f} s; node 2 then hung: "
          f"{', '.join(f'{t * 1000:.0f} ms' for _, t in only_first)}")
    assert proxies_alive
    refused = [t for t in tries if not t[1]] + [(0.0, *b) for b in back if not b[0]]
    assert not refused, (tries, back)
    assert all(took < BUDGET + SLACK for _, _, took in tries), tries
    assert all(took < BUDGET + SLACK for _, took in back), back
    # The first pays node 1's share (half the budget); the others at most a
    # TLS probe of node 1 (a first send's wait, under a third of a share),
    # never the share itself.
    assert first_took > BUDGET / 2 - 0.2, tries
    assert later[len(later) // 2] < 0.25 and later[-1] < BUDGET / 2, tries
    assert all(ok and took < 0.5 for ok, took in only_first), only_first
    assert_charged_once(factory, "HUNG", SESSIONS, (INTERIMS + 1) * STEP)


def timed_check_in(client: RadiusClient) -> tuple[bool, float]:
    started = time.monotonic()
    try:
        accepted = check_in(client)
    except NoServer:
        accepted = False
    return accepted, time.monotonic() - started


def check_in(client: RadiusClient) -> bool:
    return client.authenticate("alice@acme.example", seed.PASSWORD, mac="02:11:22:33:44:66",
                               ipv4="198.51.100.98").accepted
