"""The report core on a hand-made week at two sites, with a fixed clock:
sessions cut into local days, occupancy, one person's day at one site.
The sums over these (use, working time, ...) run in SQL and are checked on
the same week in tests/console/test_reports_rollup.py.

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


def test_occupancy_counts_one_person_once_at_an_instant() -> None:
    one_device_after_another = [
        _session(1, "bob", AXIS, _at(11, 9), _at(11, 10)),
        _session(2, "bob", AXIS, _at(11, 10), _at(11, 11)),  # starts as the first ends
        _session(3, "carol", AXIS, _at(11, 10), _at(11, 10, 1)),
    ]
    rows = reports.occupancy(one_device_after_another, WEEK, NOW, {AXIS: 4})
    assert {r.hour: r.peak for r in rows} == {10: 1, 11: 2}


def test_day_rows_one_person_one_site_one_day() -> None:
    rows = {(r.site_id, r.day.day, r.login): r for r in reports.day_rows(WEEK_SESSIONS, WEEK, NOW)}
    assert sorted(rows) == [(AXIS, 11, "alice"), (AXIS, 11, "bob"), (AXIS, 11, "carol"),
                            (AXIS, 11, "dave"), (AXIS, 12, "bob"), (LUX, 15, "alice")]
    alice = rows[(AXIS, 11, "alice")]
    # A, B (overlapping A) and G: 07:00-12:30 and 14:00-15:00 UTC.
    assert (alice.sessions, alice.carried, alice.connected) == (3, 0, int(6.5 * H))
    assert (alice.first_in, alice.last_out, alice.open) == (_at(11, 7), _at(11, 15), False)
    assert alice.company_id == 100 and alice.person_id == 10
    bob_11, bob_12 = rows[(AXIS, 11, "bob")], rows[(AXIS, 12, "bob")]
    assert (bob_11.sessions, bob_11.carried, bob_11.connected) == (1, 0, 1800)
    assert (bob_12.sessions, bob_12.carried, bob_12.connected) == (1, 1, 2 * H)
    assert bob_12.first_in == _at(11, 23)  # local midnight, in UTC
    carol = rows[(AXIS, 11, "carol")]
    assert carol.connected == int(3.5 * H)  # past the 18:00 closing, as it happened
    still_in = rows[(LUX, 15, "alice")]
    assert still_in.open and still_in.connected == 3 * H and still_in.last_out == NOW


def test_a_session_over_three_days() -> None:
    long = [_session(1, "bob", AXIS, _at(11, 12), _at(13, 12))]  # 13:00 on 11th to 13:00 13th
    days = reports.day_rows(long, WEEK, NOW)
    assert [(r.day.day, r.sessions, r.carried, r.connected) for r in days] == [
        (11, 1, 0, 11 * H), (12, 1, 1, 24 * H), (13, 1, 1, 13 * H)]


def test_hours_across_a_change_of_summer_time() -> None:
    # Brussels springs from 02:00 to 03:00 local at 01:00 UTC on 28 March 2027.
    spring = [_session(1, "bob", AXIS, datetime(2027, 3, 28, 0, 30), datetime(2027, 3, 28, 2, 30))]
    span = Range(date(2027, 3, 28), date(2027, 3, 28))
    rows = reports.occupancy(spring, span, NOW, {})
    assert [r.hour for r in rows] == [1, 3, 4]
    # ... and falls back from 03:00 to 02:00 at 01:00 UTC on 31 October: the
    # local day has 25 hours.
    autumn = [_session(1, "bob", AXIS, datetime(2027, 10, 30, 22), datetime(2027, 10, 31, 23))]
    (day,) = reports.day_rows(autumn, Range(date(2027, 10, 31), date(2027, 10, 31)), NOW)
    assert day.connected == 25 * H


def test_local_time() -> None:
    assert reports.local(_at(11, 23), "Europe/Brussels") == _at(12, 0)
    assert reports.local(datetime(2027, 7, 1, 22), "Europe/Brussels") == datetime(2027, 7, 2, 0)


def test_a_range_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Range(date(2027, 1, 2), date(2027, 1, 1))
