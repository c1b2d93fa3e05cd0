"""The box's side of the benchmark, run inside the gw namespace as root:

    ip netns exec GW python -m benchmarks.gateway.inbox latency|interim|control ...

It builds the daemon's ``Daemon`` from the real parts (Firewall on the
kernel's table, the SQLite Spool and SessionTable on disk, Clients reading the
neighbour table) with one stand-in: a RADIUS client that accepts at once,
because the issue excludes the RADIUS round trip from these figures. Each
part is wrapped to time its own calls, so a slow check-in says where the
time went. The result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.clients import Clients
from passerelle.gateway.config import Config, Interfaces, parse
from passerelle.gateway.control import ControlClient, ControlError, ControlServer
from passerelle.gateway.daemon import Daemon
from passerelle.gateway.nft import FAMILY, TABLE, Firewall, NftError, normal_mac
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import AuthResult, NasIdentity, RadiusClient
from passerelle.gateway.service import _Portal, firewall_plan
from passerelle.gateway.session_table import SessionTable
from passerelle.gateway.sessions import Session
from passerelle.gateway.spool import Spool

from .plan import bulk_clients, lan_clients, median, percentile

ROOT = Path(__file__).resolve().parents[2]
PROBE_PORT = 5301
SESSION_TIMEOUT = 4 * 3600
CONFIG = """
[box]
identifier = "bench-gw"
state_dir = "{state}"
nas_ip = "203.0.113.2"
[lan]
interface = "lan"
address = "198.51.100.1/24"
[wan]
interface = "wan"
[[radius.servers]]
host = "192.0.2.10"
secret = "not-used-by-the-stand-in"
"""

# Durations (seconds) of each part's calls, by name.
TIMES: dict[str, list[float]] = defaultdict(list)


def timed(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        TIMES[name].append(time.perf_counter() - start)


class TimedFirewall(Firewall):
    def allow(self, mac: str, ipv4: str, ipv6: Sequence[str] = (), timeout: int = 3600,
              rate_up: int | None = None, rate_down: int | None = None) -> None:
        timed("nft allow", super().allow, mac, ipv4, ipv6, timeout, rate_up, rate_down)

    def clients(self) -> Any:
        return timed("nft list (counters)", super().clients)


class TimedSpool(Spool):
    def put(self, record: AccountingRecord) -> int:
        result: int = timed("spool put", super().put, record)
        return result


class TimedStore(SessionTable):
    def save(self, session: Session) -> None:
        timed("store save", super().save, session)


class TimedClients(Clients):
    def mac_of(self, ip: str) -> str | None:
        result: str | None = timed("ip -> mac", super().mac_of, ip)
        return result


# --- proposals (not the shipped code): what the figures say could be faster ---


class CreateFirstFirewall(TimedFirewall):
    """Proposal: a new client's elements with ``create`` (fails if present,
    and nft then needs no cache of the set's elements), the shipped
    add-delete-add transaction only when one is already there."""

    def allow(self, mac: str, ipv4: str, ipv6: Sequence[str] = (), timeout: int = 3600,
              rate_up: int | None = None, rate_down: int | None = None) -> None:
        if rate_up is not None or rate_down is not None or ipv6:
            super().allow(mac, ipv4, ipv6, timeout, rate_up, rate_down)
            return
        timed("nft allow", self._create_first, mac, ipv4, timeout)

    def _create_first(self, mac: str, ipv4: str, timeout: int) -> None:
        key = f"{normal_mac(mac)} . {ipv4}"
        script = "".join(f"create element {FAMILY} {TABLE} {name} {{ {k} timeout {timeout}s }}\n"
                         for name, k in (("allowed4", key), ("up4", key), ("down4", ipv4)))
        try:
            self._script(script)
        except NftError as exc:
            if "File exists" not in str(exc):
                raise
            # Already there (the transaction changed nothing): replace it.
            Firewall.allow(self, mac, ipv4, (), timeout)


class ProcArpClients(TimedClients):
    """Proposal: the neighbour table read from /proc/net/arp, no subprocess."""

    def mac_of(self, ip: str) -> str | None:
        result: str | None = timed("ip -> mac", self._lookup, ip)
        return result

    def _lookup(self, ip: str) -> str | None:
        with open("/proc/net/arp") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                # IP, HW type, flags (0x2: complete), MAC, mask, device
                if (len(fields) == 6 and fields[0] == ip and fields[5] == self.lan_if
                        and int(fields[2], 16) & 0x2):
                    return normal_mac(fields[3])
        return Clients.mac_of(self, ip)


class KnownClients(Clients):
    """Set-up only: IP -> MAC from a table the benchmark gives."""

    def __init__(self, lan_if: str, leases: Callable[[], list[Any]],
                 known: dict[str, str]) -> None:
        super().__init__(lan_if, leases)
        self.known = known

    def mac_of(self, ip: str) -> str | None:
        return self.known.get(ip)


class DeepBacklogServer(ControlServer):
    """Proposal: a listen backlog for a portal's bursts (socketserver's is 5;
    a Unix socket connect past it fails at once with EAGAIN)."""

    request_queue_size = 128


class AcceptAtOnce(RadiusClient):
    """The RADIUS stand-in: every Access-Request accepted with no round trip."""

    def __init__(self) -> None:
        super().__init__([RadiusServer("192.0.2.10", b"unused")],
                         NasIdentity("bench-gw", "203.0.113.2"))

    def authenticate(self, login: str, password: str, *, mac: str, ipv4: str,
                     chap: bool = False, key_id: int | None = None) -> AuthResult:
        return AuthResult(accepted=True, session_timeout=SESSION_TIMEOUT, idle_timeout=900,
                          interim_interval=300, class_=b"bench")


class Clock:
    """Wall time, moved forward on demand (to make every interim due)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def config(state: Path) -> Config:
    return parse(CONFIG.format(state=state), state, Interfaces(None, (), {}))


