"""`passerelle demo` on free ports in a temporary data directory: it loads the
demo network, prints how to try it, and every command it prints works when
run as printed in a new terminal (the virtual environment not on its PATH)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from passerelle.radius import demo_data
from passerelle.radius.demo_cli import PROMPT
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
             "--acct-port", str(acct_port), "--console-port", "0"],
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


def runnable(text: str) -> list[str]:
    """The command lines the demo printed for the reader, as they would copy them."""
    return [line[len(PROMPT):] for line in text.splitlines() if line.startswith(PROMPT)]


# A new terminal: the system's PATH, not the virtual environment's.
TERMINAL = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run a command line exactly as the demo printed it, in a new terminal's bash."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=120, env=TERMINAL, check=False)


# What each printed command must do: (pattern of the command line, judge of its
# run). The demo's commands and these are matched one to one, in order.
Expect = tuple[str, Callable[[subprocess.CompletedProcess[str]], bool]]


def answered(code: str, *attrs: tuple[str, str]) -> Callable[
        [subprocess.CompletedProcess[str]], bool]:
    def judge(out: subprocess.CompletedProcess[str]) -> bool:
        answer = parse_radclient(out.stdout + out.stderr)
        return answer.code == code and all(
            answer.one(name).startswith(value) for name, value in attrs)
    return judge


CENTRE: list[Expect] = [
    (r"^radtest alice@acme\.example ", answered("Access-Accept", ("Session-Timeout", "36000"))),
    (r"^radtest -t chap adam@acme\.example ", answered("Access-Accept")),
    (r"^radtest sam@dewaele\.example ",
     answered("Access-Reject", ("Reply-Message", "company-suspended: "))),
    (r"^echo '.*Acct-Status-Type = Start.*' \| radclient -x ",
     answered("Accounting-Response")),
    (r"^echo '.*Acct-Status-Type = Stop.*' \| radclient -x ", answered("Accounting-Response")),
    (r"^/\S+/passerelle admin credit show alice@acme\.example --db ",
     lambda out: out.returncode == 0 and "9:50 left (590 minutes)" in out.stdout
     and "charge" in out.stdout),
    (r"^/\S+/passerelle admin --help$",
     lambda out: out.returncode == 0 and "credit" in out.stdout),
]


def run_all(printed: str, expected: list[Expect],
            logs: Callable[[], str] = str) -> list[subprocess.CompletedProcess[str]]:
    """Run every printed command in order, each judged by its expectation."""
    commands = runnable(printed)
    assert len(commands) == len(expected), printed
    runs = []
    for command, (pattern, judge) in zip(commands, expected, strict=True):
        assert re.search(pattern, command), (pattern, command)
        out = run_printed(command)
        assert judge(out), f"$ {command}\nexited {out.returncode}\n{out.stdout}{out.stderr}" \
                           f"\n{logs()}"
        runs.append(out)
    return runs


def test_demo_prints_how_to_and_answers(demo: Demo, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert "demo data: added 2 networks, 11 sites, 11 gateways, 6 companies, 9 people" in \
        demo.printed
    assert f"listening on 127.0.0.1 auth {demo.auth_port} acct {demo.acct_port}" in \
        demo.printed
    assert (data / "passerelle.db").exists() and (data / "server.key").exists()
    need("radclient")
    commands = runnable(demo.printed)
    secret = demo_data.LOCAL_SECRET
    assert all(f"127.0.0.1:{demo.auth_port} 0 {secret}" in line
               for line in commands if line.startswith("radtest"))
    assert all(f"127.0.0.1:{demo.acct_port} acct {secret}" in line
               for line in commands if "radclient" in line)
    # `passerelle` by the full path of this installation: no PATH needed.
    assert all(line.startswith(f"{BIN} ") for line in commands if "passerelle" in line)
    run_all(demo.printed, CENTRE, demo.logs)


def test_demo_serves_the_ops_console_with_its_operator(demo: Demo) -> None:
    found = re.search(r"Ops console: (http://127\.0\.0\.1:\d+/) \(sign in as (\S+), "
                      r"password (\S+)\)", demo.printed)
    assert found, demo.printed
    url, login, password = found.groups()
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with browser.open(url + "sign-in", timeout=10) as page:
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.read().decode())
    assert token
    form = urllib.parse.urlencode({"login": login, "password": password,
                                   "csrf_token": token.group(1)}).encode()
    with browser.open(url + "sign-in", data=form, timeout=10) as signed_in:
        # Signed in: the live view of every site, with its sign-out form.
        assert signed_in.url.rstrip("/") != (url + "sign-in").rstrip("/")
        assert "Live sessions" in signed_in.read().decode()


def test_printed_commands_are_found_by_their_prompt_only() -> None:
    printed = f"  # a comment\n{PROMPT}radtest a b\n  radtest c d\nradtest e f\n"
    assert runnable(printed) == ["radtest a b"]


def test_demo_restarts_on_its_data(tmp_path: Path) -> None:
    need("radtest")
    data = tmp_path / "demo"
    first = start_demo(data)
    first.stop()
    second = start_demo(data)
    try:
        assert "using the data already in" in second.printed
        assert "demo data: added" not in second.printed
        pap = runnable(second.printed)[0]
        assert pap.startswith("radtest alice@acme.example ")
        answer = parse_radclient(run_printed(pap).stdout)
        assert answer.code == "Access-Accept", answer.output
    finally:
        second.stop()


def test_demo_with_a_port_taken_says_so(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        run = subprocess.run(
            [str(BIN), "demo", "--data", str(tmp_path / "d"), "--auth-port", str(port),
             "--acct-port", str(free_udp_port()), "--console-port", "0"],
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
