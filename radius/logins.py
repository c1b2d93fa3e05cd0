"""Logins: e-mail addresses, in one normal form.

A person types their address as they like: "Élodie@Bücher.example" with a
composed or a decomposed É, capitals or not, the domain in Unicode or in
punycode. All of these are one login, stored and looked up in one form:

- NFC (one code point per accented letter), then the local part case-folded;
- the domain mapped and encoded by IDNA 2008 with the UTS 46 mapping (the
  ``idna`` package: the standard library's codec is IDNA 2003, which turns
  "faß" into "fass", another domain), kept in its ASCII form;
- a local part of letters, digits and ``. _ + - '`` (no quotes, brackets,
  spaces or controls: an address that can be shown and typed anywhere), at
  most 64 octets (RFC 5321 §4.5.3.1.1); the whole at most 253 octets, what a
  RADIUS User-Name carries;
- no part mixing scripts (a Cyrillic a, U+0430, among Latin letters looks like
  another person's login), but the mixes Unicode TS 39 calls highly
  restrictive (Latin with Han and Japanese kana, or Han and Hangul).

``normalise`` is for what an operator enters (a one-line error);
``lookup_key`` is for what arrives from a box (None: no such login can exist).
"""

from __future__ import annotations

import unicodedata

import idna

from passerelle.errors import UserError

MAX_OCTETS = 253  # RFC 2865 §5.1: User-Name
MAX_LOCAL_OCTETS = 64  # RFC 5321 §4.5.3.1.1
_LOCAL_SPECIALS = frozenset("._+-'")
# Unicode TS 39 §5.2 "highly restrictive": one script, or one of these sets.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Character names whose first word is not a script.
_NAME_PREFIXES = {"CJK": "HAN", "FULLWIDTH": "FULLWIDTH", "HALFWIDTH": "HALFWIDTH"}


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name; None for what every
    script shares (digits, marks, punctuation)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0] if name else "UNKNOWN"
    return _NAME_PREFIXES.get(first, first)


def _one_script(part: str, what: str, typed: str) -> None:
    scripts = {s for s in map(_script, part) if s is not None}
    if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_MIXES):
        names = " and ".join(sorted(s.title() for s in scripts))
        raise UserError(f"bad login {typed!r}: its {what} mixes scripts ({names}), as a "
                        "look-alike of another address would")


def _local(part: str, typed: str) -> str:
    if not part:
        raise UserError(f"bad login {typed!r}: the local part (before @) is empty")
    for char in part:
        if not (char in _LOCAL_SPECIALS or char.isalnum()
                or unicodedata.category(char).startswith("M")):
            raise UserError(f"bad login {typed!r}: the local part (before @) may hold "
                            f"letters, digits and . _ + - ' only, not {char!r}")
    if part.startswith(".") or part.endswith(".") or ".." in part:
        raise UserError(f"bad login {typed!r}: a dot in the local part (before @) is "
                        "between two other characters")
    folded = unicodedata.normalize("NFC", part.casefold())
    if len(folded.encode()) > MAX_LOCAL_OCTETS:
        raise UserError(f"bad login {typed!r}: the local part (before @) is at most "
                        f"{MAX_LOCAL_OCTETS} octets")
    _one_script(folded, "local part", typed)
    return folded


def _domain(part: str, typed: str) -> str:
    try:
        ascii_ = idna.encode(part, uts46=True).decode("ascii")
        labels = idna.decode(ascii_).split(".")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise UserError(f"bad login {typed!r}: the domain (after @) is not a domain name") \
            from None
    if len(labels) < 2 or not all(labels):
        raise UserError(f"bad login {typed!r}: the domain (after @) is a name with a dot, "
                        "such as acme.example") from None
    for label in labels:
        _one_script(label, "domain", typed)
    return ascii_.lower()


def normalise(value: str) -> str:
    """The one form of the login ``value``, or a one-line ``UserError``."""
    typed = value.strip()
    text = unicodedata.normalize("NFC", typed)
    if text.count("@") != 1:
        raise UserError(f"bad login {typed!r}: give an e-mail address, such as "
                        "alice@acme.example")
    if len(text.encode(errors="replace")) > MAX_OCTETS:
        raise UserError(f"bad login {typed[:40]!r}...: a login is at most {MAX_OCTETS} "
                        "octets (RADIUS User-Name)")
    local, domain = text.split("@")
    login = f"{_local(local, typed)}@{_domain(domain, typed)}"
    if len(login.encode()) > MAX_OCTETS:
        raise UserError(f"bad login {typed[:40]!r}...: a login is at most {MAX_OCTETS} "
                        "octets (RADIUS User-Name)")
    return login


def lookup_key(value: str) -> str | None:
    """The stored form of a login as a box sends it, or None when no login
    can have it (the request is then for an unknown login)."""
    try:
        return normalise(value)
    except UserError:
        return None