def build(state: Path, proposed: bool = False) -> tuple[Daemon, Clock, Spool]:
    cfg = config(state)
    state.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    spool = TimedSpool(cfg.spool_path)
    firewall = (CreateFirstFirewall if proposed else TimedFirewall)(firewall_plan(cfg))
    clients = (ProcArpClients if proposed else TimedClients)(cfg.lan_if, list)  # no dnsmasq leases
    gateway = Daemon(cfg, firewall=firewall, radius=AcceptAtOnce(), spool=spool,
                      store=TimedStore(cfg.sessions_path), clients=clients, clock=clock)
    return gateway, clock, spool


def neighbours(clients: Sequence[tuple[str, str]]) -> None:
    """The kernel's neighbour entries the clients' ARP would have made."""
    script = "".join(f"neigh replace {ip} lladdr {mac} dev lan nud permanent\n"
                     for mac, ip in clients)
    subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True)


def breakdown() -> dict[str, dict[str, float]]:
    return {name: {"calls": len(v), "p50_ms": 1000 * median(v),
                   "p99_ms": 1000 * percentile(v, 99), "total_s": sum(v)}
            for name, v in TIMES.items() if v}


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": 1000 * median(values),
            "p99_ms": 1000 * percentile(values, 99), "max_ms": 1000 * max(values),
            "min_ms": 1000 * min(values)}


# --- check-in latency ---------------------------------------------------------


