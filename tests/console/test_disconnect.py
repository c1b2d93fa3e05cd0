"""The Disconnect button over real UDP: the console's RFC 5176 client talks to
the box's own RFC 5176 server (``gateway.dae_server.DaeServer``) on 127.0.0.1,
with a small session table standing in for the daemon behind it (``Sessions``
is the daemon's port, not a mock of the network). ACK, NAK 503 in words, and
no answer at all (then the outbox keeps trying: test_reach.py)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.dae_server import DaeServer, Selector
from passerelle.portal.console import audit
from passerelle.radius.db import transaction

from .conftest import AXIS_MANAGER, NOC, Daemon, World, sign_in, token


def press(client: FlaskClient, session_id: int, back: str = "") -> str:
    """Press Disconnect on the live view; the page it comes back to."""
    answer = client.post(f"/live/{session_id}/disconnect",
                         data={"csrf_token": token(client, "/live/"), "back": back})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = client.get(answer.headers["Location"])
    assert page.status_code == 200
    return page.get_data(as_text=True)


def flash(html: str) -> str:
    found = re.search(r'<p class="flash (\w+)" role="status">([^<]*)</p>', html)
    assert found, html
    return f"{found.group(1)}: {found.group(2)}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ack(client: FlaskClient, world: World, box: DaeServer, daemon: Daemon,
             factory: sessionmaker[DB]) -> None:
    sign_in(client, NOC)
    html = press(client, world.sessions["axis-0001"], back=f"site={world.sites['Axis Parc']}")
    assert flash(html) == "ok: ACK from axis-gw: alice@acme.example is disconnected."
    assert daemon.cut == [Selector("axis-0001", "alice@acme.example", None, None)]
    assert "axis-0001" not in daemon.live
    # Back on the view it came from (the filter kept).
    assert f'value="{world.sites["Axis Parc"]}" selected' in html
    # Who did it, and when, is on record.
    with transaction(factory) as db:
        [entry] = audit.history(db, "session", world.sessions["axis-0001"])
        assert (entry.actor, entry.action, entry.detail) == (
            NOC, "disconnect", "ACK from axis-gw: alice@acme.example is disconnected.")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nak_in_plain_words(client: FlaskClient, world: World, box: DaeServer,
                            daemon: Daemon) -> None:
    sign_in(client, AXIS_MANAGER)
    # carol's session is open in the centre's books, but the box has none.
    html = press(client, world.sessions["axis-0002"])
    message = flash(html)
    assert message.startswith("bad: NAK from axis-gw: the box has no such session: it has "
                              "probably ended already (")
    assert "503" in message
    assert daemon.cut == [Selector("axis-0002", "carol@globex.example", None, None)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_answer(client: FlaskClient, world: World, factory: sessionmaker[DB],
                   box: DaeServer, daemon: Daemon) -> None:
    sign_in(client, NOC)
    box.stop()  # the box is down: nothing listens on its port
    html = press(client, world.sessions["axis-0001"])
    assert flash(html).startswith(f"wait: No answer yet from axis-gw (127.0.0.1 port "
                                  f"{box.port}): the box may be down or unreachable; the "
                                  "centre keeps trying (1 try so far)")
    assert daemon.cut == []
    with transaction(factory) as db:
        [entry] = audit.history(db, "session", world.sessions["axis-0001"])
        assert entry.detail.startswith("No answer yet from axis-gw")
