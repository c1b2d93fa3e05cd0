"""The boxes page shows what each box's heartbeat told (software version,
spool depth), its last Accounting-On/Off, and an idle box whose heartbeat is
recent is not red: with heartbeats, silence means trouble."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius.db import transaction
from passerelle.radius.models import Gateway

from .conftest import NOC, NOW, World, sign_in


def test_the_heartbeat_is_shown_and_keeps_an_idle_box_green(
        client: FlaskClient, world: World, factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        # barchon-gw has no client and never signed anyone in: only its heartbeat.
        db.execute(update(Gateway).where(Gateway.identifier == "barchon-gw").values(
            last_status=NOW - timedelta(seconds=40), software_version="0.1.0", spool_depth=12,
            last_accounting_on=NOW - timedelta(hours=2),
            last_accounting_off=NOW - timedelta(hours=2, minutes=1)))
        # cei-gw's heartbeat is older than the interim interval: still red.
        db.execute(update(Gateway).where(Gateway.identifier == "cei-gw").values(
            last_status=NOW - timedelta(minutes=10)))
    sign_in(client, NOC)
    html = client.get("/boxes/").get_data(as_text=True)
    rows = {m.group(2): m.group(1) for m in re.finditer(
        r'<tr class="(\w+)">\s*<td data-label="Box">([\w-]+)', html)}
    assert rows == {"axis-gw": "ok", "cei-gw": "silent", "barchon-gw": "ok"}
    barchon = html[html.index(">barchon-gw"):html.index(">cei-gw")]
    assert '<td data-label="Heartbeat">2026-12-01 09:59:20</td>' in barchon
    assert '<td data-label="Software">0.1.0</td>' in barchon
    assert "12 waiting" in barchon
    assert "On 2026-12-01 08:00:00" in barchon and "Off 2026-12-01 07:59:00" in barchon
    assert "1 silent</strong>" in html
