"""How numbers and dates read on the console's pages (Jinja filters)."""

from __future__ import annotations

from datetime import datetime

from flask import Flask


def duration(seconds: int | None) -> str:
    """h:mm:ss, or blank when unknown."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def octets(count: int | None) -> str:
    """Bytes in SI units (1 MB = 1,000,000 bytes), as network counters read."""
    if count is None:
        return ""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def stamp(value: datetime | None) -> str:
    """UTC, to the second; blank when unknown."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def install(app: Flask) -> None:
    app.add_template_filter(duration, "duration")
    app.add_template_filter(octets, "octets")
    app.add_template_filter(stamp, "stamp")
