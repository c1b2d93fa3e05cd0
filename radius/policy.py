"""Who may get on the Wi-Fi, and for how long: the pure core of the centre.

``decide`` takes facts already read from the database and ``now``, and
returns a Decision. No I/O, no clock of its own: tests drive it directly.

Rules, in the order they are checked (the first that fails is the reason):

1. the login exists and the password is right (else ``bad-credentials``:
   an unknown login and a wrong password look the same from outside);
2. the person is active (``account-disabled``);
3. the company is not closed (``company-closed``) nor suspended
   (``company-suspended``), and its payments are in order
   (``payment-overdue``);
4. the plan allows the site's category (``site-not-allowed``) and the
   service asked for (``service-not-allowed``);
5. the site is open now (``site-closed``);
6. credit is left (``no-credit``);
7. the person has fewer sessions open on other devices than the plan's
   ``max_sessions`` allows (``too-many-sessions``; no limit when None).

An accepted session lasts min(credit left, time to the site's closing, the
plan's maximum session), at least one second and at most 2^32 - 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from passerelle.refusal import SEPARATOR, Refusal

# Why a request is refused: the policy decides one of refusal.POLICY; the
# code travels in Reply-Message so that the portal can translate it.
Reason = Refusal

MESSAGES = {
    Reason.bad_credentials: "Wrong login or password",
    Reason.account_disabled: "This account is disabled",
    Reason.company_closed: "Your company's membership has ended",
    Reason.company_suspended: "Your company's membership is suspended",
    Reason.payment_overdue: "Your company's payment is overdue",
    Reason.site_not_allowed: "Your company's plan does not include this site",
    Reason.service_not_allowed: "Your company's plan does not include this service",
    Reason.site_closed: "The site is closed now",
    Reason.no_credit: "No credit left",
    Reason.too_many_sessions: "Too many devices connected at once for your company's plan",
}


def reply_message(reason: Refusal) -> str:
    """``code: English text``, read back by ``Refusal.from_reply_message``;
    the portal shows its own translation of the code."""
    return f"{reason.value}{SEPARATOR}{MESSAGES[reason]}"


@dataclass(frozen=True)
class SiteFacts:
    category: int
    opens: str | None  # "HH:MM" local, None = always open
    closes: str | None
    open_days: str = "1234567"
    timezone: str = "Europe/Brussels"


@dataclass(frozen=True)
class PersonFacts:
    active: bool
    company_status: str  # active | suspended | closed
    company_payment: str  # ok | overdue
    categories: str  # "123"
    services: frozenset[str]
    balance: int  # seconds of credit left
    max_session: int | None = None  # seconds
    bandwidth_up: int | None = None  # bit/s
    bandwidth_down: int | None = None
    vlan: int | None = None
    max_sessions: int | None = None  # sessions at once; None: no limit
    open_sessions: int = 0  # open now on the person's other devices


@dataclass(frozen=True)
class Settings:
    idle_timeout: int = 900
    interim_interval: int = 300


@dataclass(frozen=True)
class Decision:
    accept: bool
    reason: Reason | None = None
    session_timeout: int = 0
    idle_timeout: int = 0
    interim_interval: int = 0
    bandwidth_up: int | None = None
    bandwidth_down: int | None = None
    vlan: int | None = None


_HHMM = re.compile(r"(\d{1,2}):(\d{2})")
MINUTES_PER_DAY = 24 * 60
MAX_SESSION_TIMEOUT = 2**32 - 1


def _minutes(value: str, *, closing: bool) -> int:
    """Minutes after midnight of an "HH:MM" time; "24:00" only as a closing."""
    match = _HHMM.fullmatch(value)
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    total = hours * 60 + minutes
    if not (0 <= hours < 24 and 0 <= minutes < 60) and not (closing and total == MINUTES_PER_DAY):
        raise ValueError(f"site hours {value!r} are not HH:MM (00:00 to 24:00)")
    return total


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (minutes may reach 24:00)."""
    moment = datetime.combine(day + timedelta(days=minutes // MINUTES_PER_DAY),
                              time(minutes % MINUTES_PER_DAY // 60, minutes % 60), tzinfo=zone)
    return moment.astimezone(UTC)


def seconds_to_closing(site: SiteFacts, now: datetime) -> int | None:
    """Seconds until the site closes, None if always open, 0 if closed now.

    ``now`` is an aware datetime or naive UTC. A closing time at or before
    the opening time is on the next day ("22:00"-"06:00" is a night,
    "08:00"-"00:00" closes at midnight, equal times make a 24-hour day); the
    day the span opens must be in ``open_days``."""
    if site.opens is None or site.closes is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    now = now.astimezone(UTC)
    zone = ZoneInfo(site.timezone)
    opens = _minutes(site.opens, closing=False)
    closes = _minutes(site.closes, closing=True)
    if closes <= opens:
        closes += MINUTES_PER_DAY
    today = now.astimezone(zone).date()
    # A span that opened yesterday may still run (night hours).
    for day in (today - timedelta(days=1), today):
        if str(day.isoweekday()) not in site.open_days:
            continue
        # Instants in UTC, so a DST change inside the span is counted right.
        start, end = _wall(day, opens, zone), _wall(day, closes, zone)
        if start <= now < end:
            return int((end - now).total_seconds())
    return 0


def standing(person: PersonFacts, category: int, service: str = "wifi") -> Reason | None:
    """Why ``person`` may not use ``service`` at a site of ``category`` at
    all (whatever the hour and their credit), or None: what decide() checks
    first, and which people's keys a site's box holds (radius/keys.py)."""
    if not person.active:
        return Reason.account_disabled
    if person.company_status == "closed":
        return Reason.company_closed
    if person.company_status != "active":
        return Reason.company_suspended
    if person.company_payment != "ok":
        return Reason.payment_overdue
    if str(category) not in person.categories:
        return Reason.site_not_allowed
    if service not in person.services:
        return Reason.service_not_allowed
    return None


def decide(
    person: PersonFacts | None,
    password_ok: bool,
    site: SiteFacts,
    now: datetime,
    settings: Settings,
    service: str = "wifi",
) -> Decision:
    if person is None or not password_ok:
        return Decision(False, Reason.bad_credentials)
    refused = standing(person, site.category, service)
    if refused is not None:
        return Decision(False, refused)
    to_close = seconds_to_closing(site, now)
    if to_close == 0:
        return Decision(False, Reason.site_closed)
    if person.balance <= 0:
        return Decision(False, Reason.no_credit)
    if person.max_sessions is not None and person.open_sessions >= person.max_sessions:
        return Decision(False, Reason.too_many_sessions)
    # Session-Timeout is a 32-bit integer (RFC 2865 5.27): a huge credit
    # must not make the reply unencodable.
    limits = [person.balance, MAX_SESSION_TIMEOUT]
    if to_close is not None:
        limits.append(to_close)
    if person.max_session:
        limits.append(person.max_session)
    return Decision(
        True,
        session_timeout=max(1, min(limits)),
        idle_timeout=settings.idle_timeout,
        interim_interval=max(60, settings.interim_interval),
        bandwidth_up=person.bandwidth_up,
        bandwidth_down=person.bandwidth_down,
        vlan=person.vlan,
    )
