"""What the API reads from a request, checked by type and range before any
rule of admin.py sees it: a wrong type is a 400 naming the field."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from flask import request
from werkzeug.exceptions import HTTPException

from .errors import ApiError, bad

MAX_ID = 2**63 - 1  # radacct's key is a BIGINT
# An external id: what the partner platform calls a company or a person.
_EXTERNAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


def body() -> dict[str, Any]:
    """The request's JSON object."""
    if not request.is_json:
        raise ApiError(415, "unsupported-media-type", "send a JSON body "
                       "(Content-Type: application/json)")
    try:
        data = request.get_json(silent=False)
    except HTTPException as exc:
        if exc.code == 413:
            raise
        raise bad("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad("the body must be a JSON object")
    if _has_nul(data):
        # PostgreSQL text cannot hold NUL: refused here, not as a 500 there.
        raise bad("the body holds a NUL character (\\u0000)")
    return data


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def external_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _EXTERNAL_RE.match(value):
        raise bad(f"bad {what}: 1 to 128 characters, letters, digits and . _ : @ -, "
                  "starting with a letter or digit")
    return value


def text(data: dict[str, Any], key: str, *, required: bool = False,
         limit: int = 256) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise bad(f"{key} is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise bad(f"{key} must be a string of at most {limit} characters")
    return value


def whole(data: dict[str, Any], key: str, low: int, high: int, *,
          required: bool = False) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise bad(f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(f"{key} must be a whole number from {low} to {high}")
    return value


def flag(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad(f"{key} must be true or false")
    return value


def unknown_keys(data: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise bad(f"unknown field(s): {', '.join(k[:40] for k in extra[:5])}")


def query_whole(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not low <= int(raw) <= high:
        raise bad(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def query_text(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and (not raw or len(raw) > 128 or not raw.isprintable()):
        raise bad(f"{name} must be 1 to 128 printable characters")
    return raw


def query_moment(name: str) -> datetime | None:
    """A date (midnight UTC) or a date and time (UTC unless it says)."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time())
        moment = datetime.fromisoformat(raw) if len(raw) <= 40 and raw.isprintable() else None
    except ValueError:
        moment = None
    if moment is None:
        raise bad(f"{name} must be a date (2026-12-01) or a date and time "
                  "(2026-12-01T08:00:00Z)")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise bad("this call needs an Idempotency-Key header (any unique string, e.g. "
                  "a UUID, the same when the call is retried)")
    if not _KEY_RE.match(key):
        raise bad("the Idempotency-Key is 1 to 128 printable ASCII characters, no spaces")
    return key
