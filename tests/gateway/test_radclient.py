"""The box's RADIUS client over real UDP on 127.0.0.1.

Three kinds of peer: a scripted UDP peer in this file for what a normal
server never does (lose packets, forge replies, forget Message-Authenticator),
`passerelle radius serve` on SQLite and PostgreSQL, and FreeRADIUS 3.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pyrad import packet as rp
from sqlalchemy import Engine, select

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.radclient import (
    Backoff,
    NasIdentity,
    NoServer,
    RadiusClient,
    RadiusServer,
)
from passerelle.radius import codec, ledger
from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.models import AuthLog, PersonKey, Radacct
from tests.peers import freeradius as fr
from tests.peers.freeradius import (  # noqa: F401 - fixtures, by their pytest names
    freeradius_fixture,
    freeradius_with_ma_fixture,
)
from tests.radius import seed
from tests.radius.conftest import Server, start_server

SECRET = b"unit-secret"
NAS = NasIdentity("axis-gw", "127.0.0.1", called_station_id="02-00-00-00-00-01:Passerelle",
                  operator_name="1passerelle.example")
MAC = "02:11:22:33:44:55"
IP = "198.51.100.23"

Responder = Callable[[rp.Packet, bytes], "bytes | list[bytes] | None"]


class Peer:
    """A scripted RADIUS server on a real UDP socket."""

    def __init__(self, respond: Responder | None, secret: bytes = SECRET) -> None:
        self.respond = respond
        self.secret = secret
        self.received: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def server(self, **kw: Any) -> RadiusServer:
        # Any: RadiusServer's own keywords, each of its type.
        return RadiusServer("127.0.0.1", self.secret, self.port, self.port, **kw)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.received.append(data)
            if self.respond is None:
                continue
            request = as_pyrad(data, self.secret)
            answer = self.respond(request, data)
            for datagram in [answer] if isinstance(answer, bytes) else answer or []:
                self.sock.sendto(datagram, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def peer(peers: list[Peer], respond: Responder | None, secret: bytes = SECRET) -> Peer:
    p = Peer(respond, secret)
    peers.append(p)
    return p


def as_pyrad(data: bytes, secret: bytes) -> rp.Packet:
    """A request as pyrad, the independent peer, reads it."""
    cls = rp.AcctPacket if data[0] == m.Code.ACCOUNTING_REQUEST else rp.AuthPacket
    return cls(packet=data, secret=secret, dict=codec.dictionary())


def resign(raw: bytes, request: rp.Packet, secret: bytes) -> bytes:
    """Recompute the Response Authenticator over a tampered reply."""
    digest = hashlib.md5(raw[:4] + request.authenticator + raw[20:] + secret).digest()
    return raw[:4] + digest + raw[20:]


def accept(request: rp.Packet, _: bytes, *, ma: bool = True, **attrs: object) -> bytes:
    if request.code == m.Code.ACCOUNTING_REQUEST:
        return bytes(request.CreateReply().ReplyPacket())
    reply = request.CreateReply()
    reply.code = m.Code.ACCESS_ACCEPT
    reply.message_authenticator = ma
    reply.AddAttribute("Session-Timeout", 3600)
    for name, value in attrs.items():
        reply.AddAttribute(name.replace("_", "-"), value)
    return bytes(reply.ReplyPacket())


def client(*servers: RadiusServer, **kw: Any) -> RadiusClient:
    # Generous enough that a loaded CI machine does not cause retransmissions
    # where a test counts datagrams. Any: RadiusClient's keywords, each of its type.
    opts: dict[str, Any] = dict(timeout=0.4, tries=2, max_timeout=0.8)
    opts.update(kw)
    return RadiusClient(servers, NAS, **opts)


# -- pure parts ----------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum_with_jitter() -> None:
    assert Backoff(2.0, 5, 16.0).waits(lambda: 0.5) == [2.0, 4.0, 8.0, 16.0, 16.0]
    low = Backoff(2.0, 6, 16.0).waits(lambda: 0.0)
    high = Backoff(2.0, 6, 16.0).waits(lambda: 0.999)
    assert low[0] == pytest.approx(1.8) and high[0] == pytest.approx(2.2, rel=1e-3)
    assert all(w <= 16.0 for w in low + high)
    assert low[-1] == pytest.approx(14.4)  # jitter stays below the maximum too


def test_a_password_radius_cannot_carry_is_refused_before_sending(peers: list[Peer]) -> None:
    p = peer(peers, accept)
    with pytest.raises(ValueError, match="128"):
        client(p.server()).authenticate("u", "x" * 129, mac=MAC, ipv4=IP)
    assert p.received == []


# -- what goes on the wire ---------------------------------------------------------


@pytest.mark.parametrize("length", [1, 15, 16, 17, 127, 128])
def test_pap_request_carries_identity_and_a_valid_message_authenticator(
        peers: list[Peer], length: int) -> None:
    p = peer(peers, accept)
    password = "é" + "p" * (length - 2) if length > 1 else "p"
    assert len(password.encode()) == length
    result = client(p.server()).authenticate("alice@acme.example", password, mac=MAC, ipv4=IP)
    assert result.accepted and result.session_timeout == 3600
    (data,) = p.received
    req = as_pyrad(data, SECRET)
    assert next(iter(dict.keys(req))) == 80  # Message-Authenticator first
    assert req.verify_message_authenticator()
    assert req.PwDecrypt(req[2][0]) == password
    assert "CHAP-Password" not in req
    assert req["User-Name"][0] == "alice@acme.example"
    assert req["NAS-Identifier"][0] == "axis-gw"
    assert req["NAS-IP-Address"][0] == "127.0.0.1"
    assert req["Called-Station-Id"][0] == "02-00-00-00-00-01:Passerelle"
    assert req["Calling-Station-Id"][0] == "02-11-22-33-44-55".upper()
    assert req["Framed-IP-Address"][0] == IP
    assert req["Service-Type"][0] == "Login-User"
    assert req["NAS-Port-Type"][0] == "Wireless-802.11"
    assert req["Operator-Name"][0] == "1passerelle.example"


def test_chap_request_has_a_fresh_challenge_and_no_password(peers: list[Peer]) -> None:
    p = peer(peers, accept)
    c = client(p.server())
    for _ in range(2):
        assert c.authenticate("alice", "correct horse", mac=MAC, ipv4=IP, chap=True).accepted
    reqs = [as_pyrad(d, SECRET) for d in p.received]
    for req in reqs:
        assert "User-Password" not in req
        assert len(req[60][0]) == 16
        assert req.VerifyChapPasswd("correct horse")
        assert not req.VerifyChapPasswd("wrong horse")
    assert reqs[0][60] != reqs[1][60]


def test_accounting_request_is_signed_and_reports_its_delay(peers: list[Peer]) -> None:
    p = peer(peers, accept)
    c = client(p.server(), wall_clock=lambda: 1_790_000_042.0)
    c.account(AccountingRecord(m.AcctStatus.START, "s-1", "alice", MAC, IP, b"cls",
                               event_time=1_790_000_000.0))
    (data,) = p.received
    req = as_pyrad(data, SECRET)
    assert req.VerifyAcctRequest()
    assert req["Acct-Status-Type"][0] == "Start"
    assert req["Acct-Delay-Time"][0] == 42
    assert req["NAS-Identifier"][0] == "axis-gw"
    assert req["NAS-IP-Address"][0] == "127.0.0.1"
    assert req["Called-Station-Id"][0] == "02-00-00-00-00-01:Passerelle"
    assert req["Operator-Name"][0] == "1passerelle.example"
    assert req["NAS-Port-Type"][0] == "Wireless-802.11"
    assert req["Calling-Station-Id"][0] == "02-11-22-33-44-55".upper()
    assert req[25] == [b"cls"]
    assert "Message-Authenticator" not in req


# -- loss, failover, dead time ---------------------------------------------------------


def test_retransmission_repeats_the_very_same_datagram(peers: list[Peer]) -> None:
    seen: list[int] = []

    def lossy(request: rp.Packet, data: bytes) -> bytes | None:
        seen.append(1)
        return accept(request, data) if len(seen) == 3 else None  # lose two answers

    p = peer(peers, lossy)
    result = client(p.server(), tries=3).authenticate("alice", "pw", mac=MAC, ipv4=IP)
    assert result.accepted
    assert len(p.received) == 3 and len(set(p.received)) == 1


def test_failover_then_dead_time_then_retry(peers: list[Peer]) -> None:
    silent, backup = peer(peers, None), peer(peers, accept)
    now = [1000.0]
    c = client(silent.server(), backup.server(), dead_time=30.0, clock=lambda: now[0])
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert (len(silent.received), len(backup.received)) == (2, 1)
    c.account(AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=time.time()))
    assert (len(silent.received), len(backup.received)) == (2, 2)  # dead: skipped
    now[0] += 30.0
    assert c.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert (len(silent.received), len(backup.received)) == (4, 3)  # retried, then failover


def test_no_server_answering_raises_noserver(peers: list[Peer]) -> None:
    a, b = peer(peers, None), peer(peers, None)
    c = client(a.server(), b.server(), clock=lambda: 5.0)
    with pytest.raises(NoServer):
        c.authenticate("alice", "pw", mac=MAC, ipv4=IP)
    with pytest.raises(NoServer):
        c.account(AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=time.time()))
    assert (len(a.received), len(b.received)) == (2, 2)  # all dead: nothing more sent


def test_threads_share_one_client_and_each_gets_its_own_answer(peers: list[Peer]) -> None:
    def echo(request: rp.Packet, data: bytes) -> bytes:
        time.sleep(0.002)  # let requests overlap
        login = request["User-Name"][0]
        return accept(request, data, Class=login.encode())

    p = peer(peers, echo)
    c = client(p.server(), timeout=1.0, max_timeout=2.0)
    wrong: list[str] = []

    def work(n: int) -> None:
        for i in range(10):
            login = f"user{n}-{i}"
            if c.authenticate(login, "pw", mac=MAC, ipv4=IP).class_ != login.encode():
                wrong.append(login)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and len(p.received) == 80


# -- replies that must not be believed -----------------------------------------------------


def test_reply_without_message_authenticator_is_dropped_by_default(
        peers: list[Peer], caplog: pytest.LogCaptureFixture) -> None:
    p = peer(peers, lambda r, d: accept(r, d, ma=False))
    caplog.set_level(logging.WARNING, "passerelle.gateway")
    strict = client(p.server(), dead_time=0.0)
    for _ in range(2):
        with pytest.raises(NoServer):
            strict.authenticate("alice", "pw", mac=MAC, ipv4=IP)
    warned = [r for r in caplog.records if "no Message-Authenticator" in r.getMessage()]
    assert len(warned) == 1  # once per server, not once per packet
    relaxed = client(p.server(require_message_authenticator=False))
    assert relaxed.authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted


def test_reply_with_a_bad_message_authenticator_is_dropped_even_when_relaxed(
        peers: list[Peer]) -> None:
    def forged(request: rp.Packet, data: bytes) -> bytes:
        raw = bytearray(accept(request, data))
        raw[22] ^= 0xFF  # inside the Message-Authenticator (first attribute)
        return resign(bytes(raw), request, SECRET)

    p = peer(peers, forged)
    with pytest.raises(NoServer):
        client(p.server(require_message_authenticator=False)).authenticate(
            "alice", "pw", mac=MAC, ipv4=IP)


def test_reply_signed_with_another_secret_is_dropped(peers: list[Peer]) -> None:
    def wrong(request: rp.Packet, data: bytes) -> bytes:
        return resign(accept(request, data), request, b"another secret")

    p = peer(peers, wrong)
    with pytest.raises(NoServer):
        client(p.server(require_message_authenticator=False)).authenticate(
            "alice", "pw", mac=MAC, ipv4=IP)


def test_reply_with_proxy_state_we_did_not_send_is_dropped(peers: list[Peer]) -> None:
    p = peer(peers, lambda r, d: accept(r, d, Proxy_State=b"blast"))
    with pytest.raises(NoServer):
        client(p.server()).authenticate("alice", "pw", mac=MAC, ipv4=IP)


def test_stray_replies_are_ignored_and_the_real_one_taken(peers: list[Peer]) -> None:
    def noisy(request: rp.Packet, data: bytes) -> list[bytes]:
        good = accept(request, data)
        other_id = bytes([good[0], (good[1] + 1) % 256]) + good[2:]
        return [b"\x02\x00\x00", other_id, good[:-1], good]

    p = peer(peers, noisy)
    assert client(p.server()).authenticate("alice", "pw", mac=MAC, ipv4=IP).accepted
    assert len(p.received) == 1


def test_reject_and_challenge_carry_the_reply_message(peers: list[Peer]) -> None:
    def reject(request: rp.Packet, _: bytes) -> bytes:
        reply = request.CreateReply()
        reply.code = m.Code.ACCESS_REJECT
        reply.AddAttribute("Reply-Message", "no-credit: ")
        reply.AddAttribute("Reply-Message", "No credit left")
        return bytes(reply.ReplyPacket())

    p = peer(peers, reject)
    result = client(p.server()).authenticate("grace", "pw", mac=MAC, ipv4=IP)
    assert not result.accepted
    assert result.reply_message == "no-credit: No credit left"


def test_bad_values_in_an_accept_are_ignored_not_fatal(peers: list[Peer]) -> None:
    def odd(request: rp.Packet, data: bytes) -> bytes:
        reply = request.CreateReply()
        reply.code = m.Code.ACCESS_ACCEPT
        reply[28] = [b"\x01\x02"]  # Idle-Timeout of 2 octets
        reply[81] = [b"\x01vlan-x"]
        reply[69] = [b"\x00\x80"]
        reply.AddAttribute("Acct-Interim-Interval", 120)
        return bytes(reply.ReplyPacket())

    p = peer(peers, odd)
    result = client(p.server()).authenticate("alice", "pw", mac=MAC, ipv4=IP)
    assert result.accepted and result.interim_interval == 120
    assert (result.idle_timeout, result.vlan, result.wifi_key) == (None, None, None)


@pytest.mark.parametrize("key", ["k", "a" * 15, "b" * 16, "personal-wifi-key-63-" + "x" * 42])
@pytest.mark.parametrize("tagged", [True, False])
def test_the_wifi_key_is_the_tunnel_password_in_clear(peers: list[Peer], key: str,
                                                      tagged: bool) -> None:
    def with_key(request: rp.Packet, data: bytes) -> bytes:
        reply = request.CreateReply()
        reply.code = m.Code.ACCESS_ACCEPT
        reply.message_authenticator = True
        reply.request_authenticator = request.authenticator
        reply.AddAttribute("Tunnel-Password:1", key)  # encrypted by pyrad
        raw = dict.__getitem__(reply, 69)[0]
        assert len(raw) % 16 == 3  # tag + salt + 16n, what hostapd accepts
        if not tagged:
            reply[69] = [raw[1:]]
        return bytes(reply.ReplyPacket())

    p = peer(peers, with_key)
    assert client(p.server()).authenticate("alice", "pw", mac=MAC, ipv4=IP).wifi_key == key


# -- against `passerelle radius serve` -------------------------------------------------------


@pytest.fixture
def centre(db_url: str, engine: Engine, key_file: Path, tmp_path: Path) -> Iterator[Server]:
    seed.build(make_sessionmaker(engine))
    srv = start_server(db_url, tmp_path)
    yield srv
    srv.stop()


def centre_client(srv: Server) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", seed.SECRET.encode(), srv.auth_port,
                                      srv.acct_port)], NAS, timeout=1.0, tries=3)


@pytest.mark.integration
def test_centre_accepts_pap_and_chap_with_the_session_terms(centre: Server, engine: Engine) -> None:
    c = centre_client(centre)
    pap = c.authenticate("alice@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    chap = c.authenticate("alice@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP, chap=True)
    for result in (pap, chap):
        assert result.accepted, result
        assert result.session_timeout == 600 * 60
        assert (result.idle_timeout, result.interim_interval, result.vlan) == (900, 300, 101)
    bob = c.authenticate("bob@slowco.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    assert (bob.bandwidth_up, bob.bandwidth_down, bob.session_timeout) == (
        2_000_000, 10_000_000, 1800)
    with make_sessionmaker(engine)() as db:
        # One personal key, the same at each check-in.
        key = db.scalars(select(PersonKey).where(PersonKey.revoked.is_(None))
                         .order_by(PersonKey.id)).first()
        assert key is not None and pap.wifi_key == chap.wifi_key == key.passphrase
        classes = db.scalars(select(AuthLog.class_).order_by(AuthLog.id)).all()
        assert [c.encode() for c in classes[:2]] == [pap.class_, chap.class_]


@pytest.mark.integration
def test_centre_tells_the_credit_left_at_the_accept(centre: Server, engine: Engine) -> None:
    c = centre_client(centre)
    alice = c.authenticate("alice@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    ivan = c.authenticate("ivan@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    assert (alice.credit_left, ivan.credit_left) == (600 * 60, 2 * 60)
    # A session charged since: the next Accept tells the new balance.
    record = partial(AccountingRecord, session_id="gw-0002", username="ivan@acme.example",
                     mac=MAC, ipv4=IP, class_=ivan.class_)
    c.account(record(m.AcctStatus.START, event_time=time.time() - 50))
    c.account(record(m.AcctStatus.STOP, session_time=50, event_time=time.time(),
                     terminate_cause=m.TerminateCause.USER_REQUEST))
    again = c.authenticate("ivan@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    assert again.accepted and again.credit_left == 70 and again.session_timeout == 70


@pytest.mark.integration
@pytest.mark.parametrize("login, password, code", [
    ("grace@acme.example", seed.PASSWORD, "no-credit"),
    ("carol@gone.example", seed.PASSWORD, "company-suspended"),
    ("alice@acme.example", "wrong horse", "bad-credentials"),
    ("nobody@acme.example", seed.PASSWORD, "bad-credentials"),
])
def test_centre_rejects_carry_the_reason(centre: Server, login: str, password: str,
                                         code: str) -> None:
    result = centre_client(centre).authenticate(login, password, mac=MAC, ipv4=IP)
    assert not result.accepted
    assert result.reply_message.startswith(code + ":"), result


@pytest.mark.integration
def test_centre_records_start_interim_stop(centre: Server, engine: Engine) -> None:
    c = centre_client(centre)
    auth = c.authenticate("alice@acme.example", seed.PASSWORD, mac=MAC, ipv4=IP)
    t0 = time.time() - 120
    record = partial(AccountingRecord, session_id="gw-0001", username="alice@acme.example",
                     mac=MAC, ipv4=IP, class_=auth.class_)
    c.account(record(m.AcctStatus.START, event_time=t0))
    c.account(record(m.AcctStatus.INTERIM_UPDATE, session_time=60, input_octets=2**32 + 10,
                     output_octets=5000, event_time=t0 + 60))
    c.account(record(m.AcctStatus.STOP, session_time=120, input_octets=2**32 + 99,
                     output_octets=6 * 2**32, terminate_cause=m.TerminateCause.USER_REQUEST,
                     event_time=t0 + 120))
    with make_sessionmaker(engine)() as db:
        row = db.scalars(select(Radacct)).one()
        assert row.acctsessionid == "gw-0001"
        assert (row.acctinputoctets, row.acctoutputoctets) == (2**32 + 99, 6 * 2**32)
        assert (row.acctsessiontime, row.acctterminatecause) == (120, "User-Request")
        assert auth.class_ is not None and row.class_ == auth.class_.decode()
        assert row.callingstationid == "02-11-22-33-44-55".upper()
        assert row.acctstoptime is not None
        assert row.person_id is not None
        assert ledger.balance(db, row.person_id) == 600 * 60 - 120


# -- against FreeRADIUS 3 -----------------------------------------------------------------------


def fr_client(server: fr.FreeRadius, require_ma: bool = False) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", server.secret, server.auth_port,
                                      server.acct_port, require_ma)],
                        NAS, timeout=0.5, tries=2)


@pytest.mark.integration
@pytest.mark.parametrize("chap", [False, True])
def test_freeradius_accept_with_key_vlan_class(freeradius: fr.FreeRadius, chap: bool) -> None:
    result = fr_client(freeradius).authenticate("fred", fr.PASSWORD, mac=MAC, ipv4=IP,
                                                chap=chap)
    assert result.accepted, freeradius.logs()
    assert (result.session_timeout, result.idle_timeout, result.interim_interval) == (
        3600, 600, 120)
    assert result.class_ == b"fred-class\x00\x01\xff"
    assert result.wifi_key == "fred-personal-wifi-key"
    assert result.vlan == 42
    assert (result.bandwidth_up, result.bandwidth_down) == (2_000_000, 8_000_000)


@pytest.mark.integration
@pytest.mark.parametrize("chap", [False, True])
def test_freeradius_rejects(freeradius: fr.FreeRadius, chap: bool) -> None:
    c = fr_client(freeradius)
    assert not c.authenticate("fred", "not the password", mac=MAC, ipv4=IP, chap=chap).accepted
    locked = c.authenticate("mallory", fr.PASSWORD, mac=MAC, ipv4=IP, chap=chap)
    assert not locked.accepted
    assert locked.reply_message == "account-disabled: mallory is locked out"


@pytest.mark.integration
def test_freeradius_reply_without_ma_is_dropped_by_default(
        freeradius: fr.FreeRadius, caplog: pytest.LogCaptureFixture) -> None:
    # Debian 12's FreeRADIUS 3.2.1 does not sign PAP replies: the default
    # (BlastRADIUS protection) must not believe them.
    caplog.set_level(logging.WARNING, "passerelle.gateway")
    with pytest.raises(NoServer):
        fr_client(freeradius, require_ma=True).authenticate("fred", fr.PASSWORD, mac=MAC,
                                                            ipv4=IP)
    assert any("no Message-Authenticator" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_freeradius_signing_policy_satisfies_the_default(
        freeradius_with_ma: fr.FreeRadius) -> None:
    c = fr_client(freeradius_with_ma, require_ma=True)
    assert c.authenticate("fred", fr.PASSWORD, mac=MAC, ipv4=IP).wifi_key == (
        "fred-personal-wifi-key")
    assert not c.authenticate("mallory", fr.PASSWORD, mac=MAC, ipv4=IP).accepted


@pytest.mark.integration
def test_freeradius_accounting(freeradius: fr.FreeRadius) -> None:
    c = fr_client(freeradius)
    t0 = time.time() - 30
    record = partial(AccountingRecord, session_id="fr-0001", username="fred", mac=MAC,
                     ipv4=IP, class_=b"fred-class\x00\x01\xff")
    c.account(AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=t0))
    c.account(record(m.AcctStatus.START, event_time=t0))
    c.account(record(m.AcctStatus.INTERIM_UPDATE, session_time=10, input_octets=3 * 2**32 + 1,
                     output_octets=77, event_time=t0 + 10))
    c.account(record(m.AcctStatus.STOP, session_time=30, input_octets=3 * 2**32 + 2,
                     output_octets=78, terminate_cause=m.TerminateCause.IDLE_TIMEOUT,
                     event_time=t0 + 30))
    records = [r for r in freeradius.accounting() if r.get("NAS-Identifier") == "axis-gw"]
    mine = [r for r in records if r.get("Acct-Session-Id") == "fr-0001"]
    assert [r["Acct-Status-Type"] for r in mine] == ["Start", "Interim-Update", "Stop"]
    assert any(r["Acct-Status-Type"] == "Accounting-On" for r in records)
    stop = mine[-1]
    assert (stop["Acct-Input-Gigawords"], stop["Acct-Input-Octets"]) == ("3", "2")
    assert stop["Acct-Terminate-Cause"] == "Idle-Timeout"
    assert stop["Class"] == "0x" + b"fred-class\x00\x01\xff".hex()
    assert stop["Calling-Station-Id"] == "02-11-22-33-44-55".upper()
    assert int(stop["Acct-Delay-Time"]) >= 0


def test_a_check_in_waits_for_three_sends_per_server_accounting_for_all(
        peers: list[Peer]) -> None:
    silent = peer(peers, None)
    c = client(silent.server(), timeout=0.05, tries=5, max_timeout=0.1, dead_time=0)
    with pytest.raises(NoServer):
        c.authenticate("alice", "pw", mac=MAC, ipv4=IP)
    assert len(silent.received) == 3, "a person at the portal is not kept waiting"
    with pytest.raises(NoServer):
        c.account(AccountingRecord(status=m.AcctStatus.START, session_id="S1", event_time=1.0))
    assert len(silent.received) == 3 + 5
