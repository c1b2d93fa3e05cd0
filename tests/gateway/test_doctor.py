"""`passerelle gateway doctor`: the pure verdicts with a fixed clock, then
the real command on a lab box, healthy and broken one way at a time."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from passerelle.gateway import doctor as d
from passerelle.gateway.config import Config, Interfaces, parse
from tests.boxlab import BIN, site

NOW = datetime(2026, 12, 1, 12, 0)
MACHINE = Interfaces(
    default_route_if="wan0",
    up=("wan0", "lan0"),
    ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)},
)
TEXT = """
[box]
identifier = "axis-gw"
state_dir = "state"

[dns]
upstream = ["203.0.113.53"]

[[radius.servers]]
host = "192.0.2.10"
secret = "axis-parc-demo-secret"
"""
HEALTHY = d.Seen(
    interfaces=MACHINE, clock_synced=True, nft_table=True, dhcp_listening=True,
    box_dns="198.51.100.1", upstream_dns={"203.0.113.53": True}, portal_http=None,
    portal_https=None, centre={"192.0.2.10:1812": None},
    cert_not_after=datetime(2027, 6, 1), spool_pending=3, spool_oldest_age=12.0,
    disk_free=10 * 2**30, disk_total=32 * 2**30)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cert = tmp_path / "portal.pem"
    cert.write_text("not read by verdicts")
    cfg = parse(TEXT, tmp_path, MACHINE)
    return dataclasses.replace(cfg, cert_file=cert, key_file=cert)


def failing(config: Config, **seen: Any) -> dict[str, str]:
    checks = d.verdicts(config, dataclasses.replace(HEALTHY, **seen), NOW)
    return {c.name: c.detail for c in checks if not c.ok}


def test_a_healthy_box_is_all_ok(config: Config) -> None:
    checks = d.verdicts(config, HEALTHY, NOW)
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    lines, status = d.report(checks)
    assert status == 0 and lines[-1] == "all good"
    names = [c.name for c in checks]
    assert names[:3] == ["LAN interface", "WAN interface", "default route"]
    assert {"clock", "nftables", "DHCP", "box DNS", "portal HTTP", "portal HTTPS",
            "certificate", "centre 192.0.2.10:1812", "spool", "disk"} <= set(names)


@pytest.mark.parametrize(("seen", "name", "advice"), [
    ({"interfaces": Interfaces("wan0", ("wan0",), MACHINE.ipv4)}, "LAN interface",
     "plug the access points' switch"),
    ({"interfaces": Interfaces("wan0", ("wan0", "lan0"), {"wan0": MACHINE.ipv4["wan0"],
                                                         "lan0": ()})},
     "LAN interface", "does not hold 198.51.100.1/24"),
    ({"interfaces": Interfaces(None, MACHINE.up, MACHINE.ipv4)}, "default route", "none"),
    ({"interfaces": Interfaces("lan0", MACHINE.up, MACHINE.ipv4)}, "default route",
     "goes out by lan0"),
    ({"upstream_dns": {"203.0.113.53": False}}, "upstream DNS", "no answer from 203.0.113.53"),
    ({"clock_synced": False}, "clock", "not synchronised"),
    ({"clock_synced": None}, "clock", "does not say"),
    ({"nft_table": False}, "nftables", "start the gateway service"),
    ({"dhcp_listening": False}, "DHCP", "nothing listens on UDP 67"),
    ({"box_dns": None}, "box DNS", "got no answer"),
    ({"box_dns": "192.0.2.66"}, "box DNS", "got 192.0.2.66"),
    ({"portal_http": "no answer (refused)"}, "portal HTTP", "start passerelle-portal"),
    ({"portal_https": "no answer (refused)"}, "portal HTTPS", "start passerelle-portal"),
    ({"cert_not_after": datetime(2026, 11, 30)}, "certificate", "expired on 2026-11-30"),
    ({"cert_not_after": datetime(2026, 12, 8)}, "certificate", "expires in 6 days"),
    ({"cert_not_after": None}, "certificate", "cannot read"),
    ({"centre": {"192.0.2.10:1812": "no answer to Status-Server"}}, "centre 192.0.2.10:1812",
     "check the uplink"),
    ({"spool_pending": 5_000}, "spool", "5000 accounting records waiting"),
    ({"spool_oldest_age": 7_200.0}, "spool", "the oldest waiting 120 min"),
    ({"disk_free": 50 * 2**20}, "disk", "free some space"),
    ({"problems": {"spool": "database is locked"}}, "spool", "could not look"),
])
def test_each_broken_thing_is_named_with_what_to_do(config: Config, seen: dict[str, Any],
                                                    name: str, advice: str) -> None:
    bad = failing(config, **seen)
    assert list(bad) == [name] and advice in bad[name]
    lines, status = d.report(d.verdicts(config, dataclasses.replace(HEALTHY, **seen), NOW))
    assert status == 1 and lines[-1] == "1 problem(s): fix them in the order shown"


def test_no_certificate_fails_unless_plain_http_is_allowed(config: Config) -> None:
    bare = dataclasses.replace(config, cert_file=None, key_file=None)
    assert "install the portal certificate" in failing(bare)["portal HTTPS"]
    allowed = dataclasses.replace(bare, portal_allow_plain_http=True)
    assert failing(allowed) == {}


def test_dns_query_and_answer_reading() -> None:
    query = d.dns_query("portal.passerelle.internal")
    assert query[:2] == b"\x50\x53" and query.endswith(b"\x00\x00\x01\x00\x01")
    # The answer a server gives: the question echoed, one A record by pointer.
    answer = (b"\x50\x53\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + query[12:]
              + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x33\x64\x01")
    assert d.first_a_record(answer) == "198.51.100.1"
    nxdomain = b"\x50\x53\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:]
    assert d.first_a_record(nxdomain) is None
    assert d.first_a_record(answer[:-3]) is None  # truncated: no crash
    assert d.first_a_record(b"\x00") is None


def _doctor(box_config: Path, run: Callable[..., subprocess.CompletedProcess[str]]
            ) -> dict[str, str]:
    """``run``: the lab's Lab.run, a command in a namespace."""
    out = run("gw", str(BIN), "-v", "gateway", "doctor", "--config", str(box_config),
              check=False)
    lines = [line for line in out.stdout.splitlines() if line[:4] in ("OK  ", "FAIL")]
    assert lines, out.stdout + out.stderr
    return {line[5:].split(": ", 1)[0]: line[:4].strip() for line in lines}


