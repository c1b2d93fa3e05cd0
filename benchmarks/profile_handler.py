"""Profile Handler.process in this process, without sockets.

    .venv/bin/python -m benchmarks.profile_handler [--kind auth|acct] [--batch 64]

Seeds a throwaway PostgreSQL cluster (durable, as radius_bench's; or
``--db URL``), feeds pre-built datagrams to the Handler in batches, prints
requests/s on one core and, with ``--profile``, the top of a cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

from passerelle.radius import db, server
from passerelle.radius.handler import ACCT, AUTH, Datagram, Handler

from . import loadgen, packets, procstat, world

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"


def datagrams(kind: str, count: int, people: int) -> list[Datagram]:
    secret = SECRET.encode()
    out = []
    if kind == "auth":
        for k in range(count):
            person = k % people
            data = packets.access_request(k % 256, secret, loadgen.login(person),
                                          loadgen.PASSWORD, loadgen.NAS_IP, loadgen.NAS_ID,
                                          loadgen.mac(person))
            out.append(Datagram(data, ("127.0.0.1", 40000 + person % 16), AUTH))
    else:
        pool = loadgen.acct_pool(0, count, people, secret, "prof", lag=300)
        out = [Datagram(d, ("127.0.0.1", 40000 + (i // 256) % 64), ACCT)
               for i, d in enumerate(pool)]
    return out


def hot_updates(url: str) -> str:
    """radacct's updates that were HOT (no new index entries), read once the
    handler's connections have closed and so reported their counts."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for _ in range(50):
                upd, hot = conn.execute(text(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                    " WHERE relname = 'radacct'")).one()
                if upd:
                    break
                time.sleep(0.1)
                conn.rollback()  # a new snapshot of the statistics
    finally:
        engine.dispose()
    return f"radacct: {upd} updates, {hot} of them HOT ({hot / max(upd, 1):.0%})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="an empty database URL (default: a throwaway PostgreSQL)")
    p.add_argument("--kind", choices=("auth", "acct"), default="auth")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--people", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--vary", action="store_true",
                   help="batches of random sizes up to --batch, as a loaded server sees them")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--fast-pg", action="store_true",
                   help="the throwaway cluster without fsync and synchronous_commit")
    args = p.parse_args(argv)
    cluster = None
    db_pid = None
    if args.db:
        url = args.db
    else:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster(durable=not args.fast_pg)
        url = world.create_database(cluster.start(), "passerelle_profile")
        db_pid = procstat.postmaster_pid(cluster.dir / "data")
    try:
        world.seed_passerelle(url, args.people, SECRET)
        engine = server.make_engine(url)
        handler = Handler(db.make_sessionmaker(engine, autoflush=False))
        if args.kind == "auth":
            # Fill the password cache first, as the benchmark's warm-up does.
            handler.process(datagrams("auth", args.people, args.people))
        work = datagrams(args.kind, args.count, args.people)
        rng = random.Random(1)
        batches = []
        i = 0
        while i < len(work):
            size = rng.randint(1, args.batch) if args.vary else args.batch
            batches.append(work[i:i + size])
            i += size
        # CPU time, not wall time: waiting for PostgreSQL is not this process's cost.
        prof = cProfile.Profile(time.thread_time) if args.profile else None
        start = time.perf_counter()
        cpu = time.process_time()
        db_cpu = procstat.tree_cpu([db_pid]) if db_pid else 0.0
        if prof:
            prof.enable()
        answered = 0
        for batch in batches:
            answered += len(handler.process(batch)[0])
        if prof:
            prof.disable()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        # PostgreSQL's own CPU for the same work (the throwaway cluster only).
        db_cpu = procstat.tree_cpu([db_pid]) - db_cpu if db_pid else 0.0
        # CPU per request is the figure to compare while other jobs load the machine.
        print(f"{args.kind}: {answered}/{len(work)} answered, "
              f"{len(work) / elapsed:.0f} requests/s in one process (batch {args.batch}), "
              f"{cpu / len(work) * 1e6:.0f} us of this process's CPU per request"
              + (f", {db_cpu / len(work) * 1e6:.0f} us of PostgreSQL's" if db_pid else ""))
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        engine.dispose()
        if engine.dialect.name == "postgresql":
            print(hot_updates(url))
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