class Receiver:
    """The upstream end: first arrival (kernel time, s) per index."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the probe receiver did not start")
        self.arrivals: dict[int, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            index, ns = line.split()
            with self.cond:
                self.arrivals[int(index)] = int(ns) / 1e9
                self.cond.notify_all()

    def wait(self, index: int, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: index in self.arrivals, timeout)
            return self.arrivals.get(index)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def latency(args: argparse.Namespace) -> dict[str, Any]:
    clients = lan_clients(args.count)
    neighbours(clients)
    gateway, _clock, _spool = build(args.state, proposed=args.proposed)
    check_in: Callable[[str, str, str], Any] = gateway.check_in
    server = None
    if args.via == "control":
        server = ControlServer(args.state / "control.sock", _Portal(gateway))
        server.start()
        check_in = ControlClient(args.state / "control.sock", timeout=30).check_in
    me = Path("/sys/class/net/lan/address").read_text().strip()
    py = [sys.executable, "-m", "benchmarks.gateway.probe"]
    receiver = Receiver(["ip", "netns", "exec", args.up_ns, *py, "receive", "--bind",
                         args.upstream, "--port", str(PROBE_PORT)])
    sender = subprocess.Popen(["ip", "netns", "exec", args.client_ns, *py, "send", "--iface",
                               "eth0", "--dst-mac", me, "--dst", args.upstream, "--port",
                               str(PROBE_PORT), "--interval", str(args.interval)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sender.stdin is not None and sender.stdout is not None
    first: list[float] = []
    returned: list[float] = []
    early = lost = 0
    try:
        for index, (mac, ip) in enumerate(clients):
            sender.stdin.write(f"{index} {mac} {ip}\n")
            sender.stdin.flush()
            assert sender.stdout.readline().strip() == f"ok {index}"
            # Let refused frames flow first: the gate is shut before check-in.
            time.sleep(args.before)
            t0 = time.time()
            check_in(ip, f"bench{index}@bench.example", "pw")
            returned.append(time.time() - t0)
            arrival = receiver.wait(index, 2.0)
            if arrival is None:
                lost += 1
            elif arrival < t0:
                early += 1  # forwarded before check-in: the gate was open
            else:
                first.append(arrival - t0)
        sender.stdin.write("idle\n")
        sender.stdin.flush()
    finally:
        sender.stdin.close()
        sender.wait(5)
        receiver.close()
        if server is not None:
            server.stop()
    return {"via": args.via, "proposed": args.proposed, "check_ins": len(clients),
            "forwarded_before_check_in": early,
            "never_forwarded": lost, "first_packet": summary_ms(first),
            "call_returned": summary_ms(returned), "send_interval_ms": args.interval * 1000,
            "breakdown": breakdown()}


# --- one interim round over N sessions ----------------------------------------


def interim(args: argparse.Namespace) -> dict[str, Any]:
    clients = bulk_clients(args.count, first=20_000, mac_prefix=0xC0)
    # The shipped allow() and IP -> MAC lookup slow down as the sets and the
    # neighbour table grow: 5,000 check-ins through them take minutes. The
    # set-up takes the proposed allow() and a table of who is who; the round
    # measured below (sweep) is the shipped code.
    gateway, clock, spool = build(args.state, proposed=True)
    gateway.clients = KnownClients(gateway.config.lan_if, list, dict((ip, mac)
                                                                   for mac, ip in clients))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda c: gateway.check_in(c[1], f"u{c[1]}@bench.example", "pw"),
                      clients))
    setup = time.perf_counter() - start
    assert len(gateway.sessions()) == args.count, "not every check-in opened a session"
    TIMES.clear()
    rounds = {}
    for name, advance in (("nothing due", 0.0), ("every interim due", 301.0)):
        clock.offset += advance
        queued = spool.pending()
        cpu, children, wall = time.process_time(), os.times(), time.perf_counter()
        gateway.sweep()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        after = os.times()
        child_cpu = (after.children_user - children.children_user
                     + after.children_system - children.children_system)
        rounds[name] = {"wall_s": wall, "cpu_s": cpu, "nft_cpu_s": child_cpu,
                        "records_spooled": spool.pending() - queued,
                        "breakdown": breakdown()}
        TIMES.clear()
    return {"sessions": args.count, "setup_s": setup, "setup_workers": args.workers,
            "rounds": rounds}


# --- check-ins through the control socket -------------------------------------


def _drive(client: ControlClient, targets: Sequence[tuple[str, str]], rate: float | None,
           workers: int) -> dict[str, Any]:
    """Check each target in; paced at ``rate``/s, or as fast as ``workers`` go."""
    took: list[float] = []
    failed: list[str] = []
    cpu, children = time.process_time(), os.times()
    start = time.perf_counter()

    def one(item: tuple[int, tuple[str, str]]) -> None:
        index, (_mac, ip) = item
        if rate:
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        try:
            client.check_in(ip, f"c{ip}@bench.example", "pw")
        except (ControlError, OSError) as exc:
            failed.append(f"{ip}: {exc}")
            return
        took.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(targets)))
    elapsed = time.perf_counter() - start
    after = os.times()
    return {"workers": workers, "rate": rate, "check_ins": len(targets), "ok": len(took),
            "failed_count": len(failed), "failed": failed[:3],
            # The caller (portal stand-in) runs in this process too.
            "process_cpu_s": time.process_time() - cpu,
            "children_cpu_s": after.children_user - children.children_user
            + after.children_system - children.children_system,
            "elapsed_s": elapsed, "rate_per_s": len(took) / elapsed,
            "latency": summary_ms(took) if took else None}


def control(args: argparse.Namespace) -> dict[str, Any]:
    """Four runs, each on a fresh box (table, state) with ``count`` clients of
    its own in the neighbour table: paced at ``rate``/s, then as fast as
    ``workers`` concurrent callers go; the shipped code, then the proposals
    (create-first allow, /proc/net/arp, listen backlog 128)."""
    runs = [("paced", args.rate, False), ("burst", None, False),
            ("paced + proposals", args.rate, True), ("burst + proposals", None, True)]
    # The LAN reaches the bulk range so that the neighbour entries are on-link.
    subprocess.run(["ip", "addr", "replace", "198.18.0.1/15", "dev", "lan"], check=True)
    out: dict[str, Any] = {"runs": {}}
    for n, (name, rate, proposed) in enumerate(runs):
        targets = bulk_clients(args.count, first=40_000 + 10_000 * n, mac_prefix=0xD0 + n)
        subprocess.run(["ip", "neigh", "flush", "dev", "lan", "nud", "permanent"], check=True)
        neighbours(targets)
        state = args.state / f"run{n}"
        gateway, _clock, _spool = build(state, proposed=proposed)
        firewall = gateway.firewall
        assert isinstance(firewall, Firewall)
        firewall.remove()
        firewall.apply()
        TIMES.clear()
        kind = DeepBacklogServer if proposed else ControlServer
        server = kind(state / "control.sock", _Portal(gateway))
        server.start()
        try:
            got = _drive(ControlClient(state / "control.sock", timeout=30), targets, rate,
                         args.workers)
        finally:
            server.stop()
        got["breakdown"] = breakdown()
        got["sessions_open"] = len(gateway.sessions())
        out["runs"][name] = got
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--count", type=int, default=200)
    lat.add_argument("--client-ns", required=True)
    lat.add_argument("--up-ns", required=True)
    lat.add_argument("--upstream", default="192.0.2.80")
    lat.add_argument("--interval", type=float, default=0.0002)
    lat.add_argument("--before", type=float, default=0.005)
    lat.add_argument("--via", choices=("direct", "control"), default="direct")
    lat.add_argument("--proposed", action="store_true",
                     help="with the proposals (CreateFirstFirewall, ProcArpClients)")
    itr = sub.add_parser("interim")
    itr.add_argument("--count", type=int, default=5000)
    itr.add_argument("--workers", type=int, default=4)
    ctl = sub.add_parser("control")
    ctl.add_argument("--count", type=int, default=500)
    ctl.add_argument("--rate", type=float, default=50.0)
    ctl.add_argument("--workers", type=int, default=16)
    for p in (lat, itr, ctl):
        p.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    if args.state is None:
        args.state = Path(tempfile.mkdtemp(prefix="psl-gwbench-", dir="/var/tmp"))
    logging.basicConfig(filename=str(args.state / "inbox.log"), level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = {"latency": latency, "interim": interim, "control": control}[args.mode](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
