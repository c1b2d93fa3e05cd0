"""The RADIUS service's Prometheus metrics.

Events are counted where they happen: each batch's requests and decisions
when the handler finishes it (``count``), each batch's database transaction
timed (``BATCH_SECONDS``). What is a state (live sessions per site, boxes
silent) is read from the database when Prometheus scrapes
(``DatabaseCollector``): the open sessions found by an index on
``acctstoptime IS NULL``, whatever the size of radacct.

With several worker processes the counters are prometheus_client's
multiprocess files: ``Exporter.prepare`` gives the workers a fresh directory
before they start, and the main process serves their sum. With one process
the counters are read in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.exporter import MetricsListener
from passerelle.refusal import Refusal

from . import messages as m
from .models import Gateway, Radacct, Site

if TYPE_CHECKING:
    from .handler import Batch

log = logging.getLogger("passerelle.radius")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

COUNTS = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("passerelle_radius_requests", "Requests taken for processing, by type "
                   "(retransmissions and drops are counted apart)", ["type"], registry=COUNTS)
for _code in (m.Code.ACCESS_REQUEST, m.Code.ACCOUNTING_REQUEST, m.Code.STATUS_SERVER):
    REQUESTS.labels(_code.label)
ACCEPT = "accept"
DECISIONS = Counter("passerelle_radius_decisions", "Access-Request decisions: accept, or "
                    "the refusal's code", ["decision"], registry=COUNTS)
for _decision in (ACCEPT, *(r.value for r in Refusal)):
    DECISIONS.labels(_decision)  # every reason shows, at 0 until it happens
ACCOUNTING = Counter("passerelle_radius_accounting", "Accounting-Requests, by "
                     "Acct-Status-Type", ["status"], registry=COUNTS)
for _status in (m.AcctStatus.START, m.AcctStatus.INTERIM_UPDATE, m.AcctStatus.STOP):
    ACCOUNTING.labels(_status.label)
DROPPED = Counter("passerelle_radius_dropped", "Datagrams dropped unanswered (unknown "
                  "client, malformed, bad authenticator, wrong port)", registry=COUNTS)
DUPLICATES = Counter("passerelle_radius_duplicates", "Retransmissions answered from the "
                     "reply cache", registry=COUNTS)
UNANSWERED = Counter("passerelle_radius_unanswered", "Requests processed but not answered "
                     "(the database failed: the client retransmits)", registry=COUNTS)
BATCH_SECONDS = Histogram("passerelle_radius_batch_seconds", "Time of a batch's database "
                          "transaction, from its start to its commit",
                          buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                          registry=COUNTS)


# --- counting a batch (handler.finish) ---------------------------------------------


def tally(batch: Batch) -> Tally[tuple[str, str]]:
    """What a finished batch adds to the counters (pure): (counter, label) ->
    how many; the label is "" for a counter without one."""
    out: Tally[tuple[str, str]] = Tally()
    for item in batch.work:
        request = item.request
        out["requests", request.CODE.label] += 1
        if item.data is None:
            out["unanswered", ""] += 1
            continue
        if isinstance(request, m.AccessRequest):
            reject = item.reply if isinstance(item.reply, m.AccessReject) else None
            out["decisions", ACCEPT if reject is None else _reason(reject.reply_message)] += 1
        elif isinstance(request, m.AccountingRequest):
            out["accounting", _status_label(request.status)] += 1
    if batch.dropped:
        out["dropped", ""] += batch.dropped
    if batch.duplicates:
        out["duplicates", ""] += batch.duplicates
    return out


_COUNTERS: dict[str, Counter] = {"requests": REQUESTS, "decisions": DECISIONS,
                                 "accounting": ACCOUNTING, "dropped": DROPPED,
                                 "duplicates": DUPLICATES, "unanswered": UNANSWERED}
# Each (counter, label)'s child, found once: labels() takes a lock and
# builds a tuple, at every batch otherwise.
_CHILDREN: dict[tuple[str, str], Counter] = {}


def count(batch: Batch) -> None:
    """Add a finished batch to the counters."""
    for key, n in tally(batch).items():
        child = _CHILDREN.get(key)
        if child is None:
            counter = _COUNTERS[key[0]]
            child = _CHILDREN[key] = counter.labels(key[1]) if key[1] else counter
        child.inc(n)


# A few texts and statuses recur in every batch: each is read once.
_REASONS: dict[str | None, str] = {}
_STATUSES: dict[int | None, str] = {}


def _reason(reply_message: str | None) -> str:
    """A reject's refusal code, from its Reply-Message as the box reads it."""
    found = _REASONS.get(reply_message)
    if found is None:
        if len(_REASONS) > 1000:  # texts with a changing part: stay bounded
            _REASONS.clear()
        found = _REASONS[reply_message] = \
            Refusal.from_reply_message(reply_message or "")[0].value
    return found


