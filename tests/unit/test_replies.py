"""The reply cache both RADIUS servers keep for retransmissions."""

from __future__ import annotations

import pytest

from passerelle.radius.replies import ReplyCache


def test_a_reply_is_kept_for_the_window_then_forgotten() -> None:
    cache = ReplyCache(window=30)
    cache.put(b"k", b"reply", now=100.0)
    assert cache.get(b"k", now=129.9) == b"reply"
    assert cache.get(b"k", now=130.0) is None
    assert len(cache) == 0


def test_unknown_key_has_no_reply() -> None:
    cache = ReplyCache(window=30)
    cache.put(b"a", b"1", now=0.0)
    assert cache.get(b"b", now=1.0) is None


def test_the_oldest_go_first_past_the_size() -> None:
    cache = ReplyCache(window=300, size=2)
    for i, key in enumerate((b"a", b"b", b"c")):
        cache.put(key, key.upper(), now=float(i))
    assert cache.get(b"a", now=3.0) is None
    assert cache.get(b"b", now=3.0) == b"B"
    assert cache.get(b"c", now=3.0) == b"C"


def test_a_new_reply_for_a_key_restarts_its_window() -> None:
    cache = ReplyCache(window=10)
    cache.put(b"k", b"old", now=0.0)
    cache.put(b"k", b"new", now=5.0)
    assert cache.get(b"k", now=12.0) == b"new"


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        ReplyCache(window=-1)
    with pytest.raises(ValueError):
        ReplyCache(window=1, size=0)
