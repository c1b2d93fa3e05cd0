"""The outbox's pure core: when a Disconnect or CoA is sent again, and when
it is over."""

from __future__ import annotations

from datetime import datetime, timedelta

from passerelle.radius import messages as m
from passerelle.radius.dae import Result
from passerelle.radius.models import DaeState
from passerelle.radius.outbox import Again, Answered, GiveUp, Retry, after

NOW = datetime(2026, 12, 1, 10, 0, 0)
SILENT = Result(acked=False, answered=False)


def test_back_off_doubles_from_one_second_up_to_the_cap() -> None:
    retry = Retry(first=1.0, cap=60.0, max_attempts=10)
    assert [retry.delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_no_answer_is_sent_again_then_given_up() -> None:
    retry = Retry(max_attempts=3)
    assert after(SILENT, 1, NOW, retry) == Again(NOW + timedelta(seconds=1), None)
    assert after(SILENT, 2, NOW, retry) == Again(NOW + timedelta(seconds=2), None)
    assert after(SILENT, 3, NOW, retry) == GiveUp(None)


def test_an_ack_or_a_nak_ends_it() -> None:
    retry = Retry()
    assert after(Result(acked=True), 1, NOW, retry) == Answered(DaeState.acked, None)
    gone = Result(acked=False, error_cause=m.ErrorCause.SESSION_CONTEXT_NOT_FOUND)
    assert after(gone, 4, NOW, retry) == Answered(DaeState.naked, 503)
    # A cause RFC 5176 does not name is still a final answer.
    assert after(Result(acked=False, error_cause=999), 1, NOW, retry) == \
        Answered(DaeState.naked, 999)


def test_a_nak_for_resources_unavailable_is_tried_again() -> None:
    busy = Result(acked=False, error_cause=m.ErrorCause.RESOURCES_UNAVAILABLE)
    assert after(busy, 1, NOW, Retry()) == Again(NOW + timedelta(seconds=1), 506)
    assert after(busy, 2, NOW, Retry(max_attempts=2)) == GiveUp(506)
