"""One bad value must not silence a site (issue 13, finding 9, the centre's
half): a record the centre cannot store is answered, set aside for ops and
logged once; the other records of its batch are stored. Over real UDP with
radclient, and in process for what radclient cannot send, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import ACCT, AUTH, Datagram, Handler
from passerelle.radius.models import AccountingQuarantine, Company, Radacct

from . import seed
from .conftest import Server
from .peers import RawClient, need_radclient

pytestmark = pytest.mark.integration

GATEWAY = ("127.0.0.1", 40000)
BIN = Path(sys.executable).parent / "passerelle"


def radclient_batch(port: int, requests: list[str]) -> list[str]:
    """Send every request at once (radclient -p): the server takes them in
    one batch. Returns the codes of the replies received."""
    out = subprocess.run(
        [need_radclient(), "-x", "-r", "1", "-t", "3", "-p", str(len(requests)),
         f"127.0.0.1:{port}", "acct", seed.SECRET],
        input="\n\n".join(requests) + "\n", capture_output=True, text=True, timeout=60)
    return re.findall(r"^Received (\S+) Id", out.stdout + out.stderr, re.M)


def interim(session: str, extra: str = "") -> str:
    return (f'Acct-Status-Type = Interim-Update, Acct-Session-Id = "{session}", '
            f'User-Name = "alice@acme.example", Acct-Session-Time = 60, '
            f'NAS-Identifier = "axis-gw", NAS-IP-Address = 127.0.0.1{extra}')


def quarantined(engine: Engine) -> list[AccountingQuarantine]:
    with make_sessionmaker(engine)() as db:
        return list(db.scalars(select(AccountingQuarantine)).all())


def sessions(engine: Engine) -> list[str]:
    with make_sessionmaker(engine)() as db:
        return sorted(db.scalars(select(Radacct.acctsessionid)).all())


def test_a_poisoned_interim_among_good_ones(server: Server, engine: Engine, db_url: str) -> None:
    good = [interim(f"good-{n}") for n in range(6)]
    poisoned = interim("poisoned", ", Acct-Interim-Interval = 3000000000")
    answers = radclient_batch(server.acct_port, [*good[:3], poisoned, *good[3:]])
    assert answers == ["Accounting-Response"] * 7
    assert sessions(engine) == [f"good-{n}" for n in range(6)]
    (aside,) = quarantined(engine)
    assert (aside.acctsessionid, aside.status, aside.nasidentifier) == \
        ("poisoned", "Interim-Update", "axis-gw")
    assert "Acct-Interim-Interval 3000000000" in aside.reason
    assert json.loads(aside.attributes)["acct_interim_interval"] == 3000000000
    assert bytes.fromhex(aside.datagram)[0] == 4  # the Accounting-Request itself
    # Logged once, and ops see it.
    assert server.logs().count("set aside for ops") == 1
    shown = subprocess.run([str(BIN), "admin", "accounting", "quarantine", "list",
                            "--db", db_url], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "poisoned" in shown.stdout and "Acct-Interim-Interval" in shown.stdout


def test_counters_beyond_range(server: Server, engine: Engine) -> None:
    # 2**32 - 1 gigawords: more octets than a signed 64-bit column holds.
    answers = radclient_batch(server.acct_port, [
        interim("huge", ", Acct-Input-Gigawords = 4294967295, Acct-Input-Octets = 1"),
        interim("fine", ", Acct-Input-Gigawords = 3, Acct-Input-Octets = 1")])
    assert answers == ["Accounting-Response"] * 2
    assert sessions(engine) == ["fine"]
    (aside,) = quarantined(engine)
    assert aside.acctsessionid == "huge" and "Acct-Input-Octets" in aside.reason


# Any: each attribute's value is of the type the dictionary gives it.
def datagram(maker: RawClient, session: str, **attrs: Any) -> Datagram:
    pkt = maker.accounting_request("Interim-Update", session, User_Name="alice@acme.example",
                                   Acct_Session_Time=60, **attrs)
    return Datagram(pkt.RequestPacket(), GATEWAY, ACCT)


def test_a_record_the_database_refuses(engine: Engine, world: seed.World) -> None:
    """PostgreSQL refuses a NUL character in text, SQLite stores it: on
    PostgreSQL the batch fails, is retried with a savepoint per record, and
    only the refused record is set aside."""
    maker = RawClient(1, seed.SECRET.encode())  # builds packets; nothing is sent
    try:
        batch = [datagram(maker, "before"),
                 datagram(maker, "nul", Calling_Station_Id="02-00\x00-00"),
                 datagram(maker, "after")]
    finally:
        maker.close()
    replies, _ = Handler(make_sessionmaker(engine)).process(batch)
    assert len(replies) == 3
    refused = engine.dialect.name == "postgresql"
    assert sessions(engine) == (["after", "before"] if refused else ["after", "before", "nul"])
    aside = quarantined(engine)
    if refused:
        assert [q.acctsessionid for q in aside] == ["nul"]
        assert aside[0].reason  # the database's own words
    else:
        assert aside == []


def test_an_access_request_the_centre_cannot_answer_is_rejected(engine: Engine,
                                                                world: seed.World) -> None:
    """A cap beyond what its attribute carries (32 bits) makes the Accept
    impossible to encode: that request is rejected with a reason, the other
    requests of its batch are answered as usual."""
    factory = make_sessionmaker(engine)
    with factory() as db, db.begin():
        db.execute(update(Company).where(Company.name == "Slowco")
                   .values(bandwidth_down=5_000_000_000))
    maker = RawClient(1, seed.SECRET.encode())
    try:
        pkts = [maker.access_request(user, seed.PASSWORD)
                for user in ("alice@acme.example", "bob@slowco.example")]
    finally:
        maker.close()
    replies, _ = Handler(factory).process(
        [Datagram(p.RequestPacket(), GATEWAY, AUTH) for p in pkts])
    codes = {}
    for pkt, reply in zip(pkts, replies, strict=True):
        answer = pkt.CreateReply(packet=reply.data)
        assert pkt.VerifyReply(answer, reply.data)
        codes[pkt["User-Name"][0]] = (answer.code, answer.get("Reply-Message"))
    assert codes["alice@acme.example"][0] == 2  # Access-Accept
    code, message = codes["bob@slowco.example"]
    assert code == 3 and message[0].startswith("rejected: ")
