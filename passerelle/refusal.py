"""Why a check-in (or another call of the portal) is refused: one list for
the centre, the box and the portal.

The centre's policy refuses with one of the first ten; it sends the code
in the Access-Reject's Reply-Message as ``code: English text``
(``passerelle.radius.policy.reply_message`` writes it), and the box reads
it back with ``Refusal.from_reply_message``. The box adds its own refusals.
Each refusal carries, once, the HTTP status the control socket and the
portal answer with, and whether the portal counts it as a failed attempt
for its rate limits (the box's own trouble is not a guess at a password).
The portal's words for each are in ``passerelle.portal.reasons``.
"""

from __future__ import annotations

import enum

# Between the code and the English text in a Reply-Message.
SEPARATOR = ": "


class Refusal(str, enum.Enum):
    status: int
    attempt: bool

    def __new__(cls, code: str, status: int, attempt: bool) -> Refusal:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.attempt = attempt
        return member

    # The centre's policy, in the order it checks (radius/policy.py).
    bad_credentials = ("bad-credentials", 403, True)
    account_disabled = ("account-disabled", 403, True)
    company_closed = ("company-closed", 403, True)
    company_suspended = ("company-suspended", 403, True)
    payment_overdue = ("payment-overdue", 403, True)
    site_not_allowed = ("site-not-allowed", 403, True)
    service_not_allowed = ("service-not-allowed", 403, True)
    site_closed = ("site-closed", 403, True)
    no_credit = ("no-credit", 403, True)
    # The plan's limit of sessions at once is reached (other devices are on):
    # the password was right, so it is no failed attempt.
    too_many_sessions = ("too-many-sessions", 409, False)
    # A reject whose Reply-Message names no code we know (another RADIUS
    # server, or a newer centre).
    rejected = ("rejected", 403, True)
    # The box's own.
    unknown_client = ("unknown-client", 503, False)
    centre_unreachable = ("centre-unreachable", 503, False)
    box_unavailable = ("box-unavailable", 503, False)
    bad_request = ("bad-request", 400, True)
    already_checked_in = ("already-checked-in", 409, True)
    no_session = ("no-session", 403, False)
    # The client's address belongs to a session of another MAC: a second
    # device took it (a theft, or an address conflict), see docs/security.md.
    address_taken = ("address-taken", 409, False)
    # The client is on a VLAN of the box other than its company's (the
    # centre's Access-Accept names the company's): companies stay apart.
    wrong_vlan = ("wrong-vlan", 403, False)
    # The key the box found for the station (its access point's request) is
    # no longer the person's current key at the centre, or no longer held
    # here (rotated, revoked): the one-tap check-in is not offered.
    key_not_current = ("key-not-current", 403, False)

    @classmethod
    def from_code(cls, code: str) -> Refusal | None:
        """The refusal a code names, None for a word that is none (e.g. a
        control socket error such as "internal")."""
        found = cls._value2member_map_.get(code)
        return found if isinstance(found, cls) else None

    @classmethod
    def from_reply_message(cls, text: str) -> tuple[Refusal, str]:
        """An Access-Reject's Reply-Message -> (refusal, its text). Not ours
        (no known code before the colon): ``rejected`` with the whole text."""
        code, sep, rest = text.partition(SEPARATOR.strip())
        found = cls.from_code(code.strip()) if sep else None
        if found is None:
            return cls.rejected, text.strip()
        return found, rest.strip()


# The refusals the centre's policy decides (the others are the box's).
POLICY = (Refusal.bad_credentials, Refusal.account_disabled, Refusal.company_closed,
          Refusal.company_suspended, Refusal.payment_overdue, Refusal.site_not_allowed,
          Refusal.service_not_allowed, Refusal.site_closed, Refusal.no_credit,
          Refusal.too_many_sessions)
