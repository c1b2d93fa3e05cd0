"""An accounting batch on the worker's own engine (server.make_engine:
on PostgreSQL the psycopg cursor for the batch's statements and generic
plans): a reply only for what was committed, and a record the database
refuses costs the others nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from passerelle.radius import server
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import ACCT, Datagram, Handler, _constraint
from passerelle.radius.models import CreditEntry, CreditKind, Radacct
from tests.radius import seed
from tests.radius.peers import RawClient

GATEWAY = ("127.0.0.1", 40000)


@pytest.fixture
def worker_engine(db_url: str, world: seed.World) -> Iterator[Engine]:
    engine = server.make_engine(db_url)
    yield engine
    engine.dispose()


# Any: each attribute's value is of the type the dictionary gives it.
def interims(*sessions: tuple[str, dict[str, Any]]) -> list[Datagram]:
    maker = RawClient(1, seed.SECRET.encode())  # builds packets; nothing is sent
    try:
        return [Datagram(maker.accounting_request(
                    "Interim-Update", session, User_Name="alice@acme.example",
                    Acct_Session_Time=60, **attrs).RequestPacket(), GATEWAY, ACCT)
                for session, attrs in sessions]
    finally:
        maker.close()


def ledger(engine: Engine, person: int) -> list[tuple[str, int]]:
    """(session, seconds charged) of each charge line of ``person``."""
    with make_sessionmaker(engine)() as db:
        return sorted((s, -int(n)) for s, n in db.execute(
            select(Radacct.acctsessionid, CreditEntry.seconds)
            .join(Radacct, CreditEntry.session_id == Radacct.radacctid)
            .where(CreditEntry.person_id == person, CreditEntry.kind == CreditKind.charge)))


def test_a_refused_record_leaves_the_others_charged_once(worker_engine: Engine,
                                                         world: seed.World) -> None:
    """PostgreSQL refuses a NUL in text (SQLite stores it): the batch is
    retried a record at a time, and the others are charged once, not once
    per attempt; the same batch again charges nothing more."""
    batch = interims(("before", {}), ("nul", {"Calling_Station_Id": "02-00\x00-00"}),
                     ("after", {}))
    handler = Handler(make_sessionmaker(worker_engine, autoflush=False))
    replies, _ = handler.process(batch)
    assert len(replies) == 3  # the refused one is set aside, and answered
    refused = worker_engine.dialect.name == "postgresql"
    alice = world.people["alice"]
    expected = [("after", 60), ("before", 60)] + ([] if refused else [("nul", 60)])
    assert ledger(worker_engine, alice) == sorted(expected)
    # Fresh copies (new authenticators: not the duplicate cache's replies).
    again = interims(("before", {}), ("after", {}))
    assert len(handler.process(again)[0]) == 2
    assert ledger(worker_engine, alice) == sorted(expected)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_no_reply_before_the_commit(worker_engine: Engine, world: seed.World) -> None:
    """The database refuses the batch at COMMIT (a deferred constraint
    trigger, checked only then): every statement of the batch and of its
    record-by-record retry went through, yet nothing is answered, so the
    box keeps its records and sends them again. PostgreSQL only: SQLite has
    no deferred triggers."""
    assert worker_engine.dialect.name == "postgresql"
    with worker_engine.begin() as conn:
        conn.execute(text("CREATE FUNCTION refuse_at_commit() RETURNS trigger "
                          "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; "
                          "END $$"))
        conn.execute(text("CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON radacct "
                          "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                          "WHEN (NEW.acctsessionid = 'poison') "
                          "EXECUTE FUNCTION refuse_at_commit()"))
    try:
        handler = Handler(make_sessionmaker(worker_engine, autoflush=False))
        replies, _ = handler.process(interims(("before", {}), ("poison", {}), ("after", {})))
        assert replies == []
        with make_sessionmaker(worker_engine)() as db:
            assert db.scalar(select(func.count()).select_from(Radacct)) == 0
            assert db.scalar(select(func.count()).select_from(CreditEntry)
                             .where(CreditEntry.kind == CreditKind.charge)) == 0
        # Sent again without the poison: answered, once committed, and charged once.
        replies, _ = handler.process(interims(("before", {}), ("after", {})))
        assert len(replies) == 2
        assert ledger(worker_engine, world.people["alice"]) == [("after", 60), ("before", 60)]
    finally:
        with worker_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_at_commit ON radacct"))
            conn.execute(text("DROP FUNCTION refuse_at_commit()"))



def test_a_duplicate_session_is_told_from_a_crash(worker_engine: Engine,
                                                  world: seed.World) -> None:
    """What two nodes storing the same new session at once meet (the unique
    acctuniqueid) is logged as a race, in one line; any other error keeps
    its traceback. Both raised by the real database."""
    handler = Handler(make_sessionmaker(worker_engine, autoflush=False))
    handler.process(interims(("raced", {})))
    with pytest.raises(Exception) as duplicate, worker_engine.begin() as conn:
        conn.execute(text("INSERT INTO radacct (acctsessionid, acctuniqueid, username, "
                          "nasipaddress) SELECT acctsessionid, acctuniqueid, username, "
                          "nasipaddress FROM radacct"))
    assert _constraint(duplicate.value)
    with pytest.raises(Exception) as other, worker_engine.begin() as conn:
        conn.execute(text("SELECT no_such_column FROM radacct"))
    assert not _constraint(other.value)
