"""The one UDP request-and-answer loop of a RADIUS client (the box's client
to the centre, the centre's RFC 5176 client to the box).

Retransmission follows RFC 5080 section 2.2.1: the first wait is
``initial``, each next one doubles with plus or minus 10 % jitter, up to
``maximum``, ``tries`` sends in all. A pure retransmission sends the very
same datagram (same Identifier and authenticator) so the peer can recognise
the duplicate. An ICMP port-unreachable counts as no answer yet: the try is
waited out. A datagram that is not a valid answer is logged and ignored.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .codec import MAX_LENGTH, Drop

log = logging.getLogger("passerelle.radius")

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """RFC 5080 section 2.2.1 retransmission timers."""

    initial: float = 2.0
    tries: int = 5
    maximum: float = 16.0

    def waits(self, rand: Callable[[], float] = random.random) -> list[float]:
        """How long to wait for an answer after each send."""
        out: list[float] = []
        wait = self.initial * (1 + 0.2 * rand() - 0.1)
        for _ in range(self.tries):
            out.append(min(wait, self.maximum))
            wait = 2 * wait + wait * (0.2 * rand() - 0.1)
            if wait > self.maximum:
                wait = self.maximum * (1 + 0.2 * rand() - 0.1)
        return out


def _log_drop(address: tuple[str, int], why: str) -> None:
    log.warning("dropped an answer from %s:%d: %s", address[0], address[1], why)


def exchange(address: tuple[str, int], datagram: bytes, check: Callable[[bytes], T],
             backoff: Backoff, *,
             on_drop: Callable[[tuple[str, int], str], None] = _log_drop,
             on_retry: Callable[[int], None] | None = None,
             rand: Callable[[], float] = random.random) -> T:
    """Send ``datagram`` to ``address`` until ``check`` accepts an answer and
    return what it returns; ``check`` raises Drop for a datagram to ignore
    (``on_drop`` logs it). TimeoutError after the last try."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        for attempt, wait in enumerate(backoff.waits(rand)):
            if attempt and on_retry is not None:
                on_retry(attempt + 1)
            try:
                sock.send(datagram)
            except OSError as exc:  # e.g. no route: the same as no answer
                log.warning("cannot send to %s:%d: %s", host, port, exc)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    answer = sock.recv(MAX_LENGTH + 1)
                except TimeoutError:
                    break
                except ConnectionRefusedError:
                    # ICMP port unreachable: nothing listens yet; wait out the try.
                    time.sleep(min(left, 0.1))
                    continue
                try:
                    return check(answer)
                except Drop as why:
                    on_drop(address, str(why))
    raise TimeoutError(f"{host}:{port} did not answer")
