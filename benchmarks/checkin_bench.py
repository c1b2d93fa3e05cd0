"""The check-in a teleworker feels, with the centre 30 ms away: plain UDP
against RadSec, in one run (issue 10). Run as root from the repository:

    .venv/bin/python -m benchmarks.checkin_bench [--rounds 3] [--seconds 10]
        [--clients 1] [--delay-ms 15] [--pg URL --pg-socket DIR]

The lab (passerelle/lab/netns.py): laptops on the site's LAN, the box (gw)
running the real `passerelle gateway run` and `passerelle portal run`, the
internet (up), and the centre in a namespace of its own behind up:
`passerelle radius serve` (one worker, UDP and RadSec on 2083) on a fresh
database of a throwaway durable PostgreSQL cluster (or ``--pg``), reached
through its Unix socket (a network namespace does not hide a socket file).
Between up and the centre, a link that holds every frame ``--delay-ms`` each
way (benchmarks/checkin/slowlink.py: netem's stand-in in user space, for
kernels built without sch_netem), so the box's round trip to the centre is
twice that, 30 ms by default; it is measured before each visit (a TCP
connection the centre refuses: one round trip).

Each laptop (``--clients``, one person each) checks in through the portal's
form over HTTPS and reads the key page, checks out and again, for
``--seconds`` (benchmarks/checkin/visitor.py); its first ``--warmup``
check-ins of each visit are not counted. The box's RADIUS goes straight
over UDP, or through radsecproxy (the box's enrolment certificate, TLS to
the centre); each with the link at 0 ms (the baseline) and at
``--delay-ms``; ``--rounds`` times, each round in the other order. Prints
p50/p95/p99 of form -> key page per transport and round trip, the ratios
RadSec/UDP, and what the round trip added. docs/benchmarks.md holds the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import URL, make_url, update

from passerelle.gateway.control import ControlClient, ControlError
from passerelle.lab.netns import Lab, missing
from passerelle.radius import db
from passerelle.radius.models import Company, Gateway

from . import world
from .gateway.plan import median, percentile
from .loadgen import NAS_ID, PASSWORD, login
from .radsec_bench import SECRET, enrol

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "passerelle"
CENTRE, LINK_UP = "192.0.2.10", "192.0.2.9"  # the centre, up's end of the slow link
RADSEC_PORT = 2083
MAX_SESSION = 8 * 3600
CLOSED_PORT = 9  # nothing listens there: a SYN is answered by a RST, one round trip

CONFIG = """
[box]
identifier = "{identifier}"
state_dir = "{state}"

[[radius.servers]]
host = "{centre}"
secret = "{secret}"

[radius]
transport = "{transport}"
tls_cert = "{cert}"
tls_key = "{key}"
tls_ca = "{ca}"
radsec_port = {radsec_port}
"""

# The connect time to the centre through the link, from the box: one round trip each.
RTT = f"""
import socket, statistics, time
took = []
for _ in range(10):
    t = time.perf_counter()
    try:
        socket.create_connection(("{CENTRE}", {CLOSED_PORT}), timeout=5).close()
    except ConnectionRefusedError:
        took.append(time.perf_counter() - t)
