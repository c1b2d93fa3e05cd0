"""The credit ledger: the balance is derived, never stored.

Credit is counted in seconds: top-ups add lines, sessions add charges (a
negative line each). A session is charged as it runs, in the transaction
of the accounting record that reports the time; what to charge is decided
by accounting.charge() (each second once), and store.py writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from .models import CreditEntry, CreditKind


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
