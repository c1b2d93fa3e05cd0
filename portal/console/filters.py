"""Query-string filters, checked at the boundary: a bad one is the
operator's mistake (400 and one line), never a database error."""

from __future__ import annotations

from collections.abc import Mapping

from passerelle.errors import UserError

MAX_ID = 2**31 - 1  # the largest id of an INTEGER key on every backend
MAX_SEARCH = 100


def optional_id(args: Mapping[str, str], name: str) -> int | None:
    value = args.get(name, "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise UserError(f"bad {name} filter {value[:20]!r}: pick one from the list")
    return int(value)


def search_text(args: Mapping[str, str], name: str = "q") -> str:
    value = args.get(name, "").strip()
    if len(value) > MAX_SEARCH:
        raise UserError(f"the search is longer than {MAX_SEARCH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UserError("the search contains control characters")
    return value


def like_pattern(text: str) -> str:
    r"""``%text%`` for LIKE with ``\`` as the escape: % and _ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
