"""The live view's pages (keyset: newest first, a "next page" link), through
Flask's test client on SQLite and PostgreSQL: every open session exactly once
across the pages, in order, whatever the page size; filters and scope hold on
every page; a cursor the console did not write is a 400."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.app import create_app
from passerelle.portal.console.settings import ConsoleSettings
from passerelle.radius.db import transaction
from passerelle.radius.models import Radacct

from .conftest import ACME_HR, AXIS_MANAGER, GLOBEX_HR, NOC, NOW, Clock, World, sign_in, token

# The open sessions of the conftest's world, newest first (started 1, 5, 30, 60 minutes ago).
NEWEST_FIRST = ["axis-0003", "axis-0002", "cei-0001", "axis-0001"]
ROW = re.compile(r'action="/live/(\d+)/disconnect"')
NEXT = re.compile(r'<a href="([^"]+)" rel="next"')
SHOWN = re.compile(r'<span id="shown">(\d+)\u2013(\d+)</span>')  # an en dash


def _shown(page: str) -> tuple[str, ...]:
    """The first and last rows the page says it shows."""
    found = SHOWN.search(page)
    assert found, "the page says nothing of the rows it shows"
    return found.groups()


def _client(factory: sessionmaker[DB], clock: Clock, size: int) -> Iterator[FlaskClient]:
    app = create_app(factory, settings=ConsoleSettings(refresh=15, max_rows=size), clock=clock)
    app.testing = True
    with app.test_client() as c:
        yield c


@pytest.fixture
def client(factory: sessionmaker[DB], world: World, clock: Clock) -> Iterator[FlaskClient]:
    """A console whose pages hold two sessions."""
    yield from _client(factory, clock, 2)


def _page(client: FlaskClient, path: str, world: World) -> tuple[list[str], str, str]:
    """The Acct-Session-Ids a page lists, in order; its next page's address
    ("" on the last); the page's HTML."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    page = answer.get_data(as_text=True)
    names = {v: k for k, v in world.sessions.items()}
    found = NEXT.search(page)
    return ([names[int(i)] for i in ROW.findall(page)],
            html.unescape(found.group(1)) if found else "", page)


def _walk(client: FlaskClient, path: str, world: World) -> list[list[str]]:
    """Every page from ``path``, following the "next page" links."""
    pages = []
    while path:
        rows, path, _ = _page(client, path, world)
        pages.append(rows)
        assert len(pages) < 50, "the next links never end"
    return pages


def test_first_next_and_last_page(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    rows, following, page = _page(client, "/live/", world)
    assert rows == NEWEST_FIRST[:2]
    assert "<strong>4</strong> open sessions" in page
    assert _shown(page) == ("1", "2")
    assert following.startswith("/live/?after=") and 'id="newest"' not in page
    rows, following, page = _page(client, following, world)
    assert rows == NEWEST_FIRST[2:]
    assert "<strong>4</strong> open sessions" in page
    assert _shown(page) == ("3", "4")
    # The last page: no next link (the page is full, and nothing follows), a way back.
    assert following == "" and '<a href="/live/" id="newest">Newest</a>' in page
    # The Disconnect buttons of page 2 come back to page 2.
    back = re.search(r'name="back" type="hidden" value="([^"]*)"', page)
    assert back and "after=" in html.unescape(back.group(1))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 100])
