"""decide() and seconds_to_closing() with a fixed clock: every reject reason
and its precedence, and Session-Timeout = min(credit, time to closing, plan
maximum) at clock points chosen around midnight and the Europe/Brussels DST
changes (2026-03-29 and 2026-10-25, the last Sundays of March and October)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from passerelle.radius.codec import codec
from passerelle.radius.policy import (
    MESSAGES,
    Decision,
    PersonFacts,
    Reason,
    Settings,
    SiteFacts,
    decide,
    reply_message,
    seconds_to_closing,
    standing,
)
from passerelle.refusal import POLICY, Refusal

BRUSSELS = ZoneInfo("Europe/Brussels")
HOUR = 3600
DAY = 24 * HOUR

GOOD = PersonFacts(
    active=True,
    company_status="active",
    company_payment="ok",
    categories="123",
    services=frozenset({"wifi"}),
    balance=10 * DAY,
)
ALWAYS_OPEN = SiteFacts(category=2, opens=None, closes=None)
OFFICE = SiteFacts(category=2, opens="08:00", closes="18:00", open_days="12345")
SETTINGS = Settings(idle_timeout=600, interim_interval=120)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
          second: int = 0, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BRUSSELS, fold=fold)


# Wednesday 2026-06-10, 12:00 in Brussels (CEST, UTC+2).
NOON = local(2026, 6, 10, 12, 0)


def timeout(person: PersonFacts, site: SiteFacts, now: datetime) -> int:
    decision = decide(person, True, site, now, SETTINGS)
    assert decision.accept, decision
    return decision.session_timeout


# -- reasons and their precedence ------------------------------------------

# Each step breaks one more rule, in the documented order; the first broken
# rule must be the reason, so the list is checked from the last step back.
# Any: the facts' fields, each of its own type.
BROKEN: list[tuple[Reason, dict[str, Any], dict[str, Any]]] = [
    (Reason.account_disabled, {"active": False}, {}),
    (Reason.company_closed, {"company_status": "closed"}, {}),
    (Reason.company_suspended, {"company_status": "suspended"}, {}),
    (Reason.payment_overdue, {"company_payment": "overdue"}, {}),
    (Reason.site_not_allowed, {"categories": "13"}, {}),
    (Reason.service_not_allowed, {"services": frozenset({"print"})}, {}),
    (Reason.site_closed, {}, {"open_days": "67"}),
    (Reason.no_credit, {"balance": 0}, {}),
    (Reason.too_many_sessions, {"max_sessions": 1, "open_sessions": 1}, {}),
]


def test_each_rule_in_order_is_the_reason_when_it_is_the_first_broken() -> None:
    for index, (reason, _, _) in enumerate(BROKEN):
        person, site = GOOD, OFFICE
        # Break this rule and every later one: only this one may show. Later
        # rules first, so this rule's change wins where two share a field.
        for _, person_changes, site_changes in reversed(BROKEN[index:]):
            person = replace(person, **person_changes)
            site = replace(site, **site_changes)
        decision = decide(person, True, site, NOON, SETTINGS)
        assert decision == Decision(False, reason), reason


def test_everything_right_is_accepted() -> None:
    decision = decide(GOOD, True, OFFICE, NOON, SETTINGS)
    assert decision.accept and decision.reason is None


@pytest.mark.parametrize("reason, person_changes, site_changes", BROKEN)
def test_each_reason_alone(reason: Reason, person_changes: dict[str, Any],
                           site_changes: dict[str, Any]) -> None:
    person = replace(GOOD, **person_changes)
    site = replace(OFFICE, **site_changes)
    assert decide(person, True, site, NOON, SETTINGS) == Decision(False, reason)


def _every_broken_combination() -> list[tuple[PersonFacts, SiteFacts]]:
    combos = []
    for mask in range(1 << len(BROKEN)):
        person, site = GOOD, OFFICE
        for bit, (_, person_changes, site_changes) in enumerate(BROKEN):
            if mask & (1 << bit):
                person = replace(person, **person_changes)
                site = replace(site, **site_changes)
        combos.append((person, site))
    return combos


def test_wrong_password_never_tells_anything_about_the_account() -> None:
    # Whatever the state of the person, company, plan, site and credit, a
    # wrong password gets exactly what an unknown login gets.
    unknown = decide(None, False, OFFICE, NOON, SETTINGS)
    assert unknown == Decision(False, Reason.bad_credentials)
    for person, site in _every_broken_combination():
        assert decide(person, False, site, NOON, SETTINGS) == unknown
        assert decide(None, False, site, NOON, SETTINGS) == unknown
        # password_ok without a person (cannot happen, must not accept).
        assert decide(None, True, site, NOON, SETTINGS) == unknown


@pytest.mark.parametrize("status", ["suspended", "pending", "", "ACTIVE"])
def test_company_status_other_than_active_is_refused(status: str) -> None:
    decision = decide(replace(GOOD, company_status=status), True, OFFICE, NOON, SETTINGS)
    assert decision == Decision(False, Reason.company_suspended)


@pytest.mark.parametrize("payment", ["overdue", "late", ""])
def test_payment_other_than_ok_is_refused(payment: str) -> None:
    decision = decide(replace(GOOD, company_payment=payment), True, OFFICE, NOON, SETTINGS)
    assert decision == Decision(False, Reason.payment_overdue)


@pytest.mark.parametrize("category, categories, allowed", [
    (1, "1", True), (3, "123", True), (2, "13", False), (3, "", False), (1, "23", False),
])
def test_plan_categories(category: int, categories: str, allowed: bool) -> None:
    site = replace(ALWAYS_OPEN, category=category)
    decision = decide(replace(GOOD, categories=categories), True, site, NOON, SETTINGS)
    assert decision.accept is allowed
    if not allowed:
        assert decision.reason is Reason.site_not_allowed


def test_service_asked_for_must_be_in_the_plan() -> None:
    person = replace(GOOD, services=frozenset({"wifi", "print"}))
    assert decide(person, True, ALWAYS_OPEN, NOON, SETTINGS, service="print").accept
    refused = decide(person, True, ALWAYS_OPEN, NOON, SETTINGS, service="meeting-room")
    assert refused == Decision(False, Reason.service_not_allowed)
    empty = replace(GOOD, services=frozenset())
    assert decide(empty, True, ALWAYS_OPEN, NOON, SETTINGS).reason is Reason.service_not_allowed


@pytest.mark.parametrize("balance", [0, -1, -3600])
def test_no_credit(balance: int) -> None:
    decision = decide(replace(GOOD, balance=balance), True, ALWAYS_OPEN, NOON, SETTINGS)
    assert decision == Decision(False, Reason.no_credit)
    assert decision.session_timeout == 0


def test_a_reject_carries_no_session_terms() -> None:
    person = replace(GOOD, bandwidth_up=1000, bandwidth_down=2000, vlan=42, balance=0)
    decision = decide(person, True, ALWAYS_OPEN, NOON, SETTINGS)
    assert not decision.accept
    assert (decision.session_timeout, decision.idle_timeout, decision.interim_interval) == (0, 0, 0)
    assert (decision.bandwidth_up, decision.bandwidth_down, decision.vlan) == (None, None, None)


# -- reply messages ---------------------------------------------------------


@pytest.mark.parametrize("reason", POLICY)
def test_reply_message_is_code_colon_text(reason: Reason) -> None:
    message = reply_message(reason)
    code, sep, text = message.partition(": ")
    assert sep and code == reason.value
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code)
    assert text == MESSAGES[reason] and text[0].isupper() and "\n" not in text
    assert len(message.encode()) <= 253  # one Reply-Message attribute
    # What the box reads back: the same refusal, the same text.
    assert Refusal.from_reply_message(message) == (reason, text)


def test_reply_message_codes_are_the_documented_ones() -> None:
    # The portal translates these codes: renaming one breaks it silently.
    assert {r.value for r in POLICY} == {
        "bad-credentials", "account-disabled", "company-closed", "company-suspended",
        "payment-overdue", "site-not-allowed", "service-not-allowed", "site-closed",
        "no-credit", "too-many-sessions",
    }
    assert set(MESSAGES) == set(POLICY)
    assert Reason is Refusal, "one list of refusals for the centre, the box and the portal"


# -- accepted session terms -------------------------------------------------


def test_accept_carries_settings_and_plan_terms() -> None:
    person = replace(GOOD, bandwidth_up=2_000_000, bandwidth_down=10_000_000, vlan=101)
    decision = decide(person, True, ALWAYS_OPEN, NOON, SETTINGS)
    assert decision == Decision(True, None, session_timeout=10 * DAY, idle_timeout=600,
                                interim_interval=120, bandwidth_up=2_000_000,
                                bandwidth_down=10_000_000, vlan=101)


@pytest.mark.parametrize("asked, given", [(0, 60), (30, 60), (59, 60), (60, 60), (900, 900)])
def test_interim_interval_is_at_least_60_seconds(asked: int, given: int) -> None:
    settings = Settings(interim_interval=asked)
    assert decide(GOOD, True, ALWAYS_OPEN, NOON, settings).interim_interval == given


@pytest.mark.parametrize("balance, max_session, expected", [
    (1, None, 1),                  # one second of credit: one second
    (5 * HOUR, None, 5 * HOUR),    # credit is less than the 6 h to closing
    (8 * HOUR, None, 6 * HOUR),    # closing at 18:00 is nearer
    (8 * HOUR, 2 * HOUR, 2 * HOUR),  # the plan maximum is nearer still
    (HOUR, 2 * HOUR, HOUR),
    (6 * HOUR, 6 * HOUR, 6 * HOUR),  # all three equal
    (8 * HOUR, 0, 6 * HOUR),       # a plan maximum of 0 means no maximum
])
def test_session_timeout_is_the_smallest_limit(balance: int, max_session: int | None,
                                               expected: int) -> None:
    person = replace(GOOD, balance=balance, max_session=max_session)
    assert timeout(person, OFFICE, NOON) == expected


def test_always_open_site_is_limited_by_credit_and_plan_only() -> None:
    assert seconds_to_closing(ALWAYS_OPEN, NOON) is None
    only_opens = replace(ALWAYS_OPEN, opens="08:00")  # half a schedule is no schedule
    assert seconds_to_closing(only_opens, NOON) is None
    for now in (local(2026, 6, 13, 3, 0), local(2026, 3, 29, 2, 30), utc(2026, 10, 25, 1, 0)):
        assert timeout(replace(GOOD, balance=3 * DAY), ALWAYS_OPEN, now) == 3 * DAY
        person = replace(GOOD, balance=3 * DAY, max_session=4 * HOUR)
        assert timeout(person, ALWAYS_OPEN, now) == 4 * HOUR


# -- opening hours ----------------------------------------------------------


@pytest.mark.parametrize("now, expected", [
    (local(2026, 6, 10, 7, 59, 59), 0),   # not open yet
    (local(2026, 6, 10, 8, 0), 10 * HOUR),  # opening instant
    (local(2026, 6, 10, 17, 0), HOUR),
    (local(2026, 6, 10, 17, 59, 59), 1),
    (local(2026, 6, 10, 18, 0), 0),       # closing instant: closed
    (local(2026, 6, 10, 23, 0), 0),
    (local(2026, 6, 13, 12, 0), 0),       # Saturday
    (local(2026, 6, 14, 12, 0), 0),       # Sunday
    (local(2026, 6, 15, 12, 0), 6 * HOUR),  # Monday
])
def test_office_hours(now: datetime, expected: int) -> None:
    assert seconds_to_closing(OFFICE, now) == expected


def test_naive_now_is_utc() -> None:
    aware = utc(2026, 6, 10, 10, 0)  # 12:00 CEST
    assert seconds_to_closing(OFFICE, aware.replace(tzinfo=None)) == 6 * HOUR
    assert seconds_to_closing(OFFICE, aware) == 6 * HOUR
    # The same instant written in another zone gives the same answer.
    assert seconds_to_closing(OFFICE, aware.astimezone(ZoneInfo("America/New_York"))) == 6 * HOUR


def test_open_days_are_local_days_not_utc_days() -> None:
    night = replace(OFFICE, opens="00:00", closes="24:00")
    # Friday 23:30 UTC is Saturday 01:30 in Brussels: closed.
    assert seconds_to_closing(night, utc(2026, 6, 12, 23, 30)) == 0
    # Sunday 22:30 UTC is Monday 00:30 in Brussels: open until midnight.
    assert seconds_to_closing(night, utc(2026, 6, 14, 22, 30)) == 23 * HOUR + 30 * 60


def test_site_in_another_time_zone() -> None:
    lisbon = replace(OFFICE, timezone="Europe/Lisbon")  # UTC+1 in summer
    # 12:00 in Brussels is 11:00 in Lisbon: seven hours to 18:00 there.
    assert seconds_to_closing(lisbon, NOON) == 7 * HOUR


@pytest.mark.parametrize("now, expected", [
    (local(2026, 6, 10, 23, 0), HOUR),
    (local(2026, 6, 10, 23, 59, 59), 1),
    (local(2026, 6, 11, 0, 0), 0),  # next day, not open before 08:00
    (local(2026, 6, 10, 7, 0), 0),
])
def test_closing_at_24_00(now: datetime, expected: int) -> None:
    site = replace(OFFICE, closes="24:00")
    assert seconds_to_closing(site, now) == expected


@pytest.mark.parametrize("now, expected", [
    (local(2026, 6, 10, 20, 0), 4 * HOUR),
    (local(2026, 6, 10, 23, 59, 59), 1),
    (local(2026, 6, 11, 0, 0), 0),
    (local(2026, 6, 10, 7, 0), 0),
])
def test_closing_at_00_00_means_midnight(now: datetime, expected: int) -> None:
    # "00:00" is how most people write midnight; read as "never open" it
    # would refuse everyone with site-closed.
    site = replace(OFFICE, closes="00:00")
    assert seconds_to_closing(site, now) == expected
    assert seconds_to_closing(site, now) == seconds_to_closing(replace(site, closes="24:00"), now)


@pytest.mark.parametrize("now, expected", [
    (local(2026, 6, 12, 23, 0), 7 * HOUR),   # Friday night
    (local(2026, 6, 13, 3, 0), 3 * HOUR),    # Saturday morning, the span began on Friday
    (local(2026, 6, 13, 5, 59, 59), 1),
    (local(2026, 6, 13, 6, 0), 0),
    (local(2026, 6, 13, 12, 0), 0),
    (local(2026, 6, 13, 23, 0), 0),          # Saturday is not an open day
    (local(2026, 6, 12, 3, 0), 0),           # the span of Thursday night: closed
    (local(2026, 6, 12, 21, 59, 59), 0),
    (local(2026, 6, 12, 22, 0), 8 * HOUR),
])
def test_hours_across_midnight(now: datetime, expected: int) -> None:
    night_shift = SiteFacts(category=1, opens="22:00", closes="06:00", open_days="5")
    assert seconds_to_closing(night_shift, now) == expected


def test_equal_opening_and_closing_is_a_whole_day() -> None:
    site = SiteFacts(category=1, opens="07:00", closes="07:00", open_days="3")  # Wednesday
    assert seconds_to_closing(site, local(2026, 6, 10, 7, 0)) == DAY
    assert seconds_to_closing(site, local(2026, 6, 11, 6, 0)) == HOUR  # Thursday morning
    assert seconds_to_closing(site, local(2026, 6, 11, 7, 0)) == 0


# -- daylight saving time (Europe/Brussels) ---------------------------------
# 2026-03-29: 02:00 CET becomes 03:00 CEST (the day has 23 hours).
# 2026-10-25: 03:00 CEST becomes 02:00 CET (the day has 25 hours).


@pytest.mark.parametrize("now, expected", [
    # Office hours do not straddle the change: same answer as any other day.
    (local(2026, 3, 29, 9, 0), 9 * HOUR),
    (local(2026, 3, 28, 9, 0), 9 * HOUR),
    (local(2026, 10, 25, 9, 0), 9 * HOUR),
    (local(2026, 10, 24, 17, 30), 30 * 60),
])
def test_dst_days_outside_the_change(now: datetime, expected: int) -> None:
    every_day = replace(OFFICE, open_days="1234567")
    assert seconds_to_closing(every_day, now) == expected


@pytest.mark.parametrize("now, expected", [
    # Spring: from 00:00 UTC (01:00 CET) to midnight CEST is 22 h, not 23.
    (utc(2026, 3, 29, 0, 0), 22 * HOUR),
    (utc(2026, 3, 29, 0, 59, 59), 21 * HOUR + 1),  # 01:59:59 CET
    (utc(2026, 3, 29, 1, 0), 21 * HOUR),           # 03:00 CEST
    (utc(2026, 3, 28, 23, 0), 23 * HOUR),          # 00:00 CET, the 23-hour day
    # Autumn: from 00:00 UTC (02:00 CEST) to midnight CET is 23 h, not 22.
    (utc(2026, 10, 24, 22, 0), 25 * HOUR),         # 00:00 CEST, the 25-hour day
    (utc(2026, 10, 25, 0, 0), 23 * HOUR),          # 02:00 CEST, first pass
    (utc(2026, 10, 25, 1, 0), 22 * HOUR),          # 02:00 CET, second pass
    (utc(2026, 10, 25, 22, 59, 59), 1),
])
def test_dst_change_inside_an_around_the_clock_day(now: datetime, expected: int) -> None:
    site = SiteFacts(category=1, opens="00:00", closes="24:00")
    assert seconds_to_closing(site, now) == expected


@pytest.mark.parametrize("now, expected", [
    (local(2026, 3, 29, 1, 30), 2 * HOUR + 30 * 60),  # 01:30 CET to 05:00 CEST
    (local(2026, 3, 29, 3, 30), HOUR + 30 * 60),
    (local(2026, 10, 25, 1, 30), 4 * HOUR + 30 * 60),  # 01:30 CEST to 05:00 CET
    (local(2026, 10, 25, 2, 30, fold=0), 3 * HOUR + 30 * 60),  # first 02:30 (CEST)
    (local(2026, 10, 25, 2, 30, fold=1), 2 * HOUR + 30 * 60),  # second 02:30 (CET)
])
def test_dst_change_inside_opening_hours(now: datetime, expected: int) -> None:
    site = SiteFacts(category=1, opens="01:00", closes="05:00")
    assert seconds_to_closing(site, now) == expected


def test_dst_change_inside_an_overnight_span() -> None:
    site = SiteFacts(category=1, opens="22:00", closes="06:00")
    # Saturday 22:00 CET to Sunday 06:00 CEST is 7 hours in spring...
    assert seconds_to_closing(site, local(2026, 3, 28, 22, 0)) == 7 * HOUR
    # ...and Saturday 22:00 CEST to Sunday 06:00 CET 9 hours in autumn.
    assert seconds_to_closing(site, local(2026, 10, 24, 22, 0)) == 9 * HOUR


def test_session_timeout_follows_the_clock_through_a_whole_dst_day() -> None:
    # Every 7 minutes through both change days: the session ends exactly at
    # the site's closing instant (18:00 local), or is refused when closed.
    site = replace(OFFICE, open_days="1234567")
    person = replace(GOOD, balance=30 * DAY)
    for day in (datetime(2026, 3, 29), datetime(2026, 10, 25)):
        closing = datetime.combine(day.date(), time(18), tzinfo=BRUSSELS).astimezone(UTC)
        opening = datetime.combine(day.date(), time(8), tzinfo=BRUSSELS).astimezone(UTC)
        start = day.replace(tzinfo=BRUSSELS).astimezone(UTC)
        for step in range(0, 24 * 60, 7):
            now = start + timedelta(minutes=step)
            decision = decide(person, True, site, now, SETTINGS)
            if opening <= now < closing:
                assert decision.accept, now
                assert now + timedelta(seconds=decision.session_timeout) == closing, now
            else:
                assert decision == Decision(False, Reason.site_closed), now


def test_closed_site_is_refused_even_with_credit_and_plan_maximum() -> None:
    person = replace(GOOD, max_session=HOUR)
    saturday = local(2026, 6, 13, 12, 0)
    assert decide(person, True, OFFICE, saturday, SETTINGS) == Decision(False, Reason.site_closed)
    # Closed beats no credit: the portal tells the more useful reason.
    broke = replace(person, balance=0)
    assert decide(broke, True, OFFICE, saturday, SETTINGS) == Decision(False, Reason.site_closed)


@pytest.mark.parametrize("hours", ["8h00", "08:00:00", "25:00", "08:60", "", "ab:cd"])
def test_malformed_hours_are_a_clear_error(hours: str) -> None:
    site = replace(OFFICE, opens=hours)
    with pytest.raises(ValueError, match="HH:MM"):
        seconds_to_closing(site, NOON)


def test_session_timeout_fits_its_32_bit_attribute() -> None:
    # A credit typed in with too many zeros must still give an encodable reply.
    person = replace(GOOD, balance=2**40)
    limit = timeout(person, ALWAYS_OPEN, NOON)
    assert limit == 2**32 - 1
    assert codec().raw("Session-Timeout", limit) == (27, b"\xff\xff\xff\xff")


@pytest.mark.parametrize("change, reason", [
    ({}, None),
    ({"balance": 0}, None),  # credit does not count: the box still holds the key
    ({"active": False}, Reason.account_disabled),
    ({"company_status": "closed"}, Reason.company_closed),
    ({"company_status": "suspended"}, Reason.company_suspended),
    ({"company_payment": "overdue"}, Reason.payment_overdue),
    ({"categories": "13"}, Reason.site_not_allowed),
    ({"services": frozenset()}, Reason.service_not_allowed),
])
def test_standing_is_what_decide_checks_before_the_hour_and_the_credit(
        change: dict[str, Any], reason: Reason | None) -> None:
    person = replace(GOOD, **change)
    assert standing(person, 2) is reason
    if reason is not None:
        assert decide(person, True, ALWAYS_OPEN, NOON, SETTINGS) == Decision(False, reason)
def test_the_session_limit_counts_the_other_devices_only() -> None:
    """None is no limit; the limit is reached when the open sessions on the
    person's other devices fill it."""
    assert decide(replace(GOOD, open_sessions=50), True, OFFICE, NOON, SETTINGS).accept
    assert decide(replace(GOOD, max_sessions=2, open_sessions=1), True, OFFICE, NOON,
                  SETTINGS).accept
    assert decide(replace(GOOD, max_sessions=2, open_sessions=2), True, OFFICE, NOON,
                  SETTINGS) == Decision(False, Reason.too_many_sessions)
