"""Reports over many sessions on PostgreSQL: each report for a month and a
year, read from the roll-up side by side with the naive way (every session
of the range fetched and computed), with the ratio.

A throwaway PostgreSQL cluster (or ``--pg URL``, a database it may fill)
gets ``--sessions`` sessions made by the server itself (INSERT ... SELECT
over generate_series): ``--people`` people of ``--companies`` companies in
three partner networks, at ``--sites`` sites, over the ``--days`` days
before today, each a working-day visit of 30 minutes to 8 hours, some
people with a second device at once. Then the roll-up of the whole history
is made (timed: it is done once, then one day at a time), and each report
is timed both ways: naive (before the roll-up: its rows computed from every
session of the range) and from the roll-up. The numbers must agree; the run
fails otherwise.

    python -m benchmarks.reports_bench                    # 10 M sessions
    python -m benchmarks.reports_bench --sessions 100000  # a quick look
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from passerelle.portal.console import reports as console_reports
from passerelle.radius import db, reports_rollup, reports_sums
from passerelle.radius.report_queries import Limits
from passerelle.radius.reports import Range

ROOT = Path(__file__).resolve().parent.parent
ZONES = ("Europe/Brussels", "Europe/Luxembourg", "Europe/Paris")


def seed(factory: Any, sessions: int, people: int, companies: int, sites: int,
         days: int, today: date) -> None:
    """The network and its sessions, made by the server."""
    first = today - timedelta(days=days)
    with db.transaction(factory) as s:
        run = s.execute
        run(text("INSERT INTO network (id, name) SELECT n, 'network-' || n "
                 "FROM generate_series(1, 3) n"))
        run(text("INSERT INTO site (id, name, network_id, category, capacity, staffed, city, "
                 "open_days, timezone) SELECT n, 'site-' || n, 1 + n % 3, 1, 10 + n % 30, true, "
                 "'', '12345', (ARRAY[:z1, :z2, :z3])[1 + n % 3] "
                 "FROM generate_series(1, :sites) n"),
            {"sites": sites, "z1": ZONES[0], "z2": ZONES[1], "z3": ZONES[2]})
        run(text("INSERT INTO company (id, name, status, payment, categories, services) "
                 "SELECT n, 'company-' || n, 'active', 'ok', '123', 'wifi' "
                 "FROM generate_series(1, :companies) n"), {"companies": companies})
        run(text("INSERT INTO company_network (company_id, network_id) "
                 "SELECT n, 1 + n % 3 FROM generate_series(1, :companies) n WHERE n % 5 <> 0"),
            {"companies": companies})
        run(text("INSERT INTO person (id, login, name, company_id, password_hash, active, "
                 "language) SELECT n, 'p' || n || '@bench.example', '', 1 + n % :companies, "
                 "'-', true, 'fr' FROM generate_series(1, :people) n"),
            {"people": people, "companies": companies})
    # Session g: person p, on day d (spread evenly), at their usual site (one
    # in ten elsewhere), from 07:00 UTC plus up to 10 h, for 30 min to 8 h.
    with db.transaction(factory) as s:
        s.execute(text(
            "INSERT INTO radacct (acctsessionid, acctuniqueid, username, realm, nasipaddress, "
            "nasidentifier, nasportid, nasporttype, acctstarttime, acctupdatetime, "
            "acctstoptime, acctsessiontime, acctauthentic, connectinfo_start, connectinfo_stop, "
            "acctinputoctets, acctoutputoctets, calledstationid, callingstationid, "
            "acctterminatecause, servicetype, framedprotocol, framedipaddress, "
            "framedipv6address, class, person_id, site_id, charged) "
            "SELECT 's' || g, md5(g::text), 'p' || p || '@bench.example', '', '192.0.2.1', "
            "'bench-gw', '', '', t0, t0 + len, t0 + len, extract(epoch from len)::bigint, '', "
            "'', '', 0, 0, '', '', 'User-Request', '', '', '', '', '', p, "
            "(CASE WHEN g % 10 = 0 THEN 1 + (g / 10) % :sites ELSE 1 + p % :sites END)::integer, 0 "
            "FROM (SELECT g, (1 + (g * 7919) % :people)::integer AS p, "
            "  :first + (g::bigint * :days / :n) * interval '1 day' + interval '7 hours' "
            "    + ((g * 37) % 600) * interval '1 minute' AS t0, "
            "  interval '30 minutes' + ((g * 13) % 450) * interval '1 minute' AS len "
            "  FROM generate_series(1::bigint, :n) g) made"),
            {"n": sessions, "people": people, "sites": sites, "days": days,
             "first": datetime.combine(first, datetime.min.time())})
    with db.transaction(factory) as s:
        s.execute(text("ANALYZE"))


@dataclass(frozen=True)
class Timing:
    report: str
    naive: float
    rolled: float


REPORTS = {
    "occupancy per day": "daily",
    "occupancy per hour (first 1,000)": "occupancy",
    "use per company": "use",
    "working time (first 1,000)": "working",
    "intensive users": "intensive",
    "partner networks": "partners",
}


def _clock(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def measure(factory: Any, span: Range, now: datetime) -> dict[str, tuple[float, Any]]:
    """Each report as the console makes it: its rows (``prepare``: from the
    roll-up where it holds the day, from the sessions elsewhere) and its sums."""
    out = {}
    with db.transaction(factory) as s:
        rows, src = _clock(lambda: reports_sums.prepare(s, Limits(), span, now))
        for label, name in REPORTS.items():
            took, answer = _clock(lambda n=name: console_reports.TABLES[n](  # type: ignore[misc]
                s, src, {}, console_reports.PAGE_ROWS))
            out[label] = (rows + took, answer.rows)
    return out


def held(factory: Any) -> tuple[date, date] | None:
    with db.transaction(factory) as s:
        return reports_rollup.rolled(s)


def table(month: list[Timing], year: list[Timing]) -> str:
    """Side by side; a naive run that was skipped reads "-"."""
    lines = ["| report | month naive | month roll-up | ratio | year naive | year roll-up | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m, y in zip(month, year, strict=True):
        cells = [m.report]
        for t in (m, y):
            if t.naive != t.naive:  # NaN: not run
                cells += ["-", f"{t.rolled:.2f} s", "-"]
            else:
                cells += [f"{t.naive:.2f} s", f"{t.rolled:.2f} s", f"{t.naive / t.rolled:.1f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=10_000_000)
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--companies", type=int, default=200)
    p.add_argument("--sites", type=int, default=60)
    p.add_argument("--days", type=int, default=3 * 365, help="the history, in days")
    p.add_argument("--pg", help="a PostgreSQL database to fill (default: a throwaway cluster)")
    p.add_argument("--no-naive-year", action="store_true",
                   help="skip the naive way for the year (minutes at 10 M sessions)")
    p.add_argument("--again", action="store_true",
                   help="with --pg: a database an earlier run filled and rolled up; "
                        "measure the reports from the roll-up only (after a code change)")
    args = p.parse_args(argv)
    if args.again:
        if not args.pg:
            p.error("--again needs --pg")
        return measure_again(args.pg)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"{args.sessions:,} sessions, {args.people:,} people, {args.sites} sites, "
          f"{args.days} days", flush=True)
    # A kill (SIGTERM) ends the run through ``finally``: the cluster is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    cluster = None
    if args.pg:
        url = args.pg
    else:
        sys.path.insert(0, str(ROOT))
        from tests.pg import Cluster

        cluster = Cluster()  # fsync off: nothing here needs to survive a crash
        url = cluster.start()
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        factory = db.make_sessionmaker(engine)
        now = datetime.now(UTC).replace(tzinfo=None)
        today = now.date()
        took, _ = _clock(lambda: seed(factory, args.sessions, args.people, args.companies,
                                      args.sites, args.days, today))
        print(f"made {args.sessions:,} sessions in {took:.1f} s", flush=True)
        last_month_end = today.replace(day=1) - timedelta(days=1)
        month = Range(last_month_end.replace(day=1), last_month_end)
        year = Range(today - timedelta(days=365), today)
        # Naive first: with no roll-up, every report computes from the sessions.
        naive = {"month": measure(factory, month, now)}
        print("month, naive: measured", flush=True)
        if not args.no_naive_year:
            naive["year"] = measure(factory, year, now)
            print("year, naive: measured", flush=True)
        with db.transaction(factory) as s:
            took, days = _clock(lambda: reports_rollup.refresh(s, now))
        print(f"rolled up {len(days)} days in {took:.1f} s (once; then a day at a time)",
              flush=True)
        with db.transaction(factory) as s:
            s.execute(text("ANALYZE"))  # what autovacuum does after a bulk load
        with db.transaction(factory) as s:
            took, again = _clock(lambda: reports_rollup.refresh(s, now, since=days[-1]))
        print(f"a day's roll-up: {took / max(1, len(again)):.2f} s", flush=True)
        print(f"the roll-up holds {held(factory)}; month {month.first} to {month.last}, "
              f"year {year.first} to {year.last}")
        rolled = {"month": measure(factory, month, now), "year": measure(factory, year, now)}
        timings: dict[str, list[Timing]] = {}
        for span in ("month", "year"):
            timings[span] = []
            for label in REPORTS:
                fast, answer = rolled[span][label]
                slow, expected = naive.get(span, {}).get(label, (float("nan"), answer))
                if expected != answer:
                    print(f"{label} ({span}) differs between the roll-up and the sessions")
                    return 1
                timings[span].append(Timing(label, slow, fast))
        print("each report: its rows (prepare) and its sums, as the console makes it")
        print()
        print(table(timings["month"], timings["year"]))
        slow_ones = [f"{t.report} ({span})" for span, ts in timings.items() for t in ts
                     if t.rolled > 2.0]
        if slow_ones:
            print(f"over 2 s from the roll-up: {', '.join(slow_ones)}")
    finally:
        engine.dispose()
        if cluster is not None:
            cluster.stop()
    return 0



def measure_again(url: str) -> int:
    """The reports from the roll-up of an earlier run's database (the days
    ended since, rolled up first), without the naive way."""
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          "an earlier run's database", flush=True)
    engine = db.make_engine(url)
    try:
        factory = db.make_sessionmaker(engine)
        now = datetime.now(UTC).replace(tzinfo=None)
        today = now.date()
        with db.transaction(factory) as s:
            took, days = _clock(lambda: reports_rollup.refresh(s, now))
        print(f"rolled up {len(days)} more day(s) and their months in {took:.1f} s", flush=True)
        last_month_end = today.replace(day=1) - timedelta(days=1)
        month = Range(last_month_end.replace(day=1), last_month_end)
        year = Range(today - timedelta(days=365), today)
        print(f"the roll-up holds {held(factory)}; month {month.first} to {month.last}, "
              f"year {year.first} to {year.last}")
        rolled = {"month": measure(factory, month, now), "year": measure(factory, year, now)}
        timings = {span: [Timing(label, float("nan"), rolled[span][label][0])
                          for label in REPORTS] for span in rolled}
        print()
        print(table(timings["month"], timings["year"]))
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
