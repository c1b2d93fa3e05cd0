"""The one-tap check-in at the centre (issue 14, "every later visit"), on
SQLite and PostgreSQL, with the box's own RADIUS client as the peer: the box
names the person and the id of the key it found for the station
(Passerelle-Key-Id) instead of a password. Accepted for the person's current
key, by the same policy as a password; refused for a rotated key, for a
person whose plan does not allow the box's site, and without
Message-Authenticator; no password is sent or stored for it."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, RadiusClient
from passerelle.radius import keys
from passerelle.radius import messages as m
from passerelle.radius.codec import codec
from passerelle.radius.db import make_sessionmaker, transaction
from passerelle.radius.models import Person

from . import seed
from .conftest import Server

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 10, 0, 0)
MAC, IP = "02:50:00:00:01:01", "192.0.2.140"


@pytest.fixture
def world(engine: Engine, key_file: Path) -> seed.World:
    """The box may send Access-Requests without Message-Authenticator (an old
    one): a key claim still needs it."""
    return seed.build(make_sessionmaker(engine), require_ma=False)


def client(server: Server) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", seed.SECRET.encode(), server.auth_port,
                                      server.acct_port)],
                        NasIdentity("axis-gw", "127.0.0.1"), timeout=0.5, tries=2)


def key_of(engine: Engine, person: int, rotate: bool = False) -> tuple[int, str]:
    with transaction(make_sessionmaker(engine)) as db:
        key = keys.rotate(db, person, NOW) if rotate else keys.issue_if_missing(db, person, NOW)
        return key.id, key.passphrase


def test_the_current_key_checks_in_without_a_password(server: Server, engine: Engine,
                                                      world: seed.World) -> None:
    key_id, passphrase = key_of(engine, world.people["alice"])
    got = client(server).authenticate("alice@acme.example", "", mac=MAC, ipv4=IP,
                                      key_id=key_id)
    assert got.accepted, got.reply_message
    assert got.wifi_key == passphrase and got.vlan == 101
    assert got.session_timeout is not None and got.session_timeout > 0
    with make_sessionmaker(engine)() as db:
        hashes = db.scalars(select(Person.password_hash)).all()
    assert all(h.startswith("$argon2") for h in hashes), "no password made for it"


def test_a_rotated_key_is_refused(server: Server, engine: Engine, world: seed.World) -> None:
    old, _ = key_of(engine, world.people["alice"])
    new, _ = key_of(engine, world.people["alice"], rotate=True)
    radius = client(server)
    refused = radius.authenticate("alice@acme.example", "", mac=MAC, ipv4=IP, key_id=old)
    assert not refused.accepted
    assert refused.reply_message.startswith("bad-credentials:")
    # Nor is another person's key proof for alice.
    bob, _ = key_of(engine, world.people["bob"])
    assert not radius.authenticate("alice@acme.example", "", mac=MAC, ipv4=IP,
                                   key_id=bob).accepted
    assert radius.authenticate("alice@acme.example", "", mac=MAC, ipv4=IP,
                               key_id=new).accepted
    assert "is not their current key" in server.logs()


def test_the_policy_decides_as_for_a_password(server: Server, engine: Engine,
                                              world: seed.World) -> None:
    """Frank's plan does not include this box's site (category 3); Grace
    has no credit; Carol's company is suspended: the key is no way round."""
    radius = client(server)
    for who, login, reason in (("frank", "frank@twostar.example", "site-not-allowed"),
                               ("grace", "grace@acme.example", "no-credit"),
                               ("carol", "carol@gone.example", "company-suspended")):
        key_id, _ = key_of(engine, world.people[who])
        got = radius.authenticate(login, "", mac=MAC, ipv4=IP, key_id=key_id)
        assert not got.accepted and got.reply_message.startswith(f"{reason}:"), who


def test_no_key_proof_without_message_authenticator(server: Server, engine: Engine,
                                                    world: seed.World) -> None:
    """This box may send Access-Requests without Message-Authenticator (the
    module's world): it still cannot check in by key without it."""
    key_id, _ = key_of(engine, world.people["alice"])
    request = m.AccessRequest(user_name="alice@acme.example", nas_identifier="axis-gw",
                              calling_station_id="02-50-00-00-01-01",
                              other=(codec().raw("Passerelle-Key-Id", key_id),))
    for with_ma, expected in ((False, m.AccessReject), (True, m.AccessAccept)):
        sent = request.encode(seed.SECRET.encode(), with_ma=with_ma)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(sent, ("127.0.0.1", server.auth_port))
            answer = sock.recv(4096)
        reply = m.decode_reply(answer, seed.SECRET.encode(), sent)
        assert isinstance(reply, expected), (with_ma, reply)


def test_a_wrong_secret_is_not_answered(server: Server, engine: Engine,
                                        world: seed.World) -> None:
    key_id, _ = key_of(engine, world.people["alice"])
    forged = RadiusClient([RadiusServer("127.0.0.1", b"not-the-secret", server.auth_port,
                                        server.acct_port)],
                          NasIdentity("axis-gw", "127.0.0.1"), timeout=0.3, tries=1)
    with pytest.raises(Exception, match="no RADIUS server answered"):
        forged.authenticate("alice@acme.example", "", mac=MAC, ipv4=IP, key_id=key_id)
