"""`passerelle gateway doctor`: is this box healthy, and if not, what to do.

Two halves, as everywhere on the box: ``look()`` probes the machine (every
probe bounded by a short timeout, none of them changes anything) and returns
what it saw; ``verdicts()`` is pure and turns what was seen into one line per
check, OK or what to do. The installer runs ``check-config`` and then this.
"""

from __future__ import annotations

import ctypes
import dataclasses
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from passerelle import __version__
from passerelle.radius import messages as m
from passerelle.radius.codec import Drop
from passerelle.radius.exchange import Backoff, exchange

from . import heartbeat
from .config import Config, Interfaces, Radsec, read_interfaces
from .nft import FAMILY, TABLE

# Thresholds: past these the check says what to do.
SPOOL_WARN = 1_000  # records waiting for the centre
SPOOL_AGE_WARN = 3_600.0  # seconds the oldest record has waited
DISK_MIN_FREE = 200 * 1024 * 1024
DISK_MIN_SHARE = 0.05
CERT_WARN_DAYS = 14
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was seen when OK, what to do when not
    warn: bool = False  # OK for now, but something to do soon (the exit status stays 0)

    def line(self) -> str:
        mark = "FAIL" if not self.ok else "WARN" if self.warn else "OK  "
        return f"{mark} {self.name}: {self.detail}"


@dataclass(frozen=True)
class BoxCert:
    """What the box's TLS client certificate (RadSec) looked like."""

    not_before: datetime | None = None
    not_after: datetime | None = None
    problem: str = ""  # why it cannot be used as it is: missing, unreadable, key mismatch


@dataclass(frozen=True)
class Seen:
    """What the probes found; every field can be made up by a test."""

    interfaces: Interfaces
    clock_synced: bool | None  # None: the kernel would not say
    nft_table: bool
    dhcp_listening: bool
    box_dns: str | None  # the address the box's DNS gave for the portal name, or why not
    upstream_dns: dict[str, bool]
    portal_http: str | None  # None when it answered, else why not
    portal_https: str | None
    centre: dict[str, str | None]  # server -> None when it answered Status-Server, else why not
    cert_not_after: datetime | None
    spool_pending: int
    spool_oldest_age: float | None
    disk_free: int
    disk_total: int
    problems: dict[str, str] = field(default_factory=dict)  # probe -> why it could not look
    # With RadSec only: the box's client certificate, and each node's
    # radsecproxy by its loopback port (None when it answered Status-Server,
    # else why not).
    box_cert: BoxCert | None = None
    radsecproxy: dict[int, str | None] = field(default_factory=dict)


