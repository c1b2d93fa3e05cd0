"""`--max-sessions` on `passerelle admin company add|set`: 1 to 1000 or
none; anything else is one `Error:` line and exit 2."""

from __future__ import annotations

import pytest

from .test_admin_cli import Cli, cli, ok, one_error, world  # noqa: F401  (fixtures)


def test_max_sessions_set_shown_and_cleared(cli: Cli, world: str) -> None:  # noqa: F811
    ok(cli("admin", "company", "set", "Acme", "--max-sessions", "2", "--db", world))
    listed = ok(cli("admin", "company", "list", "--db", world)).out
    assert "at once" in listed.splitlines()[0]
    assert any(line.startswith("Acme") and " 2 " in line for line in listed.splitlines())
    ok(cli("admin", "company", "set", "Acme", "--max-sessions", "none", "--db", world))
    ok(cli("admin", "company", "add", "Initech", "--max-sessions", "1000", "--db", world))


@pytest.mark.parametrize("value", ["0", "1001", "-1", "two", "1.5"])
def test_bad_max_sessions(cli: Cli, world: str, value: str) -> None:  # noqa: F811
    one_error(cli("admin", "company", "set", "Acme", "--max-sessions", value, "--db", world),
              "--max-sessions")
