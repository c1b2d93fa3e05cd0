"""The box's configuration: detection, defaults, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.gateway.config import (
    ConfigError,
    Interfaces,
    dhcp_plan,
    firewall_plan,
    load,
    parse,
    read_interfaces,
)
from tests.need import tool

MACHINE = Interfaces(
    default_route_if="wan0",
    up=("wan0", "lan0"),
    ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)},
)

MINIMAL = """
[box]
identifier = "axis-gw"
state_dir = "state"

[[radius.servers]]
host = "192.0.2.10"
secret = "s3cret-for-tests"
"""


def test_minimal_config_detects_the_rest(tmp_path: Path) -> None:
    cfg = parse(MINIMAL, tmp_path, MACHINE)
    assert (cfg.wan_if, cfg.lan_if) == ("wan0", "lan0")
    assert cfg.box_ipv4 == "198.51.100.1" and cfg.nas_ip == "203.0.113.2"
    assert (cfg.dhcp_start, cfg.dhcp_end) == ("198.51.100.10", "198.51.100.254")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.portal_api_url == "https://portal.passerelle.internal:8443/api/captive"
    assert cfg.dae_clients == {"192.0.2.10": b"s3cret-for-tests"}
    assert cfg.control_socket == tmp_path / "state" / "control.sock"
    assert (cfg.ssid, cfg.site_name, cfg.cert_file) == ("Passerelle", "axis-gw", None)
    findings = "\n".join(cfg.findings)
    assert "WAN interface wan0: it carries the default route" in findings
    assert "LAN interface lan0: the only other interface that is up" in findings


def test_explicit_settings_win(tmp_path: Path) -> None:
    text = MINIMAL + """
