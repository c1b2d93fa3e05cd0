"""The report core on a hand-made week at two sites, with a fixed clock.

Every expected number below was worked out by hand from the sessions in
``WEEK`` (all in January 2027; Brussels and Luxembourg are UTC+1 then):

    A alice  Axis  07:00-11:00 UTC 11 Jan  = 08:00-12:00 local
    B alice  Axis  10:00-12:30 UTC 11 Jan  = 11:00-13:30 local (second device, overlaps A)
    G alice  Axis  14:00-15:00 UTC 11 Jan  = 15:00-16:00 local
    F dave   Axis  10:30-10:45 UTC 11 Jan  = 11:30-11:45 local
    D carol  Axis  16:00-19:30 UTC 11 Jan  = 17:00-20:30 local (Axis closes at 18:00)
    C bob    Axis  22:30 UTC 11 Jan - 01:00 UTC 12 Jan = 23:30-02:00 local (midnight)
    E alice  Lux   12:00 UTC 15 Jan - still open at NOW 15:00 UTC = 13:00-16:00 local

Acme (alice, dave) belongs to the Wallonia network, Globex (bob, carol) to
Luxembourg; Axis is a Wallonia site, Lux a Luxembourg one.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from passerelle.radius import reports
from passerelle.radius.reports import Interval, Range

NOW = datetime(2027, 1, 15, 15, 0)
WEEK = Range(date(2027, 1, 11), date(2027, 1, 15))
AXIS, LUX = 1, 2
WALLONIA, LUXEMBOURG = 10, 20
COMPANY = {"alice": ("Acme", 100, WALLONIA), "dave": ("Acme", 100, WALLONIA),
           "bob": ("Globex", 200, LUXEMBOURG), "carol": ("Globex", 200, LUXEMBOURG)}
SITE = {AXIS: ("Axis", "Europe/Brussels", WALLONIA), LUX: ("Lux", "Europe/Luxembourg", LUXEMBOURG)}
NETWORK = {WALLONIA: "Wallonia", LUXEMBOURG: "Luxembourg"}


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2027, 1, day, hh, mm)


def _session(sid: int, login: str, site: int, start: datetime,
             stop: datetime | None) -> Interval:
    company, company_id, home = COMPANY[login]
    name, zone, network = SITE[site]
    return Interval(session_id=sid, login=login, person_id=sid * 10, company_id=company_id,
                    company=company, site_id=site, site=name, timezone=zone,
                    network_id=network, network=NETWORK[network], start=start, stop=stop,
                    home_network_id=home, home_network=NETWORK[home])


WEEK_SESSIONS = [
    _session(1, "alice", AXIS, _at(11, 7), _at(11, 11)),  # A
    _session(2, "alice", AXIS, _at(11, 10), _at(11, 12, 30)),  # B
    _session(3, "alice", AXIS, _at(11, 14), _at(11, 15)),  # G
    _session(4, "dave", AXIS, _at(11, 10, 30), _at(11, 10, 45)),  # F
    _session(5, "carol", AXIS, _at(11, 16), _at(11, 19, 30)),  # D
    _session(6, "bob", AXIS, _at(11, 22, 30), _at(12, 1)),  # C
    _session(7, "alice", LUX, _at(15, 12), None),  # E
]
H = 3600


def test_a_session_crossing_midnight_is_split_at_local_midnight() -> None:
    parts = list(reports.pieces([WEEK_SESSIONS[5]], WEEK, NOW))
    assert [(p.day, p.seconds) for p in parts] == [(date(2027, 1, 11), 1800),
                                                   (date(2027, 1, 12), 7200)]
    # Only the days of the range count.
    later = Range(date(2027, 1, 12), date(2027, 1, 12))
    assert [(p.day, p.seconds) for p in reports.pieces([WEEK_SESSIONS[5]], later, NOW)] == [
        (date(2027, 1, 12), 7200)]


def test_a_session_still_open_counts_up_to_now() -> None:
    (part,) = reports.pieces([WEEK_SESSIONS[6]], WEEK, NOW)
    assert part.open and part.seconds == 3 * H


def test_occupancy_peaks_per_local_hour() -> None:
    rows = reports.occupancy(WEEK_SESSIONS, WEEK, NOW, {AXIS: 4, LUX: 0})
    table = {(r.site, r.day.day, r.hour): (r.peak, r.rate) for r in rows}
    axis_11 = {h: p for (site, day, h), (p, _) in table.items() if site == "Axis" and day == 11}
    # alice 8-13:30 (her two devices once), dave joins 11:30-11:45, alice 15-16,
    # carol 17-20:30 past the 18:00 closing, bob from 23:30.
    assert axis_11 == {8: 1, 9: 1, 10: 1, 11: 2, 12: 1, 13: 1, 15: 1,
                       17: 1, 18: 1, 19: 1, 20: 1, 23: 1}
    assert table[("Axis", 11, 11)] == (2, 0.5)
    assert table[("Axis", 12, 0)] == (1, 0.25) and table[("Axis", 12, 1)] == (1, 0.25)
    assert ("Axis", 12, 2) not in table  # bob left at 02:00 sharp
    # Lux has no capacity set: no rate.
    assert {h: v for (site, _, h), v in table.items() if site == "Lux"} == {
        13: (1, None), 14: (1, None), 15: (1, None)}
    daily = {(d.site, d.day.day): d.peak for d in reports.daily_peaks(rows)}
    assert daily == {("Axis", 11): 2, ("Axis", 12): 1, ("Lux", 15): 1}


def test_occupancy_counts_one_person_once_at_an_instant() -> None:
    one_device_after_another = [
        _session(1, "bob", AXIS, _at(11, 9), _at(11, 10)),
        _session(2, "bob", AXIS, _at(11, 10), _at(11, 11)),  # starts as the first ends
        _session(3, "carol", AXIS, _at(11, 10), _at(11, 10, 1)),
    ]
    rows = reports.occupancy(one_device_after_another, WEEK, NOW, {AXIS: 4})
    assert {r.hour: r.peak for r in rows} == {10: 1, 11: 2}


def test_use_per_company_and_site() -> None:
    rows = reports.use(reports.day_rows(WEEK_SESSIONS, WEEK, NOW), WEEK, {("Acme", "Axis"): 600})
    assert [(r.company, r.site, r.people, r.sessions, r.seconds, r.credit) for r in rows] == [
        # alice 07:00-12:30 + 14:00-15:00 = 6.5 h, dave 15 min
        ("Acme", "Axis", 2, 4, int(6.5 * H) + 15 * 60, 600),
        ("Acme", "Lux", 1, 1, 3 * H, 0),
        ("Globex", "Axis", 2, 2, int(2.5 * H) + int(3.5 * H), 0),
    ]
    companies, sites, people = reports.cross_site(rows)
    assert companies == ["Acme", "Globex"] and sites == ["Axis", "Lux"]
    assert people == {("Acme", "Axis"): 2, ("Acme", "Lux"): 1, ("Globex", "Axis"): 2}


def test_working_time_as_if_at_the_office() -> None:
    rows = reports.day_rows(WEEK_SESSIONS, WEEK, NOW)
    days = {(d.login, d.day.day): d for d in reports.working_time(rows)}
    alice = days[("alice", 11)]
    assert (alice.first_in, alice.last_out) == (_at(11, 8), _at(11, 16))
    assert alice.present == 8 * H and alice.connected == int(6.5 * H)
    bob_11, bob_12 = days[("bob", 11)], days[("bob", 12)]
    assert (bob_11.first_in, bob_11.last_out, bob_11.connected) == (
        _at(11, 23, 30), _at(12, 0), 1800)
    assert (bob_12.first_in, bob_12.last_out, bob_12.connected) == (_at(12, 0), _at(12, 2), 2 * H)
    carol = days[("carol", 11)]
    assert (carol.first_in, carol.last_out, carol.present) == (
        _at(11, 17), _at(11, 20, 30), int(3.5 * H))
    open_day = days[("alice", 15)]
    assert open_day.still_open and open_day.sites == "Lux" and open_day.connected == 3 * H
    assert not alice.still_open
    assert sorted(days) == [("alice", 11), ("alice", 15), ("bob", 11), ("bob", 12),
                            ("carol", 11), ("dave", 11)]


def test_the_most_intensive_users() -> None:
    rows = reports.intensive(reports.day_rows(WEEK_SESSIONS, WEEK, NOW), WEEK, limit=3)
    assert [(r.login, r.company, r.days, r.sessions, r.connected) for r in rows] == [
        ("alice", "Acme", 2, 4, int(6.5 * H) + 3 * H),
        ("carol", "Globex", 1, 1, int(3.5 * H)),
        ("bob", "Globex", 2, 1, int(2.5 * H)),
    ]


def test_partner_networks_both_ways() -> None:
    rows = reports.partner_balance(reports.day_rows(WEEK_SESSIONS, WEEK, NOW), WEEK)
    assert [(r.month, r.home, r.host, r.people, r.sessions, r.seconds) for r in rows] == [
        ("2027-01", "Luxembourg", "Wallonia", 2, 2, 6 * H),
        ("2027-01", "Wallonia", "Luxembourg", 1, 1, 3 * H),
    ]


def test_partner_months_follow_local_days() -> None:
    # 23:30 UTC on 31 January is 00:30 on 1 February in Brussels.
    late = _session(1, "bob", AXIS, datetime(2027, 1, 31, 23, 30), datetime(2027, 2, 1, 0, 30))
    span = Range(date(2027, 1, 1), date(2027, 2, 28))
    rows = reports.partner_balance(reports.day_rows([late], span, datetime(2027, 3, 1)), span)
    assert [(r.month, r.seconds) for r in rows] == [("2027-02", H)]


def test_a_session_over_three_days_counts_once_in_any_range() -> None:
    long = [_session(1, "bob", AXIS, _at(11, 12), _at(13, 12))]  # 13:00 on 11th to 13:00 13th
    for first, last in ((11, 13), (12, 13), (12, 12), (13, 15)):
        span = Range(date(2027, 1, first), date(2027, 1, last))
        rows = reports.day_rows(long, span, NOW)
        (used,) = reports.use(rows, span)
        (top,) = reports.intensive(rows, span)
        assert used.sessions == 1 and top.sessions == 1, (first, last)
        assert top.days == last - first + 1 if last <= 13 else top.days == 1
    days = reports.day_rows(long, WEEK, NOW)
    assert [(r.day.day, r.sessions, r.carried, r.connected) for r in days] == [
        (11, 1, 0, 11 * H), (12, 1, 1, 24 * H), (13, 1, 1, 13 * H)]


def test_a_session_in_two_months_counts_in_each() -> None:
    late = _session(1, "bob", AXIS, datetime(2027, 1, 31, 20), datetime(2027, 2, 1, 2))
    span = Range(date(2027, 1, 1), date(2027, 2, 28))
    rows = reports.partner_balance(reports.day_rows([late], span, NOW), span)
    # 21:00-24:00 on 31 January, 00:00-03:00 on 1 February, local time.
    assert [(r.month, r.sessions, r.seconds) for r in rows] == [("2027-01", 1, 3 * H),
                                                                ("2027-02", 1, 3 * H)]


def test_a_range_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Range(date(2027, 1, 2), date(2027, 1, 1))
