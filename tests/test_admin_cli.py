"""`passerelle db` and `passerelle admin ...` through the real entry point
(``passerelle.cli.main``), on SQLite and PostgreSQL: every command's happy
path, and bad input giving exit code 2 and one "Error: ..." line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from passerelle.cli import main
from passerelle.errors import UserError
from passerelle.radius import admin as ops
from passerelle.radius import db, ledger, passwords
from passerelle.radius.models import (
    AuthLog,
    Company,
    CreditEntry,
    Gateway,
    Network,
    Person,
    Radacct,
    Site,
)

BIN = Path(sys.executable).parent / "passerelle"
# RFC 2865 §3: a shared secret of at least 16 octets.
SECRET = "s3cret-for-the-cli"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "server.key"
    monkeypatch.setenv("PASSERELLE_KEY_FILE", str(path))
    monkeypatch.delenv("PASSERELLE_DB", raising=False)
    return path


class Cli(Protocol):
    def __call__(self, *args: str, stdin: str = "") -> Run: ...


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `passerelle ARGS` in this process, as the console script does."""

    def run(*args: str, stdin: str = "") -> Run:
        monkeypatch.setattr(sys, "argv", ["passerelle", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def ok(run: Run) -> Run:
    assert run.code == 0, (run.out, run.err)
    return run


def one_error(run: Run, expected: str) -> None:
    """Exit 2, and stderr is exactly one "Error: ..." line naming the fault."""
    assert run.code == 2, (run.out, run.err)
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in run.err + run.out


EXAMPLE = [
    ["admin", "network", "add", "wallonia"],
    ["admin", "site", "add", "Axis Parc", "--network", "wallonia", "--category", "3",
     "--capacity", "40"],
    ["admin", "gateway", "add", "axis-gw", "--site", "Axis Parc", "--ip", "127.0.0.1",
     "--secret", SECRET],
    ["admin", "company", "add", "Acme"],
    ["admin", "person", "add", "alice@acme.example", "--company", "Acme", "--password",
     "correct horse"],
    ["admin", "credit", "add", "alice@acme.example", "600"],
    ["admin", "company", "set", "Acme", "--status", "suspended"],
]


@pytest.fixture
def world(cli: Cli, db_url: str) -> str:
    """The issue's example, typed at the command line."""
    for args in EXAMPLE:
        ok(cli(*args, "--db", db_url))
    return db_url


@contextmanager
def session(db_url: str) -> Iterator[DB]:
    engine = db.make_engine(db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            yield s
    finally:
        engine.dispose()


def test_the_issue_example(world: str) -> None:
    with session(world) as s:
        site = s.scalars(select(Site)).one()
        assert (site.name, site.network.name, site.category, site.capacity) == \
            ("Axis Parc", "wallonia", 3, 40)
        assert (site.opens, site.closes, site.staffed) == (None, None, True)
        gw = s.scalars(select(Gateway)).one()
        assert (gw.identifier, gw.ip_address, gw.secret, gw.coa_port) == \
            ("axis-gw", "127.0.0.1", SECRET, 3799)
        assert gw.require_message_authenticator is True
        person = s.scalars(select(Person)).one()
        assert passwords.verify_password(person.password_hash, "correct horse")
        assert not passwords.verify_password(person.password_hash, "wrong")
        assert person.chap_secret is None and person.active
        assert ledger.balance(s, person.id) == 600 * 60
        assert s.scalars(select(Company)).one().status.value == "suspended"


def test_lists(cli: Cli, world: str) -> None:
    out = ok(cli("admin", "network", "list", "--db", world)).out
    assert "wallonia" in out and "1" in out.splitlines()[2]
    out = ok(cli("admin", "site", "list", "--db", world)).out
    assert "Axis Parc" in out and "***" in out and "always" in out and "40" in out
    out = ok(cli("admin", "gateway", "list", "--db", world)).out
    assert "axis-gw" in out and "127.0.0.1" in out and "(hidden)" in out
    assert SECRET not in out
    assert SECRET in ok(cli("admin", "gateway", "list", "--show-secrets", "--db", world)).out
    out = ok(cli("admin", "company", "list", "--db", world)).out
    assert "Acme" in out and "suspended" in out
    out = ok(cli("admin", "person", "list", "--db", world)).out
    assert "alice@acme.example" in out and "10:00" in out
    assert "alice" in ok(cli("admin", "person", "list", "--company", "Acme", "--db", world)).out
    out = ok(cli("admin", "credit", "show", "alice@acme.example", "--db", world)).out
    assert out.splitlines()[0] == "alice@acme.example: 10:00 left (600 minutes)"
    assert "topup" in out and "+10:00" in out


def test_empty_lists(cli: Cli, db_url: str) -> None:
    for what in ("network", "site", "gateway", "company", "person"):
        assert ok(cli("admin", what, "list", "--db", db_url)).out.strip() == "(none)"


def test_set_commands(cli: Cli, world: str, tmp_path: Path) -> None:
    ok(cli("admin", "network", "set", "wallonia", "--name", "wallonie", "--db", world))
    ok(cli("admin", "site", "set", "Axis Parc", "--opens", "08:00", "--closes", "18:30",
           "--days", "mon-fri", "--unstaffed", "--city", "Mont-Saint-Guibert",
           "--capacity", "42", "--db", world))
    secret_file = tmp_path / "secret"
    secret_file.write_text("from a file, 16+ octets\n")
    ok(cli("admin", "gateway", "set", "axis-gw", "--ip", "192.0.2.1", "--secret-file",
           str(secret_file), "--coa-port", "3800", "--relaxed-message-authenticator",
           "--db", world))
    ok(cli("admin", "company", "set", "Acme", "--status", "active", "--payment", "overdue",
           "--categories", "21", "--bandwidth-up", "2M", "--bandwidth-down", "10000k",
           "--max-session", "90m", "--vlan", "101", "--db", world))
    ok(cli("admin", "person", "set", "alice@acme.example", "--password-file", "-", "--chap",
           "--name", "Alice Lambert", "--inactive", "--language", "en", "--db", world,
           stdin="new  pass word\n"))
    with session(world) as s:
        assert s.scalars(select(Network)).one().name == "wallonie"
        site = s.scalars(select(Site)).one()
        assert (site.opens, site.closes, site.open_days, site.staffed, site.capacity) == \
            ("08:00", "18:30", "12345", False, 42)
        gw = s.scalars(select(Gateway)).one()
        assert (gw.ip_address, gw.secret, gw.coa_port) == \
            ("192.0.2.1", "from a file, 16+ octets", 3800)
        assert gw.require_message_authenticator is False
        acme = s.scalars(select(Company)).one()
        assert (acme.status.value, acme.payment.value, acme.categories) == \
            ("active", "overdue", "12")
        assert (acme.bandwidth_up, acme.bandwidth_down, acme.max_session, acme.vlan) == \
            (2_000_000, 10_000_000, 5400, 101)
        alice = s.scalars(select(Person)).one()
        assert passwords.verify_password(alice.password_hash, "new  pass word")
        assert alice.chap_secret and passwords.open_chap_secret(alice.chap_secret) == \
            "new  pass word"
        assert (alice.name, alice.active, alice.language) == ("Alice Lambert", False, "en")
    # "none" lifts a cap; --always-open drops the hours; --no-chap drops the secret.
    ok(cli("admin", "company", "set", "Acme", "--bandwidth-up", "none", "--vlan", "none",
           "--db", world))
    ok(cli("admin", "site", "set", "Axis Parc", "--always-open", "--db", world))
    ok(cli("admin", "person", "set", "alice@acme.example", "--no-chap", "--active",
           "--db", world))
    ok(cli("admin", "gateway", "set", "axis-gw", "--require-message-authenticator",
           "--db", world))
    # A new password replaces the CHAP secret as well.
    ok(cli("admin", "person", "set", "alice@acme.example", "--chap", "--password", "one",
           "--db", world))
    ok(cli("admin", "person", "set", "alice@acme.example", "--password", "two", "--db", world))
    with session(world) as s:
        acme = s.scalars(select(Company)).one()
        assert (acme.bandwidth_up, acme.bandwidth_down, acme.vlan) == (None, 10_000_000, None)
        site = s.scalars(select(Site)).one()
        assert (site.opens, site.closes) == (None, None)
        alice = s.scalars(select(Person)).one()
        assert alice.active and alice.chap_secret
        assert passwords.open_chap_secret(alice.chap_secret) == "two"
        assert passwords.verify_password(alice.password_hash, "two")
        assert s.scalars(select(Gateway)).one().require_message_authenticator is True
    # The spelling of docs/radius.md; --no-chap drops the CHAP secret.
    ok(cli("admin", "gateway", "set", "axis-gw", "--no-require-message-authenticator",
           "--db", world))
    ok(cli("admin", "person", "set", "alice@acme.example", "--no-chap", "--db", world))
    with session(world) as s:
        assert s.scalars(select(Gateway)).one().require_message_authenticator is False
        assert s.scalars(select(Person)).one().chap_secret is None


def test_add_with_every_option(cli: Cli, db_url: str, tmp_path: Path) -> None:
    ok(cli("admin", "network", "add", "brussels", "--db", db_url))
    ok(cli("admin", "site", "add", "Night Hub", "--network", "brussels", "--category", "2",
           "--capacity", "12", "--city", "Brussels", "--opens", "22:00", "--closes", "06:00",
           "--days", "12345", "--unstaffed", "--timezone", "Europe/Brussels", "--db", db_url))
    ok(cli("admin", "gateway", "add", "night-gw", "--site", "Night Hub", "--ip", "2001:db8::1",
           "--secret-file", "-", "--coa-port", "3799", "--relaxed-message-authenticator",
           "--db", db_url, stdin="s3cret from stdin\n"))
    ok(cli("admin", "company", "add", "Slowco", "--status", "active", "--payment", "ok",
           "--categories", "12", "--services", "wifi,print", "--bandwidth-up", "1M",
           "--bandwidth-down", "5M", "--max-session", "2h", "--vlan", "42", "--db", db_url))
    ok(cli("admin", "person", "add", "bob@slowco.example", "--company", "Slowco",
           "--password", "pw", "--name", "Bob", "--chap", "--inactive", "--language", "nl",
           "--db", db_url))
    out = ok(cli("admin", "credit", "add", "bob@slowco.example", "90", "--note", "invoice 7",
                 "--db", db_url)).out
    assert "credit now 1:30" in out
    with session(db_url) as s:
        site = s.scalars(select(Site)).one()
        assert (site.opens, site.closes, site.staffed, site.category) == \
            ("22:00", "06:00", False, 2)
        gw = s.scalars(select(Gateway)).one()
        assert (gw.ip_address, gw.secret, gw.require_message_authenticator) == \
            ("2001:db8::1", "s3cret from stdin", False)
        slowco = s.scalars(select(Company)).one()
        assert (slowco.services, slowco.max_session, slowco.vlan) == ("wifi,print", 7200, 42)
        bob = s.scalars(select(Person)).one()
        assert bob.chap_secret and passwords.open_chap_secret(bob.chap_secret) == "pw"
        assert (bob.active, bob.language, bob.name) == (False, "nl", "Bob")
    out = ok(cli("admin", "credit", "show", "bob@slowco.example", "--db", db_url)).out
    assert "invoice 7" in out and "1:30 left (90 minutes)" in out


def test_remove_in_order_and_refusals(cli: Cli, world: str) -> None:
    one_error(cli("admin", "network", "remove", "wallonia", "--db", world),
              "network 'wallonia' still has 1 site(s)")
    one_error(cli("admin", "site", "remove", "Axis Parc", "--db", world),
              "still has 1 gateway(s)")
    one_error(cli("admin", "company", "remove", "Acme", "--db", world),
              "still has 1 person(s)")
    ok(cli("admin", "person", "remove", "alice@acme.example", "--db", world))
    ok(cli("admin", "company", "remove", "Acme", "--db", world))
    ok(cli("admin", "gateway", "remove", "axis-gw", "--db", world))
    ok(cli("admin", "site", "remove", "Axis Parc", "--db", world))
    ok(cli("admin", "network", "remove", "wallonia", "--db", world))
    with session(world) as s:
        for model in (Network, Site, Gateway, Company, Person):
            assert s.scalars(select(model)).all() == []


BAD = [
    (["network", "add", "wallonia"], "network 'wallonia' already exists"),
    (["network", "add", "  "], "must not be empty"),
    (["network", "remove", "nowhere"], "unknown network 'nowhere'"),
    (["network", "set", "wallonia", "--name", "x" * 65], "longer than 64"),
    (["site", "add", "Axis Parc", "--network", "wallonia"], "site 'Axis Parc' already exists"),
    (["site", "add", "CEI", "--network", "nowhere"], "unknown network 'nowhere'"),
    (["site", "add", "CEI"], "give the site's --network"),
    (["site", "add", "CEI", "--network", "wallonia", "--category", "4"], "bad category 4"),
    (["site", "add", "CEI", "--network", "wallonia", "--capacity", "-1"], "bad capacity -1"),
    (["site", "add", "CEI", "--network", "wallonia", "--opens", "8h", "--closes", "18:00"],
     "bad time for --opens '8h'"),
    (["site", "add", "CEI", "--network", "wallonia", "--opens", "08:00", "--closes", "25:00"],
     "bad time for --closes '25:00'"),
    (["site", "add", "CEI", "--network", "wallonia", "--opens", "24:00", "--closes", "06:00"],
     "24:00 is only a closing time"),
    (["site", "add", "CEI", "--network", "wallonia", "--opens", "08:00"],
     "give both --opens and --closes"),
    (["site", "add", "CEI", "--network", "wallonia", "--days", "89"], "bad days '89'"),
    (["site", "add", "CEI", "--network", "wallonia", "--timezone", "Mars/Olympus"],
     "unknown time zone 'Mars/Olympus'"),
    (["site", "set", "Nowhere", "--capacity", "3"], "unknown site 'Nowhere'"),
    (["site", "set", "Axis Parc", "--always-open", "--opens", "08:00"], "contradict"),
    (["gateway", "add", "axis-gw", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret",
      "x"], "gateway 'axis-gw' already exists"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "127.0.0.1", "--secret", "x"],
     "IP address 127.0.0.1 is already gateway 'axis-gw''s"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "300.1.2.3", "--secret", "x"],
     "bad IP address '300.1.2.3'"),
    (["gateway", "add", "gw2", "--site", "Nowhere", "--ip", "192.0.2.9", "--secret", "x"],
     "unknown site 'Nowhere'"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9"],
     "give --secret or --secret-file"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret", ""],
     "the shared secret must not be empty"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret",
      "sécret"], "printable ASCII"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret", "x",
      "--secret-file", "/nonexistent"], "not both"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9",
      "--secret-file", "/nonexistent/secret"], "cannot read the secret from"),
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret", SECRET,
      "--coa-port", "70000"], "bad port 70000"),
    (["gateway", "set", "nope", "--ip", "192.0.2.9"], "unknown gateway 'nope'"),
    (["gateway", "remove", "nope"], "unknown gateway 'nope'"),
    (["company", "add", "Acme"], "company 'Acme' already exists"),
    (["company", "add", "B", "--status", "bankrupt"], "bad status 'bankrupt'"),
    (["company", "add", "B", "--payment", "late"], "bad payment standing 'late'"),
    (["company", "add", "B", "--categories", "4"], "bad categories '4'"),
    (["company", "add", "B", "--services", "Wi Fi"], "bad service name 'wi fi'"),
    (["company", "add", "B", "--bandwidth-up", "fast"], "bad --bandwidth-up 'fast'"),
    (["company", "add", "B", "--bandwidth-down", "-5"], "bad --bandwidth-down '-5'"),
    (["company", "add", "B", "--max-session", "0"], "bad --max-session '0'"),
    (["company", "add", "B", "--vlan", "4095"], "bad VLAN '4095'"),
    (["company", "set", "Nobody", "--status", "active"], "unknown company 'Nobody'"),
    (["company", "remove", "Nobody"], "unknown company 'Nobody'"),
    (["person", "add", "alice@acme.example", "--company", "Acme", "--password", "x"],
     "login 'alice@acme.example' already exists"),
    (["person", "add", "Alice@Acme.example", "--company", "Acme", "--password", "x"],
     "login 'Alice@Acme.example' already exists (as 'alice@acme.example')"),
    (["person", "add", "bob@acme.example", "--company", "Nobody", "--password", "x"],
     "unknown company 'Nobody'"),
    (["person", "add", "bob smith", "--company", "Acme", "--password", "x"],
     "bad login 'bob smith'"),
    (["person", "add", "bob@acme.example", "--company", "Acme"],
     "give --password or --password-file"),
    (["person", "add", "bob@acme.example", "--company", "Acme", "--password", "x" * 129],
     "the password is 129 octets"),
    (["person", "add", "bob@acme.example", "--company", "Acme", "--password", "x",
      "--language", "de"], "bad language 'de'"),
    (["person", "set", "alice@acme.example", "--chap"], "give --password with --chap"),
    (["person", "set", "nobody@acme.example", "--inactive"], "unknown person"),
    (["person", "remove", "nobody@acme.example"], "unknown person"),
    (["credit", "add", "alice@acme.example", "-5"], "bad number of minutes -5"),
    (["credit", "add", "alice@acme.example", "0"], "bad number of minutes 0"),
    (["credit", "add", "alice@acme.example", "ten"], "bad number of minutes 'ten'"),
    (["credit", "add", "nobody@acme.example", "5"], "unknown person 'nobody@acme.example'"),
    (["credit", "show", "nobody@acme.example"], "unknown person"),
    # Issue 13, finding 9: every number within its column's range, and within
    # what RADIUS carries (a 32-bit integer, RFC 2865 §5), or one line.
    (["company", "set", "Acme", "--bandwidth-down", "5G"], "bad --bandwidth-down '5G'"),
    (["company", "set", "Acme", "--bandwidth-up", "4294967296"], "bad --bandwidth-up"),
    (["company", "set", "Acme", "--bandwidth-up", "9" * 40 + "G"], "bad --bandwidth-up"),
    (["company", "add", "B", "--bandwidth-down", "9" * 5000], "bad --bandwidth-down"),
    (["company", "set", "Acme", "--max-session", "2147483648"], "bad --max-session"),
    (["company", "set", "Acme", "--max-session", "99999999999h"], "bad --max-session"),
    (["company", "set", "Acme", "--vlan", "9" * 30], "bad VLAN"),
    (["company", "set", "Acme", "--vlan", "0"], "bad VLAN '0'"),
    (["site", "add", "CEI", "--network", "wallonia", "--capacity", "2147483648"],
     "bad capacity 2147483648"),
    (["site", "set", "Axis Parc", "--capacity", "9" * 30], "bad capacity"),
    (["site", "set", "Axis Parc", "--category", "9" * 30], "bad category"),
    (["site", "set", "Axis Parc", "--category", "0"], "bad category 0"),
    (["gateway", "set", "axis-gw", "--coa-port", "9" * 30], "bad port"),
    (["gateway", "set", "axis-gw", "--coa-port", "0"], "bad port 0"),
    (["credit", "add", "alice@acme.example", "9" * 30], "bad number of minutes"),
    (["credit", "add", "alice@acme.example", "9" * 5000], "bad number of minutes"),
    # Finding 14: RFC 2865 §3 recommends a shared secret of 16 octets or more.
    (["gateway", "add", "gw2", "--site", "Axis Parc", "--ip", "192.0.2.9", "--secret",
      "testing123"], "at least 16"),
    (["gateway", "set", "axis-gw", "--secret", "s3cret"], "at least 16"),
    # Finding 15: logins are e-mail addresses, one per person after normalisation.
    (["person", "add", "bob", "--company", "Acme", "--password", "x"], "bad login 'bob'"),
    (["person", "add", "a@b@c", "--company", "Acme", "--password", "x"], "bad login 'a@b@c'"),
    (["person", "add", "<script>@x", "--company", "Acme", "--password", "x"],
     "bad login '<script>@x'"),
    (["person", "add", "\u0430lice@acme.example", "--company", "Acme", "--password", "x"],
     "mixes scripts"),
    (["person", "add", "ALICE@acme.EXAMPLE", "--company", "Acme", "--password", "x"],
     "already exists (as 'alice@acme.example')"),
    (["person", "set", "alice@acme.example", "--login", "bob"], "bad login 'bob'"),
    (["person", "add", "x" * 300 + "@acme.example", "--company", "Acme", "--password", "x"],
     "bad login"),
]


