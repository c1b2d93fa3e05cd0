"""Database engine, sessions and migrations.

SQLite (a file in the data directory) is the embedded default; PostgreSQL is
the production database. The same code and migrations serve both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def data_dir() -> Path:
    """Where the embedded database and the server key live by default."""
    env = os.environ.get("PASSERELLE_DATA")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "passerelle"


def default_url() -> str:
    return os.environ.get("PASSERELLE_DB") or f"sqlite:///{data_dir() / 'passerelle.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets readers run beside the writer (several RADIUS workers);
    # busy_timeout makes writers queue instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    # Let SQLAlchemy's "begin" event issue BEGIN (see _sqlite_begin).
    dbapi_connection.isolation_level = None


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = url or default_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock at BEGIN: a deferred transaction that reads and
    # then writes fails at once with "database is locked" when another
    # process writes, instead of waiting (busy_timeout does not apply).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine, autoflush: bool = True) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=autoflush)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic migrations)."""
    command.upgrade(alembic_config(engine), revision)
