"""Shared fixtures: the databases every database test runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from passerelle.radius import db
from passerelle.radius.models import Base

from .pg import Cluster

BACKENDS = ["sqlite", "postgresql"]


def _own_database(url: str) -> str:
    """Under pytest-xdist, each worker gets a database of its own on the given
    server (the URL's database name plus the worker's name), made if missing:
    the workers must not drop each other's tables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database or 'postgres'}_{worker}"
    admin = db.make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                {"n": name})
            if found is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the whole test session."""
    given = os.environ.get("PASSERELLE_TEST_PG")
    cluster = None
    if given:
        url = _own_database(given)
    else:
        try:
            cluster = Cluster()
        except RuntimeError as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"no PostgreSQL for the database tests: {exc}")
        url = cluster.start()
    engine = db.make_engine(url)
    with engine.begin() as conn:
        # Start from nothing so a reused server cannot hide a migration bug.
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if cluster:
            cluster.stop()


def _empty(engine: Engine) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database, once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'passerelle.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
    else:
        url = request.getfixturevalue("pg_url")
        engine = db.make_engine(url)
        _empty(engine)
        engine.dispose()
        yield url


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server key (it seals CHAP secrets) for this test alone."""
    path = tmp_path / "server.key"
    monkeypatch.setenv("PASSERELLE_KEY_FILE", str(path))
    return path


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.make_sessionmaker(engine)