@pytest.mark.parametrize(("args", "expected"), BAD, ids=[" ".join(a)[:50] for a, _ in BAD])
def test_bad_input_is_one_line(cli: Cli, world: str, args: list[str], expected: str) -> None:
    one_error(cli("admin", *args, "--db", world), expected)


def test_numbers_out_of_range_change_nothing(cli: Cli, world: str) -> None:
    """The finding as seen: 5G was stored, then no check-in of the company got
    an answer. Now it is refused and the plan stays as it was."""
    ok(cli("admin", "company", "set", "Acme", "--bandwidth-down", "10M", "--db", world))
    one_error(cli("admin", "company", "set", "Acme", "--bandwidth-down", "5G", "--db", world),
              "4294967295")
    ok(cli("admin", "company", "set", "Acme", "--bandwidth-down", "4294967295", "--db", world))
    with session(world) as s:
        assert s.scalars(select(Company)).one().bandwidth_down == 4_294_967_295


def test_unicode_logins_are_one_person(cli: Cli, world: str) -> None:
    """Élodie typed two ways (and with capitals) is one login; an IDN domain is
    stored in its ASCII form and found from either spelling."""
    ok(cli("admin", "person", "add", "\u00c9lodie@B\u00fccher.example", "--company", "Acme",
           "--password", "pw", "--db", world))
    one_error(cli("admin", "person", "add", "e\u0301lodie@b\u00fccher.example", "--company",
                  "Acme", "--password", "pw", "--db", world), "already exists")
    one_error(cli("admin", "person", "add", "\u00e9lodie@xn--bcher-kva.example", "--company",
                  "Acme", "--password", "pw", "--db", world), "already exists")
    out = ok(cli("admin", "person", "list", "--db", world)).out
    assert "\u00e9lodie@xn--bcher-kva.example" in out
    ok(cli("admin", "credit", "add", "\u00c9LODIE@b\u00fccher.example", "5", "--db", world))
    ok(cli("admin", "person", "remove", "E\u0301lodie@B\u00fccher.example", "--db", world))
    assert "lodie" not in ok(cli("admin", "person", "list", "--db", world)).out


