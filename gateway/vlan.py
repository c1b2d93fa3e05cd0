"""The companies' VLANs on the box's LAN: 802.1Q sub-interfaces, or
interfaces of their own.

Each company gets its own VLAN (the centre's Access-Accept names it in
Tunnel-Private-Group-Id). The box carries each VLAN it is configured for as
a sub-interface of its LAN (``lan.101`` for VLAN 101), with its own address
and subnet; the untagged LAN stays the open check-in network. DHCP, DNS, the
captive state and the portal apply on every one of them (gateway/dnsmasq.py,
gateway/nft.py); what crosses the box between two of them is dropped.

A VLAN may instead arrive untagged on an interface of its own (``tagged =
false``: a hypervisor, a switch port or a USB NIC per VLAN does the
tagging), for a box whose kernel has no 802.1Q. Only how the interface comes
to be differs: the box does not make, mark or remove it, it sets the
configured address on it and brings it up; every rule downstream takes the
VLAN's ``interface`` whichever way it came.

``Vlan`` is one VLAN as configured (checked when made); ``scheme()`` cuts one
subnet per VLAN out of a range. ``plan()`` is the pure part: from what the
kernel has (``parse_links()`` of ``ip -j -d addr show``) to the actions that
make it what the configuration says. ``Links`` is the thin executor that
runs them with ``ip`` (optionally inside a network namespace).

The box marks the sub-interfaces it makes with an alias (``ALIAS``): it
removes a VLAN interface of its own that the configuration no longer lists
(a forgotten one would be a way around the firewall, whose rules name only
the configured interfaces), and never removes or changes an interface it
did not make (one made by hand as the right VLAN is used as it is, with the
configured address added; so is an interface of its own).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from passerelle.errors import UserError

log = logging.getLogger("passerelle.gateway")

ALIAS = "passerelle vlan"
MAX_VLANS = 1000  # per box: one subnet, one DHCP range and a few rules each
IFNAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")  # the kernel's IFNAMSIZ, less the NUL


def interface_name(lan_if: str, vlan_id: int) -> str:
    """The sub-interface of VLAN ``vlan_id`` on ``lan_if``: ``lan.101``."""
    return f"{lan_if}.{vlan_id}"


@dataclass(frozen=True)
class Vlan:
    """One VLAN the box carries; ValueError naming the field when wrong."""

    id: int
    interface: str  # the sub-interface, lan.101, or the VLAN's own interface
    address: ipaddress.IPv4Interface  # the box's address and the VLAN's subnet
    dhcp_start: ipaddress.IPv4Address
    dhcp_end: ipaddress.IPv4Address
    # False: the VLAN arrives untagged on ``interface``, which the box is
    # given (never makes, marks nor removes).
    tagged: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, int) \
                or not 1 <= self.id <= 4094:
            raise ValueError(f"id: {self.id!r} is not a VLAN id (1 to 4094, IEEE 802.1Q)")
        if not IFNAME.match(self.interface):
            raise ValueError(f"interface: {self.interface!r} is not an interface name "
                             "(at most 15 characters)")
        net = self.address.network
        if net.num_addresses < 8:
            raise ValueError(f"address: {net} is too small for clients")
        if self.address.ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"address: {self.address.ip} is not a host address of {net}")
        for name in ("dhcp_start", "dhcp_end"):
            addr = getattr(self, name)
            if addr not in net:
                raise ValueError(f"{name}: {addr} is outside VLAN {self.id}'s network {net}")
            if addr in (net.network_address, net.broadcast_address):
                raise ValueError(f"{name}: {addr} is not a host address of {net}")
        if self.dhcp_start > self.dhcp_end:
            raise ValueError(f"dhcp_start: {self.dhcp_start} is after dhcp_end {self.dhcp_end}")
        if self.dhcp_start <= self.address.ip <= self.dhcp_end:
            raise ValueError(f"dhcp_start: the range {self.dhcp_start}-{self.dhcp_end} holds "
                             f"the box's own address {self.address.ip}")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self.address.network

    @property
    def box_ipv4(self) -> str:
        return str(self.address.ip)

    @classmethod
    def make(cls, lan_if: str, vlan_id: int, address: str, dhcp_start: str | None = None,
             dhcp_end: str | None = None, interface: str | None = None,
             tagged: bool = True) -> Vlan:
        """From text; the DHCP range defaults to the subnet's hosts after the
        first nine (the box takes the first). An untagged VLAN names its
        interface: there is no default to make."""
        if not tagged and interface is None:
            raise ValueError(f"interface: required with tagged = false (the interface VLAN "
                             f"{vlan_id} arrives on untagged)")
        try:
            iface = ipaddress.IPv4Interface(address)
        except ValueError:
            raise ValueError(f"address: {address!r} is not an IPv4 address/prefix") from None
        hosts = iface.network.num_addresses - 2
        first = iface.network.network_address
        start = dhcp_start or str(first + min(10, max(hosts - 1, 1)))
        end = dhcp_end or str(first + max(hosts, 1))
        found = {}
        for name, text in (("dhcp_start", start), ("dhcp_end", end)):
            try:
                found[name] = ipaddress.IPv4Address(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not an IPv4 address") from None
        return cls(vlan_id, interface or interface_name(lan_if, vlan_id), iface,
                   found["dhcp_start"], found["dhcp_end"], tagged)


def parse_ids(text: str) -> range:
    """``"101-120"`` (or one id, ``"101"``) as a range of VLAN ids."""
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(f"{text!r} is not a VLAN id range such as 101-120") from None
    if not 1 <= low <= high <= 4094:
        raise ValueError(f"{text!r}: VLAN ids run from 1 to 4094, the first not after the last")
    return range(low, high + 1)


def scheme(lan_if: str, ids: range, network: str, prefix: int) -> list[Vlan]:
    """One subnet of ``prefix`` bits per VLAN, cut in order from ``network``:
    the first id gets the first subnet. The box takes each subnet's first
    address; DHCP the rest, as ``Vlan.make`` says."""
    try:
        net = ipaddress.IPv4Network(network)
    except ValueError:
        raise ValueError(f"network: {network!r} is not an IPv4 network (address/prefix, "
                         "no host bits)") from None
    if not net.prefixlen <= prefix <= 29:
        raise ValueError(f"prefix: /{prefix} must be between /{net.prefixlen} (the network) "
                         "and /29")
    count = 2 ** (prefix - net.prefixlen)
    if len(ids) > count:
        raise ValueError(f"network: {net} holds {count} subnets of /{prefix}, not the "
                         f"{len(ids)} VLANs of {ids.start}-{ids.stop - 1}")
    subnets = net.subnets(new_prefix=prefix)
    return [Vlan.make(lan_if, vlan_id, f"{next(subnets).network_address + 1}/{prefix}")
            for vlan_id in ids]


def check_apart(vlans: Sequence[Vlan], others: Mapping[str, Iterable[str]]) -> None:
    """ValueError unless every VLAN has its own id, interface and subnet,
    apart from each other and from ``others`` (name -> networks, e.g. the
    LAN's and the WAN's): the box routes by subnet."""
    seen: dict[str, ipaddress.IPv4Network] = {}
    for name, nets in others.items():
        for text in nets:
            net = ipaddress.ip_network(text, strict=False)
            if isinstance(net, ipaddress.IPv4Network):
                seen[f"{name} {net}"] = net
    ids: set[int] = set()
    names: set[str] = set()
    for v in vlans:
        if v.id in ids:
            raise ValueError(f"VLAN {v.id} is listed twice")
        if v.interface in names:
            raise ValueError(f"VLAN {v.id}: interface {v.interface} is used twice")
        for name, net in seen.items():
            if v.network.overlaps(net):
                raise ValueError(f"VLAN {v.id}: its network {v.network} overlaps {name}")
        ids.add(v.id)
        names.add(v.interface)
        seen[f"VLAN {v.id}'s network"] = v.network
    if len(vlans) > MAX_VLANS:
        raise ValueError(f"{len(vlans)} VLANs: at most {MAX_VLANS} per box")


def vlan_of(vlans: Iterable[Vlan], ipv4: str) -> Vlan | None:
    """The VLAN whose subnet holds ``ipv4``; None: the untagged LAN (or no
    VLAN of this box)."""
    try:
        addr = ipaddress.IPv4Address(ipv4)
    except ValueError:
        return None
    return next((v for v in vlans if addr in v.network), None)


# --- what the kernel has -------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One interface as ``ip -j -d addr show`` describes it."""

    name: str
    kind: str = ""  # "vlan", "veth", ...; "" for none
    parent: str = ""  # the lower interface of a VLAN
    vlan_id: int | None = None
    alias: str = ""
    up: bool = False
    ipv4: tuple[str, ...] = ()  # "address/prefix"