def verdicts(config: Config, seen: Seen, now: datetime) -> list[Check]:
    """One Check per thing a technician can fix, in the order to fix them."""
    out: list[Check] = []
    ifs = seen.interfaces
    lan = config.lan_if
    lan_addr = str(config.lan_address)
    if lan not in ifs.up:
        out.append(Check("LAN interface", False,
                         f"{lan} is down or missing: plug the access points' switch into it"))
    elif lan_addr not in ifs.ipv4.get(lan, ()):
        out.append(Check("LAN interface", False,
                         f"{lan} does not hold {lan_addr}: restart the gateway service "
                         f"(it sets the address)"))
    else:
        out.append(Check("LAN interface", True, f"{lan} up with {lan_addr}"))
    if config.wan_if not in ifs.up:
        out.append(Check("WAN interface", False,
                         f"{config.wan_if} is down or missing: plug the uplink cable into it"))
    elif not ifs.ipv4.get(config.wan_if):
        out.append(Check("WAN interface", False,
                         f"{config.wan_if} has no IPv4 address: check the upstream DHCP"))
    else:
        out.append(Check("WAN interface", True,
                         f"{config.wan_if} up with {', '.join(ifs.ipv4[config.wan_if])}"))
    if ifs.default_route_if is None:
        out.append(Check("default route", False, "none: check the upstream router or DHCP"))
    elif ifs.default_route_if != config.wan_if:
        out.append(Check("default route", False,
                         f"goes out by {ifs.default_route_if}, not the WAN {config.wan_if}"))
    else:
        out.append(Check("default route", True, f"by {config.wan_if}"))
    answered = [s for s, ok in seen.upstream_dns.items() if ok]
    if not seen.upstream_dns:
        out.append(Check("upstream DNS", False, "no upstream DNS server configured or found"))
    elif not answered:
        out.append(Check("upstream DNS", False,
                         f"no answer from {', '.join(seen.upstream_dns)}: check the uplink "
                         f"and [dns] upstream"))
    else:
        out.append(Check("upstream DNS", True, f"{', '.join(answered)} answered"))
    if seen.clock_synced is None:
        out.append(Check("clock", False, "the kernel does not say whether the clock is "
                                         "synchronised: check chrony or systemd-timesyncd"))
    elif not seen.clock_synced:
        out.append(Check("clock", False, "not synchronised: start chrony or "
                                         "systemd-timesyncd (accounting times depend on it)"))
    else:
        out.append(Check("clock", True, "synchronised"))
    out.append(Check("nftables", seen.nft_table,
                     f"table {FAMILY} {TABLE} present" if seen.nft_table else
                     f"table {FAMILY} {TABLE} missing: start the gateway service "
                     f"(systemctl start passerelle-gateway)"))
    out.append(Check("DHCP", seen.dhcp_listening,
                     "dnsmasq listens on UDP 67" if seen.dhcp_listening else
                     "nothing listens on UDP 67: start the gateway service, then see "
                     "journalctl -u passerelle-gateway"))
    portal_ip = config.lan_address.ip
    if seen.box_dns == str(portal_ip):
        out.append(Check("box DNS", True, f"{config.portal_hostname} -> {portal_ip}"))
    else:
        why = seen.box_dns or "no answer"
        out.append(Check("box DNS", False,
                         f"{config.portal_hostname} should resolve to {portal_ip} on the box, "
                         f"got {why}: restart the gateway service"))
    out.append(Check("portal HTTP", seen.portal_http is None,
                     f"answers on {portal_ip}:{config.portal_http_port}"
                     if seen.portal_http is None else
                     f"{seen.portal_http}: start passerelle-portal"))
    if config.cert_file is None:
        https_ok = config.portal_allow_plain_http
        out.append(Check("portal HTTPS", https_ok,
                         "no certificate, plain HTTP allowed by the configuration"
                         if https_ok else
                         "no certificate configured: install the portal certificate "
                         "([portal] cert_file, key_file)"))
    else:
        out.append(Check("portal HTTPS", seen.portal_https is None,
                         f"answers on {portal_ip}:{config.portal_https_port}"
                         if seen.portal_https is None else
                         f"{seen.portal_https}: start passerelle-portal"))
        if seen.cert_not_after is None:
            out.append(Check("certificate", False,
                             f"cannot read {config.cert_file}: install the portal certificate"))
        else:
            days = (seen.cert_not_after - now).total_seconds() / 86400
            if days < 0:
                out.append(Check("certificate", False,
                                 f"expired on {seen.cert_not_after:%Y-%m-%d}: install a new one"))
            elif days < CERT_WARN_DAYS:
                out.append(Check("certificate", False,
                                 f"expires in {int(days)} days ({seen.cert_not_after:%Y-%m-%d}): "
                                 f"install a new one"))
            else:
                out.append(Check("certificate", True,
                                 f"valid until {seen.cert_not_after:%Y-%m-%d}"))
    if config.radsec is not None:
        out.append(_box_cert(config.radsec, seen.box_cert or BoxCert(problem="not looked at"),
                             now))
        ports = config.radsec.local_ports(len(config.servers))
        for node, port in zip(config.servers, ports, strict=True):
            unanswered = seen.radsecproxy.get(port, "not looked at")
            local = f"127.0.0.1:{port}"
            out.append(Check(f"radsecproxy to {node.host}", unanswered is None,
                             f"answers on {local}" if unanswered is None else
                             f"{unanswered} on {local}: restart the gateway service (it runs "
                             f"radsecproxy), then see journalctl -u passerelle-gateway"))
    for server, silent in seen.centre.items():
        if silent is None:
            out.append(Check(f"centre {server}", True, "answered Status-Server"))
        elif config.radsec is not None:
            out.append(Check(f"centre {server}", False,
                             f"{silent}: check the uplink and that the upstream firewall "
                             f"lets TCP out to port {config.radsec.port}"))
        else:
            out.append(Check(f"centre {server}", False,
                             f"{silent}: check the uplink, the upstream firewall, the secret"))
    if seen.spool_pending > SPOOL_WARN or (
            seen.spool_oldest_age is not None and seen.spool_oldest_age > SPOOL_AGE_WARN):
        age = "" if seen.spool_oldest_age is None else \
            f", the oldest waiting {seen.spool_oldest_age / 60:.0f} min"
        out.append(Check("spool", False,
                         f"{seen.spool_pending} accounting records waiting{age}: "
                         f"the centre is not taking them (see the centre check)"))
    else:
        out.append(Check("spool", True, f"{seen.spool_pending} accounting records waiting"))
    low = seen.disk_free < DISK_MIN_FREE or seen.disk_free < DISK_MIN_SHARE * seen.disk_total
    out.append(Check("disk", not low,
                     f"{seen.disk_free // (1024 * 1024)} MiB free in {config.state_dir}"
                     + (": free some space (journal, old packages)" if low else "")))
    for probe, why in seen.problems.items():
        out.append(Check(probe, False, f"could not look: {why}"))
    return out


