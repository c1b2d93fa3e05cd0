"""The replies a RADIUS server keeps so that a retransmission gets the very
same answer without being processed twice (RFC 5080 section 2.2.2; RFC 5176
section 2.3 for Disconnect and CoA). Used by the centre and by the box.

A retransmission is the same request from the same source: the caller makes
the key (source address, port and the request's bytes or authenticator).
Entries expire after ``window`` seconds, and the oldest go first when more
than ``size`` are kept, so a flood of distinct requests cannot grow it for ever.
"""

from __future__ import annotations

from collections import OrderedDict


class ReplyCache:
    def __init__(self, window: float, size: int = 65536) -> None:
        if window < 0 or size < 1:
            raise ValueError("need window >= 0 and size >= 1")
        self.window = window
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    def get(self, key: bytes, now: float) -> bytes | None:
        """The reply kept for ``key``, or None."""
        self._expire(now)
        entry = self._entries.get(key)
        return entry[1] if entry else None

    def put(self, key: bytes, reply: bytes, now: float) -> None:
        self._entries[key] = (now + self.window, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        # Entries are in insertion order and share one window: the oldest
        # expires first.
        while self._entries:
            expires = next(iter(self._entries.values()))[0]
            if expires > now:
                break
            self._entries.popitem(last=False)
