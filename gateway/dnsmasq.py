"""DHCP and DNS for the LAN: dnsmasq, configured and supervised by the box.

``render()`` and ``render_captive()`` are the pure part (a ``DhcpPlan`` to
dnsmasq.conf text). ``Dnsmasq`` runs two dnsmasq in the foreground as child
processes, with our configuration files only (never /etc/dnsmasq.conf or
/etc/dnsmasq.d), their own pid and lease files in the state directory,
serving the LAN interface and its VLANs only; ``restart_if_dead()`` is what the box's
supervision timer calls.

- The main one: DHCP, stateless DHCPv6, and DNS on port 53 for the
  clients that have checked in (names forwarded upstream).
- The captive view, on ``captive_dns_port``: nftables DNATs every DNS query
  of a client that has not checked in there (gateway/nft.py). It forwards
  only the portal's, the OS probes' and the walled garden's names; every
  other name is answered with the box's address (which leads to the portal)
  or refused, and never leaves the box: no DNS tunnel before check-in.

What the clients get: an address and the box as router and DNS server, the
RFC 8910 captive-portal URI (DHCPv4 option 114, DHCPv6 option 103; dnsmasq
sends it only to clients that ask for it; RA option 37 is in the box's own
router advertisements, gateway/ra.py), the portal's host name
resolved to the box (A, and AAAA with IPv6 on the LAN), and, for every
walled-garden domain, the addresses dnsmasq resolves added to the nftables
sets ``garden_dns4``/``garden_dns6`` (see gateway/nft.py) before the answer
reaches the client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from passerelle.portal.probes import PROBES
from passerelle.radius.mac import parse as normal_mac

from .nft import CAPTIVE_DNS_PORT, TABLE
from .vlan import Vlan

log = logging.getLogger("passerelle.gateway")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")
# The names the operating systems probe to detect a captive portal: they
# resolve for real before check-in, so each OS sees the portal, not an error.
PROBE_HOSTS = tuple(sorted({host for host, _path in PROBES}))


def check_domain(name: str) -> None:
    """ValueError unless ``name`` is a DNS name the box can give dnsmasq: LDH
    labels (underscores allowed but in the last), no wildcard, no "#" (which
    would mean every domain to dnsmasq), no empty label, IDNs as xn--."""
    if not _DOMAIN.match(name):
        raise ValueError("not a domain name (letters, digits, hyphens; no wildcard; "
                         "an IDN as xn--)")


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
    # Set: stateless DHCPv6 on the LAN's /64 (its router advertisements: gateway/ra.py).
    box_ipv6: str = ""
    captive_dns_port: int = CAPTIVE_DNS_PORT
    captive_names: tuple[str, ...] = PROBE_HOSTS  # resolved upstream before check-in
    # The companies' VLANs: DHCP on each, with the box's address there as
    # router and DNS server; the same DNS and captive view as the LAN.
    vlans: tuple[Vlan, ...] = ()


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
    for name in ("garden_domains", "captive_names"):
        for domain in getattr(plan, name):
            try:
                check_domain(domain)
            except ValueError as exc:
                raise ValueError(f"{name}: {domain!r}: {exc}") from None
    if not 0 < plan.captive_dns_port < 65536 or plan.captive_dns_port == 53:
        raise ValueError(f"captive_dns_port: not a free port: {plan.captive_dns_port!r}")
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


def _common(plan: DhcpPlan) -> list[str]:
    return [
        "# Written by passerelle: changes here are lost.",
        f"interface={plan.lan_if}",
        *(f"interface={v.interface}" for v in plan.vlans),
        "except-interface=lo",  # dnsmasq adds the loopback to interface= by itself
        "bind-dynamic",  # sockets on the LAN's addresses only, following address changes
        "no-hosts",
        "domain-needed",
        "bogus-priv",
        "log-facility=-",
    ]


def _garden(plan: DhcpPlan) -> list[str]:
    if not plan.garden_domains:
        return []
    domains = "/".join(d.rstrip(".") for d in plan.garden_domains)
    return [f"nftset=/{domains}/4#inet#{TABLE}#garden_dns4,6#inet#{TABLE}#garden_dns6"]


def _portal_record(plan: DhcpPlan) -> list[str]:
    host = portal_host(plan.portal_api_url)
    # A and, with IPv6 on the LAN, AAAA: the portal listens on both, and the
    # daemon finds a client arriving over IPv6 by its MAC.
    addresses = ",".join(a for a in (plan.box_ipv4, plan.box_ipv6) if a)
    return [f"host-record={host},{addresses}"] if host else []


def render(plan: DhcpPlan) -> str:
    """dnsmasq.conf for ``plan``; ValueError naming the field when it is wrong."""
    _check(plan)
    state = Path(plan.state_dir) if plan.state_dir else None
    lease_file = plan.lease_file or (str(state / "dnsmasq.leases") if state else "")
    lines = [
        *_common(plan),
        "dhcp-authoritative",
        f"dhcp-range={plan.lan_if},{plan.range_start},{plan.range_end},{plan.netmask},"
        f"{plan.lease_seconds}",
        f"dhcp-option=option:router,{plan.box_ipv4}",
        f"dhcp-option=option:dns-server,{plan.box_ipv4}",
    ]
    for v in plan.vlans:
        # dnsmasq picks the range by the subnet of the interface a request
        # came in by; its tag's options win over the LAN's untagged ones.
        tag = f"vlan{v.id}"
        lines += [f"dhcp-range=set:{tag},{v.dhcp_start},{v.dhcp_end},"
                  f"{v.network.netmask},{plan.lease_seconds}",
                  f"dhcp-option=tag:{tag},option:router,{v.box_ipv4}",
                  f"dhcp-option=tag:{tag},option:dns-server,{v.box_ipv4}"]
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
        lines += _portal_record(plan)
    if plan.box_ipv6:
        # Stateless DHCPv6 only (Information-Request: DNS, option 103): the
        # router advertisements are the box's own (gateway/ra.py), since
        # dnsmasq's cannot carry option 37. No enable-ra, no ra-* mode.
        lines += [
            f"dhcp-range={plan.lan_if},::,constructor:{plan.lan_if},static,64,"
            f"{plan.lease_seconds}",
            f"dhcp-option=option6:dns-server,[{plan.box_ipv6}]",
        ]
        if plan.portal_api_url:
            lines.append(f'dhcp-option=option6:103,"{plan.portal_api_url}"')
    lines += _garden(plan)
    return "\n".join(lines) + "\n"


def render_captive(plan: DhcpPlan, upstream: Sequence[str]) -> str:
    """The captive view's dnsmasq.conf: DNS only, on ``captive_dns_port``.

    ``upstream``: the servers the allowed names go to (the plan's, or those
    of /etc/resolv.conf). There is no default server on purpose: a name not
    allowed is answered from the configuration (A, and AAAA with IPv6 on the
    LAN: the box) or refused (any other type), and dnsmasq has nowhere to
    forward it.
    """
    _check(plan)
    for server in upstream:
        ipaddress.ip_address(server)
    lines = [*_common(plan), f"port={plan.captive_dns_port}", "no-resolv",
             f"address=/#/{plan.box_ipv4}"]
    if plan.box_ipv6:  # AAAA too: a client trying IPv6 first also lands on the portal
        lines.append(f"address=/#/{plan.box_ipv6}")
    if plan.state_dir:
        lines.append(f"pid-file={Path(plan.state_dir) / 'dnsmasq-captive.pid'}")
    allowed = [n.rstrip(".") for n in (*plan.captive_names, *plan.garden_domains)]
    if allowed:
        names = "/".join(dict.fromkeys(allowed))
        lines += [f"server=/{names}/{server}" for server in upstream]
    lines += _portal_record(plan)
    lines += _garden(plan)
    return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> tuple[str, ...]:
    """The ``nameserver`` addresses of a resolv.conf (scoped IPv6 ones skipped)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and "%" not in fields[1]:
            try:
                out.append(str(ipaddress.ip_address(fields[1])))
            except ValueError:
                continue
    return tuple(out)


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


