"""`passerelle console run`: bad input is one line and exit 2; a real run
serves the sign-in page on the address given and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from passerelle.portal.console.cli import parse_listen
from passerelle.radius import db

BIN = Path(sys.executable).parent / "passerelle"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def one_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], lines


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8090") == ("127.0.0.1", 8090)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
    assert parse_listen(" 0.0.0.0:0 ") == ("0.0.0.0", 0)


@pytest.mark.parametrize(("listen", "expected"), [
    ("localhost:8090", "give an IP address"), ("127.0.0.1", "give an IP address"),
    ("127.0.0.1:http", "the port is"), ("127.0.0.1:65536", "the port is"),
    ("[::1]", "give an IP address"), ("", "give an IP address"),
])
def test_bad_listen(tmp_path: Path, listen: str, expected: str) -> None:
    one_error(run("console", "run", "--db", f"sqlite:///{tmp_path}/x.db", "--listen", listen),
              expected)


def test_database_without_schema(tmp_path: Path) -> None:
    one_error(run("console", "run", "--db", f"sqlite:///{tmp_path}/empty.db"),
              "is at revision none, the console needs")
    one_error(run("console", "run", "--db", "nosuchdb://x"), "bad database URL")


def test_a_real_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/console.db"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    proc = subprocess.Popen([str(BIN), "console", "run", "--db", url, "--listen",
                             "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.match(r"console listening on (127\.0\.0\.1:\d+)$", line.strip())
        assert found, line
        with urllib.request.urlopen(f"http://{found.group(1)}/sign-in", timeout=10) as answer:
            assert answer.status == 200
            assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
            assert b"Sign in" in answer.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        if proc.stderr:
            proc.stderr.close()
        if proc.stdout:
            proc.stdout.close()
    assert code == 0


def test_a_taken_port(tmp_path: Path) -> None:
    import socket

    url = f"sqlite:///{tmp_path}/console.db"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        one_error(run("console", "run", "--db", url, "--listen", f"127.0.0.1:{port}"),
                  f"cannot listen on 127.0.0.1 port {port}")
