"""The RFC 8908 Captive Portal API document (pure: a session in, JSON out)."""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "application/captive+json"


def document(session: dict[str, Any] | None, user_portal_url: str,
             venue_info_url: str = "") -> dict[str, Any]:
    """``session`` is the daemon's description of the client's session, or None."""
    doc: dict[str, Any] = {"captive": session is None, "user-portal-url": user_portal_url}
    if venue_info_url:
        doc["venue-info-url"] = venue_info_url
    if session is not None:
        left = session.get("seconds_left")
        if isinstance(left, int | float) and not isinstance(left, bool):
            doc["seconds-remaining"] = max(0, int(left))
        remaining = session.get("bytes_left")  # the daemon knows none yet: then omitted
        if isinstance(remaining, int) and not isinstance(remaining, bool):
            doc["bytes-remaining"] = max(0, remaining)
        # A session ends with its credit or the site's hours; the portal
        # cannot lengthen it.
        doc["can-extend-session"] = False
    return doc
