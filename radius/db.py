"""Database engine, sessions and migrations.

SQLite (a file in the data directory) is the embedded default; PostgreSQL is
the production database. The same code and migrations serve both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    # FULL: a commit is on disk when acknowledged. NORMAL in WAL mode may lose
    # the last commits on power failure: an Accounting-Response the box took
    # as done (it deleted its copy) for a Stop the centre no longer has.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    # Let SQLAlchemy's "begin" event issue BEGIN (see _sqlite_begin).
    dbapi_connection.isolation_level = None


def _postgresql_durable(dbapi_connection: Any, _record: Any) -> None:
    # The server's default may be off (it acknowledges commits before they
    # reach the disk); ours are acknowledged to the boxes, so they wait.
    with dbapi_connection.cursor() as cur:
        cur.execute("SET synchronous_commit TO on")
    dbapi_connection.commit()


def _private_sqlite_file(path: Path) -> None:
    """Make the database file 0600 in a 0700 directory before SQLite opens
    it (SQLite gives its -wal and -shm files the database's mode). What is
    there already keeps the mode its owner gave it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = url or default_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        _private_sqlite_file(Path(url[len("sqlite:///"):].split("?", 1)[0]))
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_durable)
    return engine


def durability_problems(engine: Engine) -> list[str]:
    """Why an acknowledged commit could still be lost on power failure, one
    line each (none: every commit is on disk when acknowledged). The server
    logs them at start; fsync is the PostgreSQL server's own setting."""
    problems = []
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            if conn.exec_driver_sql("PRAGMA synchronous").scalar() != 2:
                problems.append("SQLite synchronous is not FULL: commits may be lost on "
                                "power failure")
        elif engine.dialect.name == "postgresql":
            for setting in ("fsync", "synchronous_commit"):
                if conn.exec_driver_sql(f"SHOW {setting}").scalar() == "off":
                    problems.append(f"PostgreSQL {setting} is off: commits the centre "
                                    "acknowledges may be lost on power failure (set it on "
                                    "in postgresql.conf)")
    return problems


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