REENROL = ("ask ops for an enrolment code and run passerelle gateway enroll --code CODE "
           "--centre URL --force")


def _box_cert(tls: Radsec, cert: BoxCert, now: datetime) -> Check:
    name = "TLS client certificate"
    if cert.problem or cert.not_after is None:
        return Check(name, False, f"{tls.cert}: {cert.problem or 'unreadable'}: {REENROL}")
    if cert.not_before is not None and cert.not_before > now:
        return Check(name, False, f"not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC: "
                                  f"check the clock (chrony or systemd-timesyncd)")
    days = (cert.not_after - now).total_seconds() / 86400
    if days < 0:
        return Check(name, False, f"expired on {cert.not_after:%Y-%m-%d}: the centre refuses "
                                  f"the box; {REENROL}")
    if days < CERT_WARN_DAYS:
        return Check(name, True, f"expires in {int(days)} days ({cert.not_after:%Y-%m-%d}): "
                                 f"before then, {REENROL}", warn=True)
    return Check(name, True, f"valid until {cert.not_after:%Y-%m-%d}")


# --- the probes ----------------------------------------------------------------


def _clock_synced() -> bool | None:
    """adjtimex(2) with no change: TIME_ERROR (5) means not synchronised."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5


def _udp_listening(port: int) -> bool:
    hexport = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(hexport) for line in lines if len(line.split()) > 1):
            return True
    return False


def dns_query(name: str, ident: int = 0x5053) -> bytes:
    """A plain DNS query for the A record of ``name`` (RFC 1035 section 4.1)."""
    labels = b"".join(bytes([len(p)]) + p.encode("idna") for p in name.rstrip(".").split("."))
    return ident.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" \
        + labels + b"\x00\x00\x01\x00\x01"


def first_a_record(answer: bytes) -> str | None:
    """The first A record of a DNS answer, or None (NXDOMAIN, no A, malformed)."""
    if len(answer) < 12 or answer[3] & 0x0F:
        return None
    count = int.from_bytes(answer[6:8], "big")
    pos = 12
    for _ in range(int.from_bytes(answer[4:6], "big")):  # skip the questions
        while pos < len(answer) and answer[pos]:
            pos += 1 + answer[pos]
        pos += 5
    for _ in range(count):
        if pos >= len(answer):
            return None
        if answer[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while pos < len(answer) and answer[pos]:
                pos += 1 + answer[pos]
            pos += 1
        if pos + 10 > len(answer):
            return None
        rtype = int.from_bytes(answer[pos:pos + 2], "big")
        length = int.from_bytes(answer[pos + 8:pos + 10], "big")
        data = answer[pos + 10:pos + 10 + length]
        if rtype == 1 and length == 4 and len(data) == 4:
            return str(ipaddress.IPv4Address(data))
        pos += 10 + length
    return None


def _ask_dns(server: str, name: str, port: int = 53) -> str | None:
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT)
        sock.sendto(dns_query(name), (server, port))
        answer, _ = sock.recvfrom(4096)
    return first_a_record(answer)


def _upstream_answers(server: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                           socket.SOCK_DGRAM) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.sendto(dns_query("."), (server, 53))
            answer, _ = sock.recvfrom(4096)
        return len(answer) >= 12 and answer[:2] == b"\x50\x53"  # any answer, even refused
    except OSError:
        return False


def _upstream_servers(config: Config) -> tuple[str, ...]:
    """The servers dnsmasq forwards to: the configured ones, else resolv.conf's."""
    if config.upstream_dns:
        return config.upstream_dns
    from .dnsmasq import parse_resolv_conf

    try:
        return parse_resolv_conf(Path("/etc/resolv.conf").read_text())
    except OSError:
        return ()


