"""MAC addresses: one parser, and the spellings each peer wants.

The box and the kernel write ``aa:bb:cc:dd:ee:ff`` (``parse``); RADIUS's
Calling-Station-Id is ``AA-BB-CC-DD-EE-FF`` (RFC 3580 section 3.21,
``calling_station_id``); the centre keeps ``aa-bb-cc-dd-ee-ff`` (``dashed``).
Every function takes any common spelling and raises ValueError for text
that is not a MAC address: nothing else is guessed at.
"""

from __future__ import annotations

import re

__all__ = ["calling_station_id", "dashed", "parse"]

# The spellings in use: pairs joined by ":" or "-" (one kind per address),
# Cisco's dotted quads, 12 bare digits (hostapd's MAC-auth User-Name).
# re.ASCII: full-width letters and other scripts' digits are not hex digits.
_MAC = re.compile(
    r"[0-9a-f]{2}(?P<sep>[:-])[0-9a-f]{2}(?P=sep)[0-9a-f]{2}(?P=sep)"
    r"[0-9a-f]{2}(?P=sep)[0-9a-f]{2}(?P=sep)[0-9a-f]{2}"
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"
    r"|[0-9a-f]{12}",
    re.ASCII | re.IGNORECASE,
)
_SEPARATORS = str.maketrans("", "", ":-.")


def parse(text: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any common spelling (surrounding white
    space allowed); ValueError if ``text`` is not a MAC address."""
    stripped = text.strip()
    if not _MAC.fullmatch(stripped):
        raise ValueError(f"not a MAC address: {text!r}")
    digits = stripped.translate(_SEPARATORS).lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def dashed(text: str) -> str:
    """``aa-bb-cc-dd-ee-ff``."""
    return parse(text).replace(":", "-")


def calling_station_id(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF``, the Calling-Station-Id of RFC 3580 section 3.21."""
    return dashed(text).upper()