[lan]
interface = "eth1"
address = "198.51.100.1/25"
dhcp_start = "198.51.100.20"
dhcp_end = "198.51.100.100"
[wan]
interface = "eth0"
masquerade = false
"""
    cfg = parse(text, tmp_path, MACHINE)
    assert (cfg.lan_if, cfg.wan_if, cfg.masquerade) == ("eth1", "eth0", False)
    assert str(cfg.lan_address.network) == "198.51.100.0/25"
    assert not any("interface" in f for f in cfg.findings)


def test_ipv6_detected_on_the_lan(tmp_path: Path) -> None:
    machine = Interfaces("wan0", ("wan0", "lan0"), MACHINE.ipv4,
                         {"lan0": ("2001:db8:1::1/64",)})
    cfg = parse(MINIMAL, tmp_path, machine)
    assert str(cfg.lan_address6) == "2001:db8:1::1/64"
    assert parse(MINIMAL, tmp_path, MACHINE).lan_address6 is None


def test_secret_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file-0123456\n")
    text = MINIMAL.replace('secret = "s3cret-for-tests"', 'secret_file = "secret"')
    servers = parse(text, tmp_path, MACHINE).servers
    assert servers[0].secret == b"from-a-file-0123456"
    assert "from-a-file" not in repr(servers)  # a logged config shows no secret


@pytest.mark.parametrize(("patch", "message"), [
    ("", "box.identifier: required"),
    ('[box]\nidentifier = "bad id!"', "box.identifier: 'bad id!' is not a valid identifier"),
    ('[box]\nidentifier = "gw"\n[bogus]\nx = 1', "bogus: unknown section"),
    ('[box]\nidentifier = "gw"\ncolour = "red"', "box.colour: unknown key"),
    ('[box]\nidentifier = "gw"', "radius.servers: at least one"),
    ('[box]\nidentifier = "gw"\n[[radius.servers]]\nhost = "192.0.2.10"',
     "radius.servers[0].secret: set exactly one of secret and secret_file"),
    ('[box]\nidentifier = "gw"\n[[radius.servers]]\nhost = "192.0.2.10"\nsecret = ""',
     "radius.servers[0].secret: 0 octets; at least 16"),
    ('[box]\nidentifier = "gw"\n[[radius.servers]]\nhost = "192.0.2.10"\nsecret = "s3cret"',
     "radius.servers[0].secret: 6 octets; at least 16"),
    ('[box]\nidentifier = "gw"\n[[radius.servers]]\nhost = "192.0.2.10"\n'
     'secret = "s3cret-for-tests"\nauth_port = 70000',
     "radius.servers[0].auth_port: 70000 is not between 1 and 65535"),
    ('[box]\nidentifier = "gw"\n[[radius.servers]]\nhost = "192.0.2.10"\nsecret = "x"\n'
     'secret_file = "f"', "set exactly one"),
    ("not toml [", "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path: Path, patch: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(patch, tmp_path, MACHINE)
    assert message in str(err.value)


@pytest.mark.parametrize(("extra", "message"), [
    ('[lan]\ninterface = "wan0"', "lan.interface: wan0 is also the WAN interface"),
    ('[lan]\naddress = "not-an-address"', "lan.address: 'not-an-address' is not"),
    ('[lan]\naddress = "198.51.100.1/30"', "lan.address: 198.51.100.0/30 is too small"),
    ('[lan]\ndhcp_start = "192.0.2.5"', "lan.dhcp_start: 192.0.2.5 is outside the LAN"),
    ('[lan]\ndhcp_start = "198.51.100.200"\ndhcp_end = "198.51.100.100"',
     "lan.dhcp_start: 198.51.100.200 is after lan.dhcp_end"),
    ('[lan]\ndhcp_start = "198.51.100.1"', "is the box's own address"),
    ('[lan]\ndhcp_start = "198.51.100.0"\ndhcp_end = "198.51.100.9"\n'
     'address = "198.51.100.5/24"', "holds the box's own address"),
    ('[lan]\nlease_time = "1h"', "lan.lease_time: expected int"),
    ('[lan]\naddress6 = "2001:db8:1::1/48"', "lan.address6: 2001:db8:1::1/48 must be in a /64"),
    ('[lan]\naddress6 = "nope"', "lan.address6: 'nope' is not an IPv6"),
    ('[wan]\nmasquerade = "yes"', "wan.masquerade: expected bool"),
    ('[portal]\nhostname = "198.51.100.1:80"', "portal.hostname"),
    ('[portal]\napi_url = "http://portal/api"', "portal.api_url: must be an https:// URL"),
    ('[portal]\nhttp_port = 8443', "portal.https_port: the same port"),
    ('[portal]\nssid = ""', "portal.ssid: '' must be 1 to 32 octets"),
    ('[portal]\nssid = "' + "x" * 33 + '"', "must be 1 to 32 octets"),
    ('[portal]\nterms_url = "http://x"', "portal.terms_url: must be an https:// URL"),
    ('[portal]\ncert_file = "c.pem"', "portal.cert_file: set both"),
    ('[dae]\nclients = ["192.0.2.99"]', "dae.clients: 192.0.2.99 is not one of radius.servers"),
    ('[dae]\nlisten = "everywhere"', "dae.listen: 'everywhere' is not an IP address"),
    ('[garden]\naddresses = ["192.0.2.0/33"]', "garden.addresses: '192.0.2.0/33'"),
    ('[garden]\ndomains = ["bad domain"]', "garden.domains: 'bad domain'"),
    ('[sessions]\ninterim_interval = 10', "sessions.interim_interval: 10 is not between 60"),
])
def test_contradictions_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL + extra, tmp_path, MACHINE)
    assert message in str(err.value)


def test_detection_needs_a_default_route_and_one_lan(tmp_path: Path) -> None:
    no_route = Interfaces(None, ("eth0", "eth1"), {})
    with pytest.raises(ConfigError, match=r"wan\.interface: not set and no default route"):
        parse(MINIMAL, tmp_path, no_route)
    two = Interfaces("eth0", ("eth0", "eth1", "eth2"), {})
    with pytest.raises(ConfigError, match="are eth1, eth2: set it"):
        parse(MINIMAL, tmp_path, two)
    bare = Interfaces("eth0", ("eth0", "eth1"), {"eth0": ("203.0.113.2/24",)})
    with pytest.raises(ConfigError, match=r"lan\.address: not set and eth1 has no IPv4"):
        parse(MINIMAL, tmp_path, bare)


def test_load_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml", MACHINE)


def test_read_interfaces_sees_this_machine() -> None:
    found = read_interfaces()
    assert "lo" not in found.up
    for name in found.up:
        assert name in found.ipv4


# -- what dnsmasq would refuse is refused here (issue 13, finding 7) -------------------

BAD_DOMAINS = ["*.example.com", "*", "#", "-bad.example", "bad-.example", "a..example",
               ".example.com", "exa mple.com", "é.example", "a/b.example",
               "x" * 64 + ".example"]


@pytest.mark.parametrize("domain", BAD_DOMAINS)
def test_garden_domains_dnsmasq_refuses_are_refused(tmp_path: Path, domain: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL + f'[garden]\ndomains = ["ok.example", "{domain}"]', tmp_path, MACHINE)
    message = str(err.value)
    assert message.startswith(f"garden.domains: {domain!r}") and "\n" not in message


def test_check_config_exits_2_with_one_line(tmp_path: Path) -> None:
    """The crash loop seen on a box: `check-config` said OK, the daemon then
    died at every start. Now `check-config` names the key and exits 2."""
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL + '[lan]\ninterface = "lan0"\naddress = "198.51.100.1/24"\n'
                    '[wan]\ninterface = "wan0"\n[garden]\ndomains = ["*.example.com"]\n')
    out = subprocess.run([str(Path(sys.executable).parent / "passerelle"), "gateway",
                          "check-config", "--config", str(path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if "garden.domains" in line]
    assert len(errors) == 1 and "'*.example.com'" in errors[0], out.stderr
    assert "configuration OK" not in out.stdout


def test_garden_domains_the_box_accepts(tmp_path: Path) -> None:
    text = MINIMAL + '[garden]\ndomains = ["idp.example", "Login.Example.COM.", "_sip.example"]'
    assert parse(text, tmp_path, MACHINE).garden_domains == (
        "idp.example", "Login.Example.COM.", "_sip.example")


def test_dnsmasq_tests_the_files_the_box_would_write(tmp_path: Path) -> None:
    """What the name rules let through but dnsmasq refuses (a scoped IPv6
    upstream on an interface that does not exist) is refused by `load()`,
    naming the key."""
    tool("dnsmasq", "dnsmasq")
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL + '[garden]\ndomains = ["idp.example"]\n[dns]\n'
                    'upstream = ["203.0.113.1", "2001:db8::53"]\n')
    assert load(good, MACHINE).garden_domains == ("idp.example",)
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + '[dns]\nupstream = ["fe80::1%nosuch0"]\n')
    with pytest.raises(ConfigError) as err:
        load(bad, MACHINE)
    message = str(err.value)
    assert message.startswith("dns.upstream: dnsmasq refuses 'server=fe80::1%nosuch0'")
    assert "bad interface name" in message and "\n" not in message


def test_hardening_keys_and_their_defaults(tmp_path: Path) -> None:
    cfg = parse(MINIMAL, tmp_path, MACHINE)
    assert (cfg.open_private, cfg.ntp_servers, cfg.wan_open) == ((), (), ("tcp/22",))
    assert (cfg.captive_dns_port, cfg.captive_dns_rate) == (5300, 30)
    assert cfg.stopped_retention == 7 * 86400
    text = MINIMAL + """
