"""The drop log's budget, with a fixed clock."""

from __future__ import annotations

from passerelle.radius.loglimit import LogLimit


def test_a_burst_then_silence_then_the_count() -> None:
    limit: LogLimit[tuple[str, str]] = LogLimit(burst=3, interval=60.0)
    key = ("malformed", "192.0.2.1")
    assert [limit.allow(key, 100.0 + i)[0] for i in range(10)] == [True] * 3 + [False] * 7
    # The next interval's first line carries the count of what was suppressed.
    assert limit.allow(key, 160.0) == (True, 7, False)
    assert limit.allow(key, 161.0) == (True, 0, False)
    assert limit.allow(key, 162.0) == (True, 0, True)  # the budget's last line


def test_each_reason_and_source_has_its_own_budget() -> None:
    limit: LogLimit[tuple[str, str]] = LogLimit(burst=1, interval=60.0)
    assert limit.allow(("malformed", "192.0.2.1"), 0.0) == (True, 0, True)
    assert limit.allow(("malformed", "192.0.2.1"), 1.0) == (False, 0, False)
    assert limit.allow(("malformed", "192.0.2.2"), 1.0) == (True, 0, True)
    assert limit.allow(("BadAuthenticator", "192.0.2.1"), 1.0) == (True, 0, True)


def test_a_flood_that_stops_still_reports_its_count_once() -> None:
    limit: LogLimit[str] = LogLimit(burst=2, interval=10.0)
    for i in range(1000):
        limit.allow("k", 0.0 + i / 1000)
    assert limit.due(5.0) == []  # the interval is not over
    assert limit.due(10.0) == [("k", 998)]
    assert limit.due(20.0) == []  # said once
    assert limit.allow("k", 20.0) == (True, 0, False)


def test_the_keys_remembered_are_bounded() -> None:
    limit: LogLimit[tuple[str, str]] = LogLimit(burst=1, interval=60.0, keys=100)
    for i in range(10_000):
        assert limit.allow(("unknown client", f"10.0.{i // 256}.{i % 256}"), 0.0)[0]
    assert len(limit._windows) <= 100
