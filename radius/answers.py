"""What the centre answers, once it has decided: pure functions from a
decision to a typed reply (messages.py encodes and signs it).

An Access-Accept carries the session's terms (RFC 2865 section 5.27
Session-Timeout, 5.28 Idle-Timeout, RFC 2869 section 5.16
Acct-Interim-Interval), Class (RFC 2865 section 5.25: the gateway echoes it
in every Accounting-Request of the session, which binds the accounting to
this decision), the person's Wi-Fi key as Tunnel-Password (RFC 2868 section
3.5), the company's bandwidth caps (WISPr) and VLAN (RFC 3580 section 3.31)
when it has them, and the person's credit left in seconds at this moment
(Passerelle-Credit-Left, our vendor attribute: the box shows it on its
status page). An Access-Reject carries the refusal's code and words in
Reply-Message (RFC 2865 section 5.18).
"""

from __future__ import annotations

from functools import lru_cache

from . import messages as m
from . import policy


def access_reply(decision: policy.Decision, class_: str = "",
                 wifi_key: str | None = None,
                 credit_left: int | None = None) -> m.AccessAccept | m.AccessReject:
    """The answer to an Access-Request the policy decided; an accept needs
    the ``class_`` and ``wifi_key`` issued for it (ValueError otherwise).
    ``credit_left`` (seconds) is sent within 0 to 2**32 - 1, the attribute's
    32 bits; None: no attribute."""
    if not decision.accept:
        if decision.reason is None:
            raise ValueError("a refusal without a reason")
        return _reject(decision.reason)
    if not class_ or not wifi_key:
        raise ValueError("an Access-Accept needs its Class and Wi-Fi key")
    return m.AccessAccept(
        session_timeout=decision.session_timeout,
        idle_timeout=decision.idle_timeout,
        acct_interim_interval=decision.interim_interval,
        class_=class_.encode(),
        tunnel_passwords=(wifi_key,),
        # No cap (None or 0): no attribute.
        bandwidth_up=decision.bandwidth_up or None,
        bandwidth_down=decision.bandwidth_down or None,
        vlan=decision.vlan or None,
        credit_left=(None if credit_left is None
                     else min(max(credit_left, 0), policy.MAX_SESSION_TIMEOUT)),
    )


@lru_cache(maxsize=64)
def _reject(reason: policy.Reason) -> m.AccessReject:
    # One per reason: a flood of refusals builds no new reply object.
    return m.AccessReject(reply_message=policy.reply_message(reason))


# Replies without fields are the same for every request (encode takes the
# request's Identifier and authenticator): built once.
ACCOUNTING_RESPONSE = m.AccountingResponse()
_ALIVE = m.AccessAccept()


def status_reply(on_accounting_port: bool) -> m.AccessAccept | m.AccountingResponse:
    """The answer to a Status-Server (RFC 5997 section 3): Access-Accept on
    the authentication port, Accounting-Response on the accounting port."""
    return ACCOUNTING_RESPONSE if on_accounting_port else _ALIVE