[wan]
allow_private = ["10.20.0.0/16", "fd00:20::/64", "203.0.113.0/25"]
open = []
[ntp]
servers = ["192.0.2.123", "2001:db8::123"]
[dns]
captive_port = 5353
captive_rate = 50
[sessions]
keep_stopped_days = 30
"""
    cfg = parse(text, tmp_path, MACHINE)
    assert cfg.open_private == ("10.20.0.0/16", "fd00:20::/64", "203.0.113.0/25")
    assert cfg.wan_open == () and cfg.ntp_servers == ("192.0.2.123", "2001:db8::123")
    assert (cfg.captive_dns_port, cfg.captive_dns_rate) == (5353, 50)
    assert cfg.stopped_retention == 30 * 86400
    plan = firewall_plan(cfg)
    assert plan.open_private == cfg.open_private and plan.ntp_servers == cfg.ntp_servers
    assert plan.dae_clients == ("192.0.2.10",) and plan.dae_port == 3799
    assert plan.wan_open == () and plan.captive_dns_port == 5353
    assert dhcp_plan(cfg).captive_dns_port == 5353


@pytest.mark.parametrize(("extra", "message"), [
    ('[wan]\nallow_private = ["192.0.2.0/24"]', "wan.allow_private: '192.0.2.0/24': not a "
     "private range"),
    ('[wan]\nallow_private = ["10.1.2.3/16"]', "wan.allow_private: '10.1.2.3/16': not a network"),
    ('[wan]\nallow_private = "10.0.0.0/8"', "wan.allow_private: expected list"),
    ('[wan]\nopen = ["ssh"]', "wan.open: 'ssh': wan_open: not protocol/port"),
    ('[wan]\nopen = ["tcp/0"]', "wan.open: 'tcp/0'"),
    ('[ntp]\nservers = ["pool.ntp.org"]', "ntp.servers: 'pool.ntp.org'"),
    ('[dns]\ncaptive_port = 53', "dns.captive_port: 53 is not between 1024"),
    ('[dns]\ncaptive_port = 8443', "dns.captive_port: 8443 is a portal port"),
    ('[dns]\ncaptive_rate = 0', "dns.captive_rate: 0 is not between 1"),
    ('[sessions]\nkeep_stopped_days = 0', "sessions.keep_stopped_days: 0 is not between 1"),
])
def test_hardening_keys_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL + extra, tmp_path, MACHINE)
    assert message in str(err.value)