def test_doctor_on_a_lab_box_then_broken_one_way_at_a_time(tmp_path: Path) -> None:
    with site(tmp_path) as box:
        run = box.lab.run
        seen = _doctor(box.config, run)
        # The lab box is healthy where the lab can make it so; the clock of a
        # test machine may be unsynchronised and the lab portal has no
        # certificate: those lines say so, the rest are OK.
        healthy = {"LAN interface", "WAN interface", "default route", "nftables", "DHCP",
                   "box DNS", "portal HTTP", "centre 192.0.2.10:1812", "spool", "disk"}
        assert {name for name, verdict in seen.items() if verdict == "OK"} >= healthy, \
            (seen, box.read_logs())
        assert seen["portal HTTPS"] == "FAIL"  # no certificate, plain HTTP not allowed

        box.stop_centre()
        assert _doctor(box.config, run)["centre 192.0.2.10:1812"] == "FAIL"

        run("gw", "nft", "delete", "table", "inet", "passerelle")
        assert _doctor(box.config, run)["nftables"] == "FAIL"

        # A hung dnsmasq (stopped, not dead: the daemon restarts a dead one).
        hung = [pid for pid in box.lab.pids("gw")
                if Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq"]
        assert hung
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert _doctor(box.config, run)["box DNS"] == "FAIL"
        finally:
            for pid in hung:
                os.kill(pid, signal.SIGCONT)

        run("gw", "ip", "link", "set", box.lab.lan_if, "down")
        out = run("gw", str(BIN), "gateway", "doctor", "--config", str(box.config), check=False)
        # The lab's configuration lets the box detect its LAN: with it down,
        # the configuration itself is what fails, and doctor says so.
        assert out.returncode == 1, out.stdout + out.stderr
        assert out.stdout.startswith("FAIL configuration: lan.interface"), out.stdout


def test_doctor_says_what_is_wrong_with_an_unreadable_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.toml"
    bad.write_text("[box\n")
    out = subprocess.run([str(BIN), "gateway", "doctor", "--config", str(bad)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and out.stdout.startswith("FAIL configuration:"), out