def _status_label(status: int | None) -> str:
    found = _STATUSES.get(status)
    if found is None:
        try:
            found = m.AcctStatus(status).label if status is not None else "none"
        except ValueError:
            found = str(status)
        _STATUSES[status] = found
    return found


# --- read at scrape time ------------------------------------------------------------


def silent(last_contact: datetime | None, now: datetime, interval: float) -> bool:
    """A box is silent when nothing came from it for longer than the
    interim interval (its heartbeat comes at least that often), or never."""
    return last_contact is None or (now - last_contact).total_seconds() > interval


class DatabaseCollector:
    """Live sessions per site and boxes silent, read at each scrape. A
    database that does not answer leaves them out of that scrape (logged)."""

    def __init__(self, factory: sessionmaker[DB], interval: float) -> None:
        self.factory = factory
        self.interval = interval

    def collect(self) -> Iterator[Metric]:
        try:
            found = self._read(datetime.now(UTC).replace(tzinfo=None))
        except Exception as exc:  # the scrape is the boundary
            log.warning("metrics: could not read the database: %s", exc)
            return
        yield from found

    def _read(self, now: datetime) -> list[Metric]:
        sessions = GaugeMetricFamily("passerelle_radius_sessions_open", "Sessions open "
                                     "(no Stop yet), by site", labels=["site"])
        boxes = GaugeMetricFamily("passerelle_radius_boxes", "Boxes (gateways) known, by "
                                  "site", labels=["site"])
        quiet = GaugeMetricFamily("passerelle_radius_boxes_silent", "Boxes silent longer "
                                  "than the interim interval, or never heard, by site",
                                  labels=["site"])
        with self.factory() as db:
            names = dict(db.execute(select(Site.id, Site.name)).all())
            # The open sessions only, by an index (PostgreSQL: ix_radacct_stoptime,
            # 1 ms for 300 open among 300,000 rows).
            open_ = dict(db.execute(select(Radacct.site_id, func.count())
                                    .where(Radacct.acctstoptime.is_(None))
                                    .group_by(Radacct.site_id)).all())
            gateways = db.execute(select(Gateway.site_id, Gateway.last_seen,
                                         Gateway.last_status)).all()
        known: Tally[int] = Tally()
        silent_: Tally[int] = Tally()
        for site_id, seen, status in gateways:
            known[site_id] += 1
            contact = max((t for t in (seen, status) if t is not None), default=None)
            silent_[site_id] += silent(contact, now, self.interval)
        for site_id, name in sorted(names.items(), key=lambda kv: kv[1]):
            sessions.add_metric([name], open_.get(site_id, 0))
            boxes.add_metric([name], known[site_id])
            quiet.add_metric([name], silent_[site_id])
        return [sessions, boxes, quiet]


class _Counts:
    def collect(self) -> Iterator[Metric]:
        yield from COUNTS.collect()


class Exporter:
    """The HTTP listener of the RADIUS service, in its main process."""

    def __init__(self, listen: tuple[str, int], factory: sessionmaker[DB],
                 interval: float) -> None:
        self.listen = listen
        self.factory = factory
        self.interval = interval
        self.directory: str | None = None
        self._listener: MetricsListener | None = None

    def prepare(self, workers: int) -> None:
        """Before the workers start: with more than one, their counters go
        to a fresh directory of multiprocess files (the environment passes
        it on to them)."""
        if workers > 1:
            self.directory = tempfile.mkdtemp(prefix="passerelle-metrics-")
            os.environ[MULTIPROC_ENV] = self.directory

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=True)
        if self.directory is not None:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry, path=self.directory)
        else:
            registry.register(_Counts())
        registry.register(DatabaseCollector(self.factory, self.interval))
        return registry

    def start(self) -> None:
        host, port = self.listen
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self._listener = MetricsListener(host, port, self.registry())
        except OSError as exc:  # answering RADIUS matters more than the metrics
            log.error("metrics: cannot listen on %s (%s): running without metrics", shown,
                      exc.strerror or exc)
            return
        log.info("metrics on http://%s/metrics", shown)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self.directory is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
