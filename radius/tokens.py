"""Bearer tokens of the partner API: made, listed, revoked, and checked.

A token is 32 random bytes shown once; the database keeps its SHA-256 only,
so a leaked database or backup gives no token. The digest is unique and
indexed: a presented token is found by its digest, then compared again
with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError

from . import admin
from .models import ApiRole, ApiToken

# Tokens say what they are, so a secret scanner (and a person) knows one.
PREFIX = "psl_"
# The form of a token we made: a longer or stranger string is not looked up.
_TOKEN_RE = re.compile(r"^psl_[A-Za-z0-9_-]{43}$")
ROLE_WORDS = {"partner": ApiRole.partner, "company": ApiRole.company}
# last_used is written at most this often: no write on every request.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who an API request speaks for."""

    token_id: int
    name: str
    role: ApiRole
    company_id: int | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def parse_role(value: str) -> ApiRole:
    try:
        return ROLE_WORDS[value.strip().lower()]
    except KeyError:
        raise UserError(f"bad token role {value!r}: partner or company") from None


def get_token(db: DB, name: str) -> ApiToken:
    found = db.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None:
        raise UserError(f"unknown token {name!r} (see: passerelle admin token list)")
    return found


def add_token(db: DB, name: str, role: str, now: datetime,
              company: str | None = None) -> tuple[ApiToken, str]:
    """A new token and its clear form (to show once)."""
    name = admin.clean_name(name, "a token name", 64)
    if db.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise UserError(f"token {name!r} already exists")
    the_role = parse_role(role)
    match the_role:
        case ApiRole.partner:
            if company is not None:
                raise UserError("a partner token sees the whole network: no --company")
            company_id = None
        case ApiRole.company:
            if company is None:
                raise UserError("a company token needs --company (the company it reads)")
            company_id = admin.get_company(db, company).id
    clear = new_token()
    token = ApiToken(name=name, role=the_role, company_id=company_id, digest=digest(clear),
                     created=now)
    db.add(token)
    db.flush()
    return token, clear


def list_tokens(db: DB) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(db: DB, name: str, now: datetime) -> ApiToken:
    token = get_token(db, name)
    if token.revoked is not None:
        raise UserError(f"token {name!r} was revoked on {token.revoked:%Y-%m-%d %H:%M} UTC")
    token.revoked = now
    db.flush()
    return token


def authenticate(db: DB, presented: str, now: datetime) -> Caller | None:
    """The caller of a live token, or None (unknown, malformed or revoked)."""
    if not _TOKEN_RE.match(presented):
        return None
    wanted = digest(presented)
    token = db.scalar(select(ApiToken).where(ApiToken.digest == wanted))
    if token is None or token.revoked is not None:
        return None
    if not hmac.compare_digest(token.digest, wanted):
        return None
    if token.last_used is None or now - token.last_used >= TOUCH_EVERY:
        token.last_used = now
    return Caller(token.id, token.name, token.role, token.company_id)