class _Child:
    """One dnsmasq process: its configuration, pid file and log, by name."""

    def __init__(self, name: str, state_dir: Path, netns: str | None) -> None:
        self.name = name
        self.netns = netns
        self.conf_path = state_dir / f"{name}.conf"
        self.pid_path = state_dir / f"{name}.pid"
        self.log_path = state_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        cmd = ["dnsmasq", *args]
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def command(self) -> list[str]:
        return self.argv("--keep-in-foreground", f"--conf-file={self.conf_path}")

    def start(self, conf: str, wait: float) -> None:
        self.conf_path.write_text(conf)
        try:
            check = subprocess.run(self.argv("--test", f"--conf-file={self.conf_path}"),
                                   capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DnsmasqError(f"cannot run dnsmasq: {exc}") from exc
        if check.returncode != 0:
            raise DnsmasqError(f"dnsmasq refused {self.conf_path}: "
                               f"{(check.stderr or check.stdout).strip()}")
        self.stop_stale()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        with self.log_path.open("ab") as logfile:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=logfile, stderr=logfile)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DnsmasqError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.pid_path.exists() and self.pid_path.read_text().strip():
                log.info("%s serving (pid %s)", self.name, self.proc.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise DnsmasqError(f"{self.name} did not start within {wait}s: {self.log_tail()}")

    def stop_stale(self) -> None:
        """End the dnsmasq a daemon killed with -9 left running on our
        configuration (it would hold the port)."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if f"--conf-file={self.conf_path}".encode() not in cmdline.split(b"\0"):
            return
        log.info("ending the %s (pid %d) a previous daemon left", self.name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.info("%s stopped", self.name)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> bool:
        """Started, and no longer running."""
        return self.proc is not None and self.proc.poll() is not None


class Dnsmasq:
    """The box's two supervised dnsmasq (main and captive view), in this
    namespace or ``netns``."""

    def __init__(self, plan: DhcpPlan, state_dir: Path, netns: str | None = None,
                 resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        self.state_dir = Path(state_dir)
        # The files are ours, in the state directory, whatever the plan said.
        self.plan = DhcpPlan(**{**plan.__dict__, "state_dir": str(self.state_dir),
                                "lease_file": plan.lease_file
                                or str(self.state_dir / "dnsmasq.leases")})
        _check(self.plan)
        self.netns = netns
        self.resolv_conf = resolv_conf
        self._main = _Child("dnsmasq", self.state_dir, netns)
        self._captive = _Child("dnsmasq-captive", self.state_dir, netns)
        self.conf_path = self._main.conf_path
        self.pid_path = self._main.pid_path
        self.log_path = self._main.log_path
        self.lease_path = Path(self.plan.lease_file)
        self.restarts = 0

    def command(self) -> list[str]:
        return self._main.command()

    def upstream(self) -> tuple[str, ...]:
        """Where the captive view sends the names it lets through."""
        if self.plan.upstream_dns:
            return self.plan.upstream_dns
        try:
            servers = parse_resolv_conf(self.resolv_conf.read_text())
        except OSError as exc:
            raise DnsmasqError(f"cannot read {self.resolv_conf}: {exc.strerror}") from None
        if not servers:
            log.warning("no nameserver in %s: before check-in, the OS probes and the walled "
                        "garden do not resolve", self.resolv_conf)
        return servers

    def start(self, wait: float = 5.0) -> None:
        """Write the configurations, check them, start both dnsmasq and wait
        until they serve (pid files written); DnsmasqError with dnsmasq's
        words if not."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._main.alive():
            self.lease_path.touch()
            self._main.start(render(self.plan), wait)
        if not self._captive.alive():
            self._captive.start(render_captive(self.plan, self.upstream()), wait)

    def stop(self) -> None:
        self._captive.stop()
        self._main.stop()

    def alive(self) -> bool:
        return self._main.alive() and self._captive.alive()

    @property
    def pid(self) -> int | None:
        """The main dnsmasq's pid while it runs."""
        proc = self._main.proc
        return proc.pid if proc is not None and self._main.alive() else None

    @property
    def captive_pid(self) -> int | None:
        proc = self._captive.proc
        return proc.pid if proc is not None and self._captive.alive() else None

    def restart_if_dead(self) -> bool:
        """Start a dnsmasq that died again; True when one was restarted."""
        dead = [c for c in (self._main, self._captive) if c.died()]
        if not dead:
            return False
        for child in dead:
            assert child.proc is not None
            log.warning("%s died (exit %s): %s; restarting", child.name, child.proc.returncode,
                        child.log_tail())
            child.proc = None
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
