"""Reports: the tables and charts of the report core for a range and a
scope, each table as CSV too, and the monthly statement of a company.

What a role sees is ``report_queries.Limits``: their sites, their company,
intersected with the form; no parameter widens it.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, g, render_template, request
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError
from passerelle.radius import report_queries, reports, reports_rollup, reports_sums
from passerelle.radius.db import transaction
from passerelle.radius.models import Company, Network, OperatorRole, Person, Site

from . import svg
from .filters import optional_id
from .formats import duration
from .scope import Principal
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("reports", __name__, url_prefix="/reports")

MAX_DAYS = 400  # a year and a bit: longer ranges are refused
TOP_USERS = 20
REFRESH_DAYS = 7  # days a report request rolls up at most
PAGE_ROWS = 1000  # rows of a long table on the page; its CSV has them all
# Characters that make a spreadsheet read a cell as a formula.
FORMULA = ("=", "+", "-", "@", "\t", "\r")


# -- the form ------------------------------------------------------------------

def _day(args: Mapping[str, str], name: str, default: date) -> date:
    value = args.get(name, "").strip()
    if not value:
        return default
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"bad {name} date {value[:20]!r}: write it YYYY-MM-DD") from None


@dataclass(frozen=True)
class Wanted:
    first: date
    last: date
    site: int | None = None
    network: int | None = None
    company: int | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str], today: date) -> Wanted:
        first = _day(args, "from", today.replace(day=1))
        last = _day(args, "to", today)
        if last < first:
            raise UserError("the range ends before it starts")
        if (last - first).days + 1 > MAX_DAYS:
            raise UserError(f"the range is longer than {MAX_DAYS} days")
        return cls(first, last, optional_id(args, "site"), optional_id(args, "network"),
                   optional_id(args, "company"))

    def query(self) -> dict[str, str]:
        found: dict[str, object] = {"from": self.first.isoformat(), "to": self.last.isoformat(),
                                    "site": self.site, "network": self.network,
                                    "company": self.company}
        return {k: str(v) for k, v in found.items() if v is not None}

    def limits(self, principal: Principal) -> report_queries.Limits:
        scope = principal.scope
        return report_queries.Limits(sites=scope.sites, company=scope.company, site=self.site,
                                     network=self.network, chosen_company=self.company)


# -- tables --------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    label: str
    kind: str = "text"  # "text", "number", "duration" (seconds), "rate" (0..1)


@dataclass(frozen=True)
class Table:
    name: str  # in the CSV's URL
    title: str
    explain: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]]
    total: int = -1  # rows there are, when ``rows`` holds only the first ones

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def cell(value: Any, kind: str) -> str:
    """How a value reads in a page."""
    if value is None:
        return ""
    if kind == "duration":
        return duration(int(value))
    if kind == "rate":
        return _rate(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def safe_csv_cell(value: Any) -> str | int | float:
    """Numbers as they are; text that a spreadsheet would take for a
    formula is prefixed with a quote so it stays text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    text = value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def as_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_csv_cell(c.label + (" (seconds)" if c.kind == "duration" else ""))
                     for c in table.columns])
    for row in table.rows:
        writer.writerow([safe_csv_cell(round(v, 4) if c.kind == "rate" and v is not None else v)
                         for v, c in zip(row, table.columns, strict=True)])
    return out.getvalue()


@dataclass(frozen=True)
class Report:
    tables: list[Table]
    charts: list[Markup]
    sessions: int  # sessions with time in the range


Credit = dict[tuple[str, str], int]


