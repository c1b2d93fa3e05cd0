"""A whole site in the lab, for the tests and benchmarks that need one:
`passerelle gateway run` in the gw namespace, `passerelle radius serve` as
the centre in the up namespace (192.0.2.10), a stand-in portal on the box's
port 8080, the lab's upstream hosts. Real nftables, dnsmasq, RADIUS, SQLite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.control import ControlClient, ControlError
from passerelle.radius import db
from passerelle.radius.models import CreditEntry, CreditKind, Radacct
from tests.lab import Lab
from tests.need import stop
from tests.peers import freeradius
from tests.peers.freeradius import FreeRadius
from tests.radius import seed

BIN = Path(sys.executable).parent / "passerelle"
CENTRE = "192.0.2.10"
IDLE = 10  # the centre's Idle-Timeout, small so that the idle test is quick


@dataclass
class Box:
    lab: Lab
    tmp: Path
    db_url: str
    factory: sessionmaker[DB]
    world: seed.World
    config: Path
    control: ControlClient
    daemon: subprocess.Popen[str] | None = None
    centre: subprocess.Popen[str] | None = None
    logs: list[Path] = field(default_factory=list)
    freeradius: FreeRadius | None = None

    def _log(self, name: str) -> Any:
        path = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(path)
        return path.open("w")

    def start_centre(self, workers: int = 1, idle: int = IDLE) -> None:
        env = {**os.environ, "PASSERELLE_KEY_FILE": str(self.tmp / "server.key")}
        with self._log("centre") as err:
            self.centre = self.lab.popen(
                "up", str(BIN), "radius", "serve", "--db", self.db_url, "--listen", CENTRE,
                "--idle-timeout", str(idle), "--workers", str(workers), env=env, stderr=err)
        assert self.centre.stdout is not None
        line = self.centre.stdout.readline()
        assert "listening" in line, self.read_logs()

    def stop_centre(self) -> None:
        assert self.centre is not None
        stop(self.centre)

    def start_daemon(self) -> None:
        with self._log("gateway") as err:
            self.daemon = self.lab.popen("gw", str(BIN), "-v", "gateway", "run", "--config",
                                         str(self.config), stderr=err, stdout=err)
        wait_for(lambda: self._answers(), timeout=DAEMON_START, what="the gateway's control socket",
                 logs=self.read_logs)

    def _answers(self) -> bool:
        try:
            self.control.status()
        except (OSError, ControlError):
            return False
        return True

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(timeout=10)

    def read_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in self.logs if p.exists())

    def curl(self, role: str, url: str = "http://192.0.2.80/") -> str:
        out = self.lab.run(role, "curl", "-s", "-m", "3", url, check=False)
        return out.stdout.strip() if out.returncode == 0 else f"error {out.returncode}"

    def sessions(self, login: str) -> list[Radacct]:
        with self.factory() as s:
            return list(s.scalars(select(Radacct).where(Radacct.username == login)
                                  .order_by(Radacct.radacctid)))

    def charged(self, person: str) -> int:
        with self.factory() as s:
            total = s.scalar(select(func.coalesce(func.sum(CreditEntry.seconds), 0))
                             .where(CreditEntry.person_id == self.world.people[person],
                                    CreditEntry.kind == CreditKind.charge))
        return -int(total or 0)


# How long a daemon may take to answer on its control socket after its start:
# a harness wait, not a product budget. Seconds when the machine is idle; the
# suite runs its files in parallel, and a start under that load was seen to
# take over 15 s (the imports alone).
DAEMON_START = 60.0


def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "",
             logs: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs() if logs else ''}")


CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "{state}"

[portal]
http_port = 8080

[[radius.servers]]
host = "{centre}"
secret = "{secret}"

[radius]
timeout = 0.5
tries = 2
dead_time = 1

[sessions]
sweep_interval = 0.5
lease_check_interval = 2
heartbeat_interval = 1
"""


@contextlib.contextmanager
def site(tmp: Path, portal: bool = True, extra_config: str = "",
         centre: str = "passerelle",
         before_start: Callable[[Lab], None] | None = None) -> Iterator[Box]:
    """Build the lab, the centre and the box; always tear them down.
    ``portal``: run the stand-in portal on the box's port 8080.
    ``centre``: "passerelle" (`passerelle radius serve`) or "freeradius"
    (FreeRADIUS 3 with tests/peers/freeradius.py's users, signing its
    replies with Message-Authenticator). ``extra_config`` is appended to
    the box's TOML (new tables only). ``before_start`` adds to the lab what
    the box's configuration needs before it starts (e.g. interfaces)."""
    os.environ["PASSERELLE_KEY_FILE"] = str(tmp / "server.key")
    url = f"sqlite:///{tmp / 'centre.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.make_sessionmaker(engine)
    world = seed.build(factory, gateway_ip="203.0.113.2")
    config = tmp / "gateway.toml"
    secret = freeradius.SECRET if centre == "freeradius" else seed.SECRET
    config.write_text(CONFIG.format(state=tmp / "state", centre=CENTRE, secret=secret)
                      + extra_config)
    with Lab() as lab:
        lab.run("up", "ip", "addr", "add", f"{CENTRE}/32", "dev", "lo")
        # The centre's Disconnect-Requests leave from its own address, the one
        # the box knows (requests from any other address are dropped).
        lab.run("up", "ip", "route", "replace", "203.0.113.0/24", "dev", "eth0", "src", CENTRE)
        lab.start_internet()
        if before_start is not None:
            before_start(lab)
        if portal:
            lab.serve("gw", "http", lab.box_ipv4, 8080, "200", "portal")
        b = Box(lab, tmp, url, factory, world, config, ControlClient(tmp / "state" /
                                                                     "control.sock", 10))
        try:
            if centre == "freeradius":
                b.freeradius = freeradius.start(tmp / "freeradius", reply_ma=True,
                                                listen=CENTRE, client=lab.wan_ipv4,
                                                netns=lab.ns["up"])
            else:
                b.start_centre()
            b.start_daemon()
            yield b
        finally:
            if b.freeradius is not None:
                b.freeradius.stop()
            if b.daemon and b.daemon.poll() is None:
                # Its stop sends what it holds to the centre; under the
                # parallel suite's load that was seen to take over 10 s.
                stop(b.daemon, timeout=30)
            engine.dispose()
            del os.environ["PASSERELLE_KEY_FILE"]


