"""What the console's behaviour depends on, with the defaults it runs with."""

from __future__ import annotations

from dataclasses import dataclass

from passerelle.radius import policy


@dataclass(frozen=True)
class ConsoleSettings:
    idle_timeout: float = 30 * 60  # seconds without a request before sign-in again
    max_session: float = 12 * 3600  # seconds a sign-in lasts at most (one working day)
    login_failures: int = 5  # failed sign-ins per login ...
    login_window: float = 15 * 60  # ... within this many seconds
    address_failures: int = 20  # failed sign-ins per client address ...
    address_window: float = 15 * 60  # ... within this many seconds
    # A box sends an Interim-Update this often (the Access-Accept's
    # Acct-Interim-Interval); silent longer than that, it stands out.
    interim_interval: int = policy.Settings().interim_interval
    refresh: int = 15  # seconds between refreshes of the live view (0: never)
    # Live sessions a page of the live view shows (a "next page" link for more);
    # the count says how many match in all.
    max_rows: int = 100
