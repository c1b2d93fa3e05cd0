"""The roll-up, on SQLite and PostgreSQL: the hand-made week of
tests/unit/test_reports.py stored in the database, rolled up, and read
back: every report is the same from the roll-up as from the sessions, late
accounting is picked up, and each role's limits apply to stored days too."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.reports import build
from passerelle.radius import admin, reports_rollup, reports_sums
from passerelle.radius.db import transaction
from passerelle.radius.models import CompanyNetwork, Radacct, ReportDay, ReportMonthDone
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


def _source(db: DB, limits: Limits | None = None, span: Range = WEEK,
            now: datetime = NOW) -> reports_sums.Source:
    return reports_sums.prepare(db, limits or Limits(), span, now)


def _tables(db: DB, limits: Limits, span: Range, now: datetime) -> object:
    report = build(db, _source(db, limits, span, now), {}, None)
    return report.sessions, [(t.name, t.rows) for t in report.tables]


def _check_the_week(db: DB) -> None:
    """The sums of the week, by hand (see tests/unit/test_reports.py)."""
    src = _source(db)
    assert [(u.company, u.site, u.people, u.sessions, u.seconds) for u in
            reports_sums.use(db, src, {})] == [
        # alice 07:00-12:30 + 14:00-15:00 (her two devices once), dave 15 min
        ("Acme", "Axis", 2, 4, int(6.5 * H) + 15 * 60),
        ("Acme", "Lux", 1, 1, 3 * H),
        ("Globex", "Axis", 2, 2, int(2.5 * H) + int(3.5 * H))]
    work, total = reports_sums.working_time(db, src)
    days = {(w.login.split("@")[0], w.day.day): w for w in work}
    assert total == 6 and sorted(days) == [("alice", 11), ("alice", 15), ("bob", 11),
                                           ("bob", 12), ("carol", 11), ("dave", 11)]
    alice = days[("alice", 11)]
    assert (alice.first_in, alice.last_out, alice.present, alice.connected, alice.sites) == (
        _at(11, 8), _at(11, 16), 8 * H, int(6.5 * H), "Axis")
    assert (days[("bob", 11)].first_in, days[("bob", 11)].last_out) == (_at(11, 23, 30),
                                                                          _at(12, 0))
    assert (days[("bob", 12)].first_in, days[("bob", 12)].last_out,
            days[("bob", 12)].connected) == (_at(12, 0), _at(12, 2), 2 * H)
    assert days[("carol", 11)].present == int(3.5 * H)  # past the 18:00 closing
    assert days[("alice", 15)].still_open and not alice.still_open
    assert len(reports_sums.working_time(db, src, limit=2)[0]) == 2
    assert [(i.login, i.company, i.days, i.sessions, i.connected)
            for i in reports_sums.intensive(db, src, 3)] == [
        ("alice@x.example", "Acme", 2, 4, int(6.5 * H) + 3 * H),
        ("carol@x.example", "Globex", 1, 1, int(3.5 * H)),
        ("bob@x.example", "Globex", 2, 1, int(2.5 * H))]
    assert [(x.month, x.home, x.host, x.people, x.sessions, x.seconds)
            for x in reports_sums.partner_balance(db, src)] == [
        ("2027-01", "Luxembourg", "Wallonia", 2, 2, 6 * H),
        ("2027-01", "Wallonia", "Luxembourg", 1, 1, 3 * H)]
    assert [(d.site, d.day.day, d.peak, d.capacity) for d in
            reports_sums.daily_peaks(db, src)] == [("Axis", 11, 2, 4), ("Axis", 12, 1, 4),
                                                   ("Lux", 15, 1, 0)]
    hours, total = reports_sums.occupancy(db, src, limit=3)
    assert total == 17 and [(o.hour, o.peak) for o in hours] == [(8, 1), (9, 1), (10, 1)]
    assert reports_sums.session_count(db, src) == 7
    # bob's night: one session in any range that holds a part of it.
    assert reports_sums.session_count(db, _source(db, span=Range(
        date(2027, 1, 12), date(2027, 1, 15)))) == 2  # bob's, alice's at Lux


def test_the_sums_of_the_week(factory: sessionmaker[DB]) -> None:
    _week(factory)
    with transaction(factory) as db:
        _check_the_week(db)  # from the sessions
        reports_rollup.refresh(db, NOW)
    with transaction(factory) as db:
        _check_the_week(db)  # from the roll-up (the 10th to the 14th) and the sessions


def test_a_session_in_two_months_counts_in_each(factory: sessionmaker[DB]) -> None:
    ids = _week(factory)
    with transaction(factory) as db:
        _add(db, 50, "bob", "Axis", datetime(2027, 1, 31, 20), datetime(2027, 2, 1, 2), ids)
    span = Range(date(2027, 1, 25), date(2027, 2, 28))
    later = datetime(2027, 3, 1)
    for _ in range(2):
        with transaction(factory) as db:
            rows = reports_sums.partner_balance(db, _source(db, span=span, now=later))
            # 21:00-24:00 on 31 January, 00:00-03:00 on 1 February, local time.
            # (alice's session at Lux is still open: Wallonia's rows are hers.)
            assert [(r.month, r.sessions, r.seconds) for r in rows if r.home == "Luxembourg"] == [
                ("2027-01", 1, 3 * H), ("2027-02", 1, 3 * H)]
            reports_rollup.refresh(db, later)


def test_the_rollup_reads_as_the_sessions(factory: sessionmaker[DB]) -> None:
    ids = _week(factory)
    scopes = [Limits(), Limits(company=ids["Acme"]), Limits(site=1), Limits(network=2),
              Limits(chosen_company=ids["Globex"], sites=frozenset({1}))]
    spans = [WEEK, Range(date(2027, 1, 12), date(2027, 1, 15)),
             Range(date(2027, 1, 1), date(2027, 1, 31)), Range(date(2027, 1, 12),
                                                               date(2027, 1, 12))]
    with transaction(factory) as db:
        live = {(n, m): _tables(db, limits, span, NOW) for n, limits in enumerate(scopes)
                for m, span in enumerate(spans)}
    with transaction(factory) as db:
        assert reports_rollup.refresh(db, NOW) == [
            date(2027, 1, 10) + timedelta(days=n) for n in range(5)]  # the 10th to the 14th
        assert db.scalar(select(func.count()).select_from(ReportDay)) == 5
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 14))
    with transaction(factory) as db:
        for (n, m), expected in live.items():
            assert _tables(db, scopes[n], spans[m], NOW) == expected, (scopes[n], spans[m])


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
        work, _ = reports_sums.working_time(db, _source(db, now=NOW + timedelta(days=1)))
    assert sorted((w.login, w.day.day) for w in work if w.login.startswith("dave")) == [
        ("dave@x.example", 11), ("dave@x.example", 13)]


def test_a_bounded_refresh_keeps_the_days_contiguous(factory: sessionmaker[DB]) -> None:
    _week(factory)
    with transaction(factory) as db:
        assert len(reports_rollup.refresh(db, NOW, max_days=2)) == 2
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 11))
        # Days after the roll-up are read from the sessions.
        _check_the_week(db)
        assert len(reports_rollup.refresh(db, NOW)) == 5  # the 10th, 11th again, to the 14th
        assert reports_rollup.rolled(db) == (date(2027, 1, 10), date(2027, 1, 14))


def test_long_sessions_are_found_by_the_rollup(factory: sessionmaker[DB]) -> None:
    """Sessions longer than the roll-up's chunks: one of 20 days that ended,
    one open for 30 days; the bounded search finds both in every chunk."""
    ids = _week(factory)
    with transaction(factory) as db:
        _add(db, 60, "dave", "Lux", datetime(2026, 12, 20, 9), datetime(2027, 1, 9, 9), ids)
        _add(db, 61, "carol", "Lux", datetime(2026, 12, 16, 9), None, ids)
    span = Range(date(2026, 12, 1), date(2027, 1, 15))
    with transaction(factory) as db:
        live = _tables(db, Limits(), span, NOW)
        reports_rollup.refresh(db, NOW)
    with transaction(factory) as db:
        assert reports_rollup.rolled(db) == (date(2026, 12, 15), date(2027, 1, 14))
        assert _tables(db, Limits(), span, NOW) == live
        work, _ = reports_sums.working_time(db, _source(db, span=span))
    assert [w.day for w in work if w.login.startswith("dave") and w.present == 24 * H][:1] == [
        date(2026, 12, 21)]
    assert len([w for w in work if w.login.startswith("carol") and w.still_open]) == 1


def test_the_command(db_url: str, factory: sessionmaker[DB],
                     capsys: pytest.CaptureFixture[str]) -> None:
    ids = _week(factory)  # in the future, for the command's real clock
    with transaction(factory) as db:
        _add(db, 70, "dave", "Axis", datetime(2026, 11, 10, 10), datetime(2026, 11, 10, 11), ids)
    assert reports_rollup.main(["--db", db_url]) == 0
    assert "day(s): 2026-11-09 to " in capsys.readouterr().out
    assert reports_rollup.main(["--db", db_url, "--since", "2026-11-20"]) == 0
    assert "day(s): 2026-11-20 to " in capsys.readouterr().out
    with transaction(factory) as db:
        days = reports_rollup.rolled(db)
        assert days is not None and days[0] == date(2026, 11, 9)


def _season(factory: sessionmaker[DB]) -> dict[str, int]:
    """The week's network, and sessions from 20 January to 10 April 2027:
    bob's nights across the ends of January and February (Brussels is UTC+1
    in winter), alice at two sites on one day of February and with two
    devices at once in March, dave moved from Acme to Globex on 15 March."""
    ids = _week(factory)
    with transaction(factory) as db:
        # alice's session left open at Lux ends that day.
        db.execute(update(Radacct).where(Radacct.acctstoptime.is_(None))
                   .values(acctstoptime=_at(15, 16)))
        for n, (login, site, start, stop) in enumerate([
                ("bob", "Axis", datetime(2027, 1, 20, 8), datetime(2027, 1, 20, 9)),
                ("bob", "Axis", datetime(2027, 1, 31, 20), datetime(2027, 2, 1, 2)),
                ("bob", "Axis", datetime(2027, 2, 28, 22), datetime(2027, 3, 1, 1)),
                ("alice", "Axis", datetime(2027, 2, 10, 8), datetime(2027, 2, 10, 10)),
                ("alice", "Lux", datetime(2027, 2, 10, 14), datetime(2027, 2, 10, 15)),
                ("alice", "Axis", datetime(2027, 3, 3, 8), datetime(2027, 3, 3, 12)),
                ("alice", "Axis", datetime(2027, 3, 3, 11), datetime(2027, 3, 3, 13)),
                ("dave", "Axis", datetime(2027, 3, 10, 9), datetime(2027, 3, 10, 10)),
                ("dave", "Axis", datetime(2027, 3, 20, 9), datetime(2027, 3, 20, 11)),
                ("carol", "Lux", datetime(2027, 4, 1, 9), datetime(2027, 4, 1, 12)),
                ("carol", "Lux", datetime(2027, 4, 10, 21), datetime(2027, 4, 11, 3))],
                start=100):
            _add(db, n, login, site, start, stop, ids)
    return ids


def _move_dave(factory: sessionmaker[DB], now: datetime, ids: dict[str, int]) -> None:
    """Roll up to the 14th of March, then move dave to Globex: his days
    after it are rolled up under his new company."""
    with transaction(factory) as db:
        reports_rollup.refresh(db, now)
        admin.set_person(db, "dave@x.example", admin.PersonChanges(company="Globex"))


SEASON = Range(date(2027, 1, 20), date(2027, 4, 10))


def test_whole_months_come_from_the_monthly_grain(factory: sessionmaker[DB]) -> None:
    """A range of a partial month, two whole months and a partial month
    reads the same from the sessions, from the days and from the months."""
    ids = _season(factory)
    now = datetime(2027, 4, 20, 12)
    scopes = [Limits(), Limits(company=ids["Acme"]), Limits(site=1), Limits(network=2),
              Limits(chosen_company=ids["Globex"], sites=frozenset({1})),
              Limits(person=ids["alice"])]
    spans = [SEASON, Range(date(2027, 2, 1), date(2027, 3, 31)),
             Range(date(2027, 1, 31), date(2027, 3, 1)), Range(date(2027, 2, 1),
                                                               date(2027, 2, 28))]
    with transaction(factory) as db:
        live = {(n, m): _tables(db, limits, span, now) for n, limits in enumerate(scopes)
                for m, span in enumerate(spans)}
    with transaction(factory) as db:
        reports_rollup.refresh(db, now)
        # From the first session's day (the 10th of January): January is not whole.
        assert reports_rollup.months_held(db) == {date(2027, 2, 1), date(2027, 3, 1)}
        assert reports_rollup.by_month(db, SEASON) == (
            [Range(date(2027, 2, 1), date(2027, 2, 28)),
             Range(date(2027, 3, 1), date(2027, 3, 31))],
            [Range(date(2027, 1, 20), date(2027, 1, 31)),
             Range(date(2027, 4, 1), date(2027, 4, 10))])
    with transaction(factory) as db:
        for (n, m), expected in live.items():
            assert _tables(db, scopes[n], spans[m], now) == expected, (scopes[n], spans[m])
        src = _source(db, span=SEASON, now=now)
        # By hand. Sessions with time in the range: the 11 above (carol's
        # last begins at 23:00 on the 10th of April in Luxembourg, UTC+2).
        assert reports_sums.session_count(db, src) == 11
        top = {i.login.split("@")[0]: (i.days, i.sessions, i.connected)
               for i in reports_sums.intensive(db, src, 10)}
        # alice: the 10th of February at two sites is one day; her two
        # devices of 3 March once (08:00-13:00 UTC).
        assert top["alice"] == (2, 4, 3 * H + 5 * H)
        # bob: 20 Jan, 31 Jan (21:00-24:00 local), 1 Feb (00:00-03:00), 28 Feb
        # (23:00-24:00), 1 Mar (00:00-02:00): 5 days, 3 sessions, 9 hours.
        assert top["bob"] == (5, 3, 1 * H + 6 * H + 3 * H)
        _, total = reports_sums.working_time(db, src)
        # alice 2, bob 5, dave 2, carol 2 (1 April, 10 April: 23:00-24:00).
        assert total == 11


def test_a_company_change_within_a_month_is_kept(factory: sessionmaker[DB]) -> None:
    """Day rows keep the company a person had when rolled up; the month
    adds them up as they are, so the use per company is the days' own."""
    ids = _season(factory)
    now = datetime(2027, 4, 20, 12)
    _move_dave(factory, datetime(2027, 3, 15, 18), ids)
    spans = [SEASON, Range(date(2027, 3, 1), date(2027, 3, 31))]
    with transaction(factory) as db:
        reports_rollup.refresh(db, now)
        assert date(2027, 3, 1) in reports_rollup.months_held(db)
        rows = {(u.company, u.site): (u.people, u.sessions, u.seconds)
                for u in reports_sums.use(db, _source(db, span=spans[1], now=now), {})}
    assert rows[("Acme", "Axis")] == (2, 3, 5 * H + 1 * H)  # alice, dave on the 10th
    # bob's night (00:00-02:00 on 1 March), dave on the 20th.
    assert rows[("Globex", "Axis")] == (2, 2, 2 * H + 2 * H)
    with transaction(factory) as db:
        # The same from the days alone: forget the months, read again.
        months = {m: _tables(db, Limits(), span, now) for m, span in enumerate(spans)}
        db.execute(delete(ReportMonthDone))
    with transaction(factory) as db:
        for m, span in enumerate(spans):
            assert _tables(db, Limits(), span, now) == months[m]
