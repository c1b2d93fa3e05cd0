"""The box's configuration: a TOML file, and what is not set, detected.

``load()`` returns a complete, checked ``Config`` or raises ``ConfigError``
naming the key: the box never starts half-way on a bad file. What dnsmasq
would refuse is refused here too: the names by the rules the box gives
dnsmasq, and, where dnsmasq is installed, the files the box would write by
``dnsmasq --test``. ``firewall_plan()`` and ``dhcp_plan()`` turn a ``Config``
into what the data plane runs. Detection
(``detect()``) reads the interfaces with netifaces: the WAN is the interface
of the default route, the LAN the other interface that is up. Each finding
is reported with its reason, so a technician can see what the box decided.
docs/gateway.md documents every key.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from passerelle import hostport
from passerelle.errors import UserError
from passerelle.radius.codec import MIN_SECRET

from .dnsmasq import DhcpPlan, check_domain, render, render_captive
from .joins import KeyIsIdentity
from .nft import CAPTIVE_DNS_PORT, CAPTIVE_DNS_RATE, PRIVATE4, PRIVATE6, FirewallPlan, wan_ports
from .peers import DAE_PORT, AccessPoint, RadiusServer, Vendor
from .vlan import Vlan, check_apart, parse_ids, scheme, vlan_of


class ConfigError(UserError):
    """A bad or contradictory configuration; the message names the key."""


@dataclass(frozen=True)
class Radsec:
    """[radius] transport = "radsec": the enrolment files and the ports."""

    cert: Path
    key: Path
    ca: Path
    port: int = 2083  # the centres' RadSec port
    # The first of N consecutive loopback UDP ports, N the [[radius.servers]]:
    # one radsecproxy per central node, in order, each for auth and acct.
    local_port: int = 11812

    def local_ports(self, nodes: int) -> range:
        """The loopback port of each node's radsecproxy, in the nodes' order."""
        return range(self.local_port, self.local_port + nodes)


@dataclass(frozen=True)
class Config:
    identifier: str
    state_dir: Path
    nas_ip: str
    lan_if: str
    lan_address: ipaddress.IPv4Interface
    lan_address6: ipaddress.IPv6Interface | None
    dhcp_start: str
    dhcp_end: str
    lease_time: int
    wan_if: str
    masquerade: bool
    portal_hostname: str
    portal_http_port: int
    portal_https_port: int
    portal_api_url: str
    ssid: str
    site_name: str
    venue_url: str
    terms_url: str
    cert_file: Path | None
    key_file: Path | None
    portal_allow_plain_http: bool
    servers: tuple[RadiusServer, ...]
    radius_timeout: float
    radius_tries: int
    dead_time: float
    operator_name: str
    dae_listen: str
    dae_port: int
    dae_clients: Mapping[str, bytes]
    dae_window: int
    garden_addresses: tuple[str, ...]
    garden_domains: tuple[str, ...]
    upstream_dns: tuple[str, ...]
    captive_dns_port: int
    captive_dns_rate: int
    ntp_servers: tuple[str, ...]
    open_private: tuple[str, ...]
    wan_open: tuple[str, ...]
    stopped_retention: float  # seconds a stopped session's row is kept
    interim_interval: int
    idle_timeout: int
    sweep_interval: float
    lease_check_interval: float
    heartbeat_interval: float
    control_socket: Path
    findings: tuple[str, ...] = field(default=(), compare=False)
    # The access points' RADIUS server (none when ``access_points`` is empty).
    access_points: tuple[AccessPoint, ...] = ()
    wifi_ssid: str = ""  # the private SSID the PMKs are derived for
    wifi_candidates_max: int = 0
    wifi_listen: str = ""
    wifi_port: int = 1812
    # The companies' VLANs on the LAN (gateway/vlan.py); none: one flat LAN.
    vlans: tuple[Vlan, ...] = ()
    # RADIUS over TLS through radsecproxy (docs/radsec.md); None: UDP to the servers.
    radsec: Radsec | None = None
    checkin_budget: float | None = None  # a check-in's total wait for the centre
    status_server: bool = False  # probe a dead server with Status-Server (RFC 5997)
    # The personal keys pulled from the centre (none when ``keys_url`` is empty).
    keys_url: str = ""
    keys_interval: float = 30.0
    keys_timeout: float = 10.0
    keys_key_file: Path = Path()
    keys_ca_file: Path | None = None
    # The Prometheus listener (gateway/metrics.py); None: no listener.
    metrics_listen: tuple[str, int] | None = None
    # A station the private SSID's access point showed with a person's key
    # (gateway/joins.py): one tap checks it in, or the password is asked;
    # with join_checks_in the association itself checks it in.
    key_is_identity: KeyIsIdentity = KeyIsIdentity.TAP
    join_checks_in: bool = False

    @property
    def keys_path(self) -> Path:
        return self.state_dir / "keys" / "keys.enc"

    @property
    def box_ipv4(self) -> str:
        return str(self.lan_address.ip)

    def vlan_of(self, ipv4: str) -> Vlan | None:
        """The VLAN a client's address is on; None: the untagged LAN."""
        return vlan_of(self.vlans, ipv4)

    @property
    def spool_path(self) -> Path:
        return self.state_dir / "spool.db"

    @property
    def sessions_path(self) -> Path:
        return self.state_dir / "sessions.db"


