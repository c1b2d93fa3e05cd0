"""Finding 10: argon2 runs outside the database transaction, and password
attempts are limited per login and per gateway (fixed clock)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection, Engine

from passerelle.radius import passwords
from passerelle.radius.attempts import Attempts, Limit
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import ACCT, AUTH, Datagram, Handler, HandlerSettings
from passerelle.radius.models import Radacct

from . import seed
from .peers import RawClient

ACCEPT, REJECT = 2, 3
NOW = 1_780_000_000.0


# -- the pure counts ---------------------------------------------------------------


def test_a_login_is_refused_after_its_failures_until_the_window_slides() -> None:
    limit = Attempts(per_login=3, per_gateway=100, window=60.0)
    assert limit.refused("alice", 1, NOW) is None
    assert limit.failed("alice", 1, NOW) == []
    assert limit.failed("alice", 1, NOW + 10) == []
    assert limit.failed("alice", 1, NOW + 20) == [Limit.LOGIN]
    assert limit.refused("alice", 1, NOW + 21) is Limit.LOGIN
    assert limit.refused("alice", 2, NOW + 21) is Limit.LOGIN  # from any gateway
    assert limit.refused("bob", 1, NOW + 21) is None  # others are not affected
    # The first failure leaves the window: one more attempt may be verified.
    assert limit.refused("alice", 1, NOW + 60) is None
    assert limit.failed("alice", 1, NOW + 60) == [Limit.LOGIN]
    assert limit.refused("alice", 1, NOW + 61) is Limit.LOGIN
    # Never for good: once the window is past, all is forgotten.
    assert limit.refused("alice", 1, NOW + 200) is None


def test_a_success_clears_its_logins_failures_not_its_gateways() -> None:
    limit = Attempts(per_login=2, per_gateway=3, window=60.0)
    limit.failed("alice", 1, NOW)
    limit.succeeded("alice")
    assert limit.failed("alice", 1, NOW + 1) == []
    assert limit.failed("bob", 1, NOW + 2) == [Limit.GATEWAY]
    assert limit.refused("carol", 1, NOW + 3) is Limit.GATEWAY
    assert limit.refused("carol", 2, NOW + 3) is None  # another gateway


def test_the_logins_remembered_are_bounded() -> None:
    limit = Attempts(per_login=5, per_gateway=10**9, window=60.0, logins=100)
    for i in range(10_000):
        limit.failed(f"guess-{i}", 1, NOW)
    assert len(limit._by_login) <= 100
    with pytest.raises(ValueError):
        Attempts(per_login=0)


# -- the handler, with a real database -----------------------------------------------


@pytest.fixture
def maker() -> Iterator[RawClient]:
    client = RawClient(1, seed.SECRET.encode())  # builds packets; nothing is sent
    yield client
    client.close()


# A source port per request: codes() tells the replies apart by it (the
# Identifier is random, and two of a batch may be the same).
_PORTS = itertools.count(40000)


def auth(maker: RawClient, login: str, password: str) -> Datagram:
    pkt = maker.access_request(login, password)
    return Datagram(pkt.RequestPacket(), ("127.0.0.1", next(_PORTS)), AUTH)


def codes(handler: Handler, batch: list[Datagram]) -> list[int]:
    replies, _ = handler.process(batch)
    by_port = {reply.addr: reply.data[0] for reply in replies}
    return [by_port[d.addr] for d in batch if d.addr in by_port]


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> Iterator[list[bool]]:
    """Each argon2 verification the centre makes: whether a transaction was
    open on the database at that moment (as the engine reports it)."""
    open_now: set[int] = set()

    def began(conn: Connection) -> None:
        open_now.add(id(conn))

    def ended(conn: Connection) -> None:
        open_now.discard(id(conn))

    event.listen(engine, "begin", began)
    event.listen(engine, "commit", ended)
    event.listen(engine, "rollback", ended)
    seen: list[bool] = []
    real = passwords.verify_password

    def verify(password_hash: str, password: str) -> bool:
        seen.append(bool(open_now))
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", verify)
    yield seen
    event.remove(engine, "begin", began)
    event.remove(engine, "commit", ended)
    event.remove(engine, "rollback", ended)


def test_no_password_is_verified_inside_a_transaction(engine: Engine, world: seed.World,
                                                      maker: RawClient,
                                                      verifications: list[bool]) -> None:
    handler = Handler(make_sessionmaker(engine), clock=lambda: NOW)
    start = maker.accounting_request("Start", "s-1", User_Name="alice@acme.example")
    acct = Datagram(start.RequestPacket(), ("127.0.0.1", 39999), ACCT)
    batch = [acct, *(auth(maker, "alice@acme.example", f"wrong-{i}") for i in range(3)),
             auth(maker, "nobody@acme.example", "guess"),
             auth(maker, "alice@acme.example", seed.PASSWORD)]
    assert codes(handler, batch) == [5, REJECT, REJECT, REJECT, REJECT, ACCEPT]
    # Five verifications, the unknown login's included; none in a transaction.
    assert verifications == [False] * 5
    with make_sessionmaker(engine)() as db:
        assert db.scalar(select(func.count()).select_from(Radacct)) == 1


def test_failed_attempts_are_limited_per_login_then_the_owner_gets_in(
        engine: Engine, world: seed.World, maker: RawClient, verifications: list[bool],
        caplog: pytest.LogCaptureFixture) -> None:
    now = [NOW]
    settings = HandlerSettings(attempts_per_login=3, attempts_per_gateway=100,
                               attempts_window=60.0)
    handler = Handler(make_sessionmaker(engine), settings, clock=lambda: now[0])
    alice = "alice@acme.example"
    with caplog.at_level(logging.WARNING, logger="passerelle.radius"):
        assert codes(handler, [auth(maker, alice, f"guess-{i}") for i in range(3)]) \
            == [REJECT] * 3
    assert "3 failed passwords for login 'alice@acme.example'" in caplog.text
    assert len(verifications) == 3
    now[0] += 30
    # The right password, refused without being verified: no guess gets through.
    assert codes(handler, [auth(maker, alice, seed.PASSWORD)]) == [REJECT]
    assert len(verifications) == 3
    # The same person under another spelling of the login is the same person.
    assert codes(handler, [auth(maker, "Alice@ACME.example", seed.PASSWORD)]) == [REJECT]
    assert len(verifications) == 3
    # An unknown login is limited the same way (and costs no verification then).
    assert codes(handler, [auth(maker, "nobody@acme.example", f"g{i}") for i in range(5)]) \
        == [REJECT] * 5
    assert len(verifications) == 6
    now[0] += 31  # the window has slid past the guesses: the owner gets in
    assert codes(handler, [auth(maker, alice, seed.PASSWORD)]) == [ACCEPT]


def test_failed_attempts_are_limited_per_gateway(engine: Engine, world: seed.World,
                                                 maker: RawClient,
                                                 verifications: list[bool]) -> None:
    now = [NOW]
    settings = HandlerSettings(attempts_per_login=3, attempts_per_gateway=4,
                               attempts_window=60.0)
    handler = Handler(make_sessionmaker(engine), settings, clock=lambda: now[0])
    sprayed = [auth(maker, f"user{i}@acme.example", "123456") for i in range(6)]
    assert codes(handler, sprayed) == [REJECT] * 6
    assert len(verifications) == 4
    assert codes(handler, [auth(maker, "alice@acme.example", seed.PASSWORD)]) == [REJECT]
    now[0] += 61
    assert codes(handler, [auth(maker, "alice@acme.example", seed.PASSWORD)]) == [ACCEPT]
