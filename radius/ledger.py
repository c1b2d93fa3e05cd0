"""The credit ledger and the balance.

Credit is counted in seconds: top-ups add lines, sessions add charges (a
negative line each). A session is charged as it runs, in the transaction
of the accounting record that reports the time; what to charge is decided
by accounting.charge() (each second once), and store.py writes it.

The balance is the sum of a person's lines. The database keeps it in
credit_balance (models.CreditBalance: triggers on the ledger), so reading
it costs one row however long the ledger grows; our code only reads it,
here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Session as DB

from .models import CreditBalance, CreditEntry, CreditKind


def balance_of(person_id: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[int]:
    """Seconds of credit left of the person ``person_id`` (a column, e.g.
    Person.id), for a select(): 0 for a person with no ledger line."""
    return func.coalesce(select(func.sum(CreditBalance.seconds))
                         .where(CreditBalance.person_id == person_id).scalar_subquery(), 0)


def balance(db: DB, person_id: int) -> int:
    """Seconds of credit left (may be negative after an overrun)."""
    return int(db.scalar(select(balance_of(literal(person_id)))) or 0)


def top_up(db: DB, person_id: int, seconds: int, now: datetime, note: str = "") -> CreditEntry:
    if seconds <= 0:
        raise ValueError("a top-up adds a positive number of seconds")
    entry = CreditEntry(person_id=person_id, seconds=seconds, kind=CreditKind.topup,
                        created=now, note=note)
    db.add(entry)
    return entry
