"""Passerelle's RADIUS server against FreeRADIUS 3 + rlm_sql, on one
durable PostgreSQL, on this machine.

    .venv/bin/python -m benchmarks.radius_bench [--duration 20] [--people 1000]
                                                [--pg postgresql://user@host/db]

Starts a throwaway PostgreSQL cluster with production's durability
(``fsync`` and ``synchronous_commit`` on: a commit waits for the disk;
``--fast-pg`` for one that does not), or uses ``--pg URL``, a server where
it may create two databases. Seeds the same people in Passerelle's schema
and in FreeRADIUS's, then for each server: authentication (PAP) and
accounting (Start/Interim/Stop of distinct sessions) from a load generator
in a separate process (benchmarks/loadgen.py); both databases are
vacuumed before each measurement (``--no-vacuum``: not). Prints requests/s,
p50 and p99 latency, lost requests, the CPU each part used in the measured
window, and the ratios Passerelle/FreeRADIUS. See docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from . import freeradius, procstat, world

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"
LOST_AFTER = 2.0  # seconds: the load generator's default timeout
INCONCLUSIVE_RETRIES = 2


@dataclass
class Run:
    """One measurement. The CPU figures cover the measured window only (the
    load generator reads them when it starts and ends), not the building of
    its datagrams nor the ramp."""
    server: str
    kind: str
    result: dict[str, object]
    server_cpu: float  # CPU seconds of the server's processes in the window
    db_cpu: float  # of PostgreSQL's, 0 when not measured
    load: tuple[float, float, float]
    duration: float  # seconds of the measured window
    idle: float = 0.0  # shares of the machine's CPU time in the window
    steal: float = 0.0
    # PostgreSQL's checkpoints started and full-page images written to the
    # WAL during the load generator's run (the whole server's).
    checkpoints: int = 0
    full_pages: int = 0
    # Autovacuum and autoanalyze runs that finished in the window, on the
    # tables of both servers' databases.
    autovacuums: int = 0

    def answered(self) -> int:
        return int(self.result["answered"])  # type: ignore[call-overload]

    def per_core(self, cpu: float) -> float:
        """``cpu`` seconds as a share of one CPU over the window."""
        return cpu / self.duration if self.duration > 0 else 0.0

    def cpu_per_request_us(self) -> float:
        """Server and PostgreSQL CPU per request answered in the window."""
        answered = self.answered()
        return (self.server_cpu + self.db_cpu) / answered * 1e6 if answered else 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadgen(args: argparse.Namespace, kind: str, port: int, *extra: str) -> dict[str, object]:
    """One run of the load generator; ``extra`` options override ``args``."""
    cmd = [sys.executable, "-m", "benchmarks.loadgen", "--kind", kind, "--port", str(port),
           "--secret", SECRET, "--people", str(args.people), "--duration", str(args.duration),
           "--window", str(args.window), "--sockets", str(args.sockets),
           "--max-rate", str(args.max_rate), "--ramp", str(args.ramp), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wal_counts(url: str) -> tuple[int, int]:
    """(checkpoints started, full-page images written) by the PostgreSQL
    server of ``url`` so far: a checkpoint makes the next change of each
    page write the whole page to the WAL, which a commit then waits for."""
    return (count(url, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"),
            count(url, "SELECT wal_fpi FROM pg_stat_wal"))


def measure(args: argparse.Namespace, name: str, kind: str, port: int,
            server_pids: Callable[[], list[int]], db_pid: int | None,
            databases: tuple[str, ...] = ()) -> Run:
    """One measurement; ``databases`` are both servers' (on one PostgreSQL
    server): vacuumed before it unless ``--no-vacuum``, and watched."""
    duration = args.duration
    for _ in range(INCONCLUSIVE_RETRIES):
        run = _measure_once(args, name, kind, port, server_pids, db_pid, duration, databases)
        if run.answered() or int(run.result["lost"]):  # type: ignore[call-overload]
            return run
        # No reply and none timed out yet: the window ended before the
        # server's first reply (a cold server on a loaded machine, or a
        # window shorter than the timeout). That says nothing; a server that
        # never answers shows as lost requests in a window this long.
        duration = max(duration, 2 * LOST_AFTER + args.ramp)
        print(f"  {name:<11} {kind:<5} counted nothing (no reply, none timed out yet): "
              f"measuring again for {duration:g} s", flush=True)
    return _measure_once(args, name, kind, port, server_pids, db_pid, duration, databases)


def _measure_once(args: argparse.Namespace, name: str, kind: str, port: int,
                  server_pids: Callable[[], list[int]], db_pid: int | None,
                  duration: float, databases: tuple[str, ...] = ()) -> Run:
    # The load generator reads the CPU figures itself when the measured
    # window starts and ends: read from here, they would include its
    # building of the datagrams (a CPU idle) and the ramp.
    pids = server_pids()
    watch = [*(["--server-pids", ",".join(map(str, pids))] if pids else []),
             *(["--db-pid", str(db_pid)] if db_pid else [])]
    if args.vacuum:
        # Each window starts without the vacuum debt of the windows before
        # it, whichever server made it: autovacuum wakes once a minute, and
        # its 1-3 s of VACUUM ANALYZE of a big table would otherwise land in
        # whichever window runs then. The window's own writes may still wake
        # it, as in production.
        for url in databases:
            world.vacuum(url)
    stats_url = databases[0] if databases else None
    wal0 = wal_counts(stats_url) if stats_url else (0, 0)
    maintenance0 = sum(world.maintenance_runs(url) for url in databases)
    result = loadgen(args, kind, port, "--source-port", str(args.source_port),
                     "--duration", str(duration), *watch)
    wal1 = wal_counts(stats_url) if stats_url else (0, 0)
    maintenance = sum(world.maintenance_runs(url) for url in databases) - maintenance0
    load = os.getloadavg()
    idle, steal = _number(result, "idle"), _number(result, "steal")
    run = Run(name, kind, result, _number(result, "server_cpu_seconds"),
              _number(result, "db_cpu_seconds"), load, _number(result, "seconds"), idle, steal,
              wal1[0] - wal0[0], wal1[1] - wal0[1], maintenance)
    print(f"  {name:<11} {kind:<5} {result['rate']:>9} req/s  p50 {result['p50_ms']} ms  "
          f"p99 {result['p99_ms']} ms  lost {result['lost']}  not-ok "
          f"{int(result['answered']) - int(result['good'])}  (load {load[0]:.2f}, "  # type: ignore[call-overload]
          f"CPU idle {idle:.0%}, stolen by the host {steal:.0%}"
          + (f", checkpoints {run.checkpoints}, WAL full pages {run.full_pages}, "
             f"autovacuum/analyze runs {run.autovacuums}" if stats_url else "") + ")",
          flush=True)
    return run


def _number(result: dict[str, object], key: str) -> float:
    return float(result[key])  # type: ignore[arg-type]


def start_passerelle(url: str, workers: int, tmp: Path, db_threads: int | None = None,
                     binary: Path | None = None) -> tuple[subprocess.Popen[str], int, int]:
    """Passerelle's server on ``url`` (``binary``: another checkout's CLI)."""
    binary = binary or Path(sys.executable).parent / "passerelle"
    log = (tmp / "passerelle.log").open("w")
    env = {**os.environ, "PASSERELLE_KEY_FILE": str(tmp / "server.key")}  # as seeded
    proc = subprocess.Popen(
        [str(binary), "radius", "serve", "--db", url, "--listen", "127.0.0.1",
         "--auth-port", "0", "--acct-port", "0", "--workers", str(workers),
         *(["--db-threads", str(db_threads)] if db_threads else [])],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    log.close()
    assert proc.stdout is not None
    match = re.search(r"auth (\d+) acct (\d+)", proc.stdout.readline())
    if not match:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"passerelle did not start:\n{(tmp / 'passerelle.log').read_text()}")
    return proc, int(match.group(1)), int(match.group(2))


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def count(url: str, sql: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def bench(args: argparse.Namespace, base_url: str, db_pid: int | None) -> list[Run]:
    # Names of this run's own: another benchmark may use the same server.
    ours_url = world.create_database(base_url, f"passerelle_bench_{os.getpid()}")
    fr_url = world.create_database(base_url, f"freeradius_bench_{os.getpid()}")
    try:
        return _bench(args, ours_url, fr_url, db_pid)
    finally:
        world.drop_database(ours_url)
        world.drop_database(fr_url)


def _bench(args: argparse.Namespace, ours_url: str, fr_url: str,
           db_pid: int | None) -> list[Run]:
    tmp = Path(tempfile.mkdtemp(prefix="passerelle-bench-"))
    # The gateway's secret is sealed at rest with the server key: seeding
    # and the server must use the same one.
    os.environ["PASSERELLE_KEY_FILE"] = str(tmp / "server.key")
    t = time.monotonic()
    world.seed_passerelle(ours_url, args.people, SECRET)
    world.seed_freeradius(fr_url, args.people)
    print(f"seeded {args.people} people in both databases in {time.monotonic() - t:.1f} s",
          flush=True)
    runs: list[Run] = []
    # Both servers run side by side (an idle one costs nothing) and the
    # measurements alternate, so a change of load from other jobs on the
    # machine falls on both rather than on one.
    ports: dict[str, tuple[int, int, Callable[[], list[int]]]] = {}
    proc = None
    fr = None
    try:
        if "passerelle" in args.servers:
            proc, auth_port, acct_port = start_passerelle(ours_url, args.workers, tmp,
                                                          args.db_threads)
            ours = proc
            ports["passerelle"] = (auth_port, acct_port, lambda: [ours.pid])
            t = time.monotonic()
            # argon2 takes 16 ms a check: a big first batch needs a long timeout.
            warm = loadgen(args, "auth", auth_port, "--once", "--timeout", "120",
                           "--duration", "600", "--source-port", str(args.source_port))
            print(f"passerelle: warm-up, one argon2 check per person: {warm['good']} "
                  f"accepts in {time.monotonic() - t:.1f} s", flush=True)
        if "freeradius" in args.servers:
            fr = freeradius.start(fr_url, SECRET, free_port(), free_port())
            ports["freeradius"] = (fr.auth_port, fr.acct_port, fr.pids)
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for kind in ("auth", "acct"):
                if kind not in args.kinds:
                    continue
                for name, (auth_port, acct_port, pids) in ports.items():
                    port = auth_port if kind == "auth" else acct_port
                    runs.append(measure(args, name, kind, port, pids, db_pid,
                                        (ours_url, fr_url)))
    finally:
        if proc is not None:
            stop(proc)
        if fr is not None:
            fr.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if "passerelle" in ports:
        print(f"passerelle wrote {count(ours_url, 'SELECT count(*) FROM radpostauth')} "
              f"auth log rows, {count(ours_url, 'SELECT count(*) FROM radacct')} sessions, "
              f"{count(ours_url, 'SELECT count(*) FROM credit_entry')} ledger lines, "
              f"{count(ours_url, 'SELECT count(*) FROM wifi_key WHERE revoked IS NOT NULL')} "
              "keys revoked", flush=True)
    if "freeradius" in ports:
        print(f"freeradius wrote {count(fr_url, 'SELECT count(*) FROM radpostauth')} "
              f"postauth rows, {count(fr_url, 'SELECT count(*) FROM radacct')} sessions",
              flush=True)
    return runs


def table(runs: list[Run]) -> str:
    # av: autovacuum and autoanalyze runs that finished in the window.
    # CPU per request (server + database) is the figure that other jobs on
    # the machine disturb least: a starved server answers fewer requests/s
    # but spends about the same CPU on each.
    lines = [f"{'server':<11} {'kind':<5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'lost':>6} {'av':>3} {'server':>7} {'db':>6} {'gen':>6} {'us cpu/req':>10}"]
    # Every CPU figure covers the measured window only: per core over its
    # seconds, per request over the requests it counted.
    for r in runs:
        res = r.result
        rate = _number(res, "rate")
        gen = _number(res, "loadgen_cpu_seconds")
        lines.append(
            f"{r.server:<11} {r.kind:<5} {rate:>9.0f} {res['p50_ms']!s:>8} "
            f"{res['p99_ms']!s:>8} {res['lost']:>6} {r.autovacuums:>3} "
            f"{r.per_core(r.server_cpu):>6.2f}c {r.per_core(r.db_cpu):>5.2f}c "
            f"{r.per_core(gen):>5.2f}c {r.cpu_per_request_us():>10.0f}")
    lines.extend(ratios(runs))
    return "\n".join(lines)


def ratios(runs: list[Run]) -> list[str]:
    """Per kind: the ratio of the median requests/s, the lost requests and
    the median p99 of both servers; with more than one round, each round's
    ratio too (its two measurements, in the order they ran), for the spread."""
    out = []
    for kind in ("auth", "acct"):
        ours = [r.result for r in runs if r.server == "passerelle" and r.kind == kind]
        theirs = [r.result for r in runs if r.server == "freeradius" and r.kind == kind]
        if not ours or not theirs:
            continue
        rate = [statistics.median(float(x["rate"]) for x in side)  # type: ignore[arg-type]
                for side in (ours, theirs)]
        lost = [sum(int(x["lost"]) for x in side) for side in (ours, theirs)]  # type: ignore[call-overload]
        p99 = [statistics.median(float(x["p99_ms"] or 0) for x in side)  # type: ignore[arg-type]
               for side in (ours, theirs)]
        ratio = f"{rate[0] / rate[1]:.2f}" if rate[1] > 0 else "-"
        rounds = [float(a["rate"]) / float(b["rate"])  # type: ignore[arg-type]
                  for a, b in zip(ours, theirs, strict=False) if float(b["rate"]) > 0]  # type: ignore[arg-type]
        by_round = (f"; by round {', '.join(f'{r:.2f}' for r in rounds)}"
                    if len(rounds) > 1 else "")
        out.append(f"{kind}: ratio passerelle/freeradius {ratio} (median requests/s "
                   f"{rate[0]:.0f} / {rate[1]:.0f} over {len(ours)} run(s)){by_round}; lost "
                   f"{lost[0]} / {lost[1]}; p99 {p99[0]:.1f} / {p99[1]:.1f} ms")
    return out


def load_options(p: argparse.ArgumentParser) -> None:
    """The options of the load and of Passerelle's workers that ``measure``
    and ``loadgen`` read (radius_ab.py takes them too)."""
    p.add_argument("--people", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="passerelle worker processes")
    p.add_argument("--window", type=int, default=256, help="requests outstanding")
    p.add_argument("--sockets", type=int, default=16, help="load generator source ports")
    p.add_argument("--max-rate", type=float, default=15000.0,
                   help="requests/s the load generator's pre-built datagrams can feed "
                        "for the whole measurement")
    p.add_argument("--source-port", type=int, default=47100,
                   help="first of the --sockets fixed source ports of the load generator "
                        "(a person is then served by the same worker in every measurement, "
                        "where their password check is cached)")
    p.add_argument("--ramp", type=float, default=1.0,
                   help="first seconds of each measurement not counted")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", help="PostgreSQL URL to use instead of a throwaway cluster "
                   "(postgresql://user@host[:port]/db)")
    p.add_argument("--fast-pg", action="store_true",
                   help="the throwaway cluster without fsync and synchronous_commit "
                        "(commits do not wait for the disk: not what production runs)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    p.add_argument("--db-threads", type=int,
                   help="passerelle's batches at the database per worker (default: its own)")
    load_options(p)
    p.add_argument("--rounds", type=int, default=1,
                   help="measurements of each server and kind, alternating")
    p.add_argument("--servers", default="passerelle,freeradius")
    p.add_argument("--kinds", default="auth,acct")
    p.add_argument("--no-vacuum", dest="vacuum", action="store_false",
                   help="do not VACUUM ANALYZE both databases before each measurement")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"{args.duration:g} s per measurement, window {args.window}, {args.people} people",
          flush=True)
    cluster = None
    db_pid = None
    if args.pg:
        url = args.pg
    else:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster(durable=not args.fast_pg)
        url = cluster.start()
        db_pid = procstat.postmaster_pid(cluster.dir / "data")
    try:
        settings = world.durability(url)
        print("PostgreSQL " + ", ".join(f"{k}={v}" for k, v in settings.items())
              + ("" if settings["fsync"] == settings["synchronous_commit"] == "on"
                 else " (NOT durable: commits do not wait for the disk)"), flush=True)
        runs = bench(args, url, db_pid)
    finally:
        if cluster is not None:
            cluster.stop()
    print()
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    # A server that answered nothing well is broken, not slow.
    broken = [f"{r.server} {r.kind}" for r in runs if not int(r.result["good"])]  # type: ignore[call-overload]
    if broken:
        print(f"no good reply from: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
