"""The portal's IPv6 listeners without the lab: which addresses by default,
and an IPv6 listener bound before its address is usable."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest
from flask import Flask

from passerelle.gateway.config import Config, Interfaces, parse
from passerelle.portal import server
from passerelle.portal.cli import default_hosts

CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "state"
[lan]
interface = "lan"
address = "198.51.100.1/24"
{address6}
[wan]
interface = "wan"
[[radius.servers]]
host = "192.0.2.10"
secret = "a-secret-of-16-octets"
"""


def config(tmp_path: Path, address6: str = "") -> Config:
    interfaces = Interfaces("wan", ("lan", "wan"), {"lan": ("198.51.100.1/24",)})
    return parse(CONFIG.format(address6=address6), tmp_path, interfaces)


def test_the_portal_listens_on_the_lans_ipv6_address_when_it_has_one(tmp_path: Path) -> None:
    assert default_hosts(config(tmp_path)) == ["198.51.100.1"]
    six = config(tmp_path, 'address6 = "2001:db8:1::1/64"')
    assert default_hosts(six) == ["198.51.100.1", "2001:db8:1::1"]
    listeners = server.portal_listeners(default_hosts(six), 8080, 8443)
    assert [(x.host, x.port, x.tls) for x in listeners] == [
        ("198.51.100.1", 8080, False), ("198.51.100.1", 8443, True),
        ("2001:db8:1::1", 8080, False), ("2001:db8:1::1", 8443, True)]


def _has_ipv6_loopback() -> bool:
    out = subprocess.run(["ip", "-6", "addr", "show", "dev", "lo"], capture_output=True,
                         text=True, check=False)
    return "::1/128" in out.stdout


def test_an_ipv6_listener_serves_and_binds_an_address_still_tentative() -> None:
    if not _has_ipv6_loopback():
        pytest.skip("this host has no IPv6 on its loopback (::1)")
    app = Flask(__name__)
    app.add_url_rule("/", "home", lambda: "portal")
    web = server.bind(app, [server.Listener("::1", 0)])
    web.start()
    try:
        conn = http.client.HTTPConnection("::1", web.port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"portal"
        conn.close()
    finally:
        web.stop()
    # An address the host does not (yet) have: right after boot, duplicate
    # address detection keeps the LAN's IPv6 address unusable for a while.
    early = server.bind(app, [server.Listener("2001:db8:1::1", 0)])
    early.close()