print(statistics.median(took) * 1000 if took else -1)
"""


@dataclass
class Cell:
    transport: str
    delay_ms: float  # one way
    rtts: list[float]  # measured before each visit, ms
    took: list[float]
    failed: list[str]
    seconds: float

    def row(self) -> dict[str, Any]:
        ms = [t * 1000 for t in self.took]
        return {"transport": self.transport, "delay_ms": self.delay_ms,
                "rtt_ms": median(self.rtts) if self.rtts else 0.0,
                "n": len(ms), "failed": len(self.failed),
                "per_s": len(ms) / self.seconds if self.seconds else 0.0,
                "p50": median(ms) if ms else 0.0,
                "p95": percentile(ms, 95) if ms else 0.0,
                "p99": percentile(ms, 99) if ms else 0.0,
                "max": max(ms) if ms else 0.0}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def socket_url(admin_url: str, socket_dir: str) -> str:
    """The URL of the same database through the server's Unix socket in
    ``socket_dir`` (the centre's namespace has no way to the host's 127.0.0.1)."""
    u = make_url(admin_url)
    return URL.create(u.drivername, u.username, u.password, database=u.database,
                      query={"host": socket_dir, "port": str(u.port or 5432)}
                      ).render_as_string(hide_password=False)


def prepare(admin_url: str, clients: int, tmp: Path, wan_ip: str) -> tuple[Path, Path, Path]:
    """The people and the box's gateway (at the lab's WAN address, for UDP),
    and the box's enrolment certificate (for RadSec)."""
    world.seed_passerelle(admin_url, clients, SECRET)
    engine = db.make_engine(admin_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Gateway).where(Gateway.identifier == NAS_ID)
                         .values(ip_address=wan_ip))
            # A working day per session: the seeded credit (10**9 s) as a
            # Session-Timeout is more than the box's nftables takes.
            conn.execute(update(Company).values(max_session=MAX_SESSION))
    finally:
        engine.dispose()
    return enrol(admin_url, tmp)


