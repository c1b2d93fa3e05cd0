"""The reports' roll-up: the day rows and hourly peaks of the local days
that are over, kept in ``report_day`` and ``report_hour``, so a report over
a year reads one row per person, site and day instead of every session.

The rows are what ``reports.day_rows`` and ``reports.occupancy`` compute
from the sessions (one rule, in reports.py); a report reads the stored days
and computes the others (today, yesterday, any day not rolled up yet) from
the sessions, and the same sums run over both (reports_sums.py).

A second grain, ``report_month``, sums the day rows of each calendar month
the roll-up holds whole, per person (as one person and company) and site,
in SQL from ``report_day``: the same refresh keeps it, remaking the months
whose days it rolled up. A report reads its whole months there and the
partial days at each end from the days.

``refresh`` rolls up the days that are over at every site (a local day
ends at most 12 hours after the UTC day, at UTC-12), and rolls up again
the last ``REDO`` days it had already done, for accounting that arrives
late (a box's spool after an outage). Accounting older than that,
arriving later still, needs ``refresh(..., since=day)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, delete, extract, func, insert, literal, select, text
from sqlalchemy.orm import Session as DB

from . import report_queries, reports
from .db import make_engine, make_sessionmaker, transaction
from .models import Radacct, ReportDay, ReportDone, ReportHour, ReportMonth, ReportMonthDone
from .report_queries import Limits
from .reports import Range

log = logging.getLogger("passerelle.radius")

REDO = 2  # days rolled up again at each refresh, for late accounting
CHUNK = 7  # days computed at once
# Any number, the same for every refresher: one at a time on PostgreSQL.
LOCK = 0x7265_706F_7274  # "report"


def over_through(now: datetime) -> date:
    """The last local day that is over at every site (the latest time zone
    is UTC-12: its day D ends at D+1 12:00 UTC)."""
    return (now - timedelta(hours=12)).date() - timedelta(days=1)


def rolled(db: DB) -> tuple[date, date] | None:
    """The first and last day the roll-up holds (they are contiguous)."""
    low, high = db.execute(select(func.min(ReportDone.day), func.max(ReportDone.day))).one()
    return (low, high) if low is not None and high is not None else None


def _first_session_day(db: DB) -> date | None:
    first = db.scalar(select(func.min(Radacct.acctstarttime)))
    return None if first is None else (first - timedelta(hours=14)).date()


def refresh(db: DB, now: datetime, *, since: date | None = None,
            max_days: int | None = None) -> list[date]:
    """Roll up the days that are over; return them. ``since`` rolls up
    again from that day; ``max_days`` bounds the work of one call."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
    done = rolled(db)
    through = over_through(now)
    if since is not None:
        start = since if done is None else min(since, done[1] + timedelta(days=1))
    elif done is not None:
        start = done[1] - timedelta(days=REDO - 1)
    else:
        first = _first_session_day(db)
        if first is None:
            return []
        start = first
    if done is not None and start > done[1] + timedelta(days=1):
        start = done[1] + timedelta(days=1)  # the days stay contiguous
    if max_days is not None:
        through = min(through, start + timedelta(days=max_days - 1))
    days: list[date] = []
    chunk_start = start
    longest = report_queries.longest_session(db) if chunk_start <= through else None
    while chunk_start <= through:
        chunk = Range(chunk_start, min(through, chunk_start + timedelta(days=CHUNK - 1)))
        _roll(db, chunk, now, longest)
        days += [chunk.first + timedelta(days=n)
                 for n in range((chunk.last - chunk.first).days + 1)]
        chunk_start = chunk.last + timedelta(days=1)
    if days:
        log.info("reports: rolled up %s to %s", days[0], days[-1])
    _refresh_months(db, days, now, max_days)
    return days


def _roll(db: DB, span: Range, now: datetime, longest: timedelta | None) -> None:
    intervals = report_queries.intervals(db, Limits(), span, longest)
    rows = reports.day_rows(intervals, span, now)
    hours = reports.occupancy(intervals, span, now, {})
    in_span = (span.first, span.last)
    db.execute(delete(ReportDay).where(ReportDay.day.between(*in_span)))
    db.execute(delete(ReportHour).where(ReportHour.day.between(*in_span)))
    db.execute(delete(ReportDone).where(ReportDone.day.between(*in_span)))
    # A day that is over has no part of a session open at its end.
    _write(db, ReportDay, DAY_COLUMNS, ([getattr(r, c) for c in DAY_COLUMNS] for r in rows))
    _write(db, ReportHour, HOUR_COLUMNS, ([h.site_id, h.day, h.hour, h.peak] for h in hours))
    stamp = now
    db.execute(insert(ReportDone), [
        {"day": span.first + timedelta(days=n), "at": stamp}
        for n in range((span.last - span.first).days + 1)])


