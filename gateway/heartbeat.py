"""The box's heartbeat: a Status-Server (RFC 5997) to the centre every
interim interval (at most a minute apart), so that the centre's console
knows the box is alive even with no client on, which software it runs and
how much accounting waits in its spool.

Version and spool depth travel in Passerelle's own vendor attributes
(radius/dictionaries/dictionary.passerelle): no standard attribute says
either.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from passerelle import __version__

log = logging.getLogger("passerelle.gateway")

MAX_INTERVAL = 60.0


class _Status(Protocol):
    def status(self, attributes: dict[str, Any]) -> int: ...


class _Spool(Protocol):
    def pending(self) -> int: ...


def interval(interim_interval: float) -> float:
    """Seconds between two heartbeats: the interim interval, at most a minute
    (a box silent longer than its interim interval shows red)."""
    return max(1.0, min(MAX_INTERVAL, interim_interval))


def attributes(version: str, spool_depth: int) -> dict[str, Any]:
    """What the heartbeat tells besides the box's identity."""
    return {"Passerelle-Software-Version": version[:64],
            "Passerelle-Spool-Depth": max(0, min(spool_depth, 2**32 - 1))}


class Heartbeat:
    def __init__(self, radius: _Status, spool: _Spool, version: str = __version__) -> None:
        self.radius = radius
        self.spool = spool
        self.version = version
        self._silent = False

    def beat(self) -> int:
        """Send one heartbeat to every centre; how many answered."""
        answered = self.radius.status(attributes(self.version, self.spool.pending()))
        if not answered and not self._silent:
            log.warning("heartbeat: no RADIUS server answered the Status-Server")
        elif answered and self._silent:
            log.info("heartbeat: the centre answers again")
        self._silent = not answered
        return answered