class Site:
    """The lab with the centre behind the slow link, the box and its portal."""

    def __init__(self, lab: Lab, tmp: Path, centre_url: str, clients: int) -> None:
        self.lab = lab
        self.tmp = tmp
        self.centre_url = centre_url
        self.logs: list[Path] = []
        self.daemon: subprocess.Popen[str] | None = None
        self.portal_started = False
        self.state = tmp / "state"
        self.config = tmp / "gateway.toml"
        self.control = ControlClient(self.state / "control.sock", 10)
        self.roles = ["client", "client2"][:clients]
        for n in range(2, clients):
            role = f"client{n + 1}"
            lab.add_client(role, f"02:50:00:00:01:{n:02x}", f"198.51.100.{10 + n}")
            self.roles.append(role)
        self.link = self._slow_link()

    def close(self) -> None:
        """End the slow link (EOF on its stdin); the lab ends the rest."""
        if self.link.stdin is not None and not self.link.stdin.closed:
            self.link.stdin.close()

    def log(self, name: str) -> IO[str]:
        path = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(path)
        return path.open("w")

    def read_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs
                         if p.exists())

    def _slow_link(self) -> subprocess.Popen[str]:
        lab = self.lab
        lab._netns("centre")
        link = lab.popen("centre", sys.executable, "-m", "benchmarks.checkin.slowlink",
                         "--a", "c0", "--a-netns", lab.ns["up"], "--b", "eth0",
                         stdin=subprocess.PIPE, cwd=ROOT)
        assert link.stdout is not None
        if link.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the slow link did not start: {link.communicate()[1]}")
        lab.run("up", "ip", "addr", "add", f"{LINK_UP}/30", "dev", "c0")
        lab.run("up", "ip", "link", "set", "c0", "up")
        lab.run("up", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run("centre", "ip", "addr", "add", f"{CENTRE}/30", "dev", "eth0")
        lab.run("centre", "ip", "link", "set", "eth0", "up")
        lab.run("centre", "ip", "route", "add", "default", "via", LINK_UP)
        return link

    def set_delay(self, one_way_ms: float) -> float:
        """The link's delay each way; the round trip measured from the box, ms."""
        assert self.link.stdin is not None and self.link.stdout is not None
        self.link.stdin.write(f"delay {one_way_ms:g}\n")
        self.link.stdin.flush()
        answer = self.link.stdout.readline().strip()
        if answer != f"ok {one_way_ms:g}":
            raise RuntimeError(f"the slow link answered {answer!r}")
        time.sleep(2 * one_way_ms / 1000 + 0.05)  # what was in flight has left
        return float(self.lab.run("gw", sys.executable, "-c", RTT).stdout)

    def start_centre(self) -> None:
        with self.log("centre") as err:
            centre = self.lab.popen("centre", str(BIN), "radius", "serve", "--db",
                                    self.centre_url, "--listen", CENTRE, "--workers", "1",
                                    "--radsec-port", str(RADSEC_PORT), "--radsec-name", CENTRE,
                                    stderr=err)
        assert centre.stdout is not None
        if "listening" not in centre.stdout.readline():
            raise RuntimeError(f"the centre did not start:\n{self.read_logs()}")

    def start_box(self, transport: str, tls: tuple[Path, Path, Path]) -> None:
        """`passerelle gateway run` with ``transport``; the daemon before, stopped."""
        if self.daemon is not None:
            self.daemon.terminate()
            self.daemon.wait(timeout=60)
        cert, key, ca = tls
        self.config.write_text(CONFIG.format(
            identifier=NAS_ID, state=self.state, centre=CENTRE, secret=SECRET,
            transport=transport, cert=cert, key=key, ca=ca, radsec_port=RADSEC_PORT))
        with self.log(f"gateway-{transport}") as out:
            self.daemon = self.lab.popen("gw", str(BIN), "gateway", "run", "--config",
                                         str(self.config), stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.control.status()
                return
            except (OSError, ControlError):
                if time.monotonic() > deadline or self.daemon.poll() is not None:
                    raise RuntimeError(f"the box did not start:\n{self.read_logs()}") from None
                time.sleep(0.2)

    def start_portal(self) -> None:
        with self.log("portal") as out:
            self.lab.popen("gw", str(BIN), "portal", "run", "--config", str(self.config),
                           stdout=out, stderr=out)
        try:
            self.lab.wait_listening("gw", 8443, timeout=60)
        except AssertionError:
            raise RuntimeError(f"the portal did not start:\n{self.read_logs()}") from None
        self.portal_started = True

    def visit(self, seconds: float, warmup: int) -> tuple[list[float], list[str]]:
        """Every laptop checking in and out for ``seconds`` at once."""
        cafile = self.state / "portal-cert.pem"
        procs = [self.lab.popen(role, sys.executable, "-m", "benchmarks.checkin.visitor",
                                "--box", self.lab.box_ipv4, "--cafile", str(cafile),
                                "--login", login(n), "--password", PASSWORD,
                                "--seconds", str(seconds), "--warmup", str(warmup), cwd=ROOT)
                 for n, role in enumerate(self.roles)]
        took: list[float] = []
        failed: list[str] = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 120 + 30 * warmup)
            if proc.returncode != 0:
                raise RuntimeError(f"a visitor exited {proc.returncode}: {err[-2000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            took += result["took"]
            failed += result["failed"]
        return took, failed


def run(args: argparse.Namespace, admin_url: str, socket_dir: str) -> list[Cell]:
    name = f"checkin_bench_{os.getpid()}"
    url = world.create_database(admin_url, name)
    with tempfile.TemporaryDirectory(prefix="psl-checkin-bench-", dir="/var/tmp") as t:
        tmp = Path(t)
        os.environ["PASSERELLE_KEY_FILE"] = str(tmp / "server.key")  # the centre's CA key
        try:
            with Lab() as lab:
                tls = prepare(url, args.clients, tmp, lab.wan_ipv4)
                site = Site(lab, tmp, socket_url(url, socket_dir), args.clients)
                try:
                    return measure(args, site, tls)
                except BaseException:
                    say(site.read_logs())
                    raise
                finally:
                    site.close()
        finally:
            world.drop_database(url)


def measure(args: argparse.Namespace, site: Site, tls: tuple[Path, Path, Path]) -> list[Cell]:
    """``args.rounds`` rounds of every transport and delay; each round takes
    the transports and the delays in the other order than the one before,
    so a drift of the machine's load weighs on every cell alike."""
    site.start_centre()
    cells: dict[tuple[str, float], Cell] = {}
    delays = [0.0, args.delay_ms]
    running = ""
    for n in range(args.rounds):
        turn = 1 if n % 2 == 0 else -1
        for transport in args.transports[::turn]:
            if transport != running:
                site.start_box(transport, tls)
                running = transport
            if not site.portal_started:
                site.start_portal()
            for delay in delays[::turn]:
                rtt = site.set_delay(delay)
                say(f"round {n + 1}: {transport}, {delay:g} ms each way (round trip measured "
                    f"{rtt:.1f} ms), {len(site.roles)} laptop(s) for {args.seconds:g} s; "
                    f"load {loadavg()}")
                took, failed = site.visit(args.seconds, args.warmup)
                cell = cells.setdefault((transport, delay),
                                        Cell(transport, delay, [], [], [], 0.0))
                cell.rtts.append(rtt)
                cell.took += took
                cell.failed += failed
                cell.seconds += args.seconds
                say(f"  {len(took)} check-ins, {len(failed)} failed"
                    + (f": {failed[:3]}" if failed else ""))
    found = [cells[t, d] for t in args.transports for d in delays]
    if any(c.failed for c in found):
        say(site.read_logs())
    return found


def table(cells: list[Cell]) -> str:
    lines = ["| transport | RTT to the centre (measured) | check-ins | failed | p50 ms | "
             "p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        r = c.row()
        lines.append(f"| {'RadSec' if c.transport == 'radsec' else 'UDP'} | "
                     f"{2 * c.delay_ms:g} ms ({r['rtt_ms']:.1f}) | {r['n']} | {r['failed']} | "
                     f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |")
    return "\n".join(lines)


def comparisons(cells: list[Cell]) -> list[str]:
    rows = {(c.transport, c.delay_ms): c.row() for c in cells}
    delays = sorted({c.delay_ms for c in cells})
    out = []
    for delay in delays:
        udp, tls = rows.get(("udp", delay)), rows.get(("radsec", delay))
        if udp and tls and udp["n"] and tls["n"]:
            out.append(f"RTT {2 * delay:g} ms: ratio radsec/udp p50 {tls['p50'] / udp['p50']:.2f}"
                       f", p95 {tls['p95'] / udp['p95']:.2f}, p99 {tls['p99'] / udp['p99']:.2f}")
    for transport in ("udp", "radsec"):
        base, far = rows.get((transport, delays[0])), rows.get((transport, delays[-1]))
        if base and far and base["n"] and far["n"] and len(delays) > 1:
            out.append(f"{transport}: the {2 * delays[-1]:g} ms round trip added "
                       f"p50 +{far['p50'] - base['p50']:.1f} ms, "
                       f"p95 +{far['p95'] - base['p95']:.1f} ms, "
                       f"p99 +{far['p99'] - base['p99']:.1f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1, help="laptops, one person each")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="per transport and delay in each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="check-ins per laptop not counted")
    parser.add_argument("--delay-ms", type=float, default=15.0,
                        help="the link's delay each way (the round trip is twice this)")
    parser.add_argument("--transports", default="udp,radsec")
    parser.add_argument("--pg", help="an existing PostgreSQL (SQLAlchemy URL over TCP, for "
                        "the set-up) instead of a throwaway durable cluster; needs --pg-socket")
    parser.add_argument("--pg-socket", help="the directory of that server's Unix socket "
                        "(the centre reaches it through it), e.g. /var/run/postgresql")
    args = parser.parse_args(argv)
    args.transports = args.transports.split(",")
    why = missing()
    if why:
        say(f"checkin_bench: {why}")
        return 1
    if not 1 <= args.clients <= 200:
        parser.error("--clients: 1 to 200")
    if bool(args.pg) != bool(args.pg_socket):
        parser.error("--pg and --pg-socket go together")
    started = datetime.now(UTC)
    load_before = loadavg()
    cluster = None
    if args.pg:
        admin_url, socket_dir = args.pg, args.pg_socket
    else:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster(durable=True)
        admin_url, socket_dir = cluster.start(), str(cluster.dir)
    try:
        settings = world.durability(admin_url)
        cells = run(args, admin_url, socket_dir)
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average "
          f"{load_before} before, {loadavg()} after; PostgreSQL "
          + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(f"{args.clients} laptop(s), {args.rounds} round(s) of {args.seconds:g} s per row, "
          f"{args.warmup} check-ins per laptop and visit not counted; form submitted -> key "
          f"page over HTTPS")
    print()
    print(table(cells))
    print()
    for line in comparisons(cells):
        print(line)
    return 0 if all(c.took for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