def parse_links(listing: Any) -> dict[str, Link]:
    """``ip -j -d addr show`` -> name -> Link."""
    out: dict[str, Link] = {}
    for item in listing if isinstance(listing, list) else []:
        info = item.get("linkinfo") or {}
        data = info.get("info_data") or {}
        vid = data.get("id")
        out[item["ifname"]] = Link(
            name=item["ifname"], kind=str(info.get("info_kind", "")),
            parent=str(item.get("link", "")),
            vlan_id=vid if isinstance(vid, int) else None,
            alias=str(item.get("ifalias", "")),
            up="UP" in item.get("flags", []),
            ipv4=tuple(f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                       if a.get("family") == "inet"))
    return out


# --- actions -------------------------------------------------------------------


@dataclass(frozen=True)
class AddLink:
    """``ip link add link PARENT name NAME type vlan id ID`` (marked ours)."""

    parent: str
    vlan: Vlan


@dataclass(frozen=True)
class DeleteLink:
    name: str


@dataclass(frozen=True)
class AddAddress:
    name: str
    address: str  # address/prefix


@dataclass(frozen=True)
class DeleteAddress:
    name: str
    address: str


@dataclass(frozen=True)
class SetUp:
    name: str


Action = AddLink | DeleteLink | AddAddress | DeleteAddress | SetUp