def _daily(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    return Table(
        "daily", "Occupancy per site and day",
        "The most people present at once during the day (local time of the site), "
        "against the site's seats.",
        [Column("Site"), Column("Day"), Column("Peak", "number"), Column("Capacity", "number"),
         Column("Rate", "rate")],
        [[d.site, d.day.isoformat(), d.peak, d.capacity or None, d.rate]
         for d in reports_sums.daily_peaks(db, src)])


def _hourly(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    hours, total = reports_sums.occupancy(db, src, limit)
    return Table(
        "occupancy", "Occupancy per site, day and hour",
        "The most people present at once within each local hour; hours with nobody are left out.",
        [Column("Site"), Column("Day"), Column("Hour", "number"), Column("Peak", "number"),
         Column("Capacity", "number"), Column("Rate", "rate")],
        [[o.site, o.day.isoformat(), o.hour, o.peak, o.capacity or None, o.rate]
         for o in hours], total)


def _use(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    return Table(
        "use", "Use per company and site",
        "People, sessions, time connected (each person's overlapping sessions once) "
        "and credit charged in the range.",
        [Column("Company"), Column("Site"), Column("People", "number"),
         Column("Sessions", "number"), Column("Connected", "duration"),
         Column("Credit used", "duration")],
        [[u.company, u.site, u.people, u.sessions, u.seconds, u.credit]
         for u in reports_sums.use(db, src, credit)])


def _cross_site(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    companies, sites, people = reports.cross_site(reports_sums.use(db, src, credit))
    return Table(
        "cross-site", "Which company's people go to which sites",
        "The number of each company's people seen at each site.",
        [Column("Company"), *[Column(s, "number") for s in sites]],
        [[c, *[people.get((c, s), 0) for s in sites]] for c in companies])


def _working(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    work, total = reports_sums.working_time(db, src, limit)
    return Table(
        "working", "Working time per person and day",
        "As if at the office: first check-in to last check-out (local time), and the "
        "time connected within.",
        [Column("Person"), Column("Company"), Column("Day"), Column("Sites"), Column("First in"),
         Column("Last out"), Column("Still in"), Column("Present", "duration"),
         Column("Connected", "duration")],
        [[w.login, w.company, w.day.isoformat(), w.sites, w.first_in.strftime("%H:%M"),
          w.last_out.strftime("%H:%M") if w.last_out.date() == w.day else "24:00",
          "yes" if w.still_open else "", w.present, w.connected] for w in work], total)


def _intensive(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    return Table(
        "intensive", f"The {TOP_USERS} most intensive users",
        "The people connected longest in the range.",
        [Column("Person"), Column("Company"), Column("Days", "number"),
         Column("Sessions", "number"), Column("Connected", "duration")],
        [[i.login, i.company, i.days, i.sessions, i.connected]
         for i in reports_sums.intensive(db, src, TOP_USERS)])


def _partners(db: DB, src: reports_sums.Source, credit: Credit, limit: int | None) -> Table:
    return Table(
        "partners", "Partner networks' balance per month",
        "Members of one network (people of its companies) at another network's sites.",
        [Column("Month"), Column("Members of"), Column("At sites of"), Column("People", "number"),
         Column("Sessions", "number"), Column("Connected", "duration")],
        [[x.month, x.home, x.host, x.people, x.sessions, x.seconds]
         for x in reports_sums.partner_balance(db, src)])


TABLES = {"daily": _daily, "occupancy": _hourly, "use": _use, "cross-site": _cross_site,
          "working": _working, "intensive": _intensive, "partners": _partners}


def build(db: DB, src: reports_sums.Source, credit: Credit,
          limit: int | None = PAGE_ROWS) -> Report:
    """Every table and chart of one scope and range; the long tables (per
    hour, per person and day) hold their first ``limit`` rows."""
    tables = [make(db, src, credit, limit) for make in TABLES.values()]
    daily = reports_sums.daily_peaks(db, src)
    used = reports_sums.use(db, src, credit)
    charts = [_occupancy_chart(site, [d for d in daily if d.site == site])
              for site in sorted({d.site for d in daily})[:12]]
    hours: dict[str, int] = {}
    for u in used:
        hours[u.company] = hours.get(u.company, 0) + u.seconds
    charts.append(Markup(svg.bar_chart(  # svg.py escapes every text
        "Hours connected per company",
        [svg.Bar(c, round(seconds / 3600, 1)) for c, seconds in sorted(hours.items())],
        unit=" h")))
    return Report(tables, charts, reports_sums.session_count(db, src))


def _occupancy_chart(site: str, days: list[reports.DailyPeak]) -> Markup:
    capacity = days[0].capacity if days else 0
    bars = [svg.Bar(d.day.strftime("%d %b"), d.peak,
                    f"{d.peak} of {d.capacity} seats" if d.capacity else "") for d in days]
    return Markup(svg.bar_chart(  # svg.py escapes every text
        f"{site}: peak people per day", bars, limit=capacity or None,
        limit_label=f"capacity {capacity}"))


@dataclass(frozen=True)
class Choices:
    sites: list[tuple[int, str]]
    networks: list[tuple[int, str]]
    companies: list[tuple[int, str]]


def _choices(db: DB, principal: Principal) -> Choices:
    scope = principal.scope
    sites = select(Site.id, Site.name).order_by(Site.name)
    companies = select(Company.id, Company.name).order_by(Company.name)
    if scope.sites is not None:
        sites = sites.where(Site.id.in_(sorted(scope.sites)))
    if scope.company is not None:
        companies = companies.where(Company.id == scope.company)
    networks = select(Network.id, Network.name).order_by(Network.name)
    return Choices([(i, n) for i, n in db.execute(sites)],
                   [(i, n) for i, n in db.execute(networks)],
                   [(i, n) for i, n in db.execute(companies)])


def _source(db: DB, wanted: Wanted) -> reports_sums.Source:
    """The report's rows; days ended since the last roll-up are rolled up
    first, a few at a time, so a request never waits for a whole history
    (``python -m passerelle.radius.reports_rollup`` does that)."""
    now = console().now()
    held = reports_rollup.rolled(db)
    if held is None or held[1] < reports_rollup.over_through(now):
        reports_rollup.refresh(db, now, max_days=REFRESH_DAYS)
    span = reports.Range(wanted.first, wanted.last)
    return reports_sums.prepare(db, wanted.limits(g.principal), span, now)


def _credit(db: DB, wanted: Wanted) -> Credit:
    low = datetime.combine(wanted.first, datetime.min.time())
    high = datetime.combine(wanted.last + timedelta(days=1), datetime.min.time())
    return report_queries.credit_by_company_site(db, wanted.limits(g.principal), low, high)


def _wanted() -> Wanted:
    try:
        return Wanted.parse(request.args, console().now().date())
    except UserError as exc:
        log.info("console: %s asked for a bad report: %s", g.principal.login, exc)
        abort(Response(render_template("error.html", title="Bad report request",
                                       message=str(exc)), 400))


@bp.get("/")
def index() -> str:
    wanted = _wanted()
    with transaction(console().factory) as db:
        report = build(db, _source(db, wanted), _credit(db, wanted))
        choices = _choices(db, g.principal)
    return render_template("reports/index.html", title="Reports", wanted=wanted,
                           report=report, choices=choices, cell=cell)


@bp.get("/<any(daily, occupancy, use, 'cross-site', working, intensive, partners):name>.csv")
def table_csv(name: str) -> Response:
    wanted = _wanted()
    with transaction(console().factory) as db:
        table = TABLES[name](db, _source(db, wanted), _credit(db, wanted), None)
    filename = f"{name}-{wanted.first.isoformat()}-{wanted.last.isoformat()}.csv"
    return Response(as_csv(table), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- the monthly statement -----------------------------------------------------

def _month(value: str, today: date) -> date:
    if not value:
        return today.replace(day=1)
    try:
        if len(value) != 7:
            raise ValueError
        return date.fromisoformat(value + "-01")
    except ValueError:
        raise UserError(f"bad month {value[:20]!r}: write it YYYY-MM") from None


@bp.get("/statement")
def statement() -> str:
    state = console()
    principal: Principal = g.principal
    try:
        month = _month(request.args.get("month", "").strip(), state.now().date())
        asked = optional_id(request.args, "company")
    except UserError as exc:
        abort(Response(render_template("error.html", title="Bad statement request",
                                       message=str(exc)), 400))
    if principal.role is OperatorRole.company_manager:
        # Their own company, whatever the address says.
        if asked not in (None, principal.company_id):
            abort(404)
        asked = principal.company_id
    low = datetime.combine(month, datetime.min.time())
    high = datetime.combine((month + timedelta(days=32)).replace(day=1), datetime.min.time())
    with transaction(state.factory) as db:
        companies = [(i, n) for i, n in db.execute(
            select(Company.id, Company.name).order_by(Company.name))]
        company = db.get(Company, asked) if asked is not None else None
        if asked is not None and company is None:
            abort(404)
        lines = (report_queries.statement_lines(db, company.id, low, high, state.now())
                 if company else [])
        used = report_queries.company_credit_used(db, company.id, low, high) if company else 0
        people = db.scalar(select(Person.id).where(Person.company_id == company.id).limit(1)) \
            if company else None
        name = company.name if company else ""
    per_person: dict[str, list[report_queries.StatementLine]] = {}
    for line in lines:
        per_person.setdefault(line.login, []).append(line)
    return render_template("reports/statement.html", title=f"Statement {month:%Y-%m}"
                           + (f" · {name}" if name else ""), month=month, company_name=name,
                           company_id=company.id if company else None, companies=companies,
                           per_person=per_person, used=used, has_people=people is not None,
                           total=sum(line.seconds for line in lines),
                           generated=state.now(), pick=principal.role is not
                           OperatorRole.company_manager)

