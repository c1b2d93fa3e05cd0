"""RADIUS over TLS (RadSec, RFC 6614): the centre's listener.

A box connects with the client certificate it got at enrolment. The TLS
handshake checks it against the centre's CA; then its serial is looked up
in ``gateway_certificate``: an unknown or revoked serial closes the
connection with a log line. From then on the connection *is* the gateway,
whatever its source address (a box behind a DSL line whose address changes
is fine).

Each RADIUS packet on the stream is cut out by its Length field (``Framer``,
pure) and goes through the same Handler as a UDP datagram, with the shared
secret "radsec" (RFC 6614 section 2.3); the reply is written back on the
stream. A Length outside 20..4096 cannot be resynchronised on a stream: the
connection is closed with a log line, as RADIUS over TCP (RFC 6613) asks.

A connection whose TLS ALPN is ``REVERSE_ALPN`` is a box's reverse path
(gateway/reverse_coa.py): the centre sends Disconnect- and CoA-Requests for
that gateway over it (``ReversePaths``), the box answers on it. This is the
box-initiated equivalent of draft-ietf-radext-reverse-coa: the box behind
NAT opened the connection, so the centre's requests need no way in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from . import dae, store
from . import messages as m
from .enrolment import _authority
from .handler import ACCT, AUTH, Datagram
from .models import Gateway, GatewayCertificate

log = logging.getLogger("passerelle.radius")

SECRET = dae.RADSEC_SECRET
PORT = 2083
MIN_LENGTH, MAX_LENGTH = 20, 4096
REVERSE_ALPN = "passerelle-reverse-coa"
SERVER_CERT_DAYS = 30  # made afresh at each start


# -- framing (pure) ---------------------------------------------------------------


class BadLength(Exception):
    """A RADIUS Length field a stream cannot go on from."""


class Framer:
    """Cuts a byte stream into RADIUS packets by their Length field."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole packets ``data`` completes; BadLength when a header
        announces a length outside 20..4096 (the stream is then unusable)."""
        self._buffer += data
        packets = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[2:4], "big")
            if not MIN_LENGTH <= length <= MAX_LENGTH:
                raise BadLength(f"a packet announces {length} octets (RADIUS allows "
                                f"{MIN_LENGTH} to {MAX_LENGTH})")
            if len(self._buffer) < length:
                break
            packets.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return packets

    @property
    def pending(self) -> int:
        """Octets of a packet not yet complete."""
        return len(self._buffer)


def port_of(packet: bytes) -> str:
    """The UDP port a RadSec packet would have gone to: one TLS port carries
    both kinds (RFC 6614)."""
    return ACCT if packet[0] == m.Code.ACCOUNTING_REQUEST else AUTH


# -- who a certificate is --------------------------------------------------------


def serial_of(der: bytes) -> str:
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"


def gateway_of_serial(db: DB, serial: str, now: datetime) -> tuple[int | None, str]:
    """The gateway id a client certificate's serial belongs to, or None and
    why it is refused."""
    row = db.scalars(select(GatewayCertificate)
                     .where(GatewayCertificate.serial == serial)).first()
    if row is None:
        return None, "unknown certificate"
    if row.revoked is not None:
        return None, f"certificate revoked on {row.revoked:%Y-%m-%d %H:%M}"
    if row.not_after <= now:
        return None, "certificate expired"
    return row.gateway_id, ""


def server_context(factory: sessionmaker[DB], names: list[str],
                   now: datetime | None = None) -> ssl.SSLContext:
    """The listener's TLS context: a server certificate for ``names`` signed
    by the centre's CA (the one the boxes got at enrolment), and client
    certificates required and checked against that CA."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    with factory() as db, db.begin():
        ca_cert, ca_key = _authority(db, now)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=SERVER_CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca_cert.public_bytes(pem).decode())
    context.set_alpn_protocols([REVERSE_ALPN])
    # load_cert_chain reads files only: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="radsec-") as tmp:
        chain = os.path.join(tmp, "chain.pem")
        fd = os.open(chain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(cert.public_bytes(pem) + key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context.load_cert_chain(chain)
    return context


# -- the reverse paths -------------------------------------------------------------


class ReversePaths:
    """The boxes' reverse connections, by gateway identifier, for radius/dae.py.

    Lives in the event loop; ``exchange`` is called from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._links: dict[str, _Link] = {}

    def has(self, gateway: str) -> bool:
        return gateway in self._links

    def exchange(self, gateway: str, packet: bytes, timeout: float) -> bytes | None:
        """Send ``packet`` to ``gateway`` over its reverse connection and the
        answer with the same Identifier; None when there is no connection or
        no answer in ``timeout`` s."""
        link = self._links.get(gateway)
        if link is None:
            return None
        future = asyncio.run_coroutine_threadsafe(link.exchange(packet, timeout), self.loop)
        try:
            return future.result(timeout + 1.0)
        except TimeoutError:
            return None

    def add(self, gateway: str, link: _Link) -> None:
        old = self._links.get(gateway)
        self._links[gateway] = link  # the newest wins: the older one is a dead NAT mapping
        if old is not None:
            old.close()

    def remove(self, gateway: str, link: _Link) -> None:
        if self._links.get(gateway) is link:
            del self._links[gateway]


class _Link:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._waiting: dict[int, asyncio.Future[bytes]] = {}

    async def exchange(self, packet: bytes, timeout: float) -> bytes | None:
        ident = packet[1]
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            self.writer.write(packet)
            await self.writer.drain()
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            self._waiting.pop(ident, None)

    def answered(self, packet: bytes) -> None:
        future = self._waiting.get(packet[1])
        if future is not None and not future.done():
            future.set_result(packet)
        else:
            log.warning("radsec: dropped an answer to no request (id %d)", packet[1])

    def close(self) -> None:
        self.writer.close()


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


# -- the listener ------------------------------------------------------------------


Submit = Callable[[list[Datagram]], None]


@dataclass
class RadSecListener:
    """Accepts RadSec connections and feeds their packets to ``submit``
    (the worker's batch path); ``streams`` is where the worker finds the
    writer for a reply's address."""

    factory: sessionmaker[DB]
    context: ssl.SSLContext
    gateways: Callable[[], dict[str, store.Nas]]
    submit: Submit
    streams: dict[tuple[str, int], Callable[[bytes], None]]
    reverse: ReversePaths | None = None
    refresh: Callable[[], None] | None = None  # reload the gateways (one added since)
    handshake_timeout: float = 10.0
    recheck: float = 60.0  # seconds between two looks at an open connection's certificate

    async def serve(self, sock: socket.socket) -> None:
        """Accept connections on the listening ``sock`` until cancelled."""
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                conn, peer = await loop.sock_accept(sock)
                task = asyncio.create_task(self._accepted(conn, peer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            sock.close()

    async def _accepted(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        # The handshake is awaited here (not in asyncio's server, which only
        # logs its failures in debug mode), so a refused one gets its line.
        loop = asyncio.get_running_loop()
        where = f"{peer[0]}:{peer[1]}"
        reader = asyncio.StreamReader(limit=2 * MAX_LENGTH)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.warning("radsec: refused %s: TLS handshake failed: %s", where,
                        getattr(exc, "verify_message", None) or exc or type(exc).__name__)
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            nas = await self._identify(writer, where)
            if nas is None:
                return
            watch = asyncio.create_task(self._watch(writer, where))
            try:
                await self._serve(reader, writer, nas, (f"tls:{peer[0]}", int(peer[1])), where)
            finally:
                watch.cancel()
        finally:
            writer.close()

    async def _watch(self, writer: asyncio.StreamWriter, where: str) -> None:
        """A certificate revoked while its connection is open (a stolen box)
        closes it within ``recheck`` seconds."""
        while True:
            await asyncio.sleep(self.recheck)
            if await self._identify(writer, where) is None:
                writer.close()
                return

    async def _identify(self, writer: asyncio.StreamWriter, where: str) -> store.Nas | None:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not der:
            log.warning("radsec: refused %s: no client certificate", where)
            return None
        serial = serial_of(der)
        now = datetime.now(UTC).replace(tzinfo=None)
        loop = asyncio.get_running_loop()
        gateway_id, why = await loop.run_in_executor(None, self._lookup, serial, now)
        if gateway_id is None:
            log.warning("radsec: refused %s: %s (serial %s)", where, why, serial)
            return None
        for attempt in range(2):
            for nas in self.gateways().values():
                if nas.id == gateway_id:
                    return dataclasses.replace(nas, secret=SECRET)
            if attempt == 0 and self.refresh is not None:
                self.refresh()
        log.warning("radsec: refused %s: certificate of gateway %d, which the server does "
                    "not know yet", where, gateway_id)
        return None

    def _lookup(self, serial: str, now: datetime) -> tuple[int | None, str]:
        with self.factory() as db:
            gateway_id, why = gateway_of_serial(db, serial, now)
            if gateway_id is not None and db.get(Gateway, gateway_id) is None:
                return None, "certificate of a deleted gateway"
            return gateway_id, why

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     nas: store.Nas, addr: tuple[str, int], where: str) -> None:
        tls = writer.get_extra_info("ssl_object")
        reverse = tls is not None and tls.selected_alpn_protocol() == REVERSE_ALPN
        link = _Link(writer) if reverse else None
        if link is not None and self.reverse is not None:
            self.reverse.add(nas.identifier, link)
        log.info("radsec: %s is gateway %s%s", where, nas.identifier,
                 " (reverse path for Disconnect and CoA)" if reverse else "")
        self.streams[addr] = writer.write
        framer = Framer()
        try:
            while data := await reader.read(65536):
                try:
                    packets = framer.feed(data)
                except BadLength as exc:
                    log.warning("radsec: closed %s (gateway %s): %s", where, nas.identifier, exc)
                    return
                requests = []
                for packet in packets:
                    if link is not None and packet[0] in (m.Code.DISCONNECT_ACK,
                                                          m.Code.DISCONNECT_NAK,
                                                          m.Code.COA_ACK, m.Code.COA_NAK):
                        link.answered(packet)
                    else:
                        requests.append(Datagram(packet, addr, port_of(packet), nas))
                if requests:
                    self.submit(requests)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("radsec: %s (gateway %s) went away: %s", where, nas.identifier, exc)
        finally:
            self.streams.pop(addr, None)
            if link is not None and self.reverse is not None:
                self.reverse.remove(nas.identifier, link)
            log.info("radsec: %s (gateway %s) closed", where, nas.identifier)

