"""The machine's CPU shares the benchmarks print beside their figures."""

from __future__ import annotations

from benchmarks import procstat


def test_shares_of_idle_and_stolen_time_between_two_readings() -> None:
    assert procstat.shares((10, 1, 100), (60, 6, 200)) == (0.5, 0.05)
    # No time passed: no division by zero.
    assert procstat.shares((5, 0, 50), (5, 0, 50)) == (0.0, 0.0)


def test_this_machines_times_add_up() -> None:
    idle, steal, total = procstat.machine_times()
    assert 0 <= idle <= total and 0 <= steal <= total and idle + steal <= total
