"""The portal end to end in the network-namespace lab, with the real box.

`passerelle gateway run` in the gw namespace, the centre in up, and this
portal (`passerelle portal run`) on the box's 8080/8443. A headless Chromium
in the client namespace goes through a person's visit; curl checks the OS
probes before and after check-in and the RFC 8908 API with the certificate
validated. Screenshots are kept under the test's tmp dir (paths printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passerelle.portal.probes import PROBES
from tests.boxlab import BIN, CENTRE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.need import tool, unavailable
from tests.radius import seed

PORTAL_NAME = "portal.passerelle.internal"
PORTAL_URL = f"https://{PORTAL_NAME}:8443/"  # plain HTTP is not allowed: the default
PRIVATE_SSID = "Passerelle-Private"
CONSOLE_PORT = 8090  # the centre's console, where the box pulls the personal keys
PROBE_HOST = "192.0.2.82"  # the "internet's" probe servers, for after check-in
CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).parent

# `passerelle portal run`, registered the way passerelle/cli.py will register it.
RUN = """
import sys
from passerelle.cli import main, cli
from passerelle.portal.cli import register
register(cli)
sys.argv[0] = "passerelle"
main()
"""

# The online answer of each probe, as the real probe servers give it.
PROBE_SERVER = r"""
import http.server, socketserver, sys
from passerelle.portal.probes import probe
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        answer = probe(self.headers.get("Host", ""), self.path)
        status, body = (answer.status, answer.body) if answer else (404, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
srv = Server((sys.argv[1], 8082), Handler)
print("ready", flush=True)
srv.serve_forever()
"""

EXPECTED = {
    ("captive.apple.com", "/hotspot-detect.html"):
        "200 <HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
    ("connectivitycheck.gstatic.com", "/generate_204"): "204 ",
    ("clients3.google.com", "/generate_204"): "204 ",
    ("www.gstatic.com", "/generate_204"): "204 ",
    ("www.msftconnecttest.com", "/connecttest.txt"): "200 Microsoft Connect Test",
    ("www.msftncsi.com", "/ncsi.txt"): "200 Microsoft NCSI",
    ("detectportal.firefox.com", "/success.txt"): "200 success\n",
}


def _require_browser() -> None:
    why = None
    if not Path(CHROMIUM).exists():
        why = "the browser test needs Debian's chromium (/usr/bin/chromium)"
    elif shutil.which("curl") is None:
        why = "the lab test needs curl"
    if why:
        unavailable(why)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    _require_browser()
    tmp = tmp_path_factory.mktemp("portal-lab")
    # The box pulls the personal keys from the console, served by the centre.
    extra = ('\n[dns]\nupstream = ["203.0.113.1"]\n'
             f'\n[wifi]\nssid = "{PRIVATE_SSID}"\n'
             f'\n[keys]\nurl = "http://{CENTRE}:{CONSOLE_PORT}"\nallow_plain_http = true\n')
    with site(tmp, portal=False, extra_config=extra) as built:
        lab = built.lab
        with built._log("console") as console:
            lab.popen("up", str(BIN), "console", "run", "--db", built.db_url, "--listen",
                      f"{CENTRE}:{CONSOLE_PORT}", stdout=console, stderr=console,
                      env={**os.environ, "PASSERELLE_KEY_FILE": str(tmp / "server.key")})
        wait_for(lambda: lab.run("up", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                 f"http://{CENTRE}:{CONSOLE_PORT}/sign-in",
                                 check=False).stdout == "200",
                 what="the console", logs=built.read_logs)
        lab.run("up", "ip", "addr", "add", f"{PROBE_HOST}/32", "dev", "lo")
        # The lab's web server holds *:80 in up; the probe server listens on
        # 8082 and the up namespace's own table sends PROBE_HOST:80 there.
        lab.run("up", "nft", f"add table ip probes; add chain ip probes pre {{ type nat hook "
                f"prerouting priority -100; }}; add rule ip probes pre ip daddr {PROBE_HOST} "
                f"tcp dport 80 dnat to {PROBE_HOST}:8082")
        lab.start_upstream_dns({host: PROBE_HOST for host, _ in PROBES})
        probe_server = lab.popen("up", sys.executable, "-c", PROBE_SERVER, PROBE_HOST)
        assert probe_server.stdout is not None and probe_server.stdout.readline() == "ready\n"
        # The client's resolver is the box, as DHCP would say: the lab sees to it.
        log = (tmp / "portal.log").open("w")
        built.logs.append(tmp / "portal.log")
        try:
            portal = lab.popen("gw", sys.executable, "-c", RUN, "-v", "portal", "run",
                               "--config", str(built.config), stderr=log)
            assert portal.stdout is not None
            line = portal.stdout.readline()
            assert "portal listening" in line, built.read_logs()
            yield built
        finally:
            log.close()


def curl(box: Box, *args: str) -> subprocess.CompletedProcess[str]:
    return box.lab.run("client", "curl", "-sS", "-m", "5", *args, check=False)


def test_probes_before_check_in_go_to_the_portal(box: Box) -> None:
    for host, path in sorted(PROBES):
        out = curl(box, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                   f"http://{host}{path}")
        assert out.stdout == f"302 {PORTAL_URL}", (host, path, out.stderr)


def test_api_over_https_with_the_certificate_validated(box: Box) -> None:
    cert = box.tmp / "state" / "portal-cert.pem"
    url = f"https://{PORTAL_NAME}:8443/api/captive"
    out = curl(box, "--cacert", str(cert), "-D", "-", url)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert "content-type: application/captive+json" in head.lower()
    assert json.loads(body) == {"captive": True,
                                "user-portal-url": f"https://{PORTAL_NAME}:8443/"}
    untrusted = curl(box, url)
    assert untrusted.returncode == 60, "curl refuses a certificate it cannot verify"

    granted = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    try:
        after = curl(box, "--cacert", str(cert), url)
        assert after.returncode == 0, after.stderr
        doc = json.loads(after.stdout)
        assert doc["captive"] is False
        assert 0 <= granted["seconds_left"] - doc["seconds-remaining"] <= 5
        assert doc["can-extend-session"] is False
    finally:
        box.control.check_out("198.51.100.10")


def test_probes_after_check_in_get_what_each_os_expects(box: Box) -> None:
    box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    try:
        for (host, path), expected in EXPECTED.items():
            # Through the internet (the client is let out) ...
            out = curl(box, "-w", "%{http_code} ", "-o", "/dev/stderr", f"http://{host}{path}")
            assert f"{out.stdout}{out.stderr}" == expected, (host, path)
            # ... and from the portal itself, as on a connection DNAT-ed while captive.
            out = curl(box, "-H", f"Host: {host}", "-w", "%{http_code} ", "-o", "/dev/stderr",
                       f"http://{box.lab.box_ipv4}:8080{path}")
            assert f"{out.stdout}{out.stderr}" == expected, (host, path)
        other = box.lab.run("client2", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "Host: captive.apple.com",
                            f"http://{box.lab.box_ipv4}:8080/hotspot-detect.html", check=False)
        assert other.stdout == "302", "client2 has no session"
    finally:
        box.control.check_out("198.51.100.10")


@pytest.fixture(scope="module")
def visit(box: Box, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A person's visit in Chromium: what they saw, and the screenshots' folder."""
    shots = tmp_path_factory.mktemp("screenshots")
    out = box.lab.run("client", sys.executable, str(HERE / "browser_flow.py"), str(shots),
                      "alice@acme.example", seed.PASSWORD, check=False, timeout=120)
    for shot in sorted(shots.glob("*.png")):
        print(f"screenshot: {shot}")
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\n{box.read_logs()}"
    seen: dict[str, Any] = json.loads(out.stdout)
    return seen, shots


def test_a_person_checks_in_with_chromium_and_out_again(
        box: Box, visit: tuple[dict[str, Any], Path]) -> None:
    seen, shots = visit
    assert seen["landing_url"].startswith(f"{PORTAL_URL}?to="), "check-in over HTTPS"
    assert seen["landing_h1"] == "Check in" and seen["landing_banner"] == 0
    assert seen["welcome_url"].startswith(PORTAL_URL), "the key page over HTTPS"
    assert seen["welcome_h1"] == "You are checked in" and seen["welcome_banner"] == 0
    assert seen["ssid"] == PRIVATE_SSID, "the private network the key opens"
    assert len(seen["key"]) >= 8, "the personal key from the Access-Accept"
    # The account page: the same key, then a new one made by the centre.
    assert seen["account_url"] == f"{PORTAL_URL}account" and seen["account_key"] == seen["key"]
    assert seen["rotated_url"] == f"{PORTAL_URL}account?rotated=1"
    assert len(seen["rotated_key"]) >= 8 and seen["rotated_key"] != seen["key"]
    assert seen["rotated_ssid"] == PRIVATE_SSID
    assert seen["qr_size"] and min(seen["qr_size"]) >= 150, "a QR code a phone can scan"
    assert seen["way_on_href"] == "http://192.0.2.80/"
    assert seen["upstream_body"] == "upstream 203.0.113.2"
    assert seen["status_url"] == f"{PORTAL_URL}status", "plain HTTP sent to HTTPS"
    assert seen["status_h1"] == "Your session" and "h" in seen["status_left"]
    assert seen["checked_out_h1"] == "You are checked out"
    assert seen["again_url"].startswith(PORTAL_URL)
    assert seen["again_h1"] == "Check in", "captive again after check-out"
    assert len(list(shots.glob("*.png"))) == 7

    assert box.control.sessions() == []
    stop = wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                             if r.acctstoptime and r.acctterminatecause == "User-Request"],
                    what="Accounting-Stop after the check-out", logs=box.read_logs)
    assert stop


def test_the_qr_code_on_screen_joins_the_wifi_with_the_key(
        visit: tuple[dict[str, Any], Path]) -> None:
    zbarimg = tool("zbarimg", "zbar-tools")
    seen, shots = visit
    out = subprocess.run([zbarimg, "--raw", "-q", str(shots / "2-key-and-qr.png")],
                         capture_output=True, text=True, check=False, timeout=30)
    assert out.stdout.strip() == f"WIFI:T:WPA;S:{PRIVATE_SSID};P:{seen['key']};;"
