"""The plan's limit of sessions at once (issue 13, finding 12: several
devices of one person each got the full credit), over real UDP with
FreeRADIUS's radclient, on SQLite and PostgreSQL: a second device is
refused while the first is on; the first device checking in again is not;
once the first session stops, the second device gets in. The Accept's
Session-Timeout is recorded for the console's "time left"."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from passerelle.radius import admin
from passerelle.radius.db import make_sessionmaker, transaction
from passerelle.radius.models import AuthLog

from . import seed
from .conftest import Server
from .peers import Answer, radclient

pytestmark = pytest.mark.integration

NAS = 'NAS-Identifier = "axis-gw", NAS-IP-Address = 127.0.0.1'
PHONE, LAPTOP = "02-00-00-00-00-01", "02-00-00-00-00-02"


def auth(server: Server, device: str) -> Answer:
    return radclient(server.auth_port, "auth", seed.SECRET,
                     f'User-Name = "alice@acme.example", User-Password = "{seed.PASSWORD}", '
                     f'Calling-Station-Id = "{device}", {NAS}, Message-Authenticator = 0x00')


def acct(server: Server, status: str, device: str) -> str | None:
    return radclient(server.acct_port, "acct", seed.SECRET,
                     f'Acct-Status-Type = {status}, User-Name = "alice@acme.example", '
                     f'Acct-Session-Id = "s-{device}", Calling-Station-Id = "{device}", '
                     f'Acct-Session-Time = 60, {NAS}').code


def test_a_second_device_is_refused_while_the_first_is_on(server: Server, engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    with transaction(factory) as db:
        admin.set_company(db, "Acme", admin.CompanyTerms(max_sessions="1"))
    first = auth(server, PHONE)
    assert first.code == "Access-Accept", first.output
    assert acct(server, "Start", PHONE) == "Accounting-Response"

    second = auth(server, LAPTOP)
    assert second.code == "Access-Reject"
    assert second.one("Reply-Message") == (
        "too-many-sessions: Too many devices connected at once for your company's plan")
    # The phone checking in again is not a second session.
    assert auth(server, PHONE).code == "Access-Accept"

    assert acct(server, "Stop", PHONE) == "Accounting-Response"
    assert auth(server, LAPTOP).code == "Access-Accept"

    with factory() as db:
        granted = db.scalars(select(AuthLog.sessiontimeout).where(
            AuthLog.reply == "Access-Accept").order_by(AuthLog.id)).all()
        refused = db.scalars(select(AuthLog.sessiontimeout).where(
            AuthLog.reply == "Access-Reject")).all()
    # Each Accept's own (the credit shrinks as the phone's minute is charged).
    assert granted[0] == int(first.one("Session-Timeout"))
    assert len(granted) == 3 and all(t is not None and t > 0 for t in granted)
    assert refused == [None]


def test_no_limit_by_default(server: Server) -> None:
    for device in (PHONE, LAPTOP):
        assert auth(server, device).code == "Access-Accept"
        assert acct(server, "Start", device) == "Accounting-Response"
    assert auth(server, "02-00-00-00-00-03").code == "Access-Accept"
