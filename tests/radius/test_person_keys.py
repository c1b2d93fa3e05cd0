"""Personal Wi-Fi keys at the centre (issue 14), on SQLite and PostgreSQL:
one per person, issued once, rotated and revoked; at rest, neither the
passphrase nor the PMK is in the database in clear; the pull of a site
holds the people allowed there only; migration 0006 keeps the key of a
session open at the upgrade; `passerelle admin key ...`."""

from __future__ import annotations

import hashlib
import io
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.cli import main
from passerelle.gateway import psk
from passerelle.radius import db, keys, passwords
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.models import Network, PersonKey, Site

from . import seed

NOW = datetime(2026, 12, 1, 10, 0, 0)


@pytest.fixture
def world(engine: Engine, key_file: Path) -> seed.World:
    return seed.build(make_sessionmaker(engine))


@pytest.fixture
def session(engine: Engine, world: seed.World) -> sessionmaker[DB]:
    return make_sessionmaker(engine)


def test_one_key_per_person_issued_once(session: sessionmaker[DB], world: seed.World) -> None:
    alice = world.people["alice"]
    with session.begin() as db_:
        first = keys.issue_if_missing(db_, alice, NOW)
        again = keys.issue_if_missing(db_, alice, NOW + timedelta(hours=1))
        assert again.id == first.id and first.serial == 1
        assert first.ssid == "Passerelle-Private"
        # The PMK of the private SSID, derived once, with the gateway's code.
        assert bytes.fromhex(first.pmk) == psk.pmk(first.passphrase, first.ssid)
        psk.check_passphrase(first.passphrase)


def test_rotation_and_revocation(session: sessionmaker[DB], world: seed.World) -> None:
    alice = world.people["alice"]
    with session.begin() as db_:
        first = keys.issue_if_missing(db_, alice, NOW)
        second = keys.rotate(db_, alice, NOW + timedelta(minutes=1))
        assert (second.serial, first.revoked) == (2, NOW + timedelta(minutes=1))
        assert second.passphrase != first.passphrase
        current = keys.current(db_, alice)
        assert current is not None and current.id == second.id
        assert keys.revoke(db_, alice, NOW + timedelta(minutes=2)) is not None
        assert keys.current(db_, alice) is None
        assert keys.revoke(db_, alice, NOW) is None
        # The next check-in issues serial 3.
        assert keys.issue_if_missing(db_, alice, NOW + timedelta(hours=1)).serial == 3


def test_the_network_private_ssid_is_the_keys(session: sessionmaker[DB],
                                               world: seed.World) -> None:
    with session.begin() as db_:
        db_.scalars(select(Network)).one().private_ssid = "Teleworkers"
        site = db_.scalars(select(Site)).one()
        key = keys.issue_if_missing(db_, world.people["bob"], NOW, site.id)
        assert key.ssid == "Teleworkers"
        assert bytes.fromhex(key.pmk) == psk.pmk(key.passphrase, "Teleworkers")


def test_a_database_leak_alone_reveals_no_key(engine: Engine, session: sessionmaker[DB],
                                              world: seed.World) -> None:
    with session.begin() as db_:
        key = keys.issue_if_missing(db_, world.people["alice"], NOW)
        passphrase, pmk = key.passphrase, key.pmk
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM person_key")).mappings().all()
    raw = " ".join(str(v) for row in rows for v in row.values())
    assert passphrase not in raw and pmk not in raw
    assert pmk.upper() not in raw and passphrase.replace("-", "") not in raw
    # What the raw columns hold opens only with the server key.
    assert passwords.open_sealed(str(rows[0]["passphrase"])) == passphrase
    assert passwords.open_sealed(str(rows[0]["pmk"])) == pmk


def test_the_pull_holds_the_people_allowed_at_the_site(session: sessionmaker[DB],
                                                       world: seed.World) -> None:
    with session.begin() as db_:
        made = {name: keys.issue_if_missing(db_, pid, NOW).id
                for name, pid in world.people.items()}
        site = db_.scalars(select(Site)).one()
        pull = keys.for_site(db_, site.id, 0)
    # carol: company suspended; dan: closed; erin: payment overdue; frank:
    # plan without category 3; heidi: account disabled. Credit does not count.
    allowed = {name for name, key_id in made.items() if key_id in pull.allowed}
    assert allowed == {"alice", "bob", "grace", "ivan"}
    assert pull.allowed[made["alice"]] == 101 and pull.allowed[made["bob"]] is None
    assert {k["id"] for k in pull.keys} == {made[n] for n in allowed}
    assert pull.cursor == max(made.values())
    with session.begin() as db_:
        assert keys.for_site(db_, site.id, pull.cursor).keys == []


