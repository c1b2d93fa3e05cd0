"""Logins are e-mail addresses in one normal form (issue 13, finding 15)."""

from __future__ import annotations

import unicodedata

import pytest

from passerelle.errors import UserError
from passerelle.radius import logins


@pytest.mark.parametrize(("typed", "stored"), [
    ("alice@acme.example", "alice@acme.example"),
    ("  Alice@ACME.Example ", "alice@acme.example"),
    # Two spellings of É (one code point, or E + combining acute): one login.
    ("\u00c9lodie@acme.example", "\u00e9lodie@acme.example"),
    ("E\u0301lodie@acme.example", "\u00e9lodie@acme.example"),
    ("\u00e9lodie@ACME.example", "\u00e9lodie@acme.example"),
    # An internationalised domain is kept in its ASCII (punycode) form.
    ("marie@B\u00fccher.example", "marie@xn--bcher-kva.example"),
    ("marie@xn--bcher-kva.example", "marie@xn--bcher-kva.example"),
    # IDNA 2008: ß is its own letter in a domain (IDNA 2003 made it "ss",
    # another domain).
    ("jo@fa\u00df.example", "jo@xn--fa-hia.example"),
    ("first.last+wifi@acme.example", "first.last+wifi@acme.example"),
    ("o'brien@acme.example", "o'brien@acme.example"),
    ("\u0438\u0432\u0430\u043d@\u043f\u043e\u0447\u0442\u0430.example",
     "\u0438\u0432\u0430\u043d@xn--80a1acny.example"),
    ("\u5c71\u7530\u305f\u308d\u3046@acme.example", "\u5c71\u7530\u305f\u308d\u3046@acme.example"),
])
def test_normal_form(typed: str, stored: str) -> None:
    assert logins.normalise(typed) == stored
    assert logins.normalise(stored) == stored  # idempotent
    assert logins.lookup_key(typed) == stored
    assert unicodedata.is_normalized("NFC", stored)


@pytest.mark.parametrize(("typed", "reason"), [
    ("bob", "an e-mail address"),
    ("a@b@c", "an e-mail address"),
    ("<script>@x", "local part"),
    ("alice@x", "domain"),
    ("bob smith@acme.example", "local part"),
    ("alice@acme..example", "domain"),
    ("alice@-acme.example", "domain"),
    ("alice@acme_corp.example", "domain"),
    ("alice@acme.example.", "domain"),
    ("@acme.example", "local part"),
    ("alice@", "domain"),
    (".alice@acme.example", "local part"),
    ("al..ice@acme.example", "local part"),
    ("alice\x00@acme.example", "local part"),
    ("ali\nce@acme.example", "local part"),
    ("alice@acme.exam\tple", "domain"),
    ('"alice"@acme.example', "local part"),
    ("x" * 65 + "@acme.example", "64 octets"),
    ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 63 + ".example",
     "253 octets"),
    # Look-alikes: a Cyrillic a (U+0430) or o (U+043E) among Latin letters.
    ("\u0430lice@acme.example", "mixes scripts"),
    ("alice@\u0430cme.example", "mixes scripts"),
    ("b\u043eb@acme.example", "mixes scripts"),
    # A Greek omicron among Latin letters.
    ("r\u03bfbert@acme.example", "mixes scripts"),
    ("", "an e-mail address"),
])
def test_refused(typed: str, reason: str) -> None:
    with pytest.raises(UserError) as caught:
        logins.normalise(typed)
    message = str(caught.value)
    assert reason in message, message
    assert "\n" not in message
    assert logins.lookup_key(typed) is None


def test_lookup_key_never_raises_on_any_user_name() -> None:
    """The RADIUS path calls it on whatever a box sends."""
    for junk in ("\udcff@x.example", "a@" + "\u00e9" * 300, "@", "@@", "\x00", "a@b.c" * 100,
                 "a@xn--zz.example", "a@\u200d.example"):
        assert logins.lookup_key(junk) is None or "@" in str(logins.lookup_key(junk))
