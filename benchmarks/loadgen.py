"""The load generator: runs in its own process, prints one JSON line.

It builds every datagram before the clock starts (distinct Request
Authenticators, so no request is a retransmission in the server's duplicate
cache), then keeps a window of requests outstanding over several UDP
sockets for a fixed duration and times each request from its send to the
reply with the same Identifier on the same socket.

Given the server's processes (``--server-pids``, roots of process trees) and
PostgreSQL's (``--db-pid``), it also reports the CPU they used, and the
machine's idle and stolen shares, over the measured window only: not while
it builds the datagrams, nor during the ramp.

    python -m benchmarks.loadgen --kind auth --port 1812 --people 1000 --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import sys
import time
from dataclasses import dataclass, field

from . import packets, procstat

PASSWORD = "bench-password"
NAS_ID = "bench-gw"
NAS_IP = "127.0.0.1"


def login(i: int) -> str:
    return f"user{i:06d}@bench.example"


def session_class(i: int) -> str:
    """The Class person ``i``'s sessions carry (world.py issues a Wi-Fi key
    with it, as an Access-Accept would)."""
    return f"psl1:bench{i:06d}"


def mac(i: int) -> str:
    return "02-00-" + "-".join(f"{(i >> s) & 0xFF:02X}" for s in (24, 16, 8, 0))


@dataclass
class Stats:
    answered: int = 0  # replies to requests sent inside the measured window
    good: int = 0  # Access-Accept or Accounting-Response with a valid authenticator
    rejected: int = 0
    bad: int = 0  # wrong Response Authenticator or unexpected code
    lost: int = 0  # no reply within the timeout
    late: int = 0  # a reply for an Identifier no longer outstanding
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """The CPU counters the window's figures come from, read at one instant."""
    server: float  # CPU seconds of the watched server process trees
    db: float  # of PostgreSQL's tree; 0 when not watched
    machine: tuple[int, int, int]  # procstat.machine_times()
    own: float  # this process's CPU seconds


def read_cpu(server_pids: list[int], db_pid: int | None) -> Reading:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # tree_cpu walks /proc (a few ms): only for what is watched.
    return Reading(server=procstat.tree_cpu(server_pids) if server_pids else 0.0,
                   db=procstat.tree_cpu([db_pid]) if db_pid else 0.0,
                   machine=procstat.machine_times(),
                   own=usage.ru_utime + usage.ru_stime)


def cpu_figures(start: Reading, end: Reading) -> dict[str, float]:
    """The CPU used between two readings, and the machine's idle and
    stolen shares of that time."""
    idle, steal = procstat.shares(start.machine, end.machine)
    return {"server_cpu_seconds": round(end.server - start.server, 3),
            "db_cpu_seconds": round(end.db - start.db, 3),
            "idle": round(idle, 4), "steal": round(steal, 4),
            "loadgen_cpu_seconds": round(end.own - start.own, 2)}


def auth_pool(sock_index: int, nsock: int, size: int, people: int, secret: bytes,
              once: bool) -> list[bytes]:
    # Person i always uses socket i % nsock: like a site, each person comes
    # from one source address, so one server worker holds their cached check.
    mine = list(range(sock_index, people, nsock))
    if not mine:
        return []
    count = len(mine) if once else size
    return [packets.access_request(k % 256, secret, login(mine[k % len(mine)]), PASSWORD,
                                   NAS_IP, NAS_ID, mac(mine[k % len(mine)]))
            for k in range(count)]


