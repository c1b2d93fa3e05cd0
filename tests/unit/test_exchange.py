"""The retransmit loop over real UDP on 127.0.0.1, with a peer that loses
the first datagrams, answers with junk, or does not exist."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from passerelle.radius import messages as m
from passerelle.radius.exchange import Backoff, exchange

SECRET = b"exchange-secret"
FAST = Backoff(initial=0.2, tries=3, maximum=1.0)


@contextmanager
def peer(lose: int, junk: bool = False) -> Iterator[tuple[tuple[str, int], list[bytes]]]:
    """A Disconnect server that ignores the first ``lose`` datagrams and
    records every one it receives; ``junk``: it first answers with a packet
    signed with another secret."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            received.append(data)
            if len(received) <= lose:
                continue
            request = m.decode_request(data, SECRET)
            if junk:
                sock.sendto(m.DisconnectAck().encode(b"not the secret", request), addr)
            sock.sendto(m.DisconnectAck().encode(SECRET, request), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname(), received
    finally:
        stop.set()
        thread.join()
        sock.close()


def ask(address: tuple[str, int], backoff: Backoff = FAST) -> tuple[bytes, m.Reply]:
    sent = m.DisconnectRequest(acct_session_id="S1", event_timestamp=1).encode(SECRET)
    return sent, exchange(address, sent, lambda data: m.decode_reply(data, SECRET, sent),
                          backoff, rand=lambda: 0.5)


@pytest.mark.parametrize("lose", [0, 1, 2])
def test_lost_datagrams_are_resent_unchanged(lose: int) -> None:
    with peer(lose) as (address, received):
        sent, reply = ask(address)
    assert isinstance(reply, m.DisconnectAck)
    assert received == [sent] * (lose + 1)  # the very same datagram every time


def test_every_try_lost_is_a_timeout_after_the_backoff() -> None:
    with peer(lose=99) as (address, received):
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ask(address)
        took = time.monotonic() - start
    assert len(received) == 3
    assert 0.2 + 0.4 + 0.8 - 0.05 <= took < 2.5


def test_an_invalid_answer_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with peer(lose=0, junk=True) as (address, received), \
            caplog.at_level(logging.WARNING, "passerelle.radius"):
        _, reply = ask(address)
    assert isinstance(reply, m.DisconnectAck) and len(received) == 1
    assert "bad Response Authenticator" in caplog.text


def test_port_unreachable_waits_out_the_try() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        address = closed.getsockname()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ask(address, Backoff(initial=0.2, tries=2, maximum=1.0))
    assert time.monotonic() - start >= 0.55  # 0.2 + 0.4, not an early give-up


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    assert Backoff(2.0, 5, 16.0).waits(lambda: 0.5) == [2.0, 4.0, 8.0, 16.0, 16.0]
    low, high = Backoff(2.0, 6, 16.0).waits(lambda: 0.0), Backoff(2.0, 6, 16.0).waits(
        lambda: 0.999)
    assert low[0] == pytest.approx(1.8) and high[0] == pytest.approx(2.2, abs=0.01)
    assert max(high) <= 16.0 and low[-1] == pytest.approx(14.4)