def test_every_session_once_in_order_whatever_the_page_size(
        factory: sessionmaker[DB], world: World, clock: Clock, size: int) -> None:
    with transaction(factory) as db:
        # Two more that start the same second as carol's (ties go by id, newest
        # first), and one whose start the box never told (first of all).
        same = db.scalar(select(Radacct.acctstarttime)
                         .where(Radacct.radacctid == world.sessions["axis-0002"]))
        for sid in ("tie-1", "tie-2"):
            row = Radacct(acctsessionid=sid, acctuniqueid=sid, username="dave@acme.example",
                          nasipaddress="127.0.0.1", acctstarttime=same,
                          site_id=world.sites["CEI"])
            db.add(row)
            db.flush()
            world.sessions[sid] = row.radacctid
        row = Radacct(acctsessionid="no-start", acctuniqueid="no-start", username="eve",
                      nasipaddress="127.0.0.1", acctstarttime=None, site_id=world.sites["CEI"])
        db.add(row)
        db.flush()
        world.sessions["no-start"] = row.radacctid
    expected = ["no-start", "axis-0003", "tie-2", "tie-1", "axis-0002", "cei-0001", "axis-0001"]
    for client in _client(factory, clock, size):
        sign_in(client, NOC)
        pages = _walk(client, "/live/", world)
    assert [sid for page in pages for sid in page] == expected
    assert all(len(page) == size for page in pages[:-1]) and 1 <= len(pages[-1]) <= size
    assert len(pages) == -(-len(expected) // size)


def test_a_filter_holds_on_every_page(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    globex = world.companies["Globex"]
    assert _walk(client, f"/live/?company={globex}", world) == [["axis-0002", "cei-0001"]]
    rows, following, _ = _page(client, f"/live/?site={world.sites['Axis Parc']}", world)
    assert rows == ["axis-0003", "axis-0002"] and f"site={world.sites['Axis Parc']}" in following
    rows, following, page = _page(client, following, world)
    assert rows == ["axis-0001"] and following == ""
    # "Newest" keeps the filter and drops the page.
    assert f'<a href="/live/?site={world.sites["Axis Parc"]}" id="newest">' in page
    pages = _walk(client, "/live/?q=globex", world)
    assert pages == [["axis-0002", "cei-0001"]]


def test_sessions_that_end_meanwhile_do_not_shift_the_next_page(
        client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, NOC)
    rows, following, _ = _page(client, "/live/", world)
    assert rows == ["axis-0003", "axis-0002"]
    with transaction(factory) as db:
        db.execute(update(Radacct).where(Radacct.radacctid.in_(
            [world.sessions["axis-0003"], world.sessions["axis-0002"]]))
            .values(acctstoptime=NOW))
    rows, following, page = _page(client, following, world)
    assert rows == ["cei-0001", "axis-0001"] and following == ""
    assert "<strong>2</strong> open sessions" in page
    assert _shown(page) == ("1", "2")
    # Past the end (everything after the cursor ended): says so, and the way back.
    with transaction(factory) as db:
        db.execute(update(Radacct).values(acctstoptime=NOW))
    _, _, page = _page(client, "/live/?after=20261201T095500.000000-1", world)
    assert "No open session after this page any more." in page and 'id="newest"' in page


@pytest.mark.parametrize("after", [
    "abc", "1", "-1", "none", "none-", "none-x", "20261301T000000.000000-1",
    "20260230T000000.000000-1", "20261201T250000.000000-1", "20261201T093000-1",
    "20261201T093000.000000-99999999999999999999", "none-9223372036854775808",
    "none-%D9%A1", "%EF%BC%91%EF%BC%92-1", "none-1%0A", "none-1%00", "x" * 300,
    "20261201T093000.000000-1'%20OR%20'1'='1",
])
def test_a_hostile_cursor_is_a_clear_400(client: FlaskClient, after: str) -> None:
    sign_in(client, NOC)
    answer = client.get(f"/live/?after={after}")
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "bad page" in page and "start again from the newest" in page
    assert "Traceback" not in page


@pytest.mark.parametrize("after", ["none-9223372036854775807", "19700101T000000.000000-1",
                                   "99991231T235959.999999-9223372036854775807"])
def test_extreme_but_valid_cursors(client: FlaskClient, world: World, after: str) -> None:
    sign_in(client, NOC)
    rows, _, _ = _page(client, f"/live/?after={after}", world)
    expected = {"19700101T000000.000000-1": []}.get(after, NEWEST_FIRST[:2])
    assert rows == expected


def test_scope_holds_on_every_page(client: FlaskClient, world: World) -> None:
    # A site manager: Axis Parc's sessions only, on page 2 as on page 1.
    sign_in(client, AXIS_MANAGER)
    assert _walk(client, "/live/", world) == [["axis-0003", "axis-0002"], ["axis-0001"]]
    _, following, _ = _page(client, "/live/", world)
    _, _, page = _page(client, following, world)
    assert "<strong>3</strong> open sessions" in page and "bob@globex.example" not in page
    # Another site's filter stays empty on a later page too.
    assert _page(client, following + f"&site={world.sites['CEI']}", world)[0] == []
    client.post("/sign-out", data={"csrf_token": token(client, "/live/")})
    # A company manager: their company's people only, from any cursor, even
    # one made from another company's session.
    sign_in(client, ACME_HR)
    assert _walk(client, "/live/", world) == [["axis-0001"]]
    assert _walk(client, "/live/?after=20261201T095900.000000-99", world) == [["axis-0001"]]
    client.post("/sign-out", data={"csrf_token": token(client, "/live/")})
    sign_in(client, GLOBEX_HR)
    pages = _walk(client, "/live/?after=none-9223372036854775807", world)
    assert pages == [["axis-0002", "cei-0001"]]
    _, _, page = _page(client, "/live/?after=20261201T095800.000000-1", world)
    assert "<strong>2</strong> open sessions" in page
    assert "mallory" not in page and "alice" not in page


def test_disconnect_comes_back_to_the_page(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    after = "20261201T093000.000000-5"
    # The closed session: nothing is sent, the answer comes back at once.
    for back, location in ((f"site=2&after={after}", f"/live/?site=2&after={after}"),
                           ("after=bogus&site=2", "/live/?site=2"),
                           ("after=bogus&site=bogus", "/live/")):
        answer = client.post(f"/live/{world.sessions['cei-0000']}/disconnect",
                             data={"csrf_token": token(client, "/live/"), "back": back})
        assert (answer.status_code, answer.headers["Location"]) == (302, location)


def test_the_default_page_holds_a_hundred(factory: sessionmaker[DB], world: World,
                                          clock: Clock) -> None:
    assert ConsoleSettings().max_rows == 100
    with transaction(factory) as db:
        for n in range(101):
            db.add(Radacct(acctsessionid=f"many-{n}", acctuniqueid=f"many-{n}",
                           username="dave@acme.example", nasipaddress="127.0.0.1",
                           acctstarttime=NOW - timedelta(hours=2, seconds=n),
                           site_id=world.sites["CEI"]))
    for client in _client(factory, clock, ConsoleSettings().max_rows):
        sign_in(client, NOC)
        answer = client.get("/live/").get_data(as_text=True)
        assert len(ROW.findall(answer)) == 100 and "<strong>105</strong>" in answer
        assert _shown(answer) == ("1", "100")
        following = NEXT.search(answer)
        assert following
        answer = client.get(html.unescape(following.group(1))).get_data(as_text=True)
        assert len(ROW.findall(answer)) == 5 and not NEXT.search(answer)
        assert _shown(answer) == ("101", "105")


def test_every_value_of_a_row_is_escaped(client: FlaskClient, factory: sessionmaker[DB],
                                         world: World) -> None:
    hostile = '<script>alert("x")</script>&\''
    with transaction(factory) as db:
        db.add(Radacct(acctsessionid="evil", acctuniqueid="evil", username=hostile,
                       nasipaddress="127.0.0.1", nasidentifier=hostile,
                       callingstationid=hostile, framedipaddress=hostile,
                       acctstarttime=NOW, site_id=world.sites["CEI"]))
    sign_in(client, NOC)
    page = client.get("/live/").get_data(as_text=True)
    assert "<script>alert" not in page and '"x"' not in page
    # login, box, MAC, IP and the button's label: five times, escaped.
    assert page.count(html.escape(hostile)) == 5
