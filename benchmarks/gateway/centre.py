"""Check-ins through the real daemon with the real centre: tests/boxlab.py's
site (`passerelle gateway run` in gw, `passerelle radius serve` on SQLite in
up), 500 people of its member company added to the centre's database, their
addresses in the box's neighbour table as their ARP would have put them.
The RADIUS round trip, the centre's policy and argon2 check are included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select

from passerelle.gateway.control import ControlError
from passerelle.radius import ledger, passwords
from passerelle.radius.models import Company, Person
from tests.boxlab import CENTRE, Box, site
from tests.radius import seed

from ..procstat import tree_cpu
from .plan import bulk_clients, median, percentile


def _people(box: Box, count: int) -> list[str]:
    """``count`` people of Acme with credit; one argon2 hash for all (hashing
    500 would take a minute; the centre still verifies each one)."""
    hashed = passwords.hash_password(seed.PASSWORD)
    logins = [f"bench{i}@acme.example" for i in range(count)]
    with box.factory() as db, db.begin():
        acme = db.scalars(select(Company).where(Company.name == "Acme")).one()
        people = [Person(login=login, company=acme, password_hash=hashed) for login in logins]
        db.add_all(people)
        db.flush()
        for p in people:
            ledger.top_up(db, p.id, 10 * 3600, seed.now())
    return logins


def _drive(box: Box, targets: list[tuple[str, str, str]], rate: float | None,
           workers: int) -> dict[str, Any]:
    took: list[float] = []
    failed: list[str] = []
    pids = [p.pid for p in (box.daemon, box.centre) if p is not None]
    cpu0 = [tree_cpu([pid]) for pid in pids]
    start = time.perf_counter()

    def one(item: tuple[int, tuple[str, str, str]]) -> None:
        index, (_mac, ip, login) = item
        if rate:
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        try:
            box.control.check_in(ip, login, seed.PASSWORD)
        except (ControlError, OSError) as exc:
            failed.append(f"{ip}: {exc}")
            return
        took.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(targets)))
    elapsed = time.perf_counter() - start
    cpu = [tree_cpu([pid]) - c for pid, c in zip(pids, cpu0, strict=True)]
    return {"workers": workers, "rate": rate, "check_ins": len(targets), "ok": len(took),
            "failed_count": len(failed), "failed": failed[:3], "elapsed_s": elapsed,
            "rate_per_s": len(took) / elapsed,
            "latency": {"n": len(took), "p50_ms": 1000 * median(took),
                        "p99_ms": 1000 * percentile(took, 99),
                        "max_ms": 1000 * max(took)} if took else None,
            "daemon_cpu_s": cpu[0], "centre_cpu_s": cpu[1]}


def restart_centre(box: Box, workers: int) -> None:
    """The centre again, with ``workers`` processes (boxlab starts one)."""
    box.stop_centre()
    box.start_centre(workers, idle=IDLE_TIMEOUT)


# The box with the documented defaults (boxlab's short timers are for quick tests).
CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "{state}"

[portal]
http_port = 8080

[[radius.servers]]
host = "{centre}"
secret = "{secret}"
"""
# An Idle-Timeout no run reaches (boxlab's centre gives 6 s).
IDLE_TIMEOUT = 900


def fresh_box(box: Box) -> float:
    """Stop the daemon, forget its sessions (state and table), start it again
    with the default configuration; the seconds the daemon took to stop."""
    assert box.daemon is not None
    start = time.perf_counter()
    box.daemon.terminate()
    try:
        box.daemon.wait(timeout=120)
    except subprocess.TimeoutExpired:
        box.daemon.kill()
        box.daemon.wait(timeout=10)
    stopped = time.perf_counter() - start
    shutil.rmtree(box.tmp / "state", ignore_errors=True)
    box.lab.run("gw", "nft", "delete", "table", "inet", "passerelle", check=False)
    box.config.write_text(CONFIG.format(state=box.tmp / "state", centre=CENTRE,
                                        secret=seed.SECRET))
    box.start_daemon()
    return stopped


def run(count: int, rate: float, say: Callable[[str], None],
        variants: int | None = None) -> dict[str, Any]:
    """Runs of fresh people and clients each: (name, centre workers, pace,
    concurrent callers, check-ins); the first ``variants`` of them only, if given."""
    runs = [("paced, centre 1 worker", 1, rate, 16, count),
            ("burst, centre 1 worker", 1, None, 4, count),
            ("burst 16 callers, centre 1 worker", 1, None, 16, min(count, 100)),
            ("paced, centre 2 workers", 2, rate, 16, count)][:variants]
    total = sum(r[4] for r in runs)
    with tempfile.TemporaryDirectory(prefix="psl-gwbench-centre-", dir="/var/tmp") as tmp, \
            site(Path(tmp), portal=False) as box:
        logins = _people(box, total)
        clients = bulk_clients(total, first=60_000, mac_prefix=0xE0)
        box.lab.run("gw", "ip", "addr", "replace", "198.18.0.1/15", "dev", box.lab.lan_if)
        targets = [(mac, ip, login) for (mac, ip), login in zip(clients, logins, strict=True)]
        out: dict[str, Any] = {}
        workers = 0
        for name, centre_workers, pace, callers, n in runs:
            if centre_workers != workers:
                restart_centre(box, centre_workers)
                workers = centre_workers
            stop_s = fresh_box(box)
            mine, targets = targets[:n], targets[n:]
            # This run's clients only in the neighbour table, as on a site with n laptops.
            box.lab.run("gw", "ip", "neigh", "flush", "dev", box.lab.lan_if, "nud", "permanent")
            box.lab.run("gw", "ip", "-batch", "-", input="".join(
                f"neigh replace {ip} lladdr {mac} dev {box.lab.lan_if} nud permanent\n"
                for mac, ip, _login in mine))
            got = _drive(box, mine, pace, callers)
            got["centre_workers"] = centre_workers
            got["previous_daemon_stop_s"] = stop_s
            got["sessions_open"] = len(box.control.sessions())
            say(f"  {name}: {json.dumps(got)}")
            out[name] = got
        out["last_daemon_stop_s"] = fresh_box(box)
        return out
