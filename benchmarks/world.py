"""The benchmark's data: N people behind one gateway, in both databases.

Passerelle's database gets the real schema (Alembic) and people with an
argon2 hash; FreeRADIUS's database (a second database in the same cluster)
gets the schema Debian ships and one ``radcheck`` row per person.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import insert, make_url, select

from passerelle.radius import db, passwords
from passerelle.radius.models import (
    Company,
    CreditEntry,
    CreditKind,
    Gateway,
    Network,
    Person,
    PersonKey,
    Site,
    WifiKey,
)

from .loadgen import NAS_ID, NAS_IP, PASSWORD, login, session_class

FREERADIUS_SCHEMA = Path("/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql")
# Enough credit that no session of the run exhausts it (no Disconnect-Request).
CREDIT_SECONDS = 10**9


def seed_passerelle(url: str, people: int, secret: str) -> None:
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        # One hash for everyone: hashing 1,000 passwords would take 16 s and
        # verifying is what the server does; each person is still verified
        # once per worker before the password cache answers.
        hashed = passwords.hash_password(PASSWORD)
        now = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            net = conn.execute(insert(Network).values(name="bench").returning(Network.id))
            site = conn.execute(insert(Site).values(
                name="Bench site", network_id=net.scalar_one(), category=3, capacity=100,
                staffed=False, city="", opens=None, closes=None, open_days="1234567",
                timezone="Europe/Brussels").returning(Site.id)).scalar_one()
            conn.execute(insert(Gateway).values(
                identifier=NAS_ID, site_id=site, ip_address=NAS_IP, secret=secret,
                coa_port=3799, require_message_authenticator=True))
            company = conn.execute(insert(Company).values(
                name="Benchco", categories="123", services="wifi").returning(Company.id)
            ).scalar_one()
            ids = conn.execute(insert(Person).returning(Person.id), [
                {"login": login(i), "name": "", "company_id": company,
                 "password_hash": hashed, "active": True, "language": "fr"}
                for i in range(people)]).scalars().all()
            conn.execute(insert(CreditEntry), [
                {"person_id": pid, "seconds": CREDIT_SECONDS, "kind": CreditKind.topup,
                 "created": now, "note": "benchmark"} for pid in ids])
            # The key an Access-Accept would have issued with the Class the
            # accounting records carry: it binds them to the person, and
            # the session's Stop revokes it.
            by_login = {name: pid for name, pid in conn.execute(select(Person.login, Person.id))}
            conn.execute(insert(WifiKey), [
                {"person_id": by_login[login(i)], "passphrase": "bench-key",
                 "class": session_class(i), "issued": now} for i in range(people)])
            # Everyone has checked in before: their personal key exists (a
            # first check-in derives its PMK, milliseconds the run would
            # otherwise count once per person). The PMK is not checked here.
            conn.execute(insert(PersonKey), [
                {"person_id": pid, "serial": 1, "passphrase": f"bench-key-{pid:08d}",
                 "ssid": "Passerelle-Private", "pmk": "00" * 32, "created": now}
                for pid in ids])
    finally:
        engine.dispose()


def libpq(url: str) -> str:
    """libpq's connection string for a SQLAlchemy URL: only the parts the
    URL has (``postgresql://user@host/db`` has no port: libpq's default)."""
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password,
             "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def create_database(url: str, name: str) -> str:
    """A new empty database beside the one ``url`` names; its URL."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (from the server's maintenance database)."""
    name = make_url(url).database
    with psycopg.connect(libpq(make_url(url).set(database="postgres")
                               .render_as_string(hide_password=False)),
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def durability(url: str) -> dict[str, str]:
    """The server settings that decide whether a commit waits for the disk."""
    with psycopg.connect(libpq(url)) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("fsync", "synchronous_commit", "full_page_writes")}


def vacuum(url: str) -> None:
    """VACUUM ANALYZE the database ``url`` names: what autovacuum would do
    later, done now, as pgbench does before each of its runs."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def maintenance_runs(url: str) -> int:
    """How many autovacuum and autoanalyze runs have finished on the tables
    of the database ``url`` names so far."""
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute("SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) "
                           "FROM pg_stat_user_tables").fetchone()
    return int(row[0]) if row else 0


def seed_freeradius(url: str, people: int) -> None:
    """Debian's rlm_sql schema, and a cleartext password per person."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(FREERADIUS_SCHEMA.read_text())
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO radcheck (username, attribute, op, value) VALUES (%s, %s, %s, %s)",
                [(login(i), "Cleartext-Password", ":=", PASSWORD) for i in range(people)])
