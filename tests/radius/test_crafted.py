"""Crafted and hostile packets against the real server: duplicates,
garbage, forged authenticators, retransmissions, credit exhaustion."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from pyrad import packet as rp
from sqlalchemy import Engine, func, select, update

from passerelle.radius import codec, ledger
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.handler import AUTH, Datagram, Handler
from passerelle.radius.messages import Code
from passerelle.radius.models import AuthLog, Base, CreditEntry, Gateway, Radacct

from . import seed
from .conftest import Server, start_server
from .peers import RawClient

pytestmark = pytest.mark.integration


@pytest.fixture
def auth_client(server: Server) -> Iterator[RawClient]:
    client = RawClient(server.auth_port, seed.SECRET.encode())
    yield client
    client.close()


@pytest.fixture
def acct_client(server: Server) -> Iterator[RawClient]:
    client = RawClient(server.acct_port, seed.SECRET.encode())
    yield client
    client.close()


def count(engine: Engine, model: type[Base]) -> int:
    with make_sessionmaker(engine)() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_duplicate_access_request_answered_from_cache(server: Server, auth_client: RawClient,
                                                      engine: Engine) -> None:
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    data = pkt.RequestPacket()
    first = auth_client.send_raw(data)
    second = auth_client.send_raw(data)
    assert first is not None and first == second
    assert count(engine, AuthLog) == 1  # processed once
    assert "duplicate request" in server.logs()


def test_reply_authenticator_and_message_authenticator_are_right(auth_client: RawClient) -> None:
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    pkt.AddAttribute("Proxy-State", b"first")
    pkt.AddAttribute("Proxy-State", b"second")
    sent, reply = auth_client.exchange(pkt)
    assert reply is not None and reply.code == Code.ACCESS_ACCEPT
    raw = reply.raw_packet
    # Response Authenticator (RFC 2865 section 3), computed by hand.
    expected = hashlib.md5(raw[:4] + sent[4:20] + raw[20:] + seed.SECRET.encode()).digest()
    assert raw[4:20] == expected
    # Message-Authenticator first, HMAC-MD5 over the reply with the request's
    # authenticator and MA zeroed (RFC 3579 section 3.2).
    assert raw[20] == 80 and raw[21] == 18
    zeroed = raw[:4] + sent[4:20] + raw[20:22] + bytes(16) + raw[38:]
    assert raw[22:38] == hmac.new(seed.SECRET.encode(), zeroed, "md5").digest()
    # Proxy-State echoed unmodified and in order.
    assert reply[33] == [b"first", b"second"]


def test_garbage_is_dropped_and_the_server_keeps_serving(server: Server, auth_client: RawClient,
                                                         acct_client: RawClient) -> None:
    junk = [
        b"",
        b"\x01",
        os.urandom(19),
        b"\x01\x01\x00\x14" + os.urandom(15),  # shorter than its Length
        b"\x01\x01\x00\x10" + os.urandom(16),  # Length below 20
        b"\x01\x01\x10\x01" + os.urandom(4096),  # Length above 4096
        b"\x01\x02\x00\x17" + os.urandom(16) + b"\x01\x00\x00",  # attribute length 0
        b"\x01\x03\x00\x18" + os.urandom(16) + b"\x01\x09ab",  # attribute overruns
        b"\x63\x04\x00\x14" + os.urandom(16),  # unknown code
        os.urandom(300),
    ]
    for data in junk:
        assert auth_client.send_raw(data, timeout=0.2) is None
        assert acct_client.send_raw(data, timeout=0.2) is None
    _, reply = auth_client.exchange(auth_client.access_request("alice@acme.example",
                                                               seed.PASSWORD))
    assert reply is not None and reply.code == Code.ACCESS_ACCEPT
    assert server.proc.poll() is None
    assert "malformed" in server.logs()
    assert "Traceback" not in server.logs()


def test_padding_after_length_is_ignored(auth_client: RawClient) -> None:
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    raw = auth_client.send_raw(pkt.RequestPacket() + b"\x00" * 40)
    assert raw is not None and raw[0] == Code.ACCESS_ACCEPT


def test_bad_message_authenticator_dropped(server: Server, auth_client: RawClient) -> None:
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    data = bytearray(pkt.RequestPacket())
    data[22] ^= 0xFF  # first octet of the Message-Authenticator value
    assert auth_client.send_raw(bytes(data), timeout=0.3) is None
    assert "bad Message-Authenticator" in server.logs()


def test_password_longer_than_128_octets_dropped(server: Server, auth_client: RawClient) -> None:
    pkt = auth_client.access_request("alice@acme.example", None)
    pkt.AddAttribute("User-Password", os.urandom(144))
    assert auth_client.send_raw(pkt.RequestPacket(), timeout=0.3) is None
    assert "User-Password of 144 octets" in server.logs()


def test_password_octets_that_are_not_text_are_refused(server: Server,
                                                       auth_client: RawClient) -> None:
    # pyrad's decoder drops the \xff and would see the right password.
    password = seed.PASSWORD.encode()
    pkt = auth_client.access_request("alice@acme.example", password[:4] + b"\xff" + password[4:])
    _, reply = auth_client.exchange(pkt)
    assert reply is not None and reply.code == Code.ACCESS_REJECT
    assert "is not UTF-8 text" in server.logs()


def test_each_port_takes_its_own_kind_of_request(server: Server, auth_client: RawClient,
                                                 acct_client: RawClient) -> None:
    start = acct_client.accounting_request("Start", "p-1", User_Name="alice@acme.example")
    assert auth_client.send_raw(start.RequestPacket(), timeout=0.3) is None
    access = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    assert acct_client.send_raw(access.RequestPacket(), timeout=0.3) is None
    logs = server.logs()
    assert "not an Access-Request on the authentication port" in logs
    assert "not an Accounting-Request on the accounting port" in logs


def test_status_server_without_message_authenticator_dropped(server: Server,
                                                             auth_client: RawClient) -> None:
    pkt = rp.AuthPacket(code=Code.STATUS_SERVER, secret=seed.SECRET.encode(),
                        dict=codec.dictionary())
    pkt.id, pkt.authenticator = 3, os.urandom(16)
    pkt.AddAttribute("NAS-Identifier", "axis-gw")
    assert auth_client.send_raw(pkt.RequestPacket(), timeout=0.3) is None
    assert "Status-Server without Message-Authenticator" in server.logs()


def test_untracked_status_acknowledged_and_breaches_logged(server: Server, acct_client: RawClient,
                                                          engine: Engine) -> None:
    tunnel = acct_client.accounting_request("Start", "t-1", User_Name="alice@acme.example")
    tunnel["Acct-Status-Type"] = [9]  # Tunnel-Start (RFC 2867)
    _, reply = acct_client.exchange(tunnel)
    assert reply is not None and reply.code == Code.ACCOUNTING_RESPONSE
    assert count(engine, Radacct) == 0
    # User-Password in an Accounting-Request breaks RFC 2866 section 5.13:
    # logged, and the record is still taken.
    odd = acct_client.accounting_request("Start", "t-2", User_Name="alice@acme.example",
                                         Reply_Message="hello")
    _, reply = acct_client.exchange(odd)
    assert reply is not None and reply.code == Code.ACCOUNTING_RESPONSE
    assert count(engine, Radacct) == 1
    assert "carries Reply-Message (RFC 2866 section 5.13 forbids it)" in server.logs()


def test_decisions_are_summed_up_once_a_minute(engine: Engine, world: seed.World,
                                               caplog: pytest.LogCaptureFixture) -> None:
    now = [1_780_000_000.0]
    handler = Handler(make_sessionmaker(engine), clock=lambda: now[0])
    maker = RawClient(1, seed.SECRET.encode())  # builds packets; nothing is sent
    try:
        def auth(password: str) -> Datagram:
            pkt = maker.access_request("alice@acme.example", password)
            return Datagram(pkt.RequestPacket(), ("127.0.0.1", 40000), AUTH)

        with caplog.at_level(logging.INFO, logger="passerelle.radius"):
            handler.process([auth(seed.PASSWORD), auth("wrong"), auth("wrong")])
            now[0] += 30
            handler.process([auth(seed.PASSWORD), Datagram(b"junk", ("127.0.0.1", 1), AUTH)])
            assert "last " not in caplog.text  # nothing per decision at INFO
            now[0] += 31
            handler.process([])
    finally:
        maker.close()
    assert "last 61 s: 2 accept, 2 reject bad-credentials, 1 dropped" in caplog.text


def test_unknown_client_dropped(db_url: str, engine: Engine, world: seed.World,
                                tmp_path: Path) -> None:
    # The only gateway is 127.0.0.1; send from 127.0.0.2.
    srv = start_server(db_url, tmp_path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            client = RawClient(srv.auth_port, seed.SECRET.encode())
            pkt = client.access_request("alice@acme.example", seed.PASSWORD)
            s.sendto(pkt.RequestPacket(), ("127.0.0.1", srv.auth_port))
            s.settimeout(0.5)
            with pytest.raises(TimeoutError):
                s.recv(4096)
            client.close()
        assert "unknown client 127.0.0.2" in srv.logs()
    finally:
        srv.stop()


def test_relaxed_client_may_omit_message_authenticator(db_url: str, engine: Engine,
                                                       world: seed.World, tmp_path: Path) -> None:
    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Gateway).values(require_message_authenticator=False))
    srv = start_server(db_url, tmp_path)
    client = RawClient(srv.auth_port, seed.SECRET.encode())
    try:
        _, reply = client.exchange(client.access_request("alice@acme.example", seed.PASSWORD,
                                                         ma=False))
        assert reply is not None and reply.code == Code.ACCESS_ACCEPT
        # Even then, the reply is signed, Message-Authenticator first.
        assert reply.raw_packet[20] == 80
    finally:
        client.close()
        srv.stop()


def test_retransmissions_charge_credit_once(acct_client: RawClient, engine: Engine,
                                            world: seed.World) -> None:
    start = acct_client.accounting_request("Start", "r-1", User_Name="alice@acme.example")
    _, reply = acct_client.exchange(start)
    assert reply is not None and reply.code == Code.ACCOUNTING_RESPONSE
    interim = acct_client.accounting_request("Interim-Update", "r-1",
                                             User_Name="alice@acme.example",
                                             Acct_Session_Time=240)
    data = interim.RequestPacket()
    answers = [acct_client.send_raw(data) for _ in range(3)]  # same id: duplicates
    assert all(a is not None and a[0] == Code.ACCOUNTING_RESPONSE for a in answers)
    # A changed retransmission (new Acct-Delay-Time, so a new Identifier).
    late = acct_client.accounting_request("Interim-Update", "r-1",
                                          User_Name="alice@acme.example",
                                          Acct_Session_Time=240, Acct_Delay_Time=30)
    assert acct_client.exchange(late)[1] is not None
    stop = acct_client.accounting_request("Stop", "r-1", User_Name="alice@acme.example",
                                          Acct_Session_Time=300,
                                          Acct_Terminate_Cause="Idle-Timeout")
    stop_data = stop.RequestPacket()
    assert acct_client.send_raw(stop_data) is not None
    assert acct_client.send_raw(stop_data) is not None
    again = acct_client.accounting_request("Stop", "r-1", User_Name="alice@acme.example",
                                           Acct_Session_Time=300, Acct_Delay_Time=5,
                                           Acct_Terminate_Cause="Idle-Timeout")
    assert acct_client.exchange(again)[1] is not None
    with make_sessionmaker(engine)() as db:
        assert ledger.balance(db, world.people["alice"]) == 600 * 60 - 300
        charges = db.scalars(select(CreditEntry.seconds).where(CreditEntry.seconds < 0)).all()
        assert sum(charges) == -300
        row = db.scalars(select(Radacct)).one()
        assert row.acctterminatecause == "Idle-Timeout"


def test_acct_delay_time_moves_the_event_back(acct_client: RawClient, engine: Engine) -> None:
    before = time.time()
    pkt = acct_client.accounting_request("Start", "d-1", User_Name="alice@acme.example",
                                         Acct_Delay_Time=3600)
    assert acct_client.exchange(pkt)[1] is not None
    with make_sessionmaker(engine)() as db:
        row = db.scalars(select(Radacct)).one()
    assert row.acctstarttime is not None
    # Naive UTC: compare through a UTC timestamp.
    started = row.acctstarttime.replace(tzinfo=UTC).timestamp()
    assert before - 3600 - 5 <= started <= before - 3600 + 5


def test_accounting_without_session_id_dropped(server: Server, acct_client: RawClient) -> None:
    pkt = acct_client.accounting_request("Start", "", User_Name="alice@acme.example")
    assert acct_client.send_raw(pkt.RequestPacket(), timeout=0.3) is None
    assert "without Acct-Session-Id" in server.logs()


class DaePeer:
    """The gateway's side of RFC 5176 for this test: checks each request the
    way a NAS must and answers ACK."""

    def __init__(self, secret: bytes, nak_cause: int | None = None) -> None:
        self.secret = secret
        self.nak_cause = nak_cause
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.received: list[rp.CoAPacket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            data, addr = self.sock.recvfrom(4096)
        except (TimeoutError, OSError):
            return
        pkt = rp.CoAPacket(packet=data, secret=self.secret, dict=codec.dictionary())
        assert pkt.VerifyCoARequest()
        assert pkt.verify_message_authenticator()
        self.received.append(pkt)
        reply = pkt.CreateReply()
        if self.nak_cause is not None:
            reply.code = pkt.code + 2  # Disconnect-NAK / CoA-NAK
            reply.AddAttribute("Error-Cause", self.nak_cause)
        self.sock.sendto(reply.ReplyPacket(), addr)

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.sock.close()


def test_credit_exhausted_mid_session_sends_disconnect(db_url: str, engine: Engine, key_file: Path,
                                                      tmp_path: Path) -> None:
    peer = DaePeer(seed.SECRET.encode())
    world = seed.build(make_sessionmaker(engine), coa_port=peer.port)
    srv = start_server(db_url, tmp_path)
    client = RawClient(srv.acct_port, seed.SECRET.encode())
    try:
        # ivan has 2 minutes of credit; an Interim reports 3.
        for status, elapsed in (("Start", 0), ("Interim-Update", 180)):
            pkt = client.accounting_request(status, "cut-1", User_Name="ivan@acme.example",
                                            Acct_Session_Time=elapsed,
                                            Calling_Station_Id="02-00-00-00-00-09")
            assert client.exchange(pkt)[1] is not None
        peer.thread.join(timeout=10)
        assert len(peer.received) == 1
        request = peer.received[0]
        assert request.code == Code.DISCONNECT_REQUEST
        assert request["Acct-Session-Id"][0] == "cut-1"
        assert request["User-Name"][0] == "ivan@acme.example"
        assert request["Calling-Station-Id"][0] == "02-00-00-00-00-09"
        stamp = struct.unpack("!I", request[55][0])[0]
        assert abs(stamp - time.time()) < 30
        with make_sessionmaker(engine)() as db:
            assert ledger.balance(db, world.people["ivan"]) == 120 - 180
    finally:
        client.close()
        peer.close()
        srv.stop()


@pytest.mark.parametrize(("nak", "printed", "status"),
                         [(None, "ACK", 0), (503, "NAK (Session-Context-Not-Found, 503)", 1)])
def test_disconnect_command(db_url: str, engine: Engine, key_file: Path, nak: int | None,
                            printed: str, status: int) -> None:
    import subprocess

    from .conftest import BIN

    peer = DaePeer(seed.SECRET.encode(), nak_cause=nak)
    seed.build(make_sessionmaker(engine), coa_port=peer.port)
    with make_sessionmaker(engine)() as db, db.begin():
        gw = db.scalars(select(Gateway)).one()
        db.add(Radacct(acctsessionid="ops-1", acctuniqueid="u" * 32, username="alice@acme.example",
                       nasipaddress="127.0.0.1", gateway_id=gw.id, site_id=gw.site_id,
                       callingstationid="02-00-00-00-00-01", framedipaddress="198.51.100.10"))
    out = subprocess.run([str(BIN), "radius", "disconnect", "ops-1", "--db", db_url,
                          "--timeout", "1"], capture_output=True, text=True, timeout=30)
    peer.close()
    assert out.stdout.strip() == printed, out.stderr
    assert out.returncode == status
    request = peer.received[0]
    assert request["Acct-Session-Id"][0] == "ops-1"
    assert request["Framed-IP-Address"][0] == "198.51.100.10"
    assert request["NAS-Identifier"][0] == "axis-gw"


def test_disconnect_unknown_session_is_a_clear_error(db_url: str, engine: Engine,
                                                     world: seed.World) -> None:
    import subprocess

    from .conftest import BIN

    out = subprocess.run([str(BIN), "radius", "disconnect", "nope", "--db", db_url],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("Error: no session 'nope'")
    assert "Traceback" not in out.stderr


def test_two_workers_share_the_ports(db_url: str, engine: Engine, world: seed.World,
                                     tmp_path: Path) -> None:
    srv = start_server(db_url, tmp_path, workers=2)
    clients = [RawClient(srv.auth_port, seed.SECRET.encode()) for _ in range(8)]
    try:
        for client in clients:
            _, reply = client.exchange(client.access_request("alice@acme.example",
                                                             seed.PASSWORD), timeout=3)
            assert reply is not None and reply.code == Code.ACCESS_ACCEPT
        assert count(engine, AuthLog) == len(clients)
    finally:
        for client in clients:
            client.close()
        srv.stop()
    assert "Traceback" not in srv.logs()


def test_a_flood_of_malformed_datagrams_writes_a_bounded_log(server: Server,
                                                             auth_client: RawClient) -> None:
    """Finding 17: one WARNING line per bad datagram let a flood fill the disk."""
    bad = b"\x01\x01\x00\x18" + os.urandom(16) + b"\x01\x09ab"  # attribute overruns
    for _ in range(1000):
        auth_client.sock.send(bad)
    # Still serving after the flood (and every datagram of it was read by then).
    _, reply = auth_client.exchange(auth_client.access_request("alice@acme.example",
                                                               seed.PASSWORD))
    assert reply is not None and reply.code == Code.ACCESS_ACCEPT
    lines = [line for line in server.logs().splitlines() if "malformed" in line]
    assert 1 <= len(lines) <= 20
    assert "further such lines suppressed" in lines[-1]


def test_suppressed_drop_lines_are_counted(engine: Engine, world: seed.World,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Finding 17, with a fixed clock: the count of what was suppressed is
    written once the interval is over."""
    now = [1_780_000_000.0]
    handler = Handler(make_sessionmaker(engine), clock=lambda: now[0])
    bad = Datagram(b"\x01\x01\x00\x18" + bytes(16) + b"\x01\x09ab", ("127.0.0.1", 1), AUTH)
    with caplog.at_level(logging.WARNING, logger="passerelle.radius"):
        handler.process([bad] * 500)
        assert caplog.text.count("malformed") == 10
        now[0] += 61
        handler.process([])
    assert "490 more lines suppressed: malformed from 127.0.0.1" in caplog.text


