"""The box's dead-server rule (RFC 5997), with a fixed clock for dead time
and real UDP peers: a dead server is probed with Status-Server before it
gets a request again, and a silent centre costs a check-in at most one
budget, then nothing while it stays dead. With a prober (a RadSec box,
whose servers are radsecproxies that answer a Status-Server themselves),
the prober asks the node in place of that Status-Server."""

from __future__ import annotations

import time

import pytest

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NoServer
from passerelle.radius import messages as m
from tests.gateway.test_radclient import IP, MAC, Peer, accept, client, peer
from tests.gateway.test_radclient import peers as peers  # the fixture, by its name

STATUS_SERVER = 12


def codes(p: Peer) -> list[int]:
    return [d[0] for d in p.received]


def test_a_dead_server_gets_a_status_server_before_any_request(peers: list[Peer]) -> None:
    silent, backup = peer(peers, None), peer(peers, accept)
    now = [100.0]
    c = client(silent.server(), backup.server(), dead_time=30.0, clock=lambda: now[0],
               probe=True)
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(silent) == [1, 1]  # two tries, then dead
    now[0] += 10
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(silent) == [1, 1]  # dead: not even probed
    now[0] += 20
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(silent) == [1, 1, STATUS_SERVER]  # probed, no request; still silent
    silent.respond = accept  # it comes back
    now[0] += 29
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(silent) == [1, 1, STATUS_SERVER]  # dead for another dead time
    now[0] += 1
    before = len(backup.received)
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(silent) == [1, 1, STATUS_SERVER, STATUS_SERVER, 1]  # answered: alive
    assert len(backup.received) == before


def test_accounting_also_waits_for_the_probe(peers: list[Peer]) -> None:
    p = peer(peers, None)
    now = [0.0]
    c = client(p.server(), dead_time=5.0, clock=lambda: now[0], probe=True)
    record = AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=time.time())
    with pytest.raises(NoServer):
        c.account(record)
    p.respond = accept
    now[0] += 5
    c.account(record)
    assert codes(p) == [4, 4, STATUS_SERVER, 4]


def test_a_silent_centre_costs_a_check_in_one_budget_then_nothing(peers: list[Peer]) -> None:
    a, b = peer(peers, None), peer(peers, None)
    now = [0.0]
    c = client(a.server(), b.server(), timeout=2.0, tries=5, max_timeout=16.0,
               dead_time=30.0, clock=lambda: now[0], probe=True, checkin_budget=0.8)
    started = time.monotonic()
    with pytest.raises(NoServer):
        c.authenticate("alice", "pw", mac=MAC, ipv4=IP)
    took = time.monotonic() - started
    # Both servers asked (failover) within one budget, not 3 tries x 2 servers (28 s).
    assert 0.6 < took < 1.2, took
    assert (codes(a), codes(b)) == ([1, 1], [1, 1])
    started = time.monotonic()
    with pytest.raises(NoServer):
        c.authenticate("alice", "pw", mac=MAC, ipv4=IP)
    assert time.monotonic() - started < 0.1  # every server dead: no wait at all
    assert (len(a.received), len(b.received)) == (2, 2)


def test_the_budget_is_shared_so_the_second_server_still_answers(peers: list[Peer]) -> None:
    silent, backup = peer(peers, None), peer(peers, accept)
    c = client(silent.server(), backup.server(), timeout=2.0, tries=5, max_timeout=16.0,
               probe=True, checkin_budget=1.0)
    started = time.monotonic()
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert time.monotonic() - started < 0.9  # half the budget on the silent one


def test_a_budget_must_be_positive(peers: list[Peer]) -> None:
    with pytest.raises(ValueError, match="checkin_budget"):
        client(peer(peers, None).server(), checkin_budget=0.0)


class Node:
    """What a prober sees of the node behind a server: it answers or not.
    Each call is recorded (the server asked about, the wait it was given)."""

    def __init__(self) -> None:
        self.answers = False
        self.asked: list[tuple[RadiusServer, float]] = []

    def __call__(self, server: RadiusServer, timeout: float) -> bool:
        self.asked.append((server, timeout))
        return self.answers


def test_a_prober_asks_the_node_in_place_of_the_server_port(peers: list[Peer]) -> None:
    """A RadSec box: the server (radsecproxy) would answer a Status-Server
    itself, so a dead one is probed by asking its node (the prober)."""
    hung, backup = peer(peers, None), peer(peers, accept)
    node = Node()
    now = [100.0]
    c = client(hung.server(), backup.server(), timeout=2.0, tries=5, max_timeout=16.0,
               dead_time=30.0, clock=lambda: now[0], probe=True, checkin_budget=1.0,
               prober=node)
    started = time.monotonic()
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    first = time.monotonic() - started
    assert codes(hung) == [1, 1] and node.asked == []  # its share, then dead; not probed
    assert first < 0.95, first  # half the budget on the hung one, the rest for the backup
    started = time.monotonic()
    now[0] += 29
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert time.monotonic() - started < 0.3  # dead: straight to the backup
    assert codes(hung) == [1, 1] and node.asked == []
    now[0] += 1
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    # Its dead time over: the node is asked, with the wait of a first send
    # within its share of the budget; silent, and nothing went to the port.
    assert codes(hung) == [1, 1] and len(node.asked) == 1
    server, wait = node.asked[0]
    assert server == hung.server() and 0.1 < wait < 0.31, wait
    hung.respond = accept
    node.answers = True
    now[0] += 29
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert len(node.asked) == 1  # dead for another dead time
    now[0] += 1
    before = len(backup.received)
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    # The node answered: the server gets the request again (never a
    # Status-Server of its own), and the backup nothing.
    assert codes(hung) == [1, 1, 1] and len(node.asked) == 2
    assert len(backup.received) == before
    now[0] += 100
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert codes(hung) == [1, 1, 1, 1] and len(node.asked) == 2  # alive: no probe


def test_accounting_asks_the_prober_too_and_without_probe_it_is_never_asked(
        peers: list[Peer]) -> None:
    p = peer(peers, None)
    node = Node()
    now = [0.0]
    c = client(p.server(), dead_time=5.0, clock=lambda: now[0], probe=True, prober=node)
    record = AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=time.time())
    with pytest.raises(NoServer):
        c.account(record)
    p.respond = accept
    now[0] += 5
    with pytest.raises(NoServer):  # the port would answer now, but the node does not
        c.account(record)
    assert codes(p) == [4, 4] and [w for _, w in node.asked] == [0.4]
    node.answers = True
    now[0] += 5
    c.account(record)
    assert codes(p) == [4, 4, 4] and len(node.asked) == 2
    # status_server = false: the dead time alone decides, nobody is asked.
    quiet = Node()
    q = client(p.server(), dead_time=5.0, clock=lambda: now[0], probe=False, prober=quiet)
    q.account(record)
    assert quiet.asked == []
