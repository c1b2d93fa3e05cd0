"""How many wrong passwords the centre checks: a sliding window of failures
per login and per gateway.

Without a limit a gateway (or whoever holds its shared secret: a stolen
box) may guess passwords for ever, one argon2 verification each. After
``per_login`` failures for one login within ``window`` seconds, or
``per_gateway`` failures from one gateway, further attempts are refused as
bad credentials without being verified, until the oldest failure leaves the
window: the real owner is never locked out for good, only told "wrong
password" for at most ``window`` seconds. A success clears its login's
failures. Pure: the caller passes the clock's reading, and locks (the
handler's batches run in several threads).

The counts live in this process's memory: each worker counts its own, so a
guesser spread over W workers gets at most W times the limit, and a restart
forgets them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from enum import Enum


class Limit(Enum):
    LOGIN = "login"
    GATEWAY = "gateway"


class Attempts:
    def __init__(self, per_login: int = 5, per_gateway: int = 100, window: float = 300.0,
                 logins: int = 100_000) -> None:
        if per_login < 1 or per_gateway < 1 or window <= 0:
            raise ValueError("attempt limits must be positive")
        self.per_login = per_login
        self.per_gateway = per_gateway
        self.window = window
        self.logins = logins  # logins remembered at most
        self._by_login: dict[Hashable, deque[float]] = {}
        self._by_gateway: dict[Hashable, deque[float]] = {}

    def refused(self, login: Hashable, gateway: int, now: float) -> Limit | None:
        """The limit that refuses an attempt now, or None to verify it."""
        if self._recent(self._by_login, login, now) >= self.per_login:
            return Limit.LOGIN
        if self._recent(self._by_gateway, gateway, now) >= self.per_gateway:
            return Limit.GATEWAY
        return None

    def failed(self, login: Hashable, gateway: int, now: float) -> list[Limit]:
        """Count a wrong password; the limits this failure has just reached
        (to log the moment a limit starts refusing)."""
        if login not in self._by_login and len(self._by_login) >= self.logins:
            self._prune(now)
        reached = []
        for table, key, cap, limit in ((self._by_login, login, self.per_login, Limit.LOGIN),
                                       (self._by_gateway, gateway, self.per_gateway,
                                        Limit.GATEWAY)):
            times = table.setdefault(key, deque())
            times.append(now)
            while len(times) > cap:  # older ones no longer matter
                times.popleft()
            if len(times) == cap:
                reached.append(limit)
        return reached

    def succeeded(self, login: Hashable) -> None:
        self._by_login.pop(login, None)

    def _recent(self, table: dict[Hashable, deque[float]], key: Hashable, now: float) -> int:
        times = table.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del table[key]
        return len(times)

    def _prune(self, now: float) -> None:
        stale = [key for key, times in self._by_login.items()
                 if times[-1] <= now - self.window]
        for key in stale:
            del self._by_login[key]
        if len(self._by_login) >= self.logins:
            # Only reachable past the per-gateway caps of many gateways:
            # forget the oldest half rather than grow.
            for key in list(self._by_login)[: len(self._by_login) // 2]:
                del self._by_login[key]