def test_proxy_state_padding_cannot_make_a_reply_over_4096_octets(server: Server,
                                                                 auth_client: RawClient) -> None:
    """Finding 13: Proxy-States are echoed in the reply (RFC 2865 section
    5.33); a request padded with them made a 4,127-octet Access-Accept."""
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    room = 4096 - len(pkt.RequestPacket())
    while room > 2:  # the request itself is as long as it may be
        size = min(253, room - 2)
        pkt.AddAttribute("Proxy-State", b"p" * size)
        room -= size + 2
    data = pkt.RequestPacket()
    assert len(data) >= 4094
    auth_client.sock.send(data)
    auth_client.sock.settimeout(1.0)
    try:
        raw: bytes | None = auth_client.sock.recv(65535)
    except TimeoutError:
        raw = None
    assert raw is None or len(raw) <= 4096
    assert "Traceback" not in server.logs()
    assert "Proxy-State" in server.logs()
    # A request with a few small Proxy-States is answered as before.
    pkt = auth_client.access_request("alice@acme.example", seed.PASSWORD)
    for _ in range(3):
        pkt.AddAttribute("Proxy-State", b"p" * 100)
    _, reply = auth_client.exchange(pkt)
    assert reply is not None and reply.code == Code.ACCESS_ACCEPT
