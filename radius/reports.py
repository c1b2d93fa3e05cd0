"""Reports on the sessions: pure functions of session intervals and ``now``.

The rules, each applied here once:

- A session is the interval [start, stop); one still open runs to ``now``.
- Time is placed in the local time of the session's site: a session
  crossing local midnight is split, each day getting its own part; crossing
  the site's closing hour changes nothing (it is counted as it happened).
- A report covers local days ``first`` to ``last`` inclusive: only the parts
  of sessions that fall on those days count.
- One person's overlapping sessions (two devices, a reconnect) are counted
  once wherever time is summed per person: occupancy, hours, time
  connected. ``sessions`` counts the accounting sessions themselves.
- A person is known by login: a session whose login matches nobody (a
  deleted person) still fills the site, under its login, with no company.

The SQL side (``report_queries``) fetches the intervals; the console draws
the tables, charts and CSV from what these functions return.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NO_COMPANY = "(no company)"


@dataclass(frozen=True)
class Interval:
    """One accounting session, with who and where (naive UTC times)."""

    session_id: int
    login: str
    person_id: int | None
    company_id: int | None
    company: str
    site_id: int
    site: str
    timezone: str  # the site's
    network_id: int  # the site's network
    network: str
    start: datetime
    stop: datetime | None  # None: still open
    home_network_id: int | None = None  # the network the person's company belongs to
    home_network: str = ""


@dataclass(frozen=True)
class Piece:
    """The part of one session on one local day of its site."""

    of: Interval
    day: date
    start: datetime  # naive UTC
    stop: datetime  # naive UTC
    open: bool  # the session was still open at ``now`` and this part ends there

    @property
    def seconds(self) -> int:
        return int((self.stop - self.start).total_seconds())


@dataclass(frozen=True)
class Range:
    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError("a report's range ends before it starts")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """Naive UTC times that hold every local day of the range in any time
        zone (offsets lie within -12 h and +14 h): what to fetch."""
        low = datetime.combine(self.first, datetime.min.time()) - timedelta(hours=14)
        high = datetime.combine(self.last + DAY, datetime.min.time()) + timedelta(hours=12)
        return low, high


def months(span: Range) -> list[Range]:
    """The range cut at calendar months: whole months, and the partial ones
    at each end."""
    out = []
    first = span.first
    while first <= span.last:
        following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
        out.append(Range(first, min(span.last, following - timedelta(days=1))))
        first = following
    return out


def is_whole_month(part: Range) -> bool:
    return part.first.day == 1 and (part.last + DAY).day == 1 and \
        part.first.month == part.last.month


# Time zone arithmetic is the core's hot path (every session of a year at
# a roll-up): offsets are looked up once per zone and UTC quarter-hour (every
# zone's transitions fall on one), local midnights once per zone and day.
QUARTER = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1)


@lru_cache(maxsize=1 << 16)
def _offset_at(zone: str, quarter: int) -> timedelta:
    moment = (EPOCH + quarter * QUARTER).replace(tzinfo=UTC)
    offset = moment.astimezone(ZoneInfo(zone)).utcoffset()
    return offset if offset is not None else timedelta()


def _offset(moment: datetime, zone: str) -> timedelta:
    return _offset_at(zone, (moment - EPOCH) // QUARTER)


def local(moment: datetime, zone: str) -> datetime:
    """A naive UTC time as the naive local time of ``zone``."""
    return moment + _offset(moment, zone)


@lru_cache(maxsize=1 << 16)
def _day_start(zone: str, day: date) -> datetime:
    """The naive UTC time at which local ``day`` begins in ``zone``."""
    start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    return start.astimezone(UTC).replace(tzinfo=None)


def pieces(intervals: Iterable[Interval], span: Range, now: datetime) -> Iterator[Piece]:
    """Every part of every session on a local day of ``span``."""
    for interval in intervals:
        zone = interval.timezone
        end = interval.stop if interval.stop is not None else now
        still_open = interval.stop is None
        start = interval.start
        while start < end:
            day = local(start, zone).date()
            cut = min(end, _day_start(zone, day + DAY))
            if day > span.last:
                break
            if day in span:
                yield Piece(interval, day, start, cut, still_open and cut == end)
            start = cut


def _merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The union of intervals, as disjoint sorted intervals."""
    out: list[tuple[datetime, datetime]] = []
    for start, stop in sorted(spans):
        if out and start <= out[-1][1]:
            if stop > out[-1][1]:
                out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return out


def _length(spans: Iterable[tuple[datetime, datetime]]) -> int:
    return int(sum((stop - start for start, stop in _merged(spans)), timedelta()).total_seconds())


# -- occupancy -----------------------------------------------------------------

@dataclass(frozen=True)
class Occupancy:
    site_id: int
    site: str
    day: date
    hour: int  # local hour, 0-23
    peak: int  # the most people present at once within the hour
    capacity: int  # the site's seats (0: not set)

    @property
    def rate(self) -> float | None:
        """peak / capacity, or None when the capacity is not set."""
        return self.peak / self.capacity if self.capacity > 0 else None


