"""The credit ledger: the balance is derived, never stored.

Credit is counted in seconds. A session is charged as it runs: every
accounting record moves the session's ``charged`` mark up to the session
time it reports, and the difference goes to the ledger in the same
transaction. A retransmitted or older record reports no more time than is
already charged, so it charges nothing: each second is charged once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from .models import CreditEntry, CreditKind, Session


def balance(db: DB, person_id: int) -> int:
    """Seconds of credit left (may be negative after an overrun)."""
    total = db.scalar(
        select(func.coalesce(func.sum(CreditEntry.seconds), 0)).where(
            CreditEntry.person_id == person_id
        )
    )
    return int(total or 0)


def top_up(db: DB, person_id: int, seconds: int, now: datetime, note: str = "") -> CreditEntry:
    if seconds <= 0:
        raise ValueError("a top-up adds a positive number of seconds")
    entry = CreditEntry(person_id=person_id, seconds=seconds, kind=CreditKind.topup,
                        created=now, note=note)
    db.add(entry)
    return entry


def charge_up_to(db: DB, session: Session, used: int, now: datetime) -> int:
    """Charge ``session`` so that ``used`` seconds in all are paid for.

    Returns the seconds charged now (0 for a duplicate or an older record).
    The caller holds the session row locked (SELECT ... FOR UPDATE)."""
    if session.person_id is None:
        return 0
    delta = used - session.charged
    if delta <= 0:
        return 0
    db.add(CreditEntry(person_id=session.person_id, seconds=-delta, kind=CreditKind.charge,
                       session_id=session.radacctid, created=now))
    session.charged = used
    return delta
