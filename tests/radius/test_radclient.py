"""`passerelle radius serve` over real UDP, with FreeRADIUS's radclient as the
client, on SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from passerelle.radius import ledger
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.models import AuthLog, PersonKey, Radacct, WifiKey

from . import seed
from .conftest import Server
from .peers import radclient

pytestmark = pytest.mark.integration

NAS = 'NAS-Identifier = "axis-gw", NAS-IP-Address = 127.0.0.1, Message-Authenticator = 0x00'


def auth(server: Server, user: str, password: str = seed.PASSWORD, method: str = "User-Password"):
    return radclient(server.auth_port, "auth", seed.SECRET,
                     f'User-Name = "{user}", {method} = "{password}", {NAS}')


def test_pap_accept_carries_the_session_terms(server: Server, engine: Engine) -> None:
    answer = auth(server, "alice@acme.example")
    assert answer.code == "Access-Accept", answer.output
    # BlastRADIUS: Message-Authenticator is the first attribute of the reply.
    assert answer.attrs[0][0] == "Message-Authenticator"
    assert 0 < int(answer.one("Session-Timeout")) <= 600 * 60
    assert answer.one("Idle-Timeout") == "900"
    assert answer.one("Acct-Interim-Interval") == "300"
    assert answer.one("Class").startswith("0x70736c31")  # "psl1"
    key = answer.one("Tunnel-Password:0")
    assert 8 <= len(key) <= 63
    assert answer.one("Tunnel-Type:1") == "VLAN"
    assert answer.one("Tunnel-Medium-Type:1") == "IEEE-802"
    assert answer.one("Tunnel-Private-Group-Id:1") == "101"
    with make_sessionmaker(engine)() as db:
        # The person's own key, issued at the first check-in; no per-check-in key.
        stored = db.scalars(select(PersonKey)).all()
        assert [(k.passphrase, k.serial, k.revoked) for k in stored] == [(key, 1, None)]
        assert db.scalars(select(WifiKey)).all() == []
        log = db.scalars(select(AuthLog)).one()
        assert (log.reply, log.username) == ("Access-Accept", "alice@acme.example")
    # The same key at the next check-in.
    assert auth(server, "alice@acme.example").one("Tunnel-Password:0") == key


def test_bandwidth_caps_and_plan_maximum(server: Server) -> None:
    answer = auth(server, "bob@slowco.example")
    assert answer.code == "Access-Accept"
    assert answer.one("WISPr-Bandwidth-Max-Up") == "2000000"
    assert answer.one("WISPr-Bandwidth-Max-Down") == "10000000"
    assert answer.one("Session-Timeout") == "1800"  # plan maximum < credit


def test_session_timeout_never_exceeds_credit(server: Server) -> None:
    answer = auth(server, "ivan@acme.example")  # 2 minutes of credit
    assert answer.code == "Access-Accept"
    assert answer.one("Session-Timeout") == "120"


def test_radclient_reads_the_credit_left_with_our_dictionary(server: Server,
                                                             tmp_path: Path) -> None:
    # radclient reads <raddb>/dictionary after its own: ours, as a box's
    # FreeRADIUS would be given it.
    ours = resources.files("passerelle.radius") / "dictionaries" / "dictionary.passerelle"
    (tmp_path / "dictionary").write_text(f"$INCLUDE {ours}\n")
    answer = radclient(server.auth_port, "auth", seed.SECRET,
                       f'User-Name = "ivan@acme.example", User-Password = "{seed.PASSWORD}", '
                       f"{NAS}", extra=("-d", str(tmp_path)))
    assert answer.code == "Access-Accept", answer.output
    assert answer.one("Passerelle-Credit-Left") == "120"  # 2 minutes, at this Accept
    # Without our dictionary it is an unknown vendor attribute, not a broken packet.
    plain = auth(server, "ivan@acme.example")
    assert plain.code == "Access-Accept" and plain.one("Session-Timeout") == "120"
    assert plain.one("Attr-26.32473.3") == "0x00000078"  # raw: 120


def test_chap_accept_and_chap_without_secret_rejected(server: Server) -> None:
    assert auth(server, "alice@acme.example", method="CHAP-Password").code == "Access-Accept"
    # bob has no CHAP secret stored: CHAP cannot be verified, so it is refused.
    answer = auth(server, "bob@slowco.example", method="CHAP-Password")
    assert answer.code == "Access-Reject"
    assert answer.one("Reply-Message").startswith("bad-credentials")


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("alice@acme.example", "wrong", "bad-credentials"),
        ("nobody@nowhere.example", seed.PASSWORD, "bad-credentials"),
        ("heidi@acme.example", seed.PASSWORD, "account-disabled"),
        ("carol@gone.example", seed.PASSWORD, "company-suspended"),
        ("dan@closed.example", seed.PASSWORD, "company-closed"),
        ("erin@latepay.example", seed.PASSWORD, "payment-overdue"),
        ("frank@twostar.example", seed.PASSWORD, "site-not-allowed"),
        ("grace@acme.example", seed.PASSWORD, "no-credit"),
    ],
)
def test_each_reject_reason(server: Server, engine: Engine, user: str, password: str,
                            reason: str) -> None:
    answer = auth(server, user, password)
    assert answer.code == "Access-Reject"
    assert answer.attrs[0][0] == "Message-Authenticator"
    assert answer.one("Reply-Message").split(":")[0] == reason
    with make_sessionmaker(engine)() as db:
        log = db.scalars(select(AuthLog)).one()
        assert (log.reply, log.reason) == ("Access-Reject", reason)


@pytest.mark.parametrize("length", [1, 15, 16, 17, 127, 128])
def test_password_lengths(db_url: str, engine: Engine, key_file: Path, tmp_path: Path,
                          length: int) -> None:
    from .conftest import start_server

    password = "".join(chr(ord("a") + i % 26) for i in range(length))
    factory = make_sessionmaker(engine)
    seed.build(factory)
    with factory() as db, db.begin():
        from passerelle.radius.models import Company

        acme = db.scalars(select(Company).where(Company.name == "Acme")).one()
        seed.person(db, f"len{length}@acme.example", acme, password=password)
    srv = start_server(db_url, tmp_path)
    try:
        assert auth(srv, f"len{length}@acme.example", password).code == "Access-Accept"
        assert auth(srv, f"len{length}@acme.example", password[:-1] + "!").code == \
            "Access-Reject"
    finally:
        srv.stop()


def acct(server: Server, attrs: str) -> str | None:
    return radclient(server.acct_port, "acct", seed.SECRET,
                     f'{attrs}, NAS-Identifier = "axis-gw", NAS-IP-Address = 127.0.0.1').code


def test_accounting_sequence_charges_once(server: Server, engine: Engine,
                                          world: seed.World) -> None:
    answer = auth(server, "alice@acme.example")
    klass = answer.one("Class")
    common = (f'User-Name = "alice@acme.example", Acct-Session-Id = "s-1", Class = {klass}, '
              'Calling-Station-Id = "02-00-00-00-00-01", Framed-IP-Address = 198.51.100.10')
    assert acct(server, f"Acct-Status-Type = Start, {common}") == "Accounting-Response"
    assert acct(server, f"Acct-Status-Type = Interim-Update, Acct-Session-Time = 300, "
                        f"Acct-Input-Octets = 1000, Acct-Output-Octets = 5000, {common}") \
        == "Accounting-Response"
    # Past 4 GiB: gigawords carry the high part.
    assert acct(server, f"Acct-Status-Type = Stop, Acct-Session-Time = 600, "
                        f"Acct-Input-Octets = 2000, Acct-Output-Octets = 7, "
                        f"Acct-Output-Gigawords = 1, Acct-Terminate-Cause = User-Request, "
                        f"{common}") == "Accounting-Response"
    # A late Interim after the Stop changes nothing.
    assert acct(server, f"Acct-Status-Type = Interim-Update, Acct-Session-Time = 900, "
                        f"{common}") == "Accounting-Response"
    with make_sessionmaker(engine)() as db:
        row = db.scalars(select(Radacct)).one()
        assert row.acctsessiontime == 600
        assert row.acctinputoctets == 2000
        assert row.acctoutputoctets == 2**32 + 7
        assert row.acctterminatecause == "User-Request"
        assert row.framedipaddress == "198.51.100.10"
        assert row.callingstationid == "02-00-00-00-00-01"
        assert row.person_id == world.people["alice"]
        assert row.acctstoptime is not None
        assert ledger.balance(db, world.people["alice"]) == 600 * 60 - 600
        # Check-out ends the session, not the person's key.
        assert db.scalars(select(PersonKey.revoked)).all() == [None]


def test_accounting_on_closes_open_sessions(server: Server, engine: Engine) -> None:
    for sid in ("on-1", "on-2"):
        assert acct(server, f'Acct-Status-Type = Start, User-Name = "alice@acme.example", '
                            f'Acct-Session-Id = "{sid}"') == "Accounting-Response"
    assert acct(server, 'Acct-Status-Type = Interim-Update, User-Name = "alice@acme.example", '
                        'Acct-Session-Id = "on-1", Acct-Session-Time = 120') \
        == "Accounting-Response"
    assert acct(server, "Acct-Status-Type = Accounting-On") == "Accounting-Response"
    with make_sessionmaker(engine)() as db:
        rows = db.scalars(select(Radacct).order_by(Radacct.acctsessionid)).all()
        assert [r.acctterminatecause for r in rows] == ["NAS-Reboot", "NAS-Reboot"]
        assert all(r.acctstoptime is not None for r in rows)
        charged = db.scalar(select(func.sum(Radacct.charged)))
        assert charged == 120


def test_wrong_secret_gets_no_answer(server: Server) -> None:
    answer = radclient(server.auth_port, "auth", "not-the-secret",
                       f'User-Name = "alice@acme.example", User-Password = "x", {NAS}',
                       timeout=0.5)
    assert answer.code is None
    answer = radclient(server.acct_port, "acct", "not-the-secret",
                       'Acct-Status-Type = Start, Acct-Session-Id = "x"', timeout=0.5)
    assert answer.code is None
    assert "bad" in server.logs()


def test_access_request_without_message_authenticator_gets_no_answer(server: Server) -> None:
    answer = radclient(server.auth_port, "auth", seed.SECRET,
                       f'User-Name = "alice@acme.example", User-Password = "{seed.PASSWORD}", '
                       'NAS-Identifier = "axis-gw"', timeout=0.5)
    assert answer.code is None
    assert "no Message-Authenticator" in server.logs()


def test_status_server(server: Server) -> None:
    answer = radclient(server.auth_port, "status", seed.SECRET, "Message-Authenticator = 0x00")
    assert answer.code == "Access-Accept"