def acct_pool(sock_index: int, size: int, people: int, secret: bytes, run_id: str,
              lag: int) -> list[bytes]:
    """Start, Interim-Update, Stop of distinct sessions; a session's next
    record comes ``lag`` sessions later, when its previous one is answered."""
    sessions = max(1, size // 3)
    now = int(time.time())
    out: list[bytes] = []
    for i in range(sessions + 2 * lag):
        for status, j in ((packets.START, i), (packets.INTERIM, i - lag),
                          (packets.STOP, i - 2 * lag)):
            if not 0 <= j < sessions:
                continue
            person = (sock_index * 7919 + j) % people
            elapsed = {packets.START: 0, packets.INTERIM: 300, packets.STOP: 600}[status]
            out.append(packets.accounting_request(
                len(out) % 256, secret, status=status,
                session_id=f"{run_id}-{sock_index}-{j}", login=login(person),
                nas_ip=NAS_IP, nas_id=NAS_ID, calling=mac(person),
                framed_ip=f"198.51.100.{1 + person % 250}", session_time=elapsed,
                octets_in=elapsed * 1000, octets_out=elapsed * 5000,
                event_time=now + elapsed, class_=session_class(person).encode()))
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    secret = args.secret.encode()
    nsock = args.sockets
    per_socket = max(1, min(255, args.window // nsock))
    size = max(1, int(args.max_rate * args.duration / nsock) + 1)
    run_id = os.urandom(4).hex()
    t0 = time.perf_counter()
    if args.kind == "auth":
        pools = [auth_pool(s, nsock, size, args.people, secret, args.once) for s in range(nsock)]
        ok_code = packets.ACCESS_ACCEPT
    else:
        pools = [acct_pool(s, size, args.people, secret, run_id, lag=per_socket + 10)
                 for s in range(nsock)]
        ok_code = packets.ACCOUNTING_RESPONSE
    build_time = time.perf_counter() - t0

    socks = []
    poller = select.epoll()
    for i in range(nsock):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if args.source_port:
            sock.bind(("127.0.0.1", args.source_port + i))
        sock.connect((args.host, args.port))
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
        socks.append(sock)
    index = {sock.fileno(): i for i, sock in enumerate(socks)}
    outstanding: list[dict[int, tuple[float, bytes]]] = [{} for _ in socks]
    cursor = [0] * nsock
    stats = Stats()
    window_start: Reading | None = None
    start = time.perf_counter()
    measure_from = start + (0 if args.once else args.ramp)
    deadline = start + args.duration
    next_expiry = start + 0.1
    exhausted = False
    perf = time.perf_counter
    while True:
        now = perf()
        if now >= deadline:
            break
        if window_start is None and now >= measure_from:
            window_start = read_cpu(args.server_pids, args.db_pid)
        for s in range(nsock):
            out, pool, sock = outstanding[s], pools[s], socks[s]
            while len(out) < per_socket and cursor[s] < len(pool):
                data = pool[cursor[s]]
                if data[1] in out:
                    break  # this Identifier is still in flight on this socket
                try:
                    sock.send(data)
                except BlockingIOError:
                    break
                out[data[1]] = (perf(), data[4:20])
                cursor[s] += 1
        if not any(outstanding) and all(c >= len(p) for c, p in zip(cursor, pools, strict=True)):
            exhausted = True
            break
        for fd, _ in poller.poll(0.02):
            s = index[fd]
            out, sock = outstanding[s], socks[s]
            while True:
                try:
                    reply = sock.recv(4096)
                except BlockingIOError:
                    break
                if len(reply) < 20:
                    stats.bad += 1
                    continue
                entry = out.pop(reply[1], None)
                t = perf()
                if entry is None:
                    stats.late += 1
                    continue
                sent, authenticator = entry
                if sent < measure_from or t > deadline:
                    continue
                stats.answered += 1
                stats.latencies.append(t - sent)
                if not packets.reply_ok(reply, authenticator, secret):
                    stats.bad += 1
                elif reply[0] == ok_code:
                    stats.good += 1
                elif reply[0] == packets.ACCESS_REJECT:
                    stats.rejected += 1
                else:
                    stats.bad += 1
        if now >= next_expiry:
            next_expiry = now + 0.1
            limit = now - args.timeout
            for out in outstanding:
                for ident in [i for i, (sent, _) in out.items() if sent < limit]:
                    del out[ident]
                    stats.lost += 1
    end = perf()
    window_end = read_cpu(args.server_pids, args.db_pid)
    # A window that never started (the pool ran out, or the deadline came,
    # within the ramp) used nothing.
    cpu = cpu_figures(window_start or window_end, window_end)
    window = (end if exhausted else deadline) - measure_from
    lat = sorted(stats.latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    return {
        "kind": args.kind, "port": args.port, "window": per_socket * nsock,
        "sockets": nsock, "seconds": round(window, 3), "answered": stats.answered,
        "good": stats.good, "rejected": stats.rejected, "bad": stats.bad,
        "lost": stats.lost, "late": stats.late,
        "rate": round(stats.answered / window, 1) if window > 0 else 0.0,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        "pool_exhausted": exhausted and not args.once,
        "build_seconds": round(build_time, 2),
        **cpu,
    }


def pid_list(text: str) -> list[int]:
    """``123,456`` as pids."""
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=("auth", "acct"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--secret", default="s3cret-for-tests")
    p.add_argument("--people", type=int, default=1000)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    p.add_argument("--ramp", type=float, default=1.0,
                   help="first seconds not measured (the server warms up its statements)")
    p.add_argument("--window", type=int, default=256, help="requests outstanding in all")
    p.add_argument("--sockets", type=int, default=16, help="UDP source ports")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds before a request is lost")
    p.add_argument("--max-rate", type=float, default=15000.0,
                   help="requests/s the pre-built pool can feed for the whole duration")
    p.add_argument("--source-port", type=int, default=0,
                   help="bind the sockets to this port and the next ones (default: any); "
                        "the server's SO_REUSEPORT then sends a person to the same worker "
                        "in every run, where their password check is cached")
    p.add_argument("--once", action="store_true",
                   help="auth only: one request per person, then stop (cache warm-up)")
    p.add_argument("--server-pids", type=pid_list, default=[],
                   help="comma-separated roots of the server's process trees: report "
                        "their CPU over the measured window (server_cpu_seconds)")
    p.add_argument("--db-pid", type=int, default=None,
                   help="PostgreSQL's postmaster: report its tree's CPU over the "
                        "measured window (db_cpu_seconds)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.people < 1 or args.sockets < 1 or args.window < 1 or args.duration <= 0:
        print("loadgen: --people, --sockets, --window and --duration must be positive",
              file=sys.stderr)
        return 2
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
