"""`passerelle demo --site` as the README runs it (deploy/demo.sh, as root):
every command it prints works when copied into a new terminal — radtest and
radclient, curl from the laptop, the portal in the installed Chromium, the
printed `passerelle` commands — and the site is gone when the demo stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from passerelle.lab.netns import NETNS_ETC
from tests.gateway.conftest import require_lab
from tests.need import tool
from tests.test_demo import BIN, CENTRE, Expect, demo_env, free_udp_port, run_all
from tests.test_demo_data import parse_radclient


def judged(status: int, *needles: str) -> Callable[[subprocess.CompletedProcess[str]], bool]:
    """Exits with ``status`` and prints every needle."""
    def judge(out: subprocess.CompletedProcess[str]) -> bool:
        return out.returncode == status and all(n in out.stdout for n in needles)
    return judge


PNG = b"\x89PNG\r\n\x1a\n"


def key_in_tunnel_password(out: subprocess.CompletedProcess[str]) -> bool:
    """An Access-Accept whose Tunnel-Password radclient decoded: one key."""
    answer = parse_radclient(out.stdout + out.stderr)
    return (answer.code == "Access-Accept" and answer.attrs[0][0] == "Message-Authenticator"
            and len(answer.one("Tunnel-Password:0")) >= 8)


def site_expectations(screenshot: Path) -> list[Expect]:
    return [
        (r"^ip netns exec psl-\w+-client curl -si http://192\.0\.2\.80/ \| grep -i -e \^HTTP "
         r"-e \^Location$",
         judged(0, " 302 ", "Location: http://portal.passerelle.internal/")),
        (r"^ip netns exec psl-\w+-client curl -s -m 3 https://192\.0\.2\.80/ \|\| echo refused$",
         judged(0, "refused")),
        # Plain `curl -L`: the name in the redirect resolves through the box's DNS.
        (r"^ip netns exec psl-\w+-client curl -sL http://192\.0\.2\.80/ \| grep '<h1'$",
         judged(0, "<h1>Check in</h1>")),
        (r"^ip netns exec psl-\w+-client chromium --headless .*--screenshot=\S+ "
         r"http://192\.0\.2\.80/$",
         lambda out: out.returncode == 0 and screenshot.read_bytes().startswith(PNG)),
        (r"^echo demo-wifi-2024 \| /\S+/passerelle gateway check-in 198\.51\.100\.10 "
         r"alice@acme\.example --socket \S+$", judged(0, '"wifi_key"')),
        (r"^ip netns exec psl-\w+-client curl -s http://192\.0\.2\.80/$",
         judged(0, "upstream 203.0.113.2")),
        (r"^/\S+/passerelle gateway sessions --socket \S+$",
         judged(0, "198.51.100.10", "alice@acme.example")),
        (r"^echo 'User-Name = .*Called-Station-Id = \"02-AA-00-00-00-01:Passerelle-Private\""
         r".*' \| ip netns exec psl-\w+-client radclient -x 198\.51\.100\.1:1812 auth "
         r"demo-ap-secret-2024$", key_in_tunnel_password),
        (r"^ip netns exec psl-\w+-up env PASSERELLE_KEY_FILE=\S+ /\S+/passerelle radius "
         r"disconnect \"\$\(.*\)\" --db \S+$",
         judged(0, "ACK")),
        (r"^ip netns exec psl-\w+-client curl -si http://192\.0\.2\.80/ \| head -1$",
         judged(0, " 302 ")),
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_site_demo_every_printed_command_works(tmp_path: Path) -> None:
    require_lab()
    tool("radtest", "freeradius-utils")
    tool("chromium", "chromium")
    data = tmp_path / "demo"
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN), "demo", "--site", "--data", str(data), "--auth-port",
             str(free_udp_port()), "--acct-port", str(free_udp_port()),
             "--console-port", "0"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=demo_env(),
            start_new_session=True)
    lab_prefix = ""
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while "passerelle radius: listening" not in out_path.read_text():
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.3)
        printed = out_path.read_text()
        found = re.search(r"^  (psl-\w+-)client: a laptop", printed, re.M)
        assert found, printed
        lab_prefix = found.group(1)
        # The demo access point, as a newcomer would configure radclient from it.
        assert re.search(r"^  access point: radius 198\.51\.100\.1:1812 secret "
                         r"demo-ap-secret-2024 ssid Passerelle-Private$", printed, re.M), printed
        namespaces = [f"{lab_prefix}{role}" for role in ("client", "client2", "sw", "gw", "up")]
        for ns in namespaces:
            listed = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                    text=True, check=True)
            pids += [int(p) for p in listed.stdout.split()]
        assert pids, "the box, the centre and the portal run in the lab"
        run_all(printed, CENTRE + site_expectations(data / "site" / "portal.png"),
                logs=lambda: "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                                       for p in sorted((data / "site" / "logs").glob("*"))))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        left = [name for name in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout.split()
                if lab_prefix and name.startswith(lab_prefix)]
        for name in left:  # not to leave them behind, even when the demo failed to
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    assert left == [], "the demo removes its namespaces"
    assert not list(NETNS_ETC.glob(f"{lab_prefix}*")), "and the laptops' resolver files"
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], "and every process it started in the lab"
