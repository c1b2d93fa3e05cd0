"""The balance the database keeps (credit_balance, migration 0013) is the
sum of the ledger after every way lines are written, changed or removed,
on SQLite and PostgreSQL: the RADIUS server's batch statement, the ORM,
a person's erasure, a session's removal, and the migration's first sum."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import cast

from sqlalchemy import Engine, Table, delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from passerelle.radius import ledger, store
from passerelle.radius.db import alembic_config
from passerelle.radius.models import (
    Company,
    CreditBalance,
    CreditEntry,
    CreditKind,
    Person,
    Radacct,
)

T0 = datetime(2026, 12, 2, 9, 0, 0)
LEDGER = cast(Table, CreditEntry.__table__)


def _people(factory: sessionmaker[Session], n: int) -> list[int]:
    with factory() as db, db.begin():
        company = Company(name="Acme")
        people = [Person(login=f"p{i}", company=company, password_hash="x") for i in range(n)]
        db.add_all(people)
        db.flush()
        return [p.id for p in people]


def _sums(db: Session) -> dict[int, int]:
    return {int(p): int(s) for p, s in db.execute(
        select(CreditEntry.person_id, func.sum(CreditEntry.seconds))
        .group_by(CreditEntry.person_id))}


def _kept(db: Session) -> dict[int, int]:
    return {int(p): int(s) for p, s in db.execute(
        select(CreditBalance.person_id, func.sum(CreditBalance.seconds))
        .group_by(CreditBalance.person_id)) if s}


def _line(person: int, seconds: int, session: int | None = None) -> dict[str, object]:
    kind = CreditKind.topup if seconds > 0 else CreditKind.charge
    return {"person_id": person, "seconds": seconds, "kind": kind.value,
            "session_id": session, "created": T0, "note": ""}


def test_every_write_keeps_the_balance_equal_to_the_ledger(factory: sessionmaker[Session]
                                                          ) -> None:
    alice, bob, carol = _people(factory, 3)
    with factory() as db, db.begin():
        assert ledger.balance(db, alice) == 0  # no line yet: no row, 0
        ledger.top_up(db, alice, 3600, T0)
        ledger.top_up(db, bob, 600, T0)
        db.flush()
        assert ledger.balance(db, alice) == 3600  # in the same transaction
    with factory() as db, db.begin():
        # Many lines for several people in one statement, as a batch writes them.
        store.insert_rows(db, LEDGER, [
            _line(bob, -100), _line(alice, -60), _line(bob, -50), _line(alice, -40)])
    with factory() as db, db.begin():
        assert ledger.balance(db, alice) == 3500 and ledger.balance(db, bob) == 450
        assert _kept(db) == _sums(db)
        # A line changed (never done by the product, kept right all the same).
        first = db.scalars(select(CreditEntry.id).where(CreditEntry.person_id == bob)
                           .order_by(CreditEntry.id)).first()
        db.execute(update(CreditEntry).where(CreditEntry.id == first)
                   .values(seconds=700, person_id=carol))
        assert _kept(db) == _sums(db) == {alice: 3500, bob: -150, carol: 700}
        # Lines removed.
        db.execute(delete(CreditEntry).where(CreditEntry.person_id == bob))
        assert ledger.balance(db, bob) == 0
        assert _kept(db) == _sums(db)
    with factory() as db:
        found = dict(store.balances_of(db, {alice, bob, carol}))
        assert found == {alice: 3500, bob: 0, carol: 700}
        accounts = store.find_accounts(db, ["p0", "p2"])
        assert accounts["p0"].facts.balance == 3500 and accounts["p2"].facts.balance == 700


def test_an_erased_person_takes_their_balance_and_a_removed_session_changes_none(
        factory: sessionmaker[Session]) -> None:
    alice, bob = _people(factory, 2)
    with factory() as db, db.begin():
        session = Radacct(acctsessionid="s1", acctuniqueid="u1", nasipaddress="192.0.2.1",
                          person_id=alice, charged=300)
        db.add(session)
        db.flush()
        store.insert_rows(db, LEDGER, [
            _line(alice, 3600), _line(alice, -300, session.radacctid), _line(bob, 900)])
    with factory() as db, db.begin():
        # The session goes: its ledger line stays, without it (SET NULL).
        db.execute(delete(Radacct))
    with factory() as db, db.begin():
        assert db.scalar(select(func.count()).select_from(CreditEntry)
                         .where(CreditEntry.session_id.is_not(None))) == 0
        assert ledger.balance(db, alice) == 3300
        # Erasure: the person's lines and balance go (CASCADE), nobody else's.
        db.execute(delete(Person).where(Person.id == alice))
    with factory() as db:
        assert _kept(db) == _sums(db) == {bob: 900}
        assert db.scalar(select(func.count(func.distinct(CreditBalance.person_id)))) == 1


def test_the_migration_sums_the_ledger_it_finds(engine: Engine,
                                                factory: sessionmaker[Session]) -> None:
    from alembic import command

    alice, bob = _people(factory, 2)
    with factory() as db, db.begin():
        store.insert_rows(db, LEDGER, [
            _line(alice, 3600), _line(alice, -120), _line(bob, 60)])
    config = alembic_config(engine)
    command.downgrade(config, "0012")
    try:
        with engine.begin() as conn:
            # Written before the balance was kept: the upgrade must count it.
            conn.execute(text("INSERT INTO credit_entry (person_id, seconds, kind, created, note)"
                              " VALUES (:p, -1000, 'charge', :t, '')"), {"p": bob, "t": T0})
    finally:
        command.upgrade(config, "head")
    with factory() as db:
        assert _kept(db) == _sums(db) == {alice: 3480, bob: -940}


def test_two_connections_charge_one_person_without_waiting(engine: Engine,
                                                           factory: sessionmaker[Session]
                                                           ) -> None:
    """PostgreSQL: a connection adds to its own shard's row, so a second
    worker charging the same person does not wait for the first one's
    commit (with one row a person it did: a batch's latency became two)."""
    if engine.dialect.name != "postgresql":
        return  # SQLite has one writer at a time: nothing to wait for
    (alice,) = _people(factory, 1)
    insert = text("INSERT INTO credit_entry (person_id, seconds, kind, created, note)"
                  " VALUES (:p, :s, 'charge', :t, '')")
    # The migration's shard count: a later migration that changes it must change it there.
    shards = importlib.import_module(
        "passerelle.radius.migrations.versions.0013_credit_balance").SHARDS
    with engine.connect() as first:
        shard = first.execute(text(f"SELECT pg_backend_pid() % {shards}")).scalar()
        first.execute(insert, {"p": alice, "s": -60, "t": T0})  # not committed yet
        others = []
        try:
            while True:  # a connection of another shard
                other = engine.connect()
                others.append(other)
                if other.execute(text(f"SELECT pg_backend_pid() % {shards}")).scalar() != shard:
                    break
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            other.execute(insert, {"p": alice, "s": -40, "t": T0})  # no wait
            other.commit()
        finally:
            for conn in others:
                conn.close()
        first.commit()
    with factory() as db:
        assert ledger.balance(db, alice) == -100
        assert db.scalar(select(func.count()).select_from(CreditBalance)
                         .where(CreditBalance.person_id == alice)) == 2