def _http(host: str, port: int, tls: bool) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as raw:
            sock: socket.socket = raw
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False  # the certificate is checked on its own line
                ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(raw)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: doctor\r\nConnection: close\r\n\r\n")
            first = sock.recv(64)
    except OSError as exc:
        return f"no answer ({exc})"
    if not first.startswith(b"HTTP/"):
        return "answered something that is not HTTP"
    return None


def _udp_status(host: str, port: int, secret: bytes, told: dict[str, Any]) -> str | None:
    """A Status-Server over UDP: None when answered, else why not."""
    sent = m.StatusServer.of(told).encode(secret)

    def check(answer: bytes) -> m.Reply:
        reply = m.decode_reply(answer, secret, sent)
        if reply.problems:
            raise Drop("; ".join(reply.problems))
        return reply

    try:
        exchange((host, port), sent, check,
                 Backoff(initial=PROBE_TIMEOUT, tries=3, maximum=2 * PROBE_TIMEOUT),
                 on_drop=lambda _a, _w: None)
    except TimeoutError:
        return "no answer to Status-Server (or the shared secret differs)"
    return None


def _told(config: Config, spool_pending: int) -> dict[str, Any]:
    # What the box's heartbeat tells (heartbeat.py): the centre writes a
    # Status-Server's version and spool depth on the gateway's row.
    return {"NAS-Identifier": config.identifier,
            **heartbeat.attributes(__version__, spool_pending)}


def _status_server(config: Config, told: dict[str, Any]) -> dict[str, str | None]:
    if config.radsec is not None:
        # radsecproxy answers a Status-Server itself, whatever the centres
        # do: the centres are asked directly, over TLS, as it would.
        return {f"{s.host}:{config.radsec.port} over TLS":
                _tls_status(s.host, config.radsec, told) for s in config.servers}
    return {f"{s.host}:{s.auth_port}": _udp_status(s.host, s.auth_port, s.secret, told)
            for s in config.servers}


def _tls_status(host: str, tls: Radsec, told: dict[str, Any]) -> str | None:
    """A Status-Server to a centre over TLS with the box's certificate;
    None when answered."""
    # Here, not at the top: the centre's TLS side weighs seconds of imports
    # that a box without RadSec need not pay.
    from . import tls_status
    from .reverse_coa import Credentials

    return tls_status.ask(host, tls.port, Credentials(tls.cert, tls.key, tls.ca),
                          m.StatusServer.of(told), PROBE_TIMEOUT)


