"""Issue 13, findings 14 and 16: what a reader of the centre's disk or
database gets, and what a power failure can take.

- The SQLite database and its directory are the owner's only (0600 in 0700).
- The RADIUS shared secrets are sealed with the server key in the database,
  clear to the code; migration 0004 seals the rows already there and its
  downgrade opens them, on SQLite and PostgreSQL.
- A commit is durable when acknowledged: SQLite ``synchronous=FULL``;
  PostgreSQL ``synchronous_commit`` on, and a warning when the server runs
  with ``fsync`` off.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, text

from passerelle.radius import admin, db, passwords
from passerelle.radius.models import Gateway

SECRET = "a shared secret of 33 octets, ok"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_is_the_owners_only(tmp_path: Path, key_file: Path) -> None:
    """The finding as seen: passerelle.db was created 0644 (umask 022)."""
    old = os.umask(0o022)
    try:
        data = tmp_path / "data" / "centre"
        engine = db.make_engine(f"sqlite:///{data / 'passerelle.db'}")
        db.upgrade(engine)
        with db.transaction(db.make_sessionmaker(engine)) as s:
            admin.add_network(s, "wallonia")
            # The database, and its -wal and -shm beside it while it is open.
            files = sorted(p.name for p in data.glob("passerelle.db*"))
            modes = {p.name: mode(p) for p in data.glob("passerelle.db*")}
        engine.dispose()
    finally:
        os.umask(old)
    assert mode(data) == 0o700
    assert files == ["passerelle.db", "passerelle.db-shm", "passerelle.db-wal"]
    assert modes == dict.fromkeys(files, 0o600)


def test_the_server_key_is_made_in_a_private_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "keys" / "server.key"
    monkeypatch.setenv("PASSERELLE_KEY_FILE", str(key))
    old = os.umask(0o022)
    try:
        passwords.server_key()
    finally:
        os.umask(old)
    assert (mode(key.parent), mode(key)) == (0o700, 0o600)


def seed(engine: Engine, secret: str = SECRET) -> None:
    with db.transaction(db.make_sessionmaker(engine)) as s:
        admin.add_network(s, "wallonia")
        admin.add_site(s, "Axis Parc", "wallonia")
        admin.add_gateway(s, "axis-gw", "Axis Parc", "192.0.2.1", secret)


def raw_secret(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT secret FROM gateway")).scalar_one())


def test_gateway_secrets_are_sealed_in_the_database(engine: Engine, key_file: Path) -> None:
    """A leaked database (a dump, a backup) holds no shared secret in clear;
    the code reads it clear, with the server key."""
    seed(engine)
    stored = raw_secret(engine)
    assert SECRET not in stored and SECRET.encode().hex() not in stored
    key = Fernet(key_file.read_bytes().strip())
    assert key.decrypt(stored.encode()).decode() == SECRET
    with db.make_sessionmaker(engine)() as s:
        assert s.scalars(select(Gateway)).one().secret == SECRET
    # A change of secret is sealed too.
    with db.transaction(db.make_sessionmaker(engine)) as s:
        admin.set_gateway(s, "axis-gw", admin.GatewayChanges(secret="another one, 16 octets"))
    assert "another one" not in raw_secret(engine)
    with db.make_sessionmaker(engine)() as s:
        assert s.scalars(select(Gateway)).one().secret == "another one, 16 octets"


def test_a_wrong_key_is_one_clear_error(engine: Engine, key_file: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(engine)
    monkeypatch.setenv("PASSERELLE_KEY_FILE", str(key_file.parent / "another.key"))
    from passerelle.errors import UserError

    with db.make_sessionmaker(engine)() as s, pytest.raises(UserError, match="server key"):
        s.scalars(select(Gateway)).one()


def test_migration_0004_seals_and_its_downgrade_opens(engine: Engine, key_file: Path) -> None:
    """Rows written in clear before 0004 are sealed by it; going down opens them."""
    seed(engine)
    cfg = db.alembic_config(engine)
    command.downgrade(cfg, "0003")
    assert raw_secret(engine) == SECRET  # clear again, as 0003's code expects
    with engine.begin() as conn:
        conn.execute(text("UPDATE gateway SET secret = :s"), {"s": "written by 0003, in clear"})
    db.upgrade(engine)
    stored = raw_secret(engine)
    assert "in clear" not in stored
    assert passwords.open_sealed(stored) == "written by 0003, in clear"
    with db.make_sessionmaker(engine)() as s:
        assert s.scalars(select(Gateway)).one().secret == "written by 0003, in clear"


# -- durability (finding 16) ---------------------------------------------------

def test_sqlite_commits_are_durable(tmp_path: Path) -> None:
    """synchronous=NORMAL in WAL mode may lose the last commits on power
    failure: an acknowledged Stop the box has already deleted."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.durability_problems(engine) == []
    finally:
        engine.dispose()
    # What another program sees: the pragma is per connection, not in the file.
    with sqlite3.connect(tmp_path / "p.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_postgresql_commits_wait_for_the_disk(pg_url: str) -> None:
    """The test cluster runs with fsync and synchronous_commit off (speed):
    the engine turns synchronous_commit back on for its own connections, and
    fsync off, which only the server can change, is reported."""
    engine = db.make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            fsync = conn.execute(text("SHOW fsync")).scalar()
        problems = db.durability_problems(engine)
        assert fsync == "off"  # how tests/pg.py starts it
        assert len(problems) == 1 and "fsync is off" in problems[0]
    finally:
        engine.dispose()
