"""The roll-up, on SQLite and PostgreSQL: the hand-made week of
tests/unit/test_reports.py stored in the database, rolled up, and read
back: every report is the same from the roll-up as from the sessions, late
accounting is picked up, and each role's limits apply to stored days too."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.reports import build
from passerelle.radius import admin, report_queries, reports, reports_rollup
from passerelle.radius.db import transaction
from passerelle.radius.models import CompanyNetwork, Radacct, ReportDay
from passerelle.radius.report_queries import Limits
from passerelle.radius.reports import Range

NOW = datetime(2027, 1, 15, 15, 0)
WEEK = Range(date(2027, 1, 11), date(2027, 1, 15))
H = 3600


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2027, 1, day, hh, mm)


SESSIONS = [  # as in tests/unit/test_reports.py
    ("alice", "Axis", _at(11, 7), _at(11, 11)),
    ("alice", "Axis", _at(11, 10), _at(11, 12, 30)),
    ("alice", "Axis", _at(11, 14), _at(11, 15)),
    ("dave", "Axis", _at(11, 10, 30), _at(11, 10, 45)),
    ("carol", "Axis", _at(11, 16), _at(11, 19, 30)),
    ("bob", "Axis", _at(11, 22, 30), _at(12, 1)),
    ("alice", "Lux", _at(15, 12), None),
]


def _week(factory: sessionmaker[DB]) -> dict[str, int]:
    ids = {}
    with transaction(factory) as db:
        for network in ("Wallonia", "Luxembourg"):
            ids[network] = admin.add_network(db, network).id
        admin.add_site(db, "Axis", "Wallonia", capacity=4)
        admin.add_site(db, "Lux", "Luxembourg", timezone="Europe/Luxembourg")
        for company, network in (("Acme", "Wallonia"), ("Globex", "Luxembourg")):
            ids[company] = admin.add_company(db, company).id
            db.add(CompanyNetwork(company_id=ids[company], network_id=ids[network]))
        for login, company in (("alice", "Acme"), ("dave", "Acme"), ("bob", "Globex"),
                               ("carol", "Globex")):
            ids[login] = admin.add_person(db, f"{login}@x.example", company, "pw").id
        for n, (login, site, start, stop) in enumerate(SESSIONS):
            _add(db, n, login, site, start, stop, ids)
    return ids


def _add(db: DB, n: int, login: str, site: str, start: datetime, stop: datetime | None,
         ids: dict[str, int]) -> None:
    db.add(Radacct(acctsessionid=f"s{n}", acctuniqueid=f"u{n}", username=f"{login}@x.example",
                   nasipaddress="192.0.2.1", acctstarttime=start, acctstoptime=stop,
                   person_id=ids[login], site_id=admin.get_site(db, site).id))


def _tables(db: DB, limits: Limits, span: Range, now: datetime, *, live: bool) -> object:
    capacity = report_queries.capacities(db)
    if live:
        intervals = report_queries.intervals(db, limits, span)
        days = reports.day_rows(intervals, span, now)
        hours = reports.occupancy(intervals, span, now, capacity)
    else:
        days, hours = reports_rollup.read(db, limits, span, now, capacity)
    return [(t.name, t.rows) for t in build(days, hours, span, {}).tables]


def test_the_rollup_reads_as_the_sessions(factory: sessionmaker[DB]) -> None:
    ids = _week(factory)
    with transaction(factory) as db:
        assert reports_rollup.refresh(db, NOW) == [
            date(2027, 1, 10) + timedelta(days=n) for n in range(5)]  # the 10th to the 14th
        assert db.scalar(select(func.count()).select_from(ReportDay)) == 5
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 14))
    scopes = [Limits(), Limits(company=ids["Acme"]), Limits(site=1), Limits(network=2),
              Limits(chosen_company=ids["Globex"], sites=frozenset({1}))]
    spans = [WEEK, Range(date(2027, 1, 12), date(2027, 1, 15)),
             Range(date(2027, 1, 1), date(2027, 1, 31)), Range(date(2027, 1, 12),
                                                               date(2027, 1, 12))]
    with transaction(factory) as db:
        for limits in scopes:
            for span in spans:
                assert _tables(db, limits, span, NOW, live=False) == \
                    _tables(db, limits, span, NOW, live=True), (limits, span)
        days, _ = reports_rollup.read(db, Limits(), WEEK, NOW, {})
    (used,) = [u for u in reports.use(days, WEEK) if (u.company, u.site) == ("Acme", "Axis")]
    assert (used.people, used.sessions, used.seconds) == (2, 4, int(6.5 * H) + 15 * 60)


def test_late_accounting_is_rolled_up_again(factory: sessionmaker[DB]) -> None:
    ids = _week(factory)
    with transaction(factory) as db:
        reports_rollup.refresh(db, NOW)
        # A box's spool delivers a session of the 13th after the roll-up.
        _add(db, 99, "dave", "Axis", _at(13, 8), _at(13, 9), ids)
    with transaction(factory) as db:
        # Next day: the 15th is over, the 13th and 14th are rolled up again.
        assert reports_rollup.refresh(db, NOW + timedelta(days=1)) == [
            date(2027, 1, 13), date(2027, 1, 14), date(2027, 1, 15)]
        days, _ = reports_rollup.read(db, Limits(), WEEK, NOW + timedelta(days=1), {})
    assert sorted((r.login, r.day.day) for r in days if r.login.startswith("dave")) == [
        ("dave@x.example", 11), ("dave@x.example", 13)]


def test_a_bounded_refresh_keeps_the_days_contiguous(factory: sessionmaker[DB]) -> None:
    _week(factory)
    with transaction(factory) as db:
        assert len(reports_rollup.refresh(db, NOW, max_days=2)) == 2
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 11))
        # Days after the roll-up are read from the sessions.
        days, _ = reports_rollup.read(db, Limits(), WEEK, NOW, {})
        assert sorted({r.day.day for r in days}) == [11, 12, 15]
        assert len(reports_rollup.refresh(db, NOW)) == 5  # the 10th, 11th again, to the 14th
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 14))
