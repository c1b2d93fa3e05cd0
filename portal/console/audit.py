"""Who did what from the console, and when (``audit_entry``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from passerelle.radius.models import AuditEntry

from .scope import Principal


def record(db: DB, principal: Principal, action: str, subject_kind: str,
           subject_id: int | None, detail: str, now: datetime) -> AuditEntry:
    entry = AuditEntry(at=now, operator_id=principal.id, actor=principal.login, action=action,
                       subject_kind=subject_kind, subject_id=subject_id, detail=detail[:512])
    db.add(entry)
    db.flush()
    return entry


def history(db: DB, subject_kind: str, subject_id: int) -> list[AuditEntry]:
    """What was done to one thing, oldest first (for its page)."""
    return list(db.scalars(select(AuditEntry).where(AuditEntry.subject_kind == subject_kind,
                                                    AuditEntry.subject_id == subject_id)
                           .order_by(AuditEntry.at, AuditEntry.id)))
