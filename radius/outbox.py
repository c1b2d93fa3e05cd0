"""What to do with a queued Disconnect- or CoA-Request once it was sent:
the pure core of the DAE outbox (reach.py is its database and its worker).

A request is sent, and sent again with back-off (1, 2, 4 ... seconds,
capped), until its box answers: an ACK or a NAK ends it. A NAK whose
Error-Cause says "try again later" (506, Resources Unavailable) is retried
like no answer. After ``max_attempts`` sends without a final answer the
request is given up, with a log line and the state shown on the console.

No clock and no I/O: ``after`` takes the send's result and ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import messages as m
from .dae import Result
from .models import DaeState

# NAKs that say the request may succeed later (RFC 5176 section 3.5).
TRANSIENT = frozenset({m.ErrorCause.RESOURCES_UNAVAILABLE})


@dataclass(frozen=True)
class Retry:
    first: float = 1.0  # seconds before the second send
    cap: float = 60.0  # longest wait between two sends
    max_attempts: int = 10  # sends before giving up (about 4 minutes by default)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th send (1-based)."""
        return min(self.cap, self.first * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Answered:
    """The box answered for good: ACK, or a NAK that will not change."""

    state: DaeState
    error_cause: int | None


@dataclass(frozen=True)
class Again:
    """Send it again at ``when``."""

    when: datetime
    error_cause: int | None  # a transient NAK's, else None


@dataclass(frozen=True)
class GiveUp:
    """No final answer after every try."""

    error_cause: int | None


Step = Answered | Again | GiveUp


def after(result: Result, attempts: int, now: datetime, retry: Retry) -> Step:
    """What follows the ``attempts``-th send (1-based) of a request, whose
    result was ``result``."""
    cause = None if result.error_cause is None else int(result.error_cause)
    if result.answered and result.acked:
        return Answered(DaeState.acked, None)
    if result.answered and cause not in TRANSIENT:
        return Answered(DaeState.naked, cause)
    if attempts >= retry.max_attempts:
        return GiveUp(cause)
    return Again(now + timedelta(seconds=retry.delay(attempts)), cause)
