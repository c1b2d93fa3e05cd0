"""What the portal needs to know, taken from the box's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from passerelle.gateway.config import Config

LANGUAGES = ("fr", "nl", "en", "de")


@dataclass(frozen=True)
class PortalSettings:
    hostname: str
    http_port: int
    https_port: int
    api_url: str
    ssid: str
    site_name: str
    box_ipv4: str
    box_ipv6: str = ""  # the LAN's IPv6 address, when it has one
    venue_url: str = ""
    terms_url: str = ""
    # A certificate the clients trust is configured (cert_file): captive
    # clients go to the HTTPS portal even when plain HTTP is allowed.
    https_portal: bool = False
    mac_failures: int = 6  # failed check-ins per client MAC ...
    mac_window: float = 300.0  # ... within this many seconds
    login_failures: int = 10
    login_window: float = 900.0
    # Check-in, the key page and the cookie over plain HTTP too, with a
    # banner saying so; by default only over HTTPS (docs/portal.md).
    allow_plain_http: bool = False

    @classmethod
    def from_config(cls, config: Config) -> PortalSettings:
        return cls(hostname=config.portal_hostname, http_port=config.portal_http_port,
                   https_port=config.portal_https_port, api_url=config.portal_api_url,
                   ssid=config.ssid, site_name=config.site_name, box_ipv4=config.box_ipv4,
                   box_ipv6=str(config.lan_address6.ip) if config.lan_address6 else "",
                   venue_url=config.venue_url, terms_url=config.terms_url,
                   https_portal=config.cert_file is not None,
                   allow_plain_http=config.portal_allow_plain_http)

    @property
    def secure_url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.hostname}{port}/"

    @property
    def portal_url(self) -> str:
        """Where captive clients are sent: the HTTPS portal, unless the site
        allows plain HTTP and has no trusted certificate. Plain HTTP goes to
        port 80 of the box, which its table sends on to the portal's HTTP port."""
        if self.https_portal or not self.allow_plain_http:
            return self.secure_url
        return f"http://{self.hostname}/"

    @property
    def own_hosts(self) -> tuple[str, ...]:
        """Host names (as probes.host_name gives them) that mean the portal itself."""
        hosts = (self.hostname.lower(), self.box_ipv4)
        return (*hosts, f"[{self.box_ipv6}]") if self.box_ipv6 else hosts

    @property
    def api_path(self) -> str:
        return urlsplit(self.api_url).path or "/api/captive"
