"""DHCP and DNS for the LAN: dnsmasq, configured and supervised by the box.

``render()`` is the pure part (a ``DhcpPlan`` to dnsmasq.conf text).
``Dnsmasq`` runs one dnsmasq in the foreground as a child process, with our
configuration file only (never /etc/dnsmasq.conf or /etc/dnsmasq.d), its own
pid and lease files in the state directory, serving the LAN interface only;
``restart_if_dead()`` is what the box's supervision timer calls.

What the clients get: an address and the box as router and DNS server, the
RFC 8910 captive-portal URI (DHCPv4 option 114, DHCPv6 option 103; dnsmasq
sends it only to clients that ask for it), the portal's host name resolved
to the box, and, for every walled-garden domain, the addresses dnsmasq
resolves added to the nftables sets ``garden_dns4``/``garden_dns6`` (see
gateway/nft.py) before the answer reaches the client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from .nft import TABLE, normal_mac

log = logging.getLogger("passerelle.gateway")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")


class DnsmasqError(RuntimeError):
    """dnsmasq refused its configuration or did not start."""


@dataclass(frozen=True)
class DhcpPlan:
    lan_if: str
    box_ipv4: str
    range_start: str
    range_end: str
    netmask: str
    lease_seconds: int = 3600
    portal_api_url: str = ""  # RFC 8910 option 114 (DHCPv4) / 103 (DHCPv6), sent when asked
    garden_domains: tuple[str, ...] = ()  # their addresses go to the nft garden_dns sets
    upstream_dns: tuple[str, ...] = ()  # servers dnsmasq forwards to; empty = resolv.conf
    lease_file: str = ""
    state_dir: str = ""
    # Set: router advertisements (SLAAC) and stateless DHCPv6 on the LAN's /64.
    box_ipv6: str = ""


@dataclass(frozen=True)
class Lease:
    mac: str
    ipv4: str
    hostname: str  # "" when the client sent none
    expires: datetime | None  # None: an infinite lease


def _check(plan: DhcpPlan) -> None:
    if not _IFNAME.match(plan.lan_if):
        raise ValueError(f"lan_if: not an interface name: {plan.lan_if!r}")
    addrs = {}
    for name in ("box_ipv4", "range_start", "range_end", "netmask"):
        try:
            addrs[name] = ipaddress.IPv4Address(getattr(plan, name))
        except ValueError:
            raise ValueError(f"{name}: not an IPv4 address: {getattr(plan, name)!r}") from None
    net = ipaddress.IPv4Network(f"{plan.box_ipv4}/{plan.netmask}", strict=False)
    for name in ("range_start", "range_end"):
        if addrs[name] not in net:
            raise ValueError(f"{name}: {addrs[name]} is not in the LAN {net}")
    if addrs["range_start"] > addrs["range_end"]:
        raise ValueError("range_start is after range_end")
    if addrs["range_start"] <= addrs["box_ipv4"] <= addrs["range_end"]:
        raise ValueError(f"box_ipv4 {plan.box_ipv4} is inside the DHCP range")
    if plan.lease_seconds < 120:
        raise ValueError("lease_seconds: dnsmasq needs at least 120")
    if plan.box_ipv6:
        try:
            ipaddress.IPv6Address(plan.box_ipv6)
        except ValueError:
            raise ValueError(f"box_ipv6: not an IPv6 address: {plan.box_ipv6!r}") from None
    for server in plan.upstream_dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise ValueError(f"upstream_dns: not an address: {server!r}") from None
    for domain in plan.garden_domains:
        if not _DOMAIN.match(domain):
            raise ValueError(f"garden_domains: not a domain name: {domain!r}")
    if plan.portal_api_url:
        url = urlsplit(plan.portal_api_url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"portal_api_url: not an https URL: {plan.portal_api_url!r}")
        # Option 114 is at most 255 octets (RFC 8910 section 2.1).
        if len(plan.portal_api_url.encode()) > 255 or any(c in plan.portal_api_url
                                                          for c in "\",\n\r "):
            raise ValueError(f"portal_api_url: cannot be sent in option 114: "
                             f"{plan.portal_api_url!r}")


def portal_host(url: str) -> str | None:
    """The portal's host name, when the URL names one (not an IP literal)."""
    host = urlsplit(url).hostname if url else None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def render(plan: DhcpPlan) -> str:
    """dnsmasq.conf for ``plan``; ValueError naming the field when it is wrong."""
    _check(plan)
    state = Path(plan.state_dir) if plan.state_dir else None
    lease_file = plan.lease_file or (str(state / "dnsmasq.leases") if state else "")
    lines = [
        "# Written by passerelle: changes here are lost.",
        f"interface={plan.lan_if}",
        "except-interface=lo",  # dnsmasq adds the loopback to interface= by itself
        "bind-dynamic",  # sockets on the LAN's addresses only, following address changes
        "no-hosts",
        "domain-needed",
        "bogus-priv",
        "log-facility=-",
        "dhcp-authoritative",
        f"dhcp-range={plan.lan_if},{plan.range_start},{plan.range_end},{plan.netmask},"
        f"{plan.lease_seconds}",
        f"dhcp-option=option:router,{plan.box_ipv4}",
        f"dhcp-option=option:dns-server,{plan.box_ipv4}",
    ]
    if lease_file:
        lines.append(f"dhcp-leasefile={lease_file}")
    if state:
        lines.append(f"pid-file={state / 'dnsmasq.pid'}")
    if plan.upstream_dns:
        lines.append("no-resolv")
        lines += [f"server={s}" for s in plan.upstream_dns]
    else:
        lines.append("resolv-file=/etc/resolv.conf")
    if plan.portal_api_url:
        lines.append(f'dhcp-option=114,"{plan.portal_api_url}"')
        host = portal_host(plan.portal_api_url)
        if host:
            # IPv4 only: sessions are known by the client's IPv4 address, so
            # the portal must see the client arrive over IPv4.
            lines.append(f"host-record={host},{plan.box_ipv4}")
    if plan.box_ipv6:
        lines += [
            "enable-ra",
            f"dhcp-range={plan.lan_if},::,constructor:{plan.lan_if},ra-stateless,64,"
            f"{plan.lease_seconds}",
            f"dhcp-option=option6:dns-server,[{plan.box_ipv6}]",
        ]
        if plan.portal_api_url:
            lines.append(f'dhcp-option=option6:103,"{plan.portal_api_url}"')
    if plan.garden_domains:
        domains = "/".join(d.rstrip(".") for d in plan.garden_domains)
        lines.append(f"nftset=/{domains}/4#inet#{TABLE}#garden_dns4,6#inet#{TABLE}#garden_dns6")
    return "\n".join(lines) + "\n"


