"""Brute-force limits: failed check-ins counted per client MAC and per login.

A pure core: the caller passes ``now``. In memory (the box is one process
and a restart forgetting old failures is harmless). Bounded: at most
``max_keys`` keys are tracked; the stalest are dropped first, so a flood of
made-up logins cannot fill the box's memory.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

# Connections to the portal open at once from one client: a browser opens
# about six per host. The portal's worker holds it per address, the box's
# kernel per device (MAC), so a device with many addresses gets no more.
CONNECTIONS_PER_CLIENT = 32


class Limiter:
    def __init__(self, max_failures: int, window: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        with self._lock:
            times = self._recent(key, now)
            if len(times) < self.max_failures:
                return 0.0
            return times[-self.max_failures] + self.window - now

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def too_many(wait: float) -> str:
    """What a person refused by a limiter reads: how long to wait."""
    minutes = max(1, math.ceil(wait / 60))
    return (f"Too many failed sign-ins: try again in {minutes} "
            f"minute{'s' if minutes > 1 else ''}.")