DAY_COLUMNS = ("site_id", "day", "login", "person_id", "company_id", "sessions", "carried",
               "connected", "first_in", "last_out")
HOUR_COLUMNS = ("site_id", "day", "hour", "peak")


def _write(db: DB, model: Any, columns: tuple[str, ...], rows: Any) -> None:
    """Rows into a roll-up table: by COPY on PostgreSQL (a bulk roll-up
    writes millions; one INSERT per row was half its time)."""
    if db.get_bind().dialect.name == "postgresql":
        raw: Any = db.connection().connection.driver_connection
        statement = f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    found = [dict(zip(columns, row, strict=True)) for row in rows]
    if found:
        db.execute(insert(model), found)


# -- the monthly grain -------------------------------------------------------------

def months_held(db: DB) -> set[date]:
    """The months (their first days) ``report_month`` holds."""
    return set(db.scalars(select(ReportMonthDone.month)))


def _refresh_months(db: DB, days: list[date], now: datetime, max_months: int | None) -> None:
    """Remake the months whose days were rolled up again, and make the whole
    months the roll-up holds that the monthly grain does not (after an
    upgrade: at most ``max_months`` per call; the days serve until then)."""
    held = rolled(db)
    whole = {m.first for m in reports.months(Range(*held)) if reports.is_whole_month(m)} \
        if held else set()
    done = months_held(db)
    again = {d.replace(day=1) for d in days}
    for month in sorted((done & again) | (done - whole)):
        db.execute(delete(ReportMonth).where(ReportMonth.month == month))
        db.execute(delete(ReportMonthDone).where(ReportMonthDone.month == month))
    todo = sorted(m for m in whole if m in again or m not in done)
    for month in todo[:max_months] if max_months is not None else todo:
        _build_month(db, month, now)


def _build_month(db: DB, month: date, now: datetime) -> None:
    """One month's rows, summed from its day rows by the database. A
    month's sessions are those with time in it: each day's that began that
    day (sessions - carried), and those carried into its first day, which
    are the month's ``carried`` (begun before it)."""
    last = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    d = ReportDay
    on_first = func.sum(case((d.day == month, d.carried), else_=0))
    bit = literal(1, Integer).op("<<")(cast(extract("day", d.day), Integer) - 1)
    rows = (select(d.site_id, literal(month).label("month"), d.login, d.person_id,
                   d.company_id, func.sum(d.sessions - d.carried) + on_first, on_first,
                   func.sum(d.connected), func.min(d.first_in), func.max(d.last_out),
                   func.sum(bit))
            .where(d.day.between(month, last))
            .group_by(d.site_id, d.login, d.person_id, d.company_id))
    db.execute(insert(ReportMonth).from_select(
        ["site_id", "month", "login", "person_id", "company_id", "sessions", "carried",
         "connected", "first_in", "last_out", "days"], rows))
    db.execute(insert(ReportMonthDone), [{"month": month, "at": now}])


def by_month(db: DB, stored: Range | None) -> tuple[list[Range], list[Range]]:
    """The part of a range the roll-up holds, as the whole months to read
    from ``report_month`` and the days to read from ``report_day``."""
    if stored is None:
        return [], []
    held = months_held(db)
    whole: list[Range] = []
    days: list[Range] = []
    for part in reports.months(stored):
        if reports.is_whole_month(part) and part.first in held:
            whole.append(part)
        elif days and days[-1].last + timedelta(days=1) == part.first:
            days[-1] = Range(days[-1].first, part.last)
        else:
            days.append(part)
    return whole, days


def split(span: Range, held: tuple[date, date] | None) -> tuple[Range | None, list[Range]]:
    """The part of ``span`` the roll-up holds, and the parts it does not."""
    if held is None or held[1] < span.first or held[0] > span.last:
        return None, [span]
    stored = Range(max(span.first, held[0]), min(span.last, held[1]))
    live = []
    if span.first < stored.first:
        live.append(Range(span.first, stored.first - timedelta(days=1)))
    if stored.last < span.last:
        live.append(Range(stored.last + timedelta(days=1), span.last))
    return stored, live


def main(argv: list[str] | None = None) -> int:
    """``python -m passerelle.radius.reports_rollup``: roll up the days that
    are over (a first run goes through the whole history)."""
    parser = argparse.ArgumentParser(prog="python -m passerelle.radius.reports_rollup",
                                     description=main.__doc__)
    parser.add_argument("--db", help="the centre's database URL (default: PASSERELLE_DB)")
    parser.add_argument("--since", type=date.fromisoformat,
                        help="roll up again from this day (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    engine = make_engine(args.db)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with transaction(make_sessionmaker(engine)) as db:
            days = refresh(db, now, since=args.since)
    finally:
        engine.dispose()
    print(f"rolled up {len(days)} day(s)" + (f": {days[0]} to {days[-1]}" if days else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
