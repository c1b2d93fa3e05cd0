"""``[metrics] listen``: off unless set, an address and a port, never on
the LAN side."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.gateway.config import ConfigError, parse
from tests.gateway.test_config import MACHINE, MINIMAL


def test_off_unless_set(tmp_path: Path) -> None:
    assert parse(MINIMAL, tmp_path, MACHINE).metrics_listen is None


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:9464", ("::1", 9464)),
    ("203.0.113.2:9464", ("203.0.113.2", 9464)),  # the WAN's, for a remote Prometheus
])
def test_an_address_off_the_lan(tmp_path: Path, listen: str,
                                expected: tuple[str, int]) -> None:
    text = MINIMAL + f'\n[metrics]\nlisten = "{listen}"\n'
    assert parse(text, tmp_path, MACHINE).metrics_listen == expected


@pytest.mark.parametrize(("listen", "words"), [
    ("198.51.100.1:9464", "metrics.listen: 198.51.100.1 is on the clients' network "
                          "198.51.100.0/24; the metrics are never served on the LAN side"),
    ("0.0.0.0:9464", "metrics.listen: 0.0.0.0 would listen on the LAN too"),
    ("[::]:9464", "metrics.listen: :: would listen on the LAN too"),
    ("localhost:9464", "metrics.listen: 'localhost:9464' is not ADDRESS:PORT"),
    ("127.0.0.1:0", "metrics.listen: port 0 is not between 1 and 65535"),
])
def test_refused_with_the_reason(tmp_path: Path, listen: str, words: str) -> None:
    text = MINIMAL + f'\n[metrics]\nlisten = "{listen}"\n'
    with pytest.raises(ConfigError) as refused:
        parse(text, tmp_path, MACHINE)
    assert str(refused.value).startswith(words), str(refused.value)


def test_on_a_vlan_refused(tmp_path: Path) -> None:
    text = MINIMAL + """
[vlans]
ids = "201-202"
network = "10.128.0.0/16"
prefix = 24

[metrics]
listen = "10.128.1.1:9464"
"""
    with pytest.raises(ConfigError, match=r"is on the clients' network 10\.128\.1\.0/24"):
        parse(text, tmp_path, MACHINE)


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics.port: unknown key"):
        parse(MINIMAL + '\n[metrics]\nport = 9464\n', tmp_path, MACHINE)