def test_two_current_keys_for_one_person_cannot_be(session: sessionmaker[DB],
                                                   world: seed.World) -> None:
    """Two first check-ins racing: the unique index lets one commit."""
    from sqlalchemy.exc import IntegrityError

    alice = world.people["alice"]
    with session.begin() as db_:
        keys.issue_if_missing(db_, alice, NOW)
    with pytest.raises(IntegrityError), session.begin() as db_:
        db_.add(PersonKey(person_id=alice, serial=9, passphrase="another-key-1234",
                          ssid="Passerelle-Private", pmk="00" * 32, created=NOW))
        db_.flush()


def test_migration_0006_keeps_the_key_of_an_open_session(engine: Engine,
                                                         world: seed.World) -> None:
    cfg = db.alembic_config(engine)
    command.downgrade(cfg, "0004")
    with engine.begin() as conn:
        for pid, key, revoked in ((world.people["alice"], "alice-open-key1", None),
                                  (world.people["bob"], "bob-ended-key-1", NOW)):
            conn.execute(text("INSERT INTO wifi_key (person_id, passphrase, issued, revoked) "
                              "VALUES (:p, :k, :i, :r)"),
                         {"p": pid, "k": key, "i": NOW, "r": revoked})
    db.upgrade(engine)
    with make_sessionmaker(engine)() as s:
        kept = s.scalars(select(PersonKey)).all()
        assert [(k.person_id, k.passphrase, k.serial) for k in kept] == [
            (world.people["alice"], "alice-open-key1", 1)]
        expected = hashlib.pbkdf2_hmac("sha1", b"alice-open-key1", b"Passerelle-Private",
                                       4096, 32)
        assert kept[0].pmk == psk.pmk("alice-open-key1", "Passerelle-Private").hex() == \
            expected.hex()
    with engine.connect() as conn:
        old = conn.execute(text("SELECT passphrase, revoked FROM wifi_key")).all()
    # History stays, revoked, with no key in clear.
    assert [p for p, _ in old] == ["", ""] and all(r is not None for _, r in old)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["passerelle", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_admin_key_show_rotate_revoke(db_url: str, world: seed.World, session: sessionmaker[DB],
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    login = "alice@acme.example"
    code, out, _ = _cli(monkeypatch, capsys, "admin", "key", "show", login, "--db", db_url)
    assert code == 0 and "no key yet" in out
    code, out, _ = _cli(monkeypatch, capsys, "admin", "key", "rotate", login, "--db", db_url)
    assert code == 0 and "serial 1" in out
    with session() as s:
        key = keys.current(s, world.people["alice"])
        assert key is not None
        passphrase = key.passphrase
    code, out, _ = _cli(monkeypatch, capsys, "admin", "key", "show", login, "--db", db_url)
    assert code == 0 and "in force" in out and passphrase not in out  # its owner's only
    code, out, _ = _cli(monkeypatch, capsys, "admin", "key", "revoke", login, "--db", db_url)
    assert code == 0 and "key 1 of" in out and "revoked" in out
    code, _, err = _cli(monkeypatch, capsys, "admin", "key", "revoke", login, "--db", db_url)
    assert code == 2 and "no key in force" in err and "Traceback" not in err
    code, _, err = _cli(monkeypatch, capsys, "admin", "key", "show", "nobody@x.example",
                        "--db", db_url)
    assert code == 2 and "unknown person" in err


def test_admin_key_ssid_derives_every_pmk_again(db_url: str, world: seed.World,
                                                 session: sessionmaker[DB],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with session.begin() as s:
        keys.issue_if_missing(s, world.people["bob"], NOW)
    code, out, _ = _cli(monkeypatch, capsys, "admin", "key", "ssid", "wallonia", "Teleworkers",
                        "--db", db_url)
    assert code == 0 and "1 keys follow" in out
    with session() as s:
        key = keys.current(s, world.people["bob"])
        assert key is not None and key.ssid == "Teleworkers"
        assert bytes.fromhex(key.pmk) == psk.pmk(key.passphrase, "Teleworkers")
        assert keys.private_ssid(s) == "Teleworkers"
    code, _, err = _cli(monkeypatch, capsys, "admin", "key", "ssid", "wallonia", "x" * 33,
                        "--db", db_url)
    assert code == 2 and "1 to 32 octets" in err
