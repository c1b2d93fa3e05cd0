"""`passerelle demo --site`: the commands the demo prints work, and the site
is gone when the demo stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.gateway.conftest import require_lab

BIN = Path(sys.executable).parent / "passerelle"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_site_demo_end_to_end(tmp_path: Path) -> None:
    require_lab()
    data = tmp_path / "demo"
    env = {**os.environ, "PASSERELLE_DATA": str(data)}
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN), "demo", "--site", "--data", str(data), "--auth-port",
             str(free_udp_port()), "--acct-port", str(free_udp_port())],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "passerelle gateway sessions" not in out_path.read_text():
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.3)
        text = out_path.read_text()
        client = re.search(r"ip netns exec (\S+) curl -si http://192.0.2.80/", text)
        check_in = re.search(r"echo (\S+) \| passerelle gateway check-in (\S+) (\S+) "
                             r"--socket (\S+)", text)
        assert client and check_in, text
        ns = client.group(1)

        def curl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "5", *args],
                                  capture_output=True, text=True, check=False)

        deadline = time.monotonic() + 60
        while not (captive := curl("-i", "http://192.0.2.80/")).stdout.startswith("HTTP/1."):
            assert time.monotonic() < deadline, "the portal never answered"
            time.sleep(0.5)
        assert " 302 " in captive.stdout.split("\n")[0]
        assert curl("https://192.0.2.80/").returncode != 0
        password, ip, login, sock = check_in.groups()
        done = subprocess.run([str(BIN), "gateway", "check-in", ip, login, "--socket", sock],
                              input=password + "\n", capture_output=True, text=True, env=env,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"wifi_key"' in done.stdout
        assert curl("http://192.0.2.80/").stdout.startswith("upstream")
        listed = subprocess.run([str(BIN), "gateway", "sessions", "--socket", sock],
                                capture_output=True, text=True, env=env, check=False)
        assert login in listed.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns not in names, "the demo removed its namespaces"
