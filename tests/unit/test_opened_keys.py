"""The opened Wi-Fi keys a worker remembers (keys.Opened): the same answer as
opening the sealed text, never one across a rotation or another server key,
and bounded. No database."""

from __future__ import annotations

from cryptography.fernet import Fernet

from passerelle.radius import keys, passwords


class Counting:
    """A server key that counts its decryptions."""

    def __init__(self, text: bytes) -> None:
        self.text, self.opened = text, 0

    def fernet(self) -> Fernet:
        self.opened += 1
        return Fernet(self.text)


def test_a_key_is_opened_once_then_remembered() -> None:
    server = Counting(Fernet.generate_key())
    sealed = passwords.seal("k3y-0ne", Fernet(server.text))
    cache = keys.Opened()
    assert cache.open(sealed, server.text, server.fernet) == "k3y-0ne"
    assert cache.open(sealed, server.text, server.fernet) == "k3y-0ne"
    assert server.opened == 1


def test_a_rotated_key_is_a_new_sealed_text_and_is_opened() -> None:
    server = Counting(Fernet.generate_key())
    cache = keys.Opened()
    old = passwords.seal("old-key", Fernet(server.text))
    new = passwords.seal("new-key", Fernet(server.text))
    assert cache.open(old, server.text, server.fernet) == "old-key"
    assert cache.open(new, server.text, server.fernet) == "new-key"
    assert server.opened == 2


def test_another_server_key_forgets_everything() -> None:
    first, second = Counting(Fernet.generate_key()), Counting(Fernet.generate_key())
    sealed = passwords.seal("k3y", Fernet(first.text))
    cache = keys.Opened()
    assert cache.open(sealed, first.text, first.fernet) == "k3y"
    # The key file changed: what the old key opened does not open any more.
    assert cache.open(sealed, second.text, second.fernet) is None
    assert second.opened == 1
    assert cache.open(sealed, first.text, first.fernet) == "k3y"
    assert first.opened == 2  # opened again: the cache was emptied


def test_what_does_not_open_is_not_remembered() -> None:
    server = Counting(Fernet.generate_key())
    sealed = passwords.seal("k3y", Fernet(Fernet.generate_key()))
    cache = keys.Opened()
    assert cache.open(sealed, server.text, server.fernet) is None
    assert cache.open(sealed, server.text, server.fernet) is None
    assert server.opened == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    server = Counting(Fernet.generate_key())
    key = Fernet(server.text)
    sealed = [passwords.seal(f"key-{i}", key) for i in range(4)]
    cache = keys.Opened(size=3)
    for text in sealed[:3]:
        cache.open(text, server.text, server.fernet)
    cache.open(sealed[0], server.text, server.fernet)  # used again: kept
    cache.open(sealed[3], server.text, server.fernet)  # evicts key-1
    assert server.opened == 4
    assert cache.open(sealed[0], server.text, server.fernet) == "key-0"
    assert server.opened == 4
    assert cache.open(sealed[1], server.text, server.fernet) == "key-1"
    assert server.opened == 5
