"""Fixtures for the gateway's tests: the network-namespace lab (passerelle.lab.netns).

``lab`` is built once per test module and always removed. Without root or a
tool the lab needs, the tests that use it skip with the reason, except under
CI (env CI set), where they fail: CI installs what they need.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import Lab, missing
from tests.need import unavailable


def require_lab() -> None:
    """Skip (or, under CI, fail) when this machine cannot build the lab."""
    why = missing()
    if why:
        unavailable(why)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A whole site in network namespaces (client, client2, sw, gw, up)."""
    require_lab()
    with Lab() as built:
        yield built