class VlanError(UserError):
    """The kernel's interfaces conflict with the configuration, or cannot be
    made: the box does not start, and says which and why in one line."""


def plan(lan_if: str, vlans: Sequence[Vlan], links: Mapping[str, Link]) -> list[Action]:
    """The actions that make the kernel's VLAN interfaces what ``vlans``
    says, from ``links`` (what it has now). Nothing when it already is.
    VlanError when a configured name is taken by an interface the box did
    not make as that VLAN (it is never removed or changed), or when the
    interface of an untagged VLAN is missing."""
    if any(v.tagged for v in vlans) and lan_if not in links:
        raise VlanError(f"LAN interface {lan_if} not found: its VLANs cannot be made")
    actions: list[Action] = []
    wanted = {v.interface: v for v in vlans}
    for name, found in links.items():
        if found.alias == ALIAS and found.kind == "vlan" and name not in wanted:
            actions.append(DeleteLink(name))
    for v in vlans:
        link = links.get(v.interface)
        if not v.tagged:
            # Given, not made: it must be there, and not a sub-interface of
            # ours (that one would go once the configuration stops listing it).
            if link is None:
                raise VlanError(f"VLAN {v.id}: interface {v.interface} not found; with "
                                "tagged = false the VLAN arrives untagged on an interface "
                                "the box is given, and the box makes none")
            if link.alias == ALIAS:
                raise VlanError(f"VLAN {v.id}: {v.interface} is an 802.1Q sub-interface the "
                                "box made; remove it (ip link del) to use an interface of "
                                "that name untagged")
        fresh = link is None
        if v.tagged and link is not None and (link.kind != "vlan" or link.vlan_id != v.id
                                              or link.parent != lan_if):
            if link.alias != ALIAS:
                raise VlanError(f"{v.interface} exists and is not VLAN {v.id} of {lan_if}; "
                                "the box does not change an interface it did not make "
                                "(remove it, or name the VLAN's interface otherwise)")
            actions.append(DeleteLink(v.interface))
            fresh = True
        if fresh:
            actions += [AddLink(lan_if, v), AddAddress(v.interface, str(v.address)),
                        SetUp(v.interface)]
            continue
        assert link is not None
        # Only the configured address on an interface of ours: the box
        # routes and guards by subnet.
        for addr in link.ipv4 if link.alias == ALIAS else ():
            if addr != str(v.address):
                actions.append(DeleteAddress(v.interface, addr))
        if str(v.address) not in link.ipv4:
            actions.append(AddAddress(v.interface, str(v.address)))
        if not link.up:
            actions.append(SetUp(v.interface))
    return actions


class Links:
    """The kernel's interfaces, in this namespace or ``netns``, through ``ip``."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _ip(self, *args: str) -> str:
        cmd = ["ip", *args]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VlanError(f"cannot run ip: {exc}") from exc
        if out.returncode != 0:
            raise VlanError(f"ip {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def read(self) -> dict[str, Link]:
        return parse_links(json.loads(self._ip("-j", "-d", "addr", "show") or "[]"))

    def carry_out(self, actions: Sequence[Action]) -> None:
        for action in actions:
            match action:
                case AddLink(parent=parent, vlan=v):
                    try:
                        self._ip("link", "add", "link", parent, "name", v.interface, "type",
                                 "vlan", "id", str(v.id))
                    except VlanError as exc:
                        if "Unknown device type" in str(exc):
                            raise VlanError(f"VLAN {v.id}: this kernel cannot make 802.1Q "
                                            "interfaces (load the 8021q module)") from None
                        raise
                    self._ip("link", "set", "dev", v.interface, "alias", ALIAS)
                    log.info("VLAN %d: interface %s made on %s", v.id, v.interface, parent)
                case DeleteLink(name=name):
                    self._ip("link", "del", "dev", name)
                    log.info("VLAN interface %s removed: not in the configuration", name)
                case AddAddress(name=name, address=address):
                    self._ip("addr", "add", address, "dev", name)
                case DeleteAddress(name=name, address=address):
                    self._ip("addr", "del", address, "dev", name)
                    log.info("address %s removed from %s: not the configured one",
                             address, name)
                case SetUp(name=name):
                    self._ip("link", "set", "dev", name, "up")
                case _:
                    assert_never(action)

    def apply(self, lan_if: str, vlans: Sequence[Vlan]) -> None:
        """Make the kernel's VLAN interfaces what ``vlans`` says."""
        actions = plan(lan_if, vlans, self.read())
        self.carry_out(actions)
        if vlans:
            log.info("VLANs on %s: %s", lan_if, ", ".join(
                f"{v.id} ({v.interface}{'' if v.tagged else ' untagged'} {v.address})"
                for v in vlans))
