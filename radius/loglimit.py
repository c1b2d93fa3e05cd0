"""How many lines a flood may write: a budget of log lines per key.

A stream of bad datagrams would otherwise write one line each (a flood of
200,000 malformed packets wrote 180,000 WARNING lines). Each key (the reason
a datagram is dropped, and its source) may write ``burst`` lines per
``interval`` seconds; after that its lines are counted, not written, and the
first line of the next interval says how many were suppressed. Pure: the
caller passes the clock's reading.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)


class LineDecision(NamedTuple):
    write: bool  # write this line
    suppressed: int  # lines of this key suppressed since the last one written
    last: bool  # the last line of this interval's budget: say that silence follows


@dataclass(slots=True)
class _Window:
    start: float
    written: int = 0
    suppressed: int = 0


class LogLimit(Generic[K]):
    def __init__(self, burst: int = 10, interval: float = 60.0,
                 keys: int = 10_000) -> None:
        self.burst = burst
        self.interval = interval
        self.keys = keys  # keys remembered at most (sources may be spoofed)
        self._windows: dict[K, _Window] = {}

    def allow(self, key: K, now: float) -> LineDecision:
        """Whether this line of ``key`` may be written, how many lines of
        ``key`` were suppressed before it (to say so once, with this line),
        and whether it is the last before a silence."""
        window = self._windows.get(key)
        if window is None or now - window.start >= self.interval:
            suppressed = window.suppressed if window is not None else 0
            if window is None and len(self._windows) >= self.keys:
                self._prune(now)
            self._windows[key] = _Window(now, written=1)
            return LineDecision(True, suppressed, self.burst == 1)
        if window.written < self.burst:
            window.written += 1
            return LineDecision(True, 0, window.written == self.burst)
        window.suppressed += 1
        return LineDecision(False, 0, False)

    def due(self, now: float) -> list[tuple[K, int]]:
        """Keys whose interval is over with lines still unreported, and how
        many: the caller writes one line for each (a flood that stops would
        otherwise never say what it cost). They are forgotten."""
        out = [(key, w.suppressed) for key, w in self._windows.items()
               if w.suppressed and now - w.start >= self.interval]
        for key, _ in out:
            del self._windows[key]
        return out

    def _prune(self, now: float) -> None:
        stale = [key for key, w in self._windows.items()
                 if now - w.start >= self.interval and not w.suppressed]
        for key in stale:
            del self._windows[key]
        if len(self._windows) >= self.keys:
            # Still full of live keys: forget all; at worst a few extra lines.
            self._windows.clear()
