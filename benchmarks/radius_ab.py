"""Passerelle's RADIUS server against itself: does a change make it faster?

    .venv/bin/python -m benchmarks.radius_ab [--pairs 4] [--duration 12]
        [--b-checkout DIR] [--b-sql SQL ...] [--b-workers N] [--kind acct]

Two servers, A (this checkout) and B, each on its own database of one
throwaway durable PostgreSQL cluster, measured in turn (A B, B A, A B, ...)
with radius_bench's load generator and vacuum. On a shared machine the speed
of the host moves by several per cent between runs minutes apart, more than
most single changes gain; measurements that alternate within one run put
that drift on both sides, which separate runs of radius_bench do not.

B differs from A by any of: ``--b-checkout DIR``, another checkout with its
own ``.venv`` (its server, and its database seeded by its own code and
migrations); ``--b-sql``, statements run on B's database after seeding (an
index, a table setting); ``--b-workers``; ``--b-db-threads``. Prints each
measurement, then the median requests/s of each and the ratio B/A. See
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from . import procstat, radius_bench, world

ROOT = Path(__file__).resolve().parent.parent


def _seed(url: str, people: int, checkout: Path | None) -> None:
    if checkout is None:
        world.seed_passerelle(url, people, radius_bench.SECRET)
        return
    code = ("import sys; from benchmarks import world; "
            "world.seed_passerelle(sys.argv[1], int(sys.argv[2]), sys.argv[3])")
    subprocess.run([str(checkout / ".venv/bin/python"), "-c", code, url, str(people),
                    radius_bench.SECRET], cwd=checkout, check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=4, help="measurements of each server")
    p.add_argument("--duration", type=float, default=12.0, help="seconds per measurement")
    p.add_argument("--kind", choices=("auth", "acct"), default="acct")
    radius_bench.load_options(p)
    # Enough datagrams for a faster server than radius_bench expects: a
    # change may make it so.
    p.set_defaults(max_rate=20000.0)
    p.add_argument("--b-checkout", type=Path, help="B runs this checkout (with its .venv)")
    p.add_argument("--b-sql", action="append", default=[],
                   help="a statement run on B's database after seeding (repeatable)")
    p.add_argument("--b-workers", type=int, help="B's worker processes (default --workers)")
    p.add_argument("--b-db-threads", type=int,
                   help="B's batches at the database per worker (default the server's)")
    args = p.parse_args(argv)
    args.vacuum = True  # what radius_bench.measure reads
    checkout = args.b_checkout.resolve() if args.b_checkout else None
    if checkout is not None and not (checkout / ".venv/bin/passerelle").exists():
        p.error(f"{checkout} has no .venv/bin/passerelle")

    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster

    cluster = Cluster(durable=True)
    tmp = Path(tempfile.mkdtemp(prefix="passerelle-ab-"))
    # Both servers and both seedings unseal the gateway's secret with this key.
    os.environ["PASSERELLE_KEY_FILE"] = str(tmp / "server.key")
    servers = {}
    try:
        base = cluster.start()
        db_pid = procstat.postmaster_pid(cluster.dir / "data")
        urls = {name: world.create_database(base, f"passerelle_ab_{name.lower()}")
                for name in ("A", "B")}
        _seed(urls["A"], args.people, None)
        _seed(urls["B"], args.people, checkout)
        with psycopg.connect(urls["B"].replace("+psycopg", ""), autocommit=True) as conn:
            for statement in args.b_sql:
                conn.execute(statement.encode())
        for name in ("A", "B"):
            b = name == "B"
            binary = checkout / ".venv/bin/passerelle" if b and checkout else None
            proc, auth_port, acct_port = radius_bench.start_passerelle(
                urls[name], (args.b_workers or args.workers) if b else args.workers, tmp,
                args.b_db_threads if b else None, binary=binary)
            servers[name] = (proc, auth_port if args.kind == "auth" else acct_port)
        if args.kind == "auth":
            for _proc, port in servers.values():
                # Each worker's password cache, as radius_bench's warm-up.
                radius_bench.loadgen(args, "auth", port, "--once", "--timeout", "120",
                                     "--duration", "600", "--source-port",
                                     str(args.source_port))
        rates: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(args.pairs):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                proc, port = servers[name]
                run = radius_bench.measure(args, name, args.kind, port,
                                           functools.partial(list, [proc.pid]), db_pid,
                                           tuple(urls.values()))
                rates[name].append(float(run.result["rate"]))  # type: ignore[arg-type]
    finally:
        for proc, _ in servers.values():
            radius_bench.stop(proc)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    median = {n: statistics.median(rates[n]) for n in ("A", "B")}
    for n in ("A", "B"):
        print(f"{n} median {median[n]:.0f} req/s {rates[n]}")
    print(f"{args.kind}: ratio B/A {median['B'] / median['A']:.3f}" if median["A"]
          else f"{args.kind}: A answered nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
