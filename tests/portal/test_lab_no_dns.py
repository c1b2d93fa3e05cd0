"""The portal starts at once when the WAN's DNS does not answer (issue 12).

A box in the namespace lab whose upstream swallows every DNS query (an
nftables drop of port 53 in the up namespace), its resolver being that
upstream. `passerelle portal run` is started there; a captive client's
first OS probe must be answered (302 to the portal) within 2 s of the start.
A look-up of the box's own address in that namespace is shown to hang, so
the test cannot pass by accident.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.boxlab import site
from tests.gateway.conftest import require_lab
from tests.need import unavailable
from tests.portal.test_lab import PORTAL_URL, RUN

DNS = '\n[dns]\nupstream = ["203.0.113.1"]\n'
SWALLOW = ("add table inet swallow; add chain inet swallow input { type filter hook input "
           "priority 0; }; add rule inet swallow input udp dport 53 drop; "
           "add rule inet swallow input tcp dport 53 drop")
PROBE = "captive.apple.com"
NICE = -10  # deploy/systemd/passerelle-portal.service's Nice=


def test_the_portal_answers_the_first_probe_within_2_s_without_dns(tmp_path: Path) -> None:
    require_lab()
    if shutil.which("curl") is None:
        unavailable("the lab test needs curl")
    with site(tmp_path, portal=False, extra_config=DNS) as box:
        lab = box.lab
        lab.run("up", "nft", SWALLOW)
        etc = Path("/etc/netns") / lab.ns["gw"]
        etc.mkdir(parents=True, exist_ok=True)
        try:
            # `ip netns exec` puts it over /etc/resolv.conf: the box asks the upstream.
            (etc / "resolv.conf").write_text(f"nameserver {lab.up_ipv4}\n")
            lookup = lab.popen("gw", "timeout", "3", sys.executable, "-c",
                               f"import socket; socket.getfqdn('{lab.box_ipv4}')")
            log = (tmp_path / "portal.log").open("w")
            box.logs.append(tmp_path / "portal.log")
            started = time.monotonic()
            # At the priority its service runs at (Nice=-10 in the unit): the
            # budget is the portal's own, not that of whatever else the
            # machine is busy with (at a boot, everything starts at once).
            portal = lab.popen("gw", "nice", "-n", str(NICE), sys.executable, "-c", RUN,
                               "portal", "run", "--config", str(box.config), stderr=log)
            try:
                answer = ""
                while time.monotonic() - started < 10 and not answer.startswith("302"):
                    # The probe's name as the OS resolved it earlier: the box's
                    # table sends a captive client's port 80 to the portal anyway.
                    out = lab.run("client", "curl", "-s", "-m", "1", "-o", "/dev/null",
                                  "-w", "%{http_code} %{redirect_url}", "--resolve",
                                  f"{PROBE}:80:{lab.web_ipv4}",
                                  f"http://{PROBE}/hotspot-detect.html", check=False)
                    answer = out.stdout
                    if not answer.startswith("302"):
                        time.sleep(0.05)
                answered_in = time.monotonic() - started
                print(f"first probe answered {answered_in:.2f} s after the start")
                assert answer == f"302 {PORTAL_URL}", box.read_logs()
                assert answered_in < 2.0, f"first probe answered {answered_in:.1f} s after start"
            finally:
                portal.terminate()
                portal.wait(10)
                log.close()
            assert lookup.wait(10) == 124, "a DNS look-up in the box did not hang"
        finally:
            shutil.rmtree(etc, ignore_errors=True)


# The box's RADIUS code and its metrics: half of the portal's start once,
# when reading the configuration pulled them in.
NOT_THE_PORTALS = ("passerelle.radius.messages", "passerelle.gateway.ap_server",
                   "passerelle.gateway.radclient", "passerelle.gateway.metrics",
                   "prometheus_client")


def test_the_portals_start_does_not_load_the_boxs_radius_code(tmp_path: Path) -> None:
    # The real `portal run`: it imports everything it serves with, then stops
    # at the configuration (there is none); what was loaded is printed at exit.
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print('LOADED', *[n for n in {NOT_THE_PORTALS!r} "
            "if n in sys.modules]))\n" + RUN)
    done = subprocess.run([sys.executable, "-c", code, "portal", "run", "--config",
                           str(tmp_path / "none.toml")], capture_output=True, text=True)
    assert done.returncode != 0 and "none.toml" in done.stderr, done.stderr
    assert done.stdout.split() == ["LOADED"]