def _box_cert_seen(tls: Radsec) -> BoxCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    except OSError as exc:
        return BoxCert(problem=f"cannot read it ({exc.strerror or exc})")
    except ValueError:
        return BoxCert(problem="not a PEM certificate")
    seen = BoxCert(not_before=cert.not_valid_before_utc.replace(tzinfo=None),
                   not_after=cert.not_valid_after_utc.replace(tzinfo=None))
    try:
        key = serialization.load_pem_private_key(tls.key.read_bytes(), None)
    except OSError as exc:
        return dataclasses.replace(seen, problem=f"cannot read its key {tls.key} "
                                                 f"({exc.strerror or exc})")
    except (ValueError, TypeError):
        return dataclasses.replace(seen, problem=f"its key {tls.key} is not a PEM key")
    if key.public_key() != cert.public_key():
        return dataclasses.replace(seen, problem=f"its key {tls.key} is not the "
                                                 f"certificate's")
    return seen


def _cert_not_after(path: Path | None) -> datetime | None:
    if path is None:
        return None
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.replace(tzinfo=None)


def _spool(config: Config) -> tuple[int, float | None]:
    from .spool import Spool

    spool = Spool(config.spool_path)
    try:
        return spool.pending(), spool.oldest_age(time.time())
    finally:
        spool.close()


def _nft_table() -> bool:
    done = subprocess.run(["nft", "list", "table", FAMILY, TABLE], capture_output=True,
                          check=False, timeout=PROBE_TIMEOUT * 2)
    return done.returncode == 0


def look(config: Config, *, interfaces: Callable[[], Interfaces] = read_interfaces) -> Seen:
    """Probe the machine. A probe that cannot run is reported, never raised."""
    problems: dict[str, str] = {}

    def guarded(name: str, probe: Callable[[], object], default: object) -> object:
        try:
            return probe()
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            problems[name] = str(exc) or type(exc).__name__
            return default

    lan_ip = str(config.lan_address.ip)
    tls = config.radsec
    box_dns = guarded("box DNS", lambda: _ask_dns(lan_ip, config.portal_hostname), None)
    spool = guarded("spool", lambda: _spool(config), (0, None))
    assert isinstance(spool, tuple)
    disk = shutil.disk_usage(config.state_dir if config.state_dir.exists() else Path("/"))
    return Seen(
        interfaces=interfaces(),
        clock_synced=_clock_synced(),
        nft_table=bool(guarded("nftables", _nft_table, False)),
        dhcp_listening=_udp_listening(67),
        box_dns=box_dns if isinstance(box_dns, str) else None,
        upstream_dns={s: _upstream_answers(s) for s in _upstream_servers(config)},
        portal_http=_http(lan_ip, config.portal_http_port, False),
        portal_https=None if config.cert_file is None else
        _http(lan_ip, config.portal_https_port, True),
        centre=_status_server(config, _told(config, spool[0])),
        cert_not_after=_cert_not_after(config.cert_file),
        spool_pending=spool[0],
        spool_oldest_age=spool[1],
        disk_free=disk.free,
        disk_total=disk.total,
        problems=problems,
        box_cert=None if tls is None else _box_cert_seen(tls),
        radsecproxy={} if tls is None else {
            port: _udp_status("127.0.0.1", port, config.servers[0].secret,
                              _told(config, spool[0]))
            for port in tls.local_ports(len(config.servers))},
    )


def report(checks: Sequence[Check]) -> tuple[list[str], int]:
    """The lines to print and the exit status: 0 when everything is OK."""
    lines = [c.line() for c in checks]
    bad = sum(not c.ok for c in checks)
    warned = sum(c.ok and c.warn for c in checks)
    if bad:
        lines.append(f"{bad} problem(s): fix them in the order shown")
    else:
        lines.append("all good" if not warned else f"all good for now; {warned} warning(s) "
                     f"to act on soon")
    return lines, 0 if not bad else 1


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