def parse_leases(text: str) -> list[Lease]:
    """IPv4 leases from a dnsmasq lease file; bad lines are logged and skipped."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == "duid":
            continue
        try:
            expiry, mac, addr, host = fields[0], fields[1], fields[2], fields[3]
            ip = ipaddress.ip_address(addr)
            if ip.version != 4:
                continue  # a DHCPv6 lease: the key is an IAID, not a MAC
            seconds = int(expiry)
            out.append(Lease(mac=normal_mac(mac), ipv4=str(ip),
                             hostname="" if host == "*" else host,
                             expires=None if seconds == 0
                             else datetime.fromtimestamp(seconds, UTC)))
        except (IndexError, ValueError) as exc:
            log.warning("dnsmasq lease file line %d skipped (%s): %r", number, exc, line)
    return out


class Dnsmasq:
    """One supervised dnsmasq, in this namespace or ``netns``."""

    def __init__(self, plan: DhcpPlan, state_dir: Path, netns: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        # The files are ours, in the state directory, whatever the plan said.
        self.plan = DhcpPlan(**{**plan.__dict__, "state_dir": str(self.state_dir),
                                "lease_file": plan.lease_file
                                or str(self.state_dir / "dnsmasq.leases")})
        _check(self.plan)
        self.netns = netns
        self.conf_path = self.state_dir / "dnsmasq.conf"
        self.pid_path = self.state_dir / "dnsmasq.pid"
        self.log_path = self.state_dir / "dnsmasq.log"
        self.lease_path = Path(self.plan.lease_file)
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _argv(self, *args: str) -> list[str]:
        cmd = ["dnsmasq", *args]
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def command(self) -> list[str]:
        return self._argv("--keep-in-foreground", f"--conf-file={self.conf_path}")

    def start(self, wait: float = 5.0) -> None:
        """Write the configuration, check it, start dnsmasq and wait until it
        serves (its pid file written); DnsmasqError with dnsmasq's words if not."""
        if self.alive():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render(self.plan))
        self.lease_path.touch()
        try:
            check = subprocess.run(self._argv("--test", f"--conf-file={self.conf_path}"),
                                   capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DnsmasqError(f"cannot run dnsmasq: {exc}") from exc
        if check.returncode != 0:
            raise DnsmasqError(f"dnsmasq refused {self.conf_path}: "
                               f"{(check.stderr or check.stdout).strip()}")
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        with self.log_path.open("ab") as logfile:
            self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                          stdout=logfile, stderr=logfile)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DnsmasqError(f"dnsmasq exited with {self._proc.returncode}: "
                                   f"{self._log_tail()}")
            if self.pid_path.exists() and self.pid_path.read_text().strip():
                log.info("dnsmasq serving %s (pid %s)", self.plan.lan_if, self._proc.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise DnsmasqError(f"dnsmasq did not start within {wait}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.info("dnsmasq stopped")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.alive() and self._proc else None

    def restart_if_dead(self) -> bool:
        """Start dnsmasq again if it died; True when it was restarted."""
        if self._proc is None or self.alive():
            return False
        log.warning("dnsmasq died (exit %s): %s; restarting", self._proc.returncode,
                    self._log_tail())
        self._proc = None
        self.restarts += 1
        self.start()
        return True

    def leases(self) -> list[Lease]:
        try:
            text = self.lease_path.read_text()
        except FileNotFoundError:
            return []
        return parse_leases(text)


def lease_for(leases: Sequence[Lease], ipv4: str) -> Lease | None:
    return next((lease for lease in leases if lease.ipv4 == ipv4), None)
