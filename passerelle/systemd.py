"""Telling systemd how a service is doing (sd_notify(3)), for Type=notify units.

READY=1 when the service is listening, WATCHDOG=1 every half of the unit's
WatchdogSec= while it is healthy, STOPPING=1 when it stops. Outside systemd
(no $NOTIFY_SOCKET) every call does nothing, so the programs run the same by
hand and in the tests.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("passerelle")


def notify(state: str) -> bool:
    """Tell systemd ``state`` (e.g. "READY=1") on $NOTIFY_SOCKET, as
    sd_notify(3) does: one datagram on a Unix socket; a name starting with
    "@" is in the abstract namespace. False when not run by systemd, or when
    the message could not go (said in the log: the service runs on, and
    systemd's timeouts tell the rest)."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        # Never blocking: a reader that fell behind must not stall the service.
        sock.setblocking(False)
        try:
            sock.connect(address)
            sock.send(state.encode())
        except OSError as exc:
            log.warning("cannot tell systemd %s on %s: %s", state.split("\n", 1)[0], path,
                        exc.strerror or exc)
            return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between two WATCHDOG=1: half the unit's WatchdogSec=, as
    sd_watchdog_enabled(3) advises; None when systemd asks for none, or asks
    another process (WATCHDOG_PID)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number of microseconds: no watchdog", usec)
        return None
    return seconds / 2 if seconds > 0 else None


class Watchdog:
    """A thread that says WATCHDOG=1 every ``watchdog_interval()`` while
    ``healthy()`` is true; systemd restarts the service when it falls silent.
    Nothing runs when the unit has no WatchdogSec=."""

    def __init__(self, healthy: Callable[[], bool] = lambda: True) -> None:
        self._healthy = healthy
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        self._thread = threading.Thread(target=self._run, args=(interval,), name="watchdog",
                                        daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            if self._healthy():
                notify("WATCHDOG=1")

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
