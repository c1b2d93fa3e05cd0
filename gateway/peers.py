"""The box's RADIUS peers as its configuration names them: the centres it
asks (``RadiusServer``) and the access points that ask it (``AccessPoint``).

Plain values, without the protocol: ``config`` builds them, ``radclient``
and ``ap_server`` use them. Kept apart so that reading the configuration
(the portal does at every start) does not load the RADIUS code.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

DAE_PORT = 3799  # RFC 5176 section 3

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RadiusServer:
    """A centre the box asks, and how."""

    host: str
    secret: bytes
    auth_port: int = 1812
    acct_port: int = 1813
    require_message_authenticator: bool = True

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError(f"RADIUS server {self.host}: the shared secret is empty")

    def __repr__(self) -> str:  # never the secret in a log line
        return f"RadiusServer({self.host}, {self.auth_port}/{self.acct_port})"


class Vendor(enum.StrEnum):
    """How an access point wants the key in an Access-Accept."""

    HOSTAPD = "hostapd"  # also OpenWrt, UniFi: Tunnel-Password (RFC 2868), several allowed
    CISCO = "cisco"  # iPSK: Cisco-AVPair psk-mode=ascii|hex, psk=KEY
    ARUBA = "aruba"  # MPSK: Aruba-MPSK-Passphrase, hidden like Tunnel-Password
    MIKROTIK = "mikrotik"  # Mikrotik-Wireless-PSK, in clear
    RUCKUS = "ruckus"  # DPSK: Ruckus-Dpsk = 0x00 || PMK (the request has the handshake)


@dataclass(frozen=True)
class AccessPoint:
    """One access point (or a subnet of them) allowed to ask the box."""

    network: IpNetwork
    secret: bytes
    vendor: Vendor
    disconnect: bool = False  # send it RFC 5176 Disconnect-Requests when a session ends
    dae_port: int = DAE_PORT  # where it listens for them

    def __repr__(self) -> str:  # never the secret in a log line
        return f"AccessPoint({self.network}, {self.vendor})"
