"""The services tell systemd READY=1, WATCHDOG=1 and STOPPING=1 (Type=notify).

Each real program is started as systemd would start it: $NOTIFY_SOCKET names
a Unix datagram socket the test holds, $WATCHDOG_USEC asks for a watchdog
(0.2 s here, so WATCHDOG=1 comes every 0.1 s), and it is stopped by SIGTERM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle import systemd
from passerelle.radius import db
from tests import boxlab
from tests.need import stop, unavailable

BIN = Path(sys.executable).parent / "passerelle"
WATCHDOG_USEC = "200000"


@pytest.fixture
def notify() -> Iterator[tuple[socket.socket, dict[str, str]]]:
    # A short directory: a Unix socket's path has at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="notify-") as short, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(f"{short}/notify")
        sock.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": f"{short}/notify", "WATCHDOG_USEC": WATCHDOG_USEC}
        env.pop("WATCHDOG_PID", None)
        yield sock, env


def messages(sock: socket.socket, until: str, count: int = 1) -> list[str]:
    """What arrives until ``count`` messages starting with ``until``."""
    seen: list[str] = []
    while sum(m.startswith(until) for m in seen) < count:
        seen.append(sock.recv(4096).decode())
    return seen


def assert_lifecycle(proc: subprocess.Popen[str], sock: socket.socket,
                     stopping: bool = True) -> str:
    """READY=1 first, then WATCHDOG=1 again and again, STOPPING=1 at SIGTERM
    (``stopping``: the RADIUS server just ends)."""
    try:
        first = messages(sock, "READY=1")
        assert all(m == "WATCHDOG=1" for m in first[:-1]), first
        started = time.monotonic()
        assert set(messages(sock, "WATCHDOG=1", 3)) == {"WATCHDOG=1"}
        assert time.monotonic() - started < 5, "WATCHDOG=1 every WatchdogSec/2"
        proc.terminate()
        if stopping:
            assert "STOPPING=1" in messages(sock, "STOPPING=1")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            stop(proc)
    return first[-1]


def migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


def test_the_console_says_ready_then_keeps_the_watchdog_fed(
        tmp_path: Path, notify: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = notify
    env["PASSERELLE_KEY_FILE"] = str(tmp_path / "server.key")
    proc = subprocess.Popen([str(BIN), "console", "run", "--db", migrated(tmp_path),
                             "--listen", "127.0.0.1:0"], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = assert_lifecycle(proc, sock)
    # gunicorn's arbiter says it, once it holds the bound sockets.
    assert ready.startswith("READY=1\nSTATUS=Gunicorn arbiter booted"), ready


@pytest.mark.parametrize("workers", [1, 2])
def test_the_radius_server_says_ready_once_its_workers_listen(
        tmp_path: Path, notify: tuple[socket.socket, dict[str, str]], workers: int) -> None:
    sock, env = notify
    env["PASSERELLE_KEY_FILE"] = str(tmp_path / "server.key")
    proc = subprocess.Popen([str(BIN), "radius", "serve", "--db", migrated(tmp_path),
                             "--auth-port", "0", "--acct-port", "0", "--workers", str(workers)],
                            env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    with proc.stdout:
        ready = assert_lifecycle(proc, sock, stopping=False)
        listening = proc.stdout.readline()
    # The ports READY=1 names are those the server announces: bound before it says so.
    auth, acct = ready.split("STATUS=auth ", 1)[1].split(" acct ")
    assert f"auth {auth} acct {acct} workers {workers}" in listening


def test_the_gateway_daemon_says_ready_when_its_box_runs(
        tmp_path: Path, notify: tuple[socket.socket, dict[str, str]]) -> None:
    if os.geteuid() != 0:
        unavailable("the box's lab needs root (network namespaces, nftables)")
    sock, env = notify
    with boxlab.site(tmp_path, portal=False) as box:
        assert box.daemon is not None
        stop(box.daemon)
        box.daemon = box.lab.popen("gw", str(BIN), "gateway", "run", "--config",
                                   str(box.config), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        ready = assert_lifecycle(box.daemon, sock)
        assert ready.startswith("READY=1\nSTATUS=gateway ")


# --- the helper itself ------------------------------------------------------------


def test_watchdog_interval_is_half_of_what_systemd_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.watchdog_interval() is None, "no WatchdogSec=: no watchdog"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None, "meant for another process"


def test_a_bad_watchdog_usec_is_said_and_ignored(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "thirty seconds")
    assert systemd.watchdog_interval() is None
    assert "WATCHDOG_USEC='thirty seconds' is not a number of microseconds" in caplog.text


def test_a_notification_that_cannot_go_is_said_and_does_not_block(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory(prefix="notify-") as short:
        monkeypatch.setenv("NOTIFY_SOCKET", f"{short}/gone")
        assert not systemd.notify("READY=1")
        assert "cannot tell systemd READY=1" in caplog.text
        # A reader that does not read: its queue fills, the sender goes on.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(f"{short}/slow")
            monkeypatch.setenv("NOTIFY_SOCKET", f"{short}/slow")
            started = time.monotonic()
            sent = [systemd.notify("WATCHDOG=1") for _ in range(2000)]
            assert time.monotonic() - started < 5
            assert sent[0] and not sent[-1]