# --- detection ---------------------------------------------------------------


@dataclass(frozen=True)
class Interfaces:
    """What the machine has; read by ``read_interfaces()``, or made up by tests."""

    default_route_if: str | None
    up: tuple[str, ...]  # interfaces that are up, loopback excluded
    ipv4: Mapping[str, tuple[str, ...]]  # interface -> "address/prefix"
    ipv6: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # not link-local
    # Every interface, up or not (an untagged VLAN's may be down until the
    # box brings it up).
    present: tuple[str, ...] = ()


def read_interfaces() -> Interfaces:
    import netifaces  # the netifaces-plus distribution

    gateways = netifaces.gateways()
    defaults = gateways.get("default", {})
    default = defaults.get(netifaces.AF_INET) if isinstance(defaults, dict) else None
    up = []
    addresses: dict[str, tuple[str, ...]] = {}
    addresses6: dict[str, tuple[str, ...]] = {}
    for name in netifaces.interfaces():
        state = Path(f"/sys/class/net/{name}/operstate")
        flags = Path(f"/sys/class/net/{name}/flags")
        is_up = state.exists() and state.read_text().strip() in ("up", "unknown")
        if flags.exists():
            is_up = is_up and bool(int(flags.read_text(), 16) & 0x1)
        if name == "lo" or not is_up:
            continue
        up.append(name)
        found = []
        for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET, []):
            net = ipaddress.IPv4Network(f"0.0.0.0/{entry['netmask']}")
            found.append(f"{entry['addr']}/{net.prefixlen}")
        addresses[name] = tuple(found)
        found6 = []
        for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET6, []):
            addr = ipaddress.IPv6Address(entry["addr"].split("%")[0])
            if not (addr.is_link_local or addr.is_loopback or addr.is_multicast):
                prefix = ipaddress.IPv6Network(entry["netmask"], strict=False).prefixlen \
                    if "/" in entry["netmask"] else 64
                found6.append(f"{addr}/{prefix}")
        addresses6[name] = tuple(found6)
    return Interfaces(default[1] if default else None, tuple(up), addresses, addresses6,
                      tuple(netifaces.interfaces()))


# --- loading -------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                   r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

KNOWN = {
    "box": {"identifier", "state_dir", "nas_ip"},
    "lan": {"interface", "address", "address6", "dhcp_start", "dhcp_end", "lease_time"},
    "wan": {"interface", "masquerade", "allow_private", "open"},
    "portal": {"hostname", "http_port", "https_port", "api_url", "ssid", "site_name",
               "venue_url", "terms_url", "cert_file", "key_file", "allow_plain_http",
               "key_is_identity", "join_checks_in"},
    "radius": {"servers", "timeout", "tries", "dead_time", "operator_name", "transport",
               "tls_cert", "tls_key", "tls_ca", "radsec_port", "local_port",
               "checkin_budget", "status_server"},
    "dae": {"listen", "port", "clients", "window"},
    "garden": {"addresses", "domains"},
    "dns": {"upstream", "captive_port", "captive_rate"},
    "ntp": {"servers"},
    "sessions": {"interim_interval", "idle_timeout", "sweep_interval",
                 "lease_check_interval", "heartbeat_interval", "keep_stopped_days"},
    "control": {"socket"},
    "wifi": {"ssid", "candidates_max", "listen", "port"},
    "vlans": {"ids", "network", "prefix", "networks"},
    "keys": {"url", "interval", "timeout", "key_file", "ca_file", "allow_plain_http"},
    "metrics": {"listen"},
}
UNREAD = "(secret_file not read)"  # the secret of a server when secrets are not read
SERVER_KEYS = {"host", "secret", "secret_file", "auth_port", "acct_port",
               "require_message_authenticator"}
AP_KEYS = {"address", "secret", "secret_file", "vendor", "disconnect", "dae_port"}
VLAN_KEYS = {"id", "address", "dhcp_start", "dhcp_end", "interface", "tagged"}
ARRAYS = {"access_points"}  # top-level arrays of tables


class _Table:
    """Typed reads from one TOML table, with errors that name the key."""

    def __init__(self, data: Mapping[str, Any], prefix: str) -> None:
        self.data = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def get(self, key: str, kind: type, default: Any) -> Any:
        value = self.data.get(key, default)
        if value is default:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{self.name(key)}: expected {kind.__name__}, got {value!r}")
        return value

    def number(self, key: str, kind: type, default: Any, low: float, high: float) -> Any:
        value = self.get(key, kind, default)
        if not low <= value <= high:
            raise ConfigError(f"{self.name(key)}: {value} is not between {low} and {high}")
        return value

    def strings(self, key: str, check: Callable[[str], Any] | None = None) -> tuple[str, ...]:
        value = self.get(key, list, [])
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"{self.name(key)}: expected strings, got {item!r}")
            if check is not None:
                try:
                    check(item)
                except ValueError as exc:
                    raise ConfigError(f"{self.name(key)}: {item!r}: {exc}") from None
        return tuple(value)


