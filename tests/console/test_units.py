"""The console's pure parts with a fixed clock: box health, time left,
formats, the filters and the sign-in's way back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from passerelle.errors import UserError
from passerelle.portal.console.access import safe_next
from passerelle.portal.console.boxes_ops import Health, health
from passerelle.portal.console.filters import like_pattern
from passerelle.portal.console.formats import duration, octets, stamp
from passerelle.portal.console.live_ops import LiveFilter, time_left
from passerelle.portal.console.scope import Principal, Scope
from passerelle.radius.models import OperatorRole

NOW = datetime(2026, 12, 1, 10, 0, 0)


def test_health() -> None:
    assert health(None, NOW, 300) is Health.never
    assert health(NOW - timedelta(seconds=300), NOW, 300) is Health.ok
    assert health(NOW - timedelta(seconds=301), NOW, 300) is Health.silent
    assert health(NOW + timedelta(seconds=5), NOW, 300) is Health.ok  # a clock ahead


def test_time_left() -> None:
    start = NOW - timedelta(minutes=10)
    assert time_left(start, 3600, NOW) == 3000
    assert time_left(start, 60, NOW) == 0
    assert time_left(start, None, NOW) is None
    assert time_left(None, 3600, NOW) is None


def test_formats() -> None:
    assert (duration(None), duration(0), duration(3725), duration(-61)) == \
        ("", "0:00:00", "1:02:05", "-0:01:01")
    assert duration(10**12).startswith("277777777:")
    assert (octets(0), octets(999), octets(1000), octets(98_765_432), octets(2 * 10**12)) == \
        ("0 B", "999 B", "1.0 kB", "98.8 MB", "2.0 TB")
    assert (stamp(None), stamp(NOW)) == ("", "2026-12-01 10:00:00")


def test_filters() -> None:
    assert LiveFilter.parse({}) == LiveFilter()
    wanted = LiveFilter.parse({"site": " 3 ", "company": "", "person": "7", "q": " ab ",
                               "other": "ignored"})
    assert wanted == LiveFilter(site=3, person=7, search="ab")
    assert wanted.query() == {"site": "3", "person": "7", "q": "ab"}
    for bad in ({"site": "x"}, {"site": "0"}, {"person": str(2**31)}, {"company": "²"},
                {"q": "a\tb"}, {"q": "y" * 101}):
        with pytest.raises(UserError):
            LiveFilter.parse(bad)
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


@pytest.mark.parametrize(("target", "expected"), [
    ("/live/?site=1", "/live/?site=1"), ("/boxes/", "/boxes/"), (None, None), ("", None),
    ("//evil.example", None), ("https://evil.example/", None), ("/\\evil", None),
    ("live", None), ("/a\nb", None), ("/" + "a" * 2001, None),
])
def test_safe_next(target: str | None, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_scopes() -> None:
    ops = Principal(1, "noc", "", OperatorRole.network_ops, 0)
    assert ops.scope == Scope() and ops.scope.everything
    site = Principal(2, "axis", "", OperatorRole.site_manager, 0, site_ids=frozenset({4}))
    assert site.scope == Scope(sites=frozenset({4})) and not site.scope.everything
    company = Principal(3, "hr", "", OperatorRole.company_manager, 0, company_id=9)
    assert company.scope == Scope(company=9)
    # Never "everything" by mistake, even without a company on record.
    assert Principal(4, "x", "", OperatorRole.company_manager, 0).scope == Scope(company=-1)
