"""Signing operators in, and finding who a console session belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import selectinload

from passerelle.radius import passwords
from passerelle.radius.logins import lookup_key
from passerelle.radius.models import Operator

from .scope import Principal

# An operator's login as typed in the form; admin.clean_login allows 253 octets.
MAX_LOGIN = 253


def _principal(operator: Operator) -> Principal:
    return Principal(id=operator.id, login=operator.login, name=operator.name,
                     role=operator.role, epoch=operator.epoch, company_id=operator.company_id,
                     company_name=operator.company.name if operator.company else "",
                     site_ids=frozenset(s.id for s in operator.sites))


def authenticate(db: DB, login: str, password: str, now: datetime) -> Principal | None:
    """The operator whose login and password these are, or None. An unknown
    login and a disabled account cost what a wrong password costs."""
    typed = (lookup_key(login) or login).lower()
    operator = db.scalar(select(Operator).where(func.lower(Operator.login) == typed)
                         .options(selectinload(Operator.sites)))
    if operator is None:
        passwords.spend_verification(password)
        return None
    if not passwords.verify_password(operator.password_hash, password) or not operator.active:
        return None
    operator.last_sign_in = now
    return _principal(operator)


def principal(db: DB, operator_id: int, epoch: int) -> Principal | None:
    """The operator of a console session, or None when the account is gone,
    disabled, or changed since the sign-in (its epoch moved on)."""
    operator = db.scalar(select(Operator).where(Operator.id == operator_id)
                         .options(selectinload(Operator.sites)))
    if operator is None or not operator.active or operator.epoch != epoch:
        return None
    return _principal(operator)


def sign_out(db: DB, operator_id: int) -> None:
    """End every console session of the operator: a copy of the cookie made
    before signing out is worth nothing after."""
    operator = db.get(Operator, operator_id)
    if operator is not None:
        operator.epoch += 1
