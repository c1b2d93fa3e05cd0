"""The live view's "time left": the Session-Timeout of the session's
Access-Accept (its log line, found by the session's Class) less the time
the session has run; blank for a session without our Class."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius.db import transaction
from passerelle.radius.models import AuthLog, Radacct

from .conftest import NOC, NOW, World, sign_in


def test_time_left_comes_from_the_accept(client: FlaskClient, world: World,
                                         factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        # alice's session started an hour ago; her Accept granted 3 hours.
        db.execute(update(Radacct).where(Radacct.radacctid == world.sessions["axis-0001"])
                   .values(class_="psl1:alice"))
        db.add(AuthLog(username="alice@acme.example", reply="Access-Accept", class_="psl1:alice",
                       sessiontimeout=3 * 3600, authdate=NOW - timedelta(hours=1)))
    sign_in(client, NOC)
    html = client.get("/live/").get_data(as_text=True)
    left = dict(re.findall(r'<a href="/live/\?person=\d+">([^<]+)</a>.*?'
                           r'data-label="Time left">([^<]*)<', html, re.S))
    assert left["alice@acme.example"] == "2:00:00"
    assert left["bob@globex.example"] == ""  # no Accept of ours on record