def occupancy(intervals: Iterable[Interval], span: Range, now: datetime,
              capacity: dict[int, int]) -> list[Occupancy]:
    """Per site, local day and hour, the peak number of people present at
    once (each person once, however many devices); hours with nobody are
    left out. ``capacity`` maps site ids to their seats."""
    by_person: dict[tuple[int, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    sites: dict[int, Interval] = {}
    for piece in pieces(intervals, span, now):
        by_person[(piece.of.site_id, piece.of.login)].append((piece.start, piece.stop))
        sites[piece.of.site_id] = piece.of
    # +1 at each (merged) arrival, -1 at each departure, per site.
    events: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for (site_id, _login), spans in by_person.items():
        for start, stop in _merged(spans):
            events[site_id] += [(start, 1), (stop, -1)]
    peaks: dict[tuple[int, date, int], int] = {}
    for site_id, changes in events.items():
        zone = sites[site_id].timezone
        changes.sort(key=lambda e: (e[0], e[1]))  # departures before arrivals at one instant
        present = 0
        for (at, delta), (following, _) in zip(changes, [*changes[1:], (changes[-1][0], 0)],
                                               strict=True):
            present += delta
            if present <= 0 or following <= at:
                continue
            for day, hour in _hours(at, following, zone):
                key = (site_id, day, hour)
                peaks[key] = max(peaks.get(key, 0), present)
    return sorted((Occupancy(site_id, sites[site_id].site, day, hour, peak,
                             capacity.get(site_id, 0))
                   for (site_id, day, hour), peak in peaks.items()
                   if day in span),
                  key=lambda o: (o.site, o.day, o.hour))


def _hours(start: datetime, stop: datetime, zone: str) -> Iterator[tuple[date, int]]:
    """The local (day, hour) slots [start, stop) touches."""
    moment = start
    while moment < stop:
        offset = _offset(moment, zone)
        here = moment + offset
        yield here.date(), here.hour
        # The local hour ends at the next whole local hour, in this offset
        # (a transition falls on a local hour's boundary).
        moment = here.replace(minute=0, second=0, microsecond=0) + HOUR - offset


@dataclass(frozen=True)
class DailyPeak:
    site_id: int
    site: str
    day: date
    peak: int  # the day's highest hourly peak
    capacity: int

    @property
    def rate(self) -> float | None:
        return self.peak / self.capacity if self.capacity > 0 else None


# -- one person's day at one site ------------------------------------------------

@dataclass(frozen=True)
class DayRow:
    """What one person did at one site on one local day. Every report but
    occupancy is a sum of these (reports_sums.py, in SQL); the roll-up
    stores them for the days that are over."""

    site_id: int
    day: date
    login: str
    person_id: int | None
    company_id: int | None
    sessions: int  # sessions with time on this day
    carried: int  # of which began on an earlier day
    connected: int  # seconds, the person's overlapping sessions once
    first_in: datetime  # naive UTC
    last_out: datetime  # naive UTC
    open: bool = False  # a session still open at ``now`` ends the day's last part


def day_rows(intervals: Iterable[Interval], span: Range, now: datetime) -> list[DayRow]:
    parts: dict[tuple[int, date, str], list[Piece]] = defaultdict(list)
    for piece in pieces(intervals, span, now):
        parts[(piece.of.site_id, piece.day, piece.of.login)].append(piece)
    return [DayRow(site_id=site_id, day=day, login=login, person_id=ps[0].of.person_id,
                   company_id=ps[0].of.company_id,
                   sessions=len({p.of.session_id for p in ps}),
                   carried=len({p.of.session_id for p in ps if p.start > p.of.start}),
                   connected=_length((p.start, p.stop) for p in ps),
                   first_in=min(p.start for p in ps), last_out=max(p.stop for p in ps),
                   open=any(p.open for p in ps))
            for (site_id, day, login), ps in sorted(parts.items())]


# -- what the sums return (reports_sums.py) --------------------------------------

@dataclass(frozen=True)
class Use:
    company: str
    site: str
    people: int  # distinct people
    sessions: int  # sessions with time in the range
    seconds: int  # time connected, each person's overlaps once
    credit: int  # seconds charged to the ledger in the range


def cross_site(rows: Iterable[Use]) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """Which company's people go to which sites: companies, sites, and the
    number of people for each (company, site) pair that has any."""
    table = {(r.company, r.site): r.people for r in rows}
    companies = sorted({c for c, _ in table})
    sites = sorted({s for _, s in table})
    return companies, sites, table


@dataclass(frozen=True)
class WorkDay:
    login: str
    company: str
    day: date
    sites: str  # the sites of the day, comma separated
    first_in: datetime  # local time of the first check-in of the day
    last_out: datetime  # local time of the last check-out (or now, if still open)
    still_open: bool
    present: int  # seconds from first check-in to last check-out
    connected: int  # seconds connected, overlaps once (at one site at a time)


@dataclass(frozen=True)
class Intensive:
    login: str
    company: str
    days: int  # local days with a session
    sessions: int
    connected: int  # seconds, overlaps once


@dataclass(frozen=True)
class Exchange:
    month: str  # YYYY-MM
    home: str  # the network the people's companies belong to
    host: str  # the network whose site they used
    people: int
    sessions: int  # a session in two months counts in each
    seconds: int  # overlaps once per person
