"""A gateway's last contact: Status-Server (RFC 5997) is answered on both
ports, and any authenticated request from a gateway writes
``gateway.last_seen``, at most once a minute; on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import ACCT, AUTH, Contacts, Datagram, Handler
from passerelle.radius.models import Gateway

from . import seed
from .conftest import Server

SECRET = seed.SECRET.encode()
GATEWAY = ("127.0.0.1", 40000)
T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def last_seen(factory: sessionmaker[DB]) -> datetime | None:
    with factory() as db:
        return db.scalars(select(Gateway.last_seen)).one()


def status_server(secret: bytes = SECRET) -> bytes:
    return m.StatusServer(nas_identifier="axis-gw").encode(secret)


def accounting_start(session: str) -> bytes:
    return m.AccountingRequest(status=m.AcctStatus.START, session_id=session,
                               user_name="alice@acme.example",
                               nas_identifier="axis-gw").encode(SECRET)


def test_contacts_are_due_once_per_interval() -> None:
    contacts = Contacts(60)
    assert contacts.due([3, 1, 3], T0) == [1, 3]
    assert contacts.due([1, 3, 2], T0 + 59) == [2]
    assert contacts.due([1, 2], T0 + 60) == [1]
    contacts.forget([1])  # its write was rolled back
    assert contacts.due([1, 2], T0 + 61) == [1]


def test_status_server_is_answered_on_both_ports(engine: Engine, world: seed.World) -> None:
    handler = Handler(make_sessionmaker(engine), clock=Clock())
    sent = [status_server(), status_server()]
    replies, _ = handler.process([Datagram(sent[0], GATEWAY, AUTH),
                                  Datagram(sent[1], GATEWAY, ACCT)])
    by_port = {reply.port: reply.data for reply in replies}
    # RFC 5997 section 3: Access-Accept on the authentication port,
    # Accounting-Response on the accounting port, both signed.
    auth = m.decode_reply(by_port[AUTH], SECRET, sent[0])
    acct = m.decode_reply(by_port[ACCT], SECRET, sent[1])
    assert isinstance(auth, m.AccessAccept) and auth.message_authenticator
    assert isinstance(acct, m.AccountingResponse) and acct.message_authenticator


def test_last_seen_is_written_at_most_once_a_minute(engine: Engine, world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    clock = Clock()
    handler = Handler(factory, clock=clock)
    assert last_seen(factory) is None
    handler.process([Datagram(status_server(), GATEWAY, AUTH)])
    assert last_seen(factory) == at(T0)
    # Within the minute: not written again, whatever the request.
    clock.now = T0 + 30
    handler.process([Datagram(accounting_start("hb-1"), GATEWAY, ACCT)])
    assert last_seen(factory) == at(T0)
    # A minute later, any authenticated request writes it.
    clock.now = T0 + 60
    replies, _ = handler.process([Datagram(accounting_start("hb-2"), GATEWAY, ACCT),
                                  Datagram(status_server(), GATEWAY, AUTH)])
    assert len(replies) == 2
    assert last_seen(factory) == at(T0 + 60)


def test_what_is_not_authenticated_is_not_a_contact(engine: Engine, world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    handler = Handler(factory, clock=Clock())
    wrong = status_server(b"not-the-secret")
    bare = bytearray(status_server())
    bare[20:38] = bytes([24, 18]) + bytes(16)  # the MA replaced by a State
    replies, _ = handler.process([Datagram(wrong, GATEWAY, AUTH),
                                  Datagram(bytes(bare), GATEWAY, AUTH)])
    assert replies == []
    assert last_seen(factory) is None


# Row locks are PostgreSQL's (SQLite has one writer at a time): these two run
# on PostgreSQL only.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_row_another_worker_is_writing_is_skipped_not_waited_for(engine: Engine,
                                                                   world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    handler = Handler(factory, clock=Clock())
    done: list[int] = []
    with factory() as other, other.begin():
        # Another worker's transaction holds the gateway row.
        other.execute(select(Gateway).with_for_update())
        thread = threading.Thread(target=lambda: done.append(
            len(handler.process([Datagram(status_server(), GATEWAY, AUTH)])[0])))
        thread.start()
        thread.join(timeout=10)
        waited = thread.is_alive()
    thread.join()
    assert not waited and done == [1]
    assert last_seen(factory) is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_batch_inserting_rows_of_the_gateway_does_not_stop_the_write(engine: Engine,
                                                                       world: seed.World) -> None:
    factory = make_sessionmaker(engine)
    handler = Handler(factory, clock=Clock())
    with factory() as other, other.begin():
        # What an uncommitted INSERT with a foreign key to the gateway holds.
        other.execute(select(Gateway).with_for_update(read=True, key_share=True))
        thread = threading.Thread(target=handler.process,
                                  args=([Datagram(status_server(), GATEWAY, AUTH)],))
        thread.start()
        thread.join(timeout=10)
        waited = thread.is_alive()
    thread.join()
    assert not waited
    assert last_seen(factory) == at(T0)


@pytest.mark.integration
def test_status_server_over_udp_records_the_contact(server: Server, engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    with factory() as db, db.begin():
        db.execute(update(Gateway).values(last_seen=None))
    before = time.time()
    sent = status_server()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(sent, ("127.0.0.1", server.auth_port))
        answer = sock.recv(4096)
    assert isinstance(m.decode_reply(answer, SECRET, sent), m.AccessAccept)
    seen = last_seen(factory)
    assert seen is not None
    assert before - 2 <= seen.replace(tzinfo=UTC).timestamp() <= time.time() + 2