def _private_range(interfaces: Interfaces, wan_if: str) -> Callable[[str], None]:
    """A check for ``wan.allow_private``: a network that the box blocks."""
    wan = [ipaddress.ip_network(a, strict=False) for a in
           (*interfaces.ipv4.get(wan_if, ()), *interfaces.ipv6.get(wan_if, ()))]

    def check(value: str) -> None:
        try:
            net = ipaddress.ip_network(value)
        except ValueError:
            raise ValueError("not a network (address/prefix, no host bits)") from None
        blocked = [ipaddress.ip_network(n) for n in (*PRIVATE4, *PRIVATE6)] + wan
        if not any(net.version == b.version and net.overlaps(b) for b in blocked):
            raise ValueError("not a private range nor the WAN's subnet (the box blocks "
                             "nothing else)")
    return check


def _wan_service(value: str) -> None:
    wan_ports(FirewallPlan("lan", "wan", "192.0.2.1", wan_open=(value,)))


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


def parse(text: str, base: Path, interfaces: Interfaces, *,
          read_secrets: bool = True) -> Config:
    """Build the configuration from TOML ``text``; ``base`` resolves
    relative paths (the config file's folder). ``read_secrets=False``: the
    ``secret_file``s are not read (the portal, an unprivileged user, needs
    none of them; their secrets are then a placeholder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    for section, value in data.items():
        if section in ARRAYS:
            continue
        if section not in KNOWN:
            known = ", ".join(sorted(KNOWN.keys() | ARRAYS))
            raise ConfigError(f"{section}: unknown section (known: {known})")
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: expected a table")
        unknown = set(value) - KNOWN[section]
        if unknown:
            raise ConfigError(f"{section}.{sorted(unknown)[0]}: unknown key")
    t = {name: _Table(data.get(name, {}), name) for name in KNOWN}
    findings: list[str] = []

    identifier = t["box"].get("identifier", str, None)
    if identifier is None:
        raise ConfigError("box.identifier: required (the NAS-Identifier the centre knows)")
    if not _IDENT.match(identifier):
        raise ConfigError(f"box.identifier: {identifier!r} is not a valid identifier")
    state_dir = base / t["box"].get("state_dir", str, "/var/lib/passerelle-gateway")

    wan_if = t["wan"].get("interface", str, None)
    if wan_if is None:
        if interfaces.default_route_if is None:
            raise ConfigError("wan.interface: not set and no default route to detect it from")
        wan_if = interfaces.default_route_if
        findings.append(f"WAN interface {wan_if}: it carries the default route")
    lan_if = t["lan"].get("interface", str, None)
    if lan_if is None:
        # A VLAN sub-interface (lan.101, the box's own after a restart) is
        # part of its LAN, not a second candidate; nor is a VLAN's own
        # interface (unless it is the only one: then [vlans] says why not).
        others = [name for name in interfaces.up if name != wan_if
                  and name.rpartition(".")[0] not in interfaces.up]
        if len(others) > 1:
            others = [name for name in others if name not in _vlan_interfaces(t["vlans"])]
        if len(others) != 1:
            found = ", ".join(others) or "none"
            raise ConfigError(f"lan.interface: not set, and the interfaces up besides the WAN "
                              f"are {found}: set it")
        lan_if = others[0]
        findings.append(f"LAN interface {lan_if}: the only other interface that is up")
    if lan_if == wan_if:
        raise ConfigError(f"lan.interface: {lan_if} is also the WAN interface")

    raw_address = t["lan"].get("address", str, None)
    if raw_address is None:
        found_addrs = interfaces.ipv4.get(lan_if, ())
        if not found_addrs:
            raise ConfigError(f"lan.address: not set and {lan_if} has no IPv4 address")
        raw_address = found_addrs[0]
        findings.append(f"LAN address {raw_address}: the address of {lan_if}")
    try:
        lan_address = ipaddress.IPv4Interface(raw_address)
    except ValueError:
        raise ConfigError(f"lan.address: {raw_address!r} is not an IPv4 address/prefix") from None
    raw6 = t["lan"].get("address6", str, None)
    if raw6 is None and interfaces.ipv6.get(lan_if):
        raw6 = interfaces.ipv6[lan_if][0]
        findings.append(f"LAN IPv6 address {raw6}: the global address of {lan_if}")
    lan_address6 = None
    if raw6:
        try:
            lan_address6 = ipaddress.IPv6Interface(raw6)
        except ValueError:
            raise ConfigError(f"lan.address6: {raw6!r} is not an IPv6 address/prefix") from None
        if lan_address6.network.prefixlen != 64:
            raise ConfigError(f"lan.address6: {raw6} must be in a /64 (SLAAC)")
    network = lan_address.network
    if network.num_addresses < 8:
        raise ConfigError(f"lan.address: {network} is too small for clients")
    hosts = list(network.hosts()) if network.num_addresses <= 65536 else []
    default_start = str(hosts[min(9, len(hosts) - 2)]) if hosts else None
    default_end = str(hosts[-1]) if hosts else None
    dhcp_start = t["lan"].get("dhcp_start", str, default_start)
    dhcp_end = t["lan"].get("dhcp_end", str, default_end)
    for key, value in (("dhcp_start", dhcp_start), ("dhcp_end", dhcp_end)):
        if value is None:
            raise ConfigError(f"lan.{key}: required for a network as large as {network}")
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            raise ConfigError(f"lan.{key}: {value!r} is not an IPv4 address") from None
        if addr not in network:
            raise ConfigError(f"lan.{key}: {value} is outside the LAN {network}")
        if addr == lan_address.ip:
            raise ConfigError(f"lan.{key}: {value} is the box's own address")
    if ipaddress.IPv4Address(dhcp_start) > ipaddress.IPv4Address(dhcp_end):
        raise ConfigError(f"lan.dhcp_start: {dhcp_start} is after lan.dhcp_end {dhcp_end}")
    if ipaddress.IPv4Address(dhcp_start) <= lan_address.ip <= ipaddress.IPv4Address(dhcp_end):
        raise ConfigError(f"lan.dhcp_start: the range {dhcp_start}-{dhcp_end} holds the box's "
                          f"own address {lan_address.ip}")
    lease_time = t["lan"].number("lease_time", int, 3600, 120, 7 * 86400)

    nas_ip = t["box"].get("nas_ip", str, None)
    if nas_ip is None:
        wan_addrs = interfaces.ipv4.get(wan_if, ())
        nas_ip = wan_addrs[0].split("/")[0] if wan_addrs else str(lan_address.ip)
        where = f"WAN {wan_if}" if wan_addrs else "the LAN"
        findings.append(f"NAS-IP-Address {nas_ip}: the address of {where}")
    try:
        nas_ip = str(ipaddress.IPv4Address(nas_ip))
    except ValueError:
        raise ConfigError(f"box.nas_ip: {nas_ip!r} is not an IPv4 address") from None

    hostname = t["portal"].get("hostname", str, "portal.passerelle.internal")
    if not _HOST.match(hostname):
        raise ConfigError(f"portal.hostname: {hostname!r} is not a host name (RFC 8910: "
                          "the portal URI should not be an IP literal)")
    http_port = t["portal"].number("http_port", int, 8080, 1, 65535)
    https_port = t["portal"].number("https_port", int, 8443, 1, 65535)
    if http_port == https_port:
        raise ConfigError("portal.https_port: the same port as portal.http_port")
    suffix = "" if https_port == 443 else f":{https_port}"
    api_url = t["portal"].get("api_url", str, f"https://{hostname}{suffix}/api/captive")
    if not api_url.startswith("https://"):
        raise ConfigError("portal.api_url: must be an https:// URL (RFC 8908)")
    if len(api_url.encode()) > 255:
        raise ConfigError("portal.api_url: longer than the 255 octets of DHCP option 114")

    portal = t["portal"]
    ssid = portal.get("ssid", str, "Passerelle")
    if not 1 <= len(ssid.encode()) <= 32:
        raise ConfigError(f"portal.ssid: {ssid!r} must be 1 to 32 octets (IEEE 802.11)")
    site_name = portal.get("site_name", str, identifier)
    venue_url = portal.get("venue_url", str, "")
    terms_url = portal.get("terms_url", str, "")
    for key, url in (("venue_url", venue_url), ("terms_url", terms_url)):
        if url and not url.startswith("https://"):
            raise ConfigError(f"portal.{key}: must be an https:// URL")
    cert = portal.get("cert_file", str, None)
    key_path = portal.get("key_file", str, None)
    if (cert is None) != (key_path is None):
        raise ConfigError("portal.cert_file: set both cert_file and key_file, or neither "
                          "(the box then makes a self-signed certificate)")
    cert_file = base / cert if cert else None
    key_file = base / key_path if key_path else None
    allow_plain_http = portal.get("allow_plain_http", bool, False)

    servers = tuple(_servers(data.get("radius", {}).get("servers"), base, read_secrets))
    radius = t["radius"]
    timeout = radius.number("timeout", float, 2.0, 0.1, 30.0)
    tries = radius.number("tries", int, 5, 1, 10)
    dead_time = radius.number("dead_time", float, 30.0, 0.0, 3600.0)
    operator_name = radius.get("operator_name", str, "")
    radsec = _radsec(radius, base, len(servers))
    checkin_budget = radius.number("checkin_budget", float, 0.0, 0.0, 30.0) or \
        (timeout if radsec else None)  # 0: no budget (UDP: the tries decide)
    status_server = radius.get("status_server", bool, radsec is not None)

    dae = t["dae"]
    dae_listen = _checked(dae, "listen", "0.0.0.0", _ip)
    dae_port = dae.number("port", int, 3799, 0, 65535)
    dae_hosts = dae.strings("clients", _ip) or tuple(s.host for s in servers)
    by_host = {_ip(s.host): s.secret for s in servers if _is_ip(s.host)}
    dae_clients: dict[str, bytes] = {}
    for host in dae_hosts:
        secret = by_host.get(_ip(host))
        if secret is None:
            raise ConfigError(f"dae.clients: {host} is not one of radius.servers, whose "
                              "secret it would use")
        dae_clients[_ip(host)] = secret
    dae_window = dae.number("window", int, 300, 1, 3600)

    garden_addresses = t["garden"].strings("addresses", ipaddress.ip_network)
    garden_domains = t["garden"].strings("domains", check_domain)
    upstream_dns = t["dns"].strings("upstream", _ip)
    captive_port = t["dns"].number("captive_port", int, CAPTIVE_DNS_PORT, 1024, 65535)
    if captive_port in (http_port, https_port):
        raise ConfigError(f"dns.captive_port: {captive_port} is a portal port")
    captive_rate = t["dns"].number("captive_rate", int, CAPTIVE_DNS_RATE, 1, 10000)
    ntp_servers = t["ntp"].strings("servers", _ip)
    open_private = t["wan"].strings("allow_private", _private_range(interfaces, wan_if))
    wan_open = (t["wan"].strings("open", _wan_service) if "open" in t["wan"].data
                else ("tcp/22",))

    s = t["sessions"]
    interim = s.number("interim_interval", int, 300, 60, 86400)
    idle = s.number("idle_timeout", int, 900, 0, 86400)
    sweep = s.number("sweep_interval", float, 5.0, 0.2, 300.0)
    lease_check = s.number("lease_check_interval", float, 30.0, 1.0, 3600.0)
    heartbeat = s.number("heartbeat_interval", float, 30.0, 1.0, 3600.0)
    keep_days = s.number("keep_stopped_days", int, 7, 1, 3650)
    control = state_dir / t["control"].get("socket", str, "control.sock")

    wifi = t["wifi"]
    access_points = tuple(_access_points(data.get("access_points"), base, lan_address))
    wifi_ssid = wifi.get("ssid", str, "")
    if access_points and not wifi_ssid:
        raise ConfigError("wifi.ssid: required with [[access_points]] (the private SSID whose "
                          "keys the box checks)")
    if wifi_ssid and not 1 <= len(wifi_ssid.encode()) <= 32:
        raise ConfigError(f"wifi.ssid: {wifi_ssid!r} must be 1 to 32 octets (IEEE 802.11)")
    if wifi_ssid and wifi_ssid == ssid:
        raise ConfigError(f"wifi.ssid: {wifi_ssid!r} is also portal.ssid, the open check-in "
                          "network; the private network needs its own name")
    candidates_max = wifi.number("candidates_max", int, 0, 0, 32)
    wifi_listen = _checked(wifi, "listen", str(lan_address.ip), _ip)
    wifi_port = wifi.number("port", int, 1812, 1, 65535)
    for other, key in ((dae_port, "dae.port"), (captive_port, "dns.captive_port")):
        if access_points and wifi_port == other:
            raise ConfigError(f"wifi.port: {wifi_port} is also {key}")
    upstream = {"radius.servers host": tuple(s.host for s in servers if _is_ip(s.host)),
                "dns.upstream": upstream_dns, "ntp.servers": ntp_servers}
    vlans = _vlans(t["vlans"], lan_if, lan_address, wan_if, interfaces, upstream)

    return Config(
        identifier=identifier, state_dir=state_dir, nas_ip=nas_ip, lan_if=lan_if,
        lan_address=lan_address, lan_address6=lan_address6, dhcp_start=dhcp_start,
        dhcp_end=dhcp_end,
        lease_time=lease_time, wan_if=wan_if, masquerade=t["wan"].get("masquerade", bool, True),
        portal_hostname=hostname, portal_http_port=http_port, portal_https_port=https_port,
        portal_api_url=api_url, ssid=ssid, site_name=site_name, venue_url=venue_url,
        terms_url=terms_url, cert_file=cert_file, key_file=key_file,
        portal_allow_plain_http=allow_plain_http, servers=servers,
        radius_timeout=timeout, radius_tries=tries,
        dead_time=dead_time, operator_name=operator_name, dae_listen=dae_listen,
        dae_port=dae_port, dae_clients=dae_clients, dae_window=dae_window,
        garden_addresses=garden_addresses, garden_domains=garden_domains,
        upstream_dns=upstream_dns, captive_dns_port=captive_port,
        captive_dns_rate=captive_rate, ntp_servers=ntp_servers, open_private=open_private,
        wan_open=wan_open, stopped_retention=keep_days * 86400.0,
        interim_interval=interim, idle_timeout=idle,
        sweep_interval=sweep, lease_check_interval=lease_check, heartbeat_interval=heartbeat,
        control_socket=control, findings=tuple(findings), access_points=access_points,
        wifi_ssid=wifi_ssid, wifi_candidates_max=candidates_max, wifi_listen=wifi_listen,
        wifi_port=wifi_port, vlans=vlans, radsec=radsec, checkin_budget=checkin_budget,
        status_server=status_server, **_keys(t["keys"], base, state_dir),
        metrics_listen=_metrics_listen(t["metrics"], lan_address, lan_address6, vlans),
        **_joining(portal),
    )


def _radsec(radius: _Table, base: Path, nodes: int) -> Radsec | None:
    """RadSec unless ``transport = "udp"``, or when it is not said and the
    enrolment certificate is absent (a box configured by hand). ``nodes``
    radsecproxies take the loopback ports from ``local_port`` on."""
    cert = base / radius.get("tls_cert", str, "tls/box.pem")
    transport = radius.get("transport", str, "radsec" if cert.exists() else "udp")
    if transport not in ("radsec", "udp"):
        raise ConfigError(f"radius.transport: {transport!r} is neither \"radsec\" nor \"udp\"")
    if transport == "udp":
        return None
    found = Radsec(cert=cert, key=base / radius.get("tls_key", str, "tls/box.key"),
                   ca=base / radius.get("tls_ca", str, "tls/centre-ca.pem"),
                   port=radius.number("radsec_port", int, 2083, 1, 65535),
                   local_port=radius.number("local_port", int, 11812, 1, 65535))
    if found.local_port + nodes - 1 > 65535:
        raise ConfigError(f"{radius.name('local_port')}: {found.local_port} is the first of "
                          f"{nodes} loopback ports (one radsecproxy per radius.servers "
                          f"entry), which would go past 65535")
    for key, path in (("tls_cert", found.cert), ("tls_key", found.key), ("tls_ca", found.ca)):
        if not path.exists():
            raise ConfigError(f"radius.{key}: {path} does not exist (transport = \"radsec\" "
                              "needs the enrolment files: enrol the box, or set "
                              "transport = \"udp\")")
    return found


def _keys(keys: _Table, base: Path, state_dir: Path) -> dict[str, Any]:
    """[keys]: where the box pulls the personal Wi-Fi keys from (the
    centre's console URL); HTTPS unless plain HTTP is allowed on purpose
    (the keys cross it, signed but not hidden)."""
    url = keys.get("url", str, "")
    found: dict[str, Any] = {"keys_key_file": state_dir / "keys" / "box.key"}
    if not url:
        return found
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"keys.url: {url!r} is not an http(s)://host/ URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"keys.url: {url!r} must have no query or fragment")
    if parts.scheme == "http" and not keys.get("allow_plain_http", bool, False):
        raise ConfigError(f"keys.url: {url!r} is plain HTTP: the keys would cross the "
                          "network in clear; use https://, or set keys.allow_plain_http = "
                          "true for a lab")
    key_file = keys.get("key_file", str, None)
    ca_file = keys.get("ca_file", str, None)
    if ca_file is not None and not (base / ca_file).is_file():
        raise ConfigError(f"keys.ca_file: no such file {ca_file!r}")
    found.update(keys_url=url.rstrip("/"),
                 keys_interval=keys.number("interval", float, 30.0, 1.0, 3600.0),
                 keys_timeout=keys.number("timeout", float, 10.0, 0.5, 120.0),
                 keys_ca_file=base / ca_file if ca_file else None)
    if key_file is not None:
        found["keys_key_file"] = base / key_file
    return found


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _checked(table: _Table, key: str, default: str, check: Callable[[str], str]) -> str:
    value = table.get(key, str, default)
    try:
        return check(value)
    except ValueError:
        raise ConfigError(f"{table.name(key)}: {value!r} is not an IP address") from None


def _secret(t: _Table, base: Path, read: bool = True) -> bytes:
    """A RADIUS shared secret, given inline or in a file: at least MIN_SECRET
    octets (a short one is found offline from one captured request)."""
    secret = t.get("secret", str, None)
    secret_file = t.get("secret_file", str, None)
    if (secret is None) == (secret_file is None):
        raise ConfigError(f"{t.name('secret')}: set exactly one of secret and secret_file")
    if secret_file is not None:
        if not read:
            return UNREAD.encode()
        try:
            secret = (base / secret_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{t.name('secret_file')}: {exc.strerror}: {secret_file}") \
                from None
    assert secret is not None
    octets = secret.encode()
    if len(octets) < MIN_SECRET:
        raise ConfigError(f"{t.name('secret')}: {len(octets)} octets; at least {MIN_SECRET}, "
                          "random (RFC 2865 section 3)")
    return octets


def _servers(raw: Any, base: Path, read_secrets: bool = True) -> list[RadiusServer]:
    if not raw:
        raise ConfigError("radius.servers: at least one [[radius.servers]] is required")
    if not isinstance(raw, list):
        raise ConfigError("radius.servers: expected [[radius.servers]] tables")
    servers = []
    for i, entry in enumerate(raw):
        prefix = f"radius.servers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{prefix}: expected a table")
        unknown = set(entry) - SERVER_KEYS
        if unknown:
            raise ConfigError(f"{prefix}.{sorted(unknown)[0]}: unknown key")
        t = _Table(entry, prefix)
        host = t.get("host", str, None)
        if not host:
            raise ConfigError(f"{prefix}.host: required")
        servers.append(RadiusServer(
            host=host,
            secret=_secret(t, base, read_secrets),
            auth_port=t.number("auth_port", int, 1812, 1, 65535),
            acct_port=t.number("acct_port", int, 1813, 1, 65535),
            require_message_authenticator=t.get("require_message_authenticator", bool, True),
        ))
    return servers


def _access_points(raw: Any, base: Path,
                   lan: ipaddress.IPv4Interface) -> list[AccessPoint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("access_points: expected [[access_points]] tables")
    found: list[AccessPoint] = []
    vendors = ", ".join(v.value for v in Vendor)
    for i, entry in enumerate(raw):
        prefix = f"access_points[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{prefix}: expected a table")
        unknown = set(entry) - AP_KEYS
        if unknown:
            raise ConfigError(f"{prefix}.{sorted(unknown)[0]}: unknown key")
        t = _Table(entry, prefix)
        address = t.get("address", str, None)
        if not address:
            raise ConfigError(f"{prefix}.address: required (the access point's address, "
                              "or a subnet of them)")
        try:
            network = ipaddress.ip_network(address)
        except ValueError:
            raise ConfigError(f"{prefix}.address: {address!r} is not an address nor a "
                              "subnet (address/prefix, no host bits)") from None
        if network.version != 4 or not network.subnet_of(lan.network):
            raise ConfigError(f"{prefix}.address: {address} is outside the LAN "
                              f"{lan.network}, where the box answers access points")
        if any(ap.network == network for ap in found):
            raise ConfigError(f"{prefix}.address: {address} is listed twice")
        secret = _secret(t, base)
        vendor = t.get("vendor", str, "hostapd")
        if vendor not in {v.value for v in Vendor}:
            raise ConfigError(f"{prefix}.vendor: {vendor!r} is not one of {vendors}")
        # RFC 5176 Disconnect-Requests to it when a session ends (docs/keys.md).
        disconnect = t.get("disconnect", bool, False)
        dae_port = t.number("dae_port", int, DAE_PORT, 1, 65535)
        if "dae_port" in entry and not disconnect:
            raise ConfigError(f"{prefix}.dae_port: set, but disconnect is not true: the box "
                              "sends this access point no Disconnect-Request")
        found.append(AccessPoint(network, secret, Vendor(vendor), disconnect,
                                 dae_port))
    return found


def _vlan_interfaces(table: _Table) -> set[str]:
    """The interfaces ``[[vlans.networks]]`` names (checked in ``_vlans``)."""
    raw = table.data.get("networks")
    return {entry["interface"] for entry in raw if isinstance(entry, dict)
            and isinstance(entry.get("interface"), str)} if isinstance(raw, list) else set()


def _vlans(table: _Table, lan_if: str, lan: ipaddress.IPv4Interface, wan_if: str,
           interfaces: Interfaces,
           elsewhere: Mapping[str, tuple[str, ...]]) -> tuple[Vlan, ...]:
    """``[vlans]``: a range scheme (``ids``, ``network``, ``prefix``), a list
    (``[[vlans.networks]]``), or both; every VLAN apart from the others,
    the LAN, the WAN and ``elsewhere`` (the hosts the box reaches upstream:
    a VLAN's subnet holding one would take its route). An untagged VLAN's
    interface (``tagged = false``) must be on this machine, and be neither
    the LAN nor the WAN."""
    wan = interfaces.ipv4.get(wan_if, ())
    found: list[Vlan] = []
    ids = table.get("ids", str, None)
    network = table.get("network", str, None)
    if (ids is None) != (network is None):
        raise ConfigError("vlans.ids: set ids and network together (the range scheme: one "
                          "subnet of vlans.prefix bits per VLAN, cut from network)")
    prefix = table.number("prefix", int, 24, 1, 32)
    if ids is not None and network is not None:
        try:
            id_range = parse_ids(ids)
        except ValueError as exc:
            raise ConfigError(f"vlans.ids: {exc}") from None
        try:
            found += scheme(lan_if, id_range, network, prefix)
        except ValueError as exc:  # it names network or prefix, or the VLAN's own field
            raise ConfigError(f"vlans.{exc}") from None
    raw = table.get("networks", list, [])
    for i, entry in enumerate(raw):
        prefix_key = f"vlans.networks[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{prefix_key}: expected a table ([[vlans.networks]])")
        unknown = set(entry) - VLAN_KEYS
        if unknown:
            raise ConfigError(f"{prefix_key}.{sorted(unknown)[0]}: unknown key")
        t = _Table(entry, prefix_key)
        vlan_id = t.get("id", int, None)
        address = t.get("address", str, None)
        if vlan_id is None or address is None:
            key = "id" if vlan_id is None else "address"
            raise ConfigError(f"{prefix_key}.{key}: required (the VLAN id, and the box's "
                              "address/prefix on it)")
        try:
            vlan = Vlan.make(lan_if, vlan_id, address, t.get("dhcp_start", str, None),
                             t.get("dhcp_end", str, None), t.get("interface", str, None),
                             t.get("tagged", bool, True))
        except ValueError as exc:
            raise ConfigError(f"{prefix_key}.{exc}") from None
        for other, role in ((lan_if, "the LAN"), (wan_if, "the WAN")):
            if vlan.interface == other:
                raise ConfigError(f"{prefix_key}.interface: {other} is {role} interface; a "
                                  "VLAN needs an interface of its own")
        if not vlan.tagged and vlan.interface not in {*interfaces.up, *interfaces.present}:
            raise ConfigError(f"{prefix_key}.interface: {vlan.interface} is not an interface "
                              "of this machine (with tagged = false the VLAN arrives untagged "
                              "on it; the box makes none)")
        found.append(vlan)
    try:
        check_apart(found, {"the LAN": (str(lan.network),), "the WAN": wan, **elsewhere})
    except ValueError as exc:
        raise ConfigError(f"vlans: {exc}") from None
    return tuple(found)


def firewall_plan(config: Config) -> FirewallPlan:
    garden4 = tuple(a for a in config.garden_addresses
                    if ipaddress.ip_network(a, strict=False).version == 4)
    garden6 = tuple(a for a in config.garden_addresses
                    if ipaddress.ip_network(a, strict=False).version == 6)
    box6 = str(config.lan_address6.ip) if config.lan_address6 else None
    return FirewallPlan(lan_if=config.lan_if, wan_if=config.wan_if, box_ipv4=config.box_ipv4,
                box_ipv6=box6,
                portal_http_port=config.portal_http_port,
                portal_https_port=config.portal_https_port,
                garden4=garden4, garden6=garden6, masquerade=config.masquerade,
                ntp_servers=config.ntp_servers, open_private=config.open_private,
                captive_dns_port=config.captive_dns_port,
                captive_dns_rate=config.captive_dns_rate, dae_port=config.dae_port,
                dae_clients=tuple(config.dae_clients), wan_open=config.wan_open,
                access_points=tuple(str(ap.network) for ap in config.access_points),
                ap_port=config.wifi_port, vlans=config.vlans,
                lan_net4=str(config.lan_address.network))


def dhcp_plan(config: Config) -> DhcpPlan:
    return DhcpPlan(lan_if=config.lan_if, box_ipv4=config.box_ipv4,
                    range_start=config.dhcp_start, range_end=config.dhcp_end,
                    netmask=str(config.lan_address.netmask), lease_seconds=config.lease_time,
                    portal_api_url=config.portal_api_url,
                    garden_domains=config.garden_domains, upstream_dns=config.upstream_dns,
                    lease_file=str(config.state_dir / "dnsmasq.leases"),
                    state_dir=str(config.state_dir),
                    box_ipv6=str(config.lan_address6.ip) if config.lan_address6 else "",
                    captive_dns_port=config.captive_dns_port, vlans=config.vlans)


# The configuration key behind each kind of line the box gives dnsmasq.
_DNSMASQ_KEYS = (("nftset=", "garden.domains"), ("server=", "dns.upstream"),
                 ("host-record=", "portal.api_url"), ("dhcp-option=114", "portal.api_url"),
                 ("dhcp-option=option6:103", "portal.api_url"), ("dhcp-range=", "lan"),
                 ("port=", "dns.captive_port"))


def dnsmasq_test(config: Config) -> None:
    """Run ``dnsmasq --test`` on the files the box would write; ConfigError
    naming the key behind the line dnsmasq refuses. Nothing without dnsmasq."""
    if shutil.which("dnsmasq") is None:
        return
    plan = dhcp_plan(config)
    try:
        files = {"dnsmasq.conf": render(plan),
                 "dnsmasq-captive.conf": render_captive(plan, config.upstream_dns)}
    except ValueError as exc:
        raise ConfigError(f"dnsmasq: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            conf = Path(tmp) / name
            conf.write_text(text)
            out = subprocess.run(["dnsmasq", "--test", f"--conf-file={conf}"],
                                 capture_output=True, text=True, check=False, timeout=30)
            if out.returncode == 0:
                continue
            words = " ".join((out.stderr or out.stdout).split())
            match = re.search(r"at line (\d+)", words)
            line = text.splitlines()[int(match[1]) - 1] if match else ""
            key = next((k for prefix, k in _DNSMASQ_KEYS if line.startswith(prefix)), "dnsmasq")
            raise ConfigError(f"{key}: dnsmasq refuses {line!r}: {words}")


def load(path: Path, interfaces: Interfaces | None = None, *,
         read_secrets: bool = True) -> Config:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    config = parse(text, path.parent.resolve(), interfaces or read_interfaces(),
                   read_secrets=read_secrets)
    dnsmasq_test(config)
    return config


def _metrics_listen(table: _Table, lan: ipaddress.IPv4Interface,
                    lan6: ipaddress.IPv6Interface | None,
                    vlans: tuple[Vlan, ...]) -> tuple[str, int] | None:
    """``[metrics] listen = "ADDRESS:PORT"``: where the Prometheus listener
    binds; None when not set. Never on the LAN side: the clients' networks
    (the LAN's, the VLANs') and the wildcard, which takes them too, are
    refused."""
    raw = table.get("listen", str, None)
    if raw is None:
        return None
    try:
        host, port = hostport.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"metrics.listen: {exc}") from None
    addr = ipaddress.ip_address(host)
    if addr.is_unspecified:
        raise ConfigError(f"metrics.listen: {host} would listen on the LAN too; give one "
                          "address (127.0.0.1, or the WAN's for a remote Prometheus)")
    client_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        lan.network, *(v.address.network for v in vlans)]
    if lan6 is not None:
        client_nets.append(lan6.network)
    for net in client_nets:
        if addr.version == net.version and addr in net:
            raise ConfigError(f"metrics.listen: {host} is on the clients' network {net}; "
                              "the metrics are never served on the LAN side")
    return str(addr), port
def _joining(portal: _Table) -> dict[str, Any]:
    """``[portal] key_is_identity`` and ``join_checks_in`` (docs/portal.md)."""
    mode = portal.get("key_is_identity", str, KeyIsIdentity.TAP.value)
    if mode not in {m.value for m in KeyIsIdentity}:
        raise ConfigError(f"portal.key_is_identity: {mode!r} is neither \"tap\" nor "
                          "\"password\"")
    return {"key_is_identity": KeyIsIdentity(mode),
            "join_checks_in": portal.get("join_checks_in", bool, False)}
