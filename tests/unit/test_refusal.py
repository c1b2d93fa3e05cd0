"""passerelle.refusal: one list of refusals, read back from a Reply-Message."""

from __future__ import annotations

import pytest

from passerelle.radius.policy import reply_message
from passerelle.refusal import POLICY, Refusal


@pytest.mark.parametrize("refusal", POLICY)
def test_the_centre_s_reply_message_reads_back_as_its_refusal(refusal: Refusal) -> None:
    found, text = Refusal.from_reply_message(reply_message(refusal))
    assert found is refusal and text and ":" not in text


@pytest.mark.parametrize("message, refusal, text", [
    ("no-credit: No credit left", Refusal.no_credit, "No credit left"),
    ("account-disabled: mallory is locked out", Refusal.account_disabled,
     "mallory is locked out"),
    ("  site-closed :Closed  ", Refusal.site_closed, "Closed"),
    # Not ours: another RADIUS server's words, a newer centre's code, nothing.
    ("Authentication failed", Refusal.rejected, "Authentication failed"),
    ("something-new: a reason from a newer centre", Refusal.rejected,
     "something-new: a reason from a newer centre"),
    ("unknown-client: the centre cannot say this", Refusal.unknown_client,
     "the centre cannot say this"),
    ("", Refusal.rejected, ""),
    (":", Refusal.rejected, ":"),
])
def test_from_reply_message(message: str, refusal: Refusal, text: str) -> None:
    assert Refusal.from_reply_message(message) == (refusal, text)


def test_codes_statuses_and_attempts() -> None:
    assert len({r.value for r in Refusal}) == len(Refusal) == 20
    assert {r for r in Refusal if r.status == 503} == {
        Refusal.unknown_client, Refusal.centre_unreachable, Refusal.box_unavailable}
    # The box's own trouble is not a guess at a password.
    assert {r for r in Refusal if not r.attempt} == {
        Refusal.unknown_client, Refusal.centre_unreachable, Refusal.box_unavailable,
        Refusal.no_session, Refusal.address_taken, Refusal.wrong_vlan,
        Refusal.too_many_sessions, Refusal.key_not_current}
    # The session limit is no wrong password: its conflict is with the other devices.
    assert Refusal.too_many_sessions.status == 409
    assert all(r.status == 403 and r.attempt for r in POLICY
               if r is not Refusal.too_many_sessions)
    assert (Refusal.bad_request.status, Refusal.already_checked_in.status,
            Refusal.address_taken.status) == (400, 409, 409)
    # mypy reads a call of an enum with its own __new__ as that __new__ (code,
    # status, attempt); at runtime Refusal(value) is Enum's lookup by value.
    by_value = Refusal("no-credit")  # type: ignore[call-arg]
    assert Refusal.no_credit == "no-credit" and by_value is Refusal.no_credit


def test_from_code() -> None:
    assert Refusal.from_code("payment-overdue") is Refusal.payment_overdue
    for word in ("internal", "not-found", "", "No-Credit", "status"):
        assert Refusal.from_code(word) is None
