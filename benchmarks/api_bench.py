"""The partner API's session listing on PostgreSQL with many rows: keyset
paging (what /api/v1/sessions does) side by side with OFFSET paging (the
naive query), at several depths, and the whole endpoint through the app.

    python -m benchmarks.api_bench [--rows 10000000] [--limit 100] [--repeat 5]
                                   [--pg postgresql://user@host/db]

Without ``--pg`` it starts a throwaway PostgreSQL (tests/pg.py). The rows
are generated in the database (generate_series), spread over 1,000 people
of 20 companies at 10 sites, one session a minute from 2025-01-01.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from passerelle.portal.console.api import ops
from passerelle.portal.console.app import create_app
from passerelle.portal.console.scope import Scope
from passerelle.radius import db, tokens

from . import world

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 200.0  # the target for one page
START = datetime(2025, 1, 1)


def seed(factory: sessionmaker[Session], rows: int) -> str:
    """The network, the sessions, and a partner token (returned)."""
    with db.transaction(factory) as s:
        s.execute(text("INSERT INTO network (name) VALUES ('bench')"))
        s.execute(text(
            "INSERT INTO site (name, network_id, category, capacity, staffed, city, open_days,"
            " timezone) SELECT 'site ' || i, 1, 1, 50, true, '', '1234567', 'Europe/Brussels'"
            " FROM generate_series(1, 10) i"))
        s.execute(text(
            "INSERT INTO company (name, status, payment, categories, services, external_id)"
            " SELECT 'company ' || i, 'active', 'ok', '123', 'wifi', 'c' || i"
            " FROM generate_series(1, 20) i"))
        s.execute(text(
            "INSERT INTO person (login, name, company_id, password_hash, active, language,"
            " external_id) SELECT 'p' || i || '@bench.example', '', 1 + i % 20, 'x', true,"
            " 'fr', 'p' || i FROM generate_series(1, 1000) i"))
        _made, clear = tokens.add_token(s, "bench", "partner", START)
    with db.transaction(factory) as s:
        s.execute(text(
            "INSERT INTO radacct (acctsessionid, acctuniqueid, username, realm, nasipaddress,"
            " nasidentifier, nasportid, nasporttype, acctstarttime, acctupdatetime,"
            " acctstoptime, acctsessiontime, acctauthentic, connectinfo_start,"
            " connectinfo_stop, acctinputoctets, acctoutputoctets, calledstationid,"
            " callingstationid, acctterminatecause, servicetype, framedprotocol,"
            " framedipaddress, framedipv6address, class, person_id, site_id, charged)"
            " SELECT 's' || i, md5(i::text), 'p' || (1 + i % 1000) || '@bench.example', '',"
            " '198.51.100.' || (1 + i % 10), '', '', '', :start + i * interval '1 minute',"
            " NULL, :start + i * interval '1 minute' + interval '2 hours', 7200, '', '', '',"
            " i % 100000, i % 700000, '', '', 'User-Request', '', '', '', '', '',"
            " 1 + i % 1000, 1 + i % 10, 7200 FROM generate_series(1, :rows) i"),
            {"start": START, "rows": rows})
    with db.transaction(factory) as s:
        s.execute(text("ANALYZE"))
    return clear


def timed(run: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``run``, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench(url: str, rows: int, limit: int, repeat: int) -> list[str]:
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.make_sessionmaker(engine)
    started = time.perf_counter()
    token = seed(factory, rows)
    print(f"{rows:,} sessions generated in {time.perf_counter() - started:.1f} s", flush=True)
    app = create_app(factory)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    lines = ["| page at | keyset (ms) | OFFSET (ms) | OFFSET / keyset | API keyset page, "
             "whole call (ms) |", "|---|---:|---:|---:|---:|"]
    worst = 0.0
    for fraction in (0.0, 0.5, 0.99):
        depth = max(0, min(int(rows * fraction), rows - limit))  # a full page there
        wanted = ops.SessionFilter(after=depth, limit=limit)

        def keyset(wanted: ops.SessionFilter = wanted) -> object:
            with db.transaction(factory) as s:
                return s.execute(ops.sessions_query(s, Scope(), wanted)).all()

        def offset(depth: int = depth) -> object:
            with db.transaction(factory) as s:
                query = ops.sessions_query(s, Scope(), ops.SessionFilter(limit=limit))
                return s.execute(query.offset(depth)).all()

        def call(depth: int = depth) -> object:
            answer = client.get(f"/api/v1/sessions?after={depth}&limit={limit}", headers=auth)
            assert answer.status_code == 200 and len(answer.get_json()["items"]) == limit
            return answer

        fast, slow, whole = timed(keyset, repeat), timed(offset, repeat), timed(call, repeat)
        worst = max(worst, whole)
        lines.append(f"| {fraction:.0%} ({depth:,}) | {fast:.2f} | {slow:.2f} | "
                     f"{slow / fast:.1f}x | {whole:.2f} |")
    # A filtered listing: one company's sessions, deep in the table.
    depth = max(0, min(int(rows * 0.99), rows - 20 * limit))

    def company(depth: int = depth) -> object:
        return client.get(f"/api/v1/sessions?company=c7&after={depth}&limit={limit}",
                          headers=auth)

    filtered = timed(company, repeat)
    worst = max(worst, filtered)
    lines.append(f"\none company's page at 99 %: {filtered:.2f} ms (whole call)")
    lines.append(f"slowest whole call {worst:.1f} ms: "
                 f"{'within' if worst <= BUDGET_MS else 'OVER'} the {BUDGET_MS:.0f} ms budget")
    engine.dispose()
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--pg", help="a PostgreSQL URL (a database named api_bench is made "
                                "beside it, and dropped after)")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"{args.rows:,} sessions, pages of {args.limit}, median of {args.repeat}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    cluster = None
    if args.pg:
        base = args.pg
    else:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster()
        base = cluster.start()
    url = world.create_database(base, "api_bench")
    try:
        lines = bench(url, args.rows, args.limit, args.repeat)
    finally:
        world.drop_database(url)
        if cluster is not None:
            cluster.stop()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
