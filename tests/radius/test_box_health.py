"""A box's health as the centre records it (issue 8): the box's heartbeat
(gateway/heartbeat.py, a Status-Server through the box's RADIUS client) to
the real centre over UDP carries its software version and spool depth; an
Accounting-On/Off is recorded with its time. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select

from passerelle import __version__
from passerelle.gateway.heartbeat import Heartbeat, attributes, interval
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, RadiusClient
from passerelle.radius import messages as m
from passerelle.radius.codec import codec
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import told
from passerelle.radius.models import Gateway

from . import seed
from .conftest import Server
from .peers import radclient

pytestmark = pytest.mark.integration


@dataclass
class Spool:
    """The spool's depth (the box's spool is a table: its count is all that is read)."""

    depth: int

    def pending(self) -> int:
        return self.depth


def gateway(engine: Engine) -> Gateway:
    with make_sessionmaker(engine)() as db:
        found = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        db.expunge(found)
        return found


def client(server: Server, port_offset: int = 0) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", seed.SECRET.encode(),
                                      auth_port=server.auth_port + port_offset,
                                      acct_port=server.acct_port)],
                        NasIdentity("axis-gw", "127.0.0.1"), timeout=0.5)


def test_the_heartbeat_tells_version_and_spool_depth(server: Server, engine: Engine) -> None:
    assert gateway(engine).last_status is None
    assert Heartbeat(client(server), Spool(7)).beat() == 1
    seen = gateway(engine)
    assert (seen.software_version, seen.spool_depth) == (__version__, 7)
    assert seen.last_status is not None and seen.last_seen is not None
    Heartbeat(client(server), Spool(0), version="9.9").beat()
    seen = gateway(engine)
    assert (seen.software_version, seen.spool_depth) == ("9.9", 0)


def test_a_heartbeat_nobody_answers_is_logged_once(server: Server,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # A port where no centre listens (the auth port's neighbour is the acct port: +2).
    beat = Heartbeat(client(server, port_offset=2), Spool(0))
    assert beat.beat() == 0 and beat.beat() == 0
    assert caplog.text.count("no RADIUS server answered the Status-Server") == 1


def test_accounting_on_and_off_are_recorded(server: Server, engine: Engine) -> None:
    nas = 'NAS-Identifier = "axis-gw", NAS-IP-Address = 127.0.0.1'
    for status in ("Accounting-On", "Accounting-Off"):
        assert radclient(server.acct_port, "acct", seed.SECRET,
                         f"Acct-Status-Type = {status}, {nas}").code == "Accounting-Response"
    seen = gateway(engine)
    assert seen.last_accounting_on is not None and seen.last_accounting_off is not None
    assert seen.last_accounting_off >= seen.last_accounting_on


def test_what_the_centre_reads_from_a_status_server() -> None:
    request = m.StatusServer.of(attributes("1.2.3", 5), nas_identifier="axis-gw")
    decoded = m.decode_request(request.encode(b"s" * 16), b"s" * 16)
    assert isinstance(decoded, m.StatusServer)
    assert told(decoded) == ("1.2.3", 5)
    # Not told, or not readable: unknown.
    assert told(m.StatusServer(nas_identifier="axis-gw")) == (None, None)
    bad = m.StatusServer(other=((codec().key("Passerelle-Spool-Depth"), b"\x01"),))
    assert told(bad) == (None, None)
    assert (interval(300), interval(30), interval(0)) == (60.0, 30.0, 1.0)