def test_bad_input_changes_nothing(cli: Cli, world: str) -> None:
    """A refused command leaves the database as it was (one transaction)."""
    one_error(cli("admin", "site", "set", "Axis Parc", "--capacity", "99", "--category", "7",
                  "--db", world), "bad category 7")
    with session(world) as s:
        assert s.scalars(select(Site)).one().capacity == 40


def test_credit_add_prints_the_balance(cli: Cli, world: str) -> None:
    out = ok(cli("admin", "credit", "add", "alice@acme.example", "30", "--db", world)).out
    assert out.strip() == "alice@acme.example: +0:30, credit now 10:30"


def test_db_upgrade_and_current(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'p.db'}"
    assert ok(cli("db", "current", "--db", url)).out.startswith("no schema")
    one_error(cli("admin", "network", "list", "--db", url), "run 'passerelle db upgrade'")
    assert "at revision" in ok(cli("db", "upgrade", "--db", url)).out
    assert "(latest)" in ok(cli("db", "current", "--db", url)).out
    ok(cli("db", "upgrade", "--db", url))  # again: nothing to do, no error
    ok(cli("admin", "network", "add", "wallonia", "--db", url))


def test_db_from_the_environment(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("PASSERELLE_DB", url)
    ok(cli("db", "upgrade"))
    ok(cli("admin", "network", "add", "wallonia"))
    assert "wallonia" in ok(cli("admin", "network", "list", "--db", url)).out


def test_default_db_is_in_the_data_dir(cli: Cli, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSERELLE_DATA", str(tmp_path / "data"))
    ok(cli("db", "upgrade"))
    ok(cli("admin", "network", "add", "wallonia"))
    assert (tmp_path / "data" / "passerelle.db").exists()


def test_db_errors_are_one_line(cli: Cli) -> None:
    one_error(cli("admin", "network", "list", "--db", "nosuchdb://x"), "bad database URL")
    one_error(cli("admin", "network", "list", "--db", "::"), "bad database URL")
    one_error(cli("admin", "network", "list", "--db", "mysql://a@192.0.2.1/x"),
              "no driver for the database URL")
    one_error(cli("admin", "network", "list", "--db", "sqlite:////proc/nowhere/p.db"),
              "cannot use the database sqlite:////proc/nowhere/p.db")
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    one_error(cli("admin", "network", "list", "--db",
                  "postgresql://nobody:pw@127.0.0.1:1/x"), "cannot use the database")
    run = cli("db", "upgrade", "--db", "postgresql://nobody:pw@127.0.0.1:1/x")
    one_error(run, "cannot use the database")
    assert ":pw@" not in run.err  # the password is not printed


def test_console_script_never_shows_a_traceback(tmp_path: Path) -> None:
    """The installed `passerelle` program, as an operator runs it."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {**os.environ, "PASSERELLE_KEY_FILE": str(tmp_path / "k")}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=60)

    assert run("admin", "company", "add", "Acme", "--db", url).returncode == 2
    assert run("db", "upgrade", "--db", url).returncode == 0
    assert run("admin", "company", "add", "Acme", "--db", url).returncode == 0
    added = run("admin", "person", "add", "a@acme.example", "--company", "Acme",
                "--password-file", "-", "--db", url, stdin="from stdin\n")
    assert added.returncode == 0, added.stderr
    bad = run("admin", "credit", "add", "a@acme.example", "-5", "--db", url)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "Error: bad number of minutes -5: a top-up adds 1 minute or more"
    for result in (bad, run("admin", "site", "add", "X", "--network", "n", "--db", url)):
        assert "Traceback" not in result.stderr and result.stderr.startswith("Error: ")
    with session(url) as s:
        person = s.scalars(select(Person)).one()
        assert passwords.verify_password(person.password_hash, "from stdin")


def test_history_is_kept(cli: Cli, world: str) -> None:
    """A gateway or site with sessions stays; a removed person's sessions and
    log lines stay, unlinked."""
    stamp = datetime(2026, 1, 5, 9, 0)
    with session(world) as s, s.begin():
        gw = s.scalars(select(Gateway)).one()
        alice = s.scalars(select(Person)).one()
        s.add(Radacct(acctsessionid="s1", acctuniqueid="u1", username=alice.login,
                      nasipaddress=gw.ip_address, acctstarttime=stamp, person_id=alice.id,
                      gateway_id=gw.id, site_id=gw.site_id))
        s.add(AuthLog(username=alice.login, reply="Access-Accept", person_id=alice.id,
                      site_id=gw.site_id, authdate=stamp))
    one_error(cli("admin", "gateway", "remove", "axis-gw", "--db", world),
              "gateway 'axis-gw' has 1 session(s) or key(s) in its history")
    ok(cli("admin", "person", "remove", "alice@acme.example", "--db", world))
    with session(world) as s, s.begin():
        row = s.scalars(select(Radacct)).one()
        assert (row.username, row.person_id) == ("alice@acme.example", None)
        assert s.scalars(select(AuthLog)).one().person_id is None
        assert s.scalars(select(CreditEntry)).all() == []
        row.gateway_id = None  # as if the box had been replaced long ago
    ok(cli("admin", "gateway", "remove", "axis-gw", "--db", world))
    one_error(cli("admin", "site", "remove", "Axis Parc", "--db", world),
              "site 'Axis Parc' has 2 session(s) or log line(s) in its history")


# -- operators of the console ------------------------------------------------

OP_PASSWORD = "a long console pass"


def test_operators_add_list_set_remove(cli: Cli, world: str) -> None:
    ok(cli("admin", "site", "add", "CEI", "--network", "wallonia", "--db", world))
    ok(cli("admin", "operator", "add", "noc@passerelle.example", "--role", "network-ops",
           "--password", OP_PASSWORD, "--name", "Night Desk", "--db", world))
    ok(cli("admin", "operator", "add", "axis@passerelle.example", "--role", "site-manager",
           "--site", "Axis Parc", "--site", "CEI", "--password-file", "-", "--db", world,
           stdin=OP_PASSWORD + "\n"))
    ok(cli("admin", "operator", "add", "hr@acme.example", "--role", "company-manager",
           "--company", "Acme", "--password", OP_PASSWORD, "--db", world))
    out = ok(cli("admin", "operator", "list", "--db", world)).out
    assert "Night Desk" in out and "network-ops" in out and "all" in out
    assert "Axis Parc, CEI" in out and "site-manager" in out
    assert "company-manager" in out and "Acme" in out and "never" in out
    assert OP_PASSWORD not in out and "argon2" not in out
    with session(world) as s:
        from passerelle.radius.models import Operator
        noc = s.scalars(select(Operator).where(Operator.login == "noc@passerelle.example")).one()
        assert passwords.verify_password(noc.password_hash, OP_PASSWORD)
    # A role change takes its scope along; a new password ends open sessions (epoch).
    ok(cli("admin", "operator", "set", "axis@passerelle.example", "--role", "company-manager",
           "--company", "Acme", "--db", world))
    ok(cli("admin", "operator", "set", "hr@acme.example", "--password", "another long one",
           "--inactive", "--db", world))
    ok(cli("admin", "operator", "set", "noc@passerelle.example", "--name", "NOC", "--db", world))
    with session(world) as s:
        from passerelle.radius.models import Operator, OperatorRole
        by = {o.login: o for o in s.scalars(select(Operator))}
        axis = by["axis@passerelle.example"]
        assert (axis.role, axis.company.name if axis.company else None, axis.sites) == \
            (OperatorRole.company_manager, "Acme", [])
        hr = by["hr@acme.example"]
        assert passwords.verify_password(hr.password_hash, "another long one")
        assert (hr.active, hr.epoch) == (False, 1)
        assert (by["noc@passerelle.example"].name, by["noc@passerelle.example"].epoch) == \
            ("NOC", 0)
    ok(cli("admin", "operator", "remove", "HR@acme.example", "--db", world))
    assert "hr@acme.example" not in ok(cli("admin", "operator", "list", "--db", world)).out


@pytest.mark.parametrize(("args", "expected"), [
    (["add", "x@y.example", "--role", "boss", "--password", OP_PASSWORD], "bad role 'boss'"),
    (["add", "x@y.example", "--role", "network-ops", "--password", "short"],
     "at least 12 characters"),
    (["add", "x@y.example", "--role", "network-ops"], "give --password"),
    (["add", "x@y.example", "--role", "network-ops", "--company", "Acme", "--password",
      OP_PASSWORD], "network ops see everything"),
    (["add", "x@y.example", "--role", "site-manager", "--password", OP_PASSWORD],
     "needs at least one --site"),
    (["add", "x@y.example", "--role", "site-manager", "--site", "Nowhere", "--password",
      OP_PASSWORD], "unknown site 'Nowhere'"),
    (["add", "x@y.example", "--role", "company-manager", "--password", OP_PASSWORD],
     "needs their --company"),
    (["add", "x@y.example", "--role", "company-manager", "--company", "Acme", "--site",
      "Axis Parc", "--password", OP_PASSWORD], "drop --site"),
    (["add", "bad login", "--role", "network-ops", "--password", OP_PASSWORD], "bad login"),
    (["add", "x@y.example", "--role", "network-ops", "--password", OP_PASSWORD + "\x07"],
     "control characters"),
    (["add", "noc@passerelle.example", "--role", "network-ops", "--password", OP_PASSWORD],
     "already exists"),
    (["set", "nobody@y.example", "--name", "X"], "unknown operator 'nobody@y.example'"),
    (["set", "noc@passerelle.example", "--role", "site-manager"], "needs at least one --site"),
    (["set", "noc@passerelle.example", "--password", "x" * 1025], "at most 1024"),
    (["remove", "nobody@y.example"], "unknown operator"),
])
def test_operator_bad_input_is_one_line(cli: Cli, world: str, args: list[str],
                                        expected: str) -> None:
    ok(cli("admin", "operator", "add", "noc@passerelle.example", "--role", "network-ops",
           "--password", OP_PASSWORD, "--db", world))
    one_error(cli("admin", "operator", *args, "--db", world), expected)
    out = ok(cli("admin", "operator", "list", "--db", world)).out
    assert "x@y.example" not in out and "network-ops" in out


# -- the operations the command line and the ops console share ----------------

NOW = datetime(2026, 12, 1, 9, 0)
OUT_OF_RANGE = {
    "capacity too large": lambda s: ops.add_site(s, "CEI", "wallonia", capacity=2**31),
    "capacity negative": lambda s: ops.set_site(s, "Axis Parc", ops.SiteChanges(capacity=-1)),
    "capacity huge": lambda s: ops.set_site(s, "Axis Parc", ops.SiteChanges(capacity=10**20)),
    "category huge": lambda s: ops.set_site(s, "Axis Parc", ops.SiteChanges(category=10**20)),
    "port huge": lambda s: ops.set_gateway(s, "axis-gw", ops.GatewayChanges(coa_port=10**20)),
    "port in add": lambda s: ops.add_gateway(s, "gw2", "Axis Parc", "192.0.2.9", SECRET,
                                             coa_port=-1),
    "short secret": lambda s: ops.add_gateway(s, "gw2", "Axis Parc", "192.0.2.9", "x" * 15),
    "bandwidth 5G": lambda s: ops.set_company(s, "Acme", ops.CompanyTerms(bandwidth_down="5G")),
    "bandwidth huge": lambda s: ops.add_company(s, "B", ops.CompanyTerms(bandwidth_up="9" * 25)),
    "session huge": lambda s: ops.set_company(s, "Acme",
                                              ops.CompanyTerms(max_session="2147483648")),
    "vlan": lambda s: ops.set_company(s, "Acme", ops.CompanyTerms(vlan="4095")),
    "credit huge": lambda s: ops.add_credit(s, "alice@acme.example", 10**20, NOW),
    "credit bool": lambda s: ops.add_credit(s, "alice@acme.example", True, NOW),
    "login": lambda s: ops.add_person(s, "bob", "Acme", "pw"),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE)
def test_admin_functions_refuse_out_of_range_before_sql(world: str, case: str) -> None:
    """What the console calls: a UserError, never a database error (on SQLite
    a Python int too large for the column was an OverflowError: a traceback)."""
    with session(world) as s, s.begin():
        with pytest.raises(UserError) as caught:
            OUT_OF_RANGE[case](s)
        assert "\n" not in str(caught.value)
        s.rollback()
    with session(world) as s:
        assert s.scalars(select(Site)).one().capacity == 40
        assert s.scalars(select(Company)).one().bandwidth_down is None
        assert len(s.scalars(select(Gateway)).all()) == 1
        assert len(s.scalars(select(Person)).all()) == 1
