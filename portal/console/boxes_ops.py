"""Boxes: each gateway's last contact with the centre and its live clients.

The last contact is the latest of what the data holds: the gateway's
``last_seen`` (the RADIUS server writes it for every request, at most once
a minute), its heartbeat (Status-Server, with its software version and
spool depth), its latest accounting (a session's start, interim update or
stop) and its latest authentication.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session as DB

from passerelle.radius.metrics import silent
from passerelle.radius.models import AuthLog, Gateway, Radacct, Site

from .scope import Scope


class Health(str, enum.Enum):
    ok = "ok"
    silent = "silent"  # nothing for longer than the interim interval
    never = "never"  # no contact at all on record


def health(last_contact: datetime | None, now: datetime, interval: int) -> Health:
    """The rule is the centre's metrics' (one rule for the console and the scrape)."""
    if last_contact is None:
        return Health.never
    return Health.silent if silent(last_contact, now, interval) else Health.ok


@dataclass(frozen=True)
class BoxRow:
    id: int
    identifier: str
    site: str
    ip: str
    coa_port: int
    last_seen: datetime | None
    last_accounting: datetime | None
    last_auth: datetime | None
    last_contact: datetime | None  # the latest of the above and the heartbeat
    live: int  # open sessions
    health: Health
    last_status: datetime | None = None  # its latest heartbeat (Status-Server)
    version: str | None = None  # the software it runs, as its heartbeat says
    spool_depth: int | None = None  # accounting records waiting on the box
    last_on: datetime | None = None  # its latest Accounting-On (it (re)started)
    last_off: datetime | None = None  # ... and Accounting-Off (it stopped)


def _latest(*values: datetime | None) -> datetime | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def boxes(db: DB, scope: Scope, now: datetime, interval: int) -> list[BoxRow]:
    """The gateways of the scope's sites, by site, the silent ones flagged."""
    if scope.company is not None:
        return []  # boxes are no company's business (access.PERMISSIONS keeps them out too)
    acct = (select(Radacct.gateway_id.label("gateway_id"),
                   func.max(Radacct.acctupdatetime).label("updated"),
                   func.max(Radacct.acctstarttime).label("started"),
                   func.max(Radacct.acctstoptime).label("stopped"),
                   func.sum(case((Radacct.acctstoptime.is_(None), 1), else_=0)).label("live"))
            .where(Radacct.gateway_id.is_not(None))
            .group_by(Radacct.gateway_id).subquery())
    auth = (select(AuthLog.nasipaddress.label("ip"), func.max(AuthLog.authdate).label("at"))
            .group_by(AuthLog.nasipaddress).subquery())
    query = (select(Gateway, Site.name, acct.c.updated, acct.c.started, acct.c.stopped,
                    acct.c.live, auth.c.at)
             .join(Site, Gateway.site_id == Site.id)
             .outerjoin(acct, acct.c.gateway_id == Gateway.id)
             .outerjoin(auth, auth.c.ip == Gateway.ip_address)
             .order_by(Site.name, Gateway.identifier))
    if scope.sites is not None:
        query = query.where(Gateway.site_id.in_(sorted(scope.sites)))
    rows = []
    for gateway, site, updated, started, stopped, live, last_auth in db.execute(query):
        last_accounting = _latest(updated, started, stopped)
        contact = _latest(gateway.last_seen, gateway.last_status, last_accounting, last_auth)
        rows.append(BoxRow(id=gateway.id, identifier=gateway.identifier, site=site,
                           ip=gateway.ip_address, coa_port=gateway.coa_port,
                           last_seen=gateway.last_seen, last_accounting=last_accounting,
                           last_auth=last_auth, last_contact=contact, live=int(live or 0),
                           health=health(contact, now, interval),
                           last_status=gateway.last_status, version=gateway.software_version,
                           spool_depth=gateway.spool_depth, last_on=gateway.last_accounting_on,
                           last_off=gateway.last_accounting_off))
    return rows
