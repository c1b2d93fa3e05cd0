"""`passerelle demo` on free ports in a temporary data directory: it loads the
demo network, prints how to try it, and the commands it prints work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.need import stop

from .test_demo_data import need, parse_radclient

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent / "passerelle"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_env() -> dict[str, str]:
    # The demo keeps its database and server key in --data: nothing else.
    return {k: v for k, v in os.environ.items()
            if k not in ("PASSERELLE_DB", "PASSERELLE_DATA", "PASSERELLE_KEY_FILE")}


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    printed: str
    auth_port: int
    acct_port: int
    log: Path

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        stop(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


def start_demo(data: Path) -> Demo:
    auth_port, acct_port = free_udp_port(), free_udp_port()
    while acct_port == auth_port:
        acct_port = free_udp_port()
    log = data.parent / f"demo-{auth_port}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(BIN), "demo", "--data", str(data), "--auth-port", str(auth_port),
             "--acct-port", str(acct_port)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=demo_env())
    # A demo that never says it listens must not hang the test run.
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    lines = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("passerelle radius: listening"):
                break
    finally:
        watchdog.cancel()
    printed = "".join(lines)
    if "listening" not in printed:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"the demo did not start:\n{printed}\n{log.read_text()}")
    return Demo(proc, printed, auth_port, acct_port, log)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    need("radtest")
    running = start_demo(tmp_path / "demo")
    yield running
    running.stop()


def printed_commands(text: str, start: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(start)]


def run_printed(command: str) -> str:
    """Run a command line exactly as the demo printed it for the reader."""
    command = command.replace("passerelle admin", f"{BIN} admin", 1)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                         timeout=60, env=demo_env())
    return out.stdout + out.stderr


def test_demo_prints_how_to_and_answers(demo: Demo, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert "demo data: added 2 networks, 11 sites, 11 gateways, 6 companies, 9 people" in \
        demo.printed
    assert f"listening on 127.0.0.1 auth {demo.auth_port} acct {demo.acct_port}" in \
        demo.printed
    assert (data / "passerelle.db").exists() and (data / "server.key").exists()
    radtests = printed_commands(demo.printed, "radtest ")
    assert len(radtests) == 3
    assert all(f"127.0.0.1:{demo.auth_port} 0 testing123" in line for line in radtests)
    pap, chap, rejected = (parse_radclient(run_printed(line)) for line in radtests)
    assert pap.code == "Access-Accept", pap.output + demo.logs()
    assert pap.one("Session-Timeout") == str(600 * 60)
    assert chap.code == "Access-Accept", chap.output
    assert rejected.code == "Access-Reject", rejected.output
    assert rejected.one("Reply-Message").startswith("company-suspended: ")
    # The accounting example: Start, then Stop after 600 s, and the charge shows.
    accounting = printed_commands(demo.printed, "echo ")
    assert len(accounting) == 2
    need("radclient")
    for line in accounting:
        assert f"127.0.0.1:{demo.acct_port} acct testing123" in line
        answer = parse_radclient(run_printed(line))
        assert answer.code == "Accounting-Response", answer.output
    (show,) = printed_commands(demo.printed, "passerelle admin credit show")
    statement = run_printed(show)
    assert "alice@acme.example: 9:50 left (590 minutes)" in statement, statement
    assert "charge" in statement


def test_demo_restarts_on_its_data(tmp_path: Path) -> None:
    need("radtest")
    data = tmp_path / "demo"
    first = start_demo(data)
    first.stop()
    second = start_demo(data)
    try:
        assert "using the data already in" in second.printed
        assert "demo data: added" not in second.printed
        (pap, _, _) = printed_commands(second.printed, "radtest ")
        answer = parse_radclient(run_printed(pap))
        assert answer.code == "Access-Accept", answer.output
    finally:
        second.stop()


def test_demo_with_a_port_taken_says_so(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        run = subprocess.run(
            [str(BIN), "demo", "--data", str(tmp_path / "d"), "--auth-port", str(port),
             "--acct-port", str(free_udp_port())],
            capture_output=True, text=True, timeout=60, env=demo_env())
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: cannot listen on 127.0.0.1 UDP port {port} (--auth-port): "
                      "Address already in use; is FreeRADIUS or another demo running?"]
    assert "Traceback" not in run.stderr


def test_demo_refuses_one_port_for_both(tmp_path: Path) -> None:
    run = subprocess.run([str(BIN), "demo", "--data", str(tmp_path / "d"), "--auth-port",
                          "41812", "--acct-port", "41812"],
                         capture_output=True, text=True, timeout=60, env=demo_env())
    assert (run.returncode, run.stderr.strip()) == \
        (2, "Error: --auth-port and --acct-port must differ")


def test_demo_script_runs_the_demo() -> None:
    """deploy/demo.sh installs then execs `passerelle demo` with its arguments."""
    script = Path(__file__).parent.parent / "deploy" / "demo.sh"
    text = script.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "bash deploy/system-packages.sh demo" in lines and "bash deploy/venv.sh" in lines
    assert lines[-1] == 'exec .venv/bin/passerelle demo "${site[@]}" "$@"'
    assert os.access(script, os.X_OK)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
