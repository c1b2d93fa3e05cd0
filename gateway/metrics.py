"""The box's Prometheus metrics, served on a listener of its own.

Counters live in ``COUNTS``, one registry for the process: the daemon, the
RADIUS client and the access points' server count into it where things
happen (one line each). What is a state rather than an event (sessions
open, spool depth, the kernel's sets, DHCP leases) is read when Prometheus
scrapes, by ``BoxCollector``, so nothing has to keep it up to date.

The listener is off unless ``[metrics] listen`` is set; config.py refuses
the LAN's addresses, and the nftables table refuses every port it does not
name from the LAN anyway (docs/gateway.md, "Metrics").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from passerelle.exporter import MetricsListener
from passerelle.radius import messages as m
from passerelle.refusal import Refusal

from .dnsmasq import Lease, parse_leases

log = logging.getLogger("passerelle.gateway")

COUNTS = CollectorRegistry(auto_describe=True)

ACCEPTED = "accepted"
ERROR = "error"  # a check-in that failed on the box's own bug (logged as such)

CHECKINS = Counter("passerelle_gateway_checkins", "Check-ins, by outcome: accepted or the "
                   "refusal's code", ["outcome"], registry=COUNTS)
for _outcome in (ACCEPTED, *(r.value for r in Refusal), ERROR):
    CHECKINS.labels(_outcome)  # every outcome shows, at 0 until it happens

RADIUS_REQUESTS = Counter("passerelle_gateway_radius_requests", "RADIUS exchanges with a "
                          "server that got an answer", ["server", "type"], registry=COUNTS)
RADIUS_FAILURES = Counter("passerelle_gateway_radius_failures", "RADIUS exchanges with a "
                          "server that got no valid answer after every try",
                          ["server", "type"], registry=COUNTS)
RADIUS_SECONDS = Histogram("passerelle_gateway_radius_seconds", "Time from the first send "
                           "to the answer, retransmissions included", ["server", "type"],
                           buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2, 4, 8, 16),
                           registry=COUNTS)

AP_REQUESTS = Counter("passerelle_gateway_ap_requests", "Access points' RADIUS requests, by "
                      "what the box answered", ["outcome"], registry=COUNTS)
AP_OUTCOMES = ("accept", "reject", "accounting", "dropped")
for _outcome in AP_OUTCOMES:
    AP_REQUESTS.labels(_outcome)

SESSIONS = Gauge("passerelle_gateway_sessions", "Sessions open on the box",
                 registry=COUNTS)


# --- counting, where things happen ------------------------------------------------


@contextlib.contextmanager
def check_in() -> Iterator[None]:
    """Count the check-in run inside: accepted, refused (by the refusal's
    code: any exception with a ``refusal`` attribute, the daemon's
    Refused) or failed. The exception goes on up."""
    try:
        yield
    except Exception as exc:
        refusal = getattr(exc, "refusal", None)
        CHECKINS.labels(refusal.value if isinstance(refusal, Refusal) else ERROR).inc()
        raise
    CHECKINS.labels(ACCEPTED).inc()


def request_type(datagram: bytes) -> str:
    """A RADIUS datagram's code in words (``Access-Request``, ...)."""
    try:
        return m.Code(datagram[0]).label
    except (ValueError, IndexError):
        return "unknown"


@contextlib.contextmanager
def radius_exchange(host: str, port: int, sent: bytes) -> Iterator[None]:
    """Time one exchange with a server: answered (its latency), or a
    failure when it raises TimeoutError (every try used)."""
    labels = (f"{host}:{port}", request_type(sent))
    started = time.monotonic()
    try:
        yield
    except TimeoutError:
        RADIUS_FAILURES.labels(*labels).inc()
        raise
    RADIUS_SECONDS.labels(*labels).observe(time.monotonic() - started)
    RADIUS_REQUESTS.labels(*labels).inc()


def ap_outcome(reply: bytes | None) -> str:
    """What the access points' server did with a request, from its reply."""
    if reply is None:
        return "dropped"
    match reply[0]:
        case m.Code.ACCESS_ACCEPT:
            return "accept"
        case m.Code.ACCESS_REJECT:
            return "reject"
        case _:
            return "accounting"


def ap_answered(reply: bytes | None) -> bytes | None:
    """Count an access point's request by its reply; the reply unchanged."""
    AP_REQUESTS.labels(ap_outcome(reply)).inc()
    return reply


# --- read at scrape time -----------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where the scrape-time gauges read from (service.Box gives them)."""

    spool_pending: Callable[[], int]
    set_sizes: Callable[[], Mapping[str, int]]  # the nftables client sets: name -> elements
    lease_file: Path


def active_leases(leases: Iterable[Lease], now: datetime) -> int:
    """Leases not expired at ``now`` (an infinite one never is)."""
    return sum(1 for lease in leases if lease.expires is None or lease.expires > now)


class BoxCollector:
    """The gauges read when Prometheus scrapes. A source that fails is left
    out of that scrape (and logged), never the whole page."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._one("spool", self._spool)
        yield from self._one("nftables sets", self._sets)
        yield from self._one("DHCP leases", self._leases)

    def _one(self, what: str, read: Callable[[], Iterable[Metric]]) -> Iterable[Metric]:
        try:
            return list(read())
        except Exception as exc:  # the scrape is the boundary: log, serve the rest
            log.warning("metrics: could not read the %s: %s", what, exc)
            return []

    def _spool(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("passerelle_gateway_spool_depth", "Accounting records "
                                "waiting in the spool for the centre",
                                value=self.sources.spool_pending())

    def _sets(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("passerelle_gateway_nft_set_elements", "Elements of the "
                                   "nftables table's client sets (allowed4: clients let "
                                   "out by IPv4)", labels=["set"])
        for name, size in sorted(self.sources.set_sizes().items()):
            family.add_metric([name], size)
        yield family

    def _leases(self) -> Iterable[Metric]:
        text = self.sources.lease_file.read_text() if self.sources.lease_file.exists() else ""
        yield GaugeMetricFamily("passerelle_gateway_dhcp_leases", "DHCP leases dnsmasq "
                                "holds that have not expired",
                                value=active_leases(parse_leases(text), datetime.now(UTC)))


class _Counts:
    """The process's counters (``COUNTS``) inside a listener's registry."""

    def collect(self) -> Iterator[Metric]:
        yield from COUNTS.collect()


class Exporter:
    """The HTTP listener: ``/metrics`` (any path answers the same page)."""

    def __init__(self, listen: tuple[str, int], sources: Sources) -> None:
        self.listen = listen
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Counts())
        self.registry.register(BoxCollector(sources))
        ProcessCollector(registry=self.registry)
        self._listener: MetricsListener | None = None

    def start(self) -> None:
        host, port = self.listen
        try:
            self._listener = MetricsListener(host, port, self.registry)
        except OSError as exc:  # the site's Wi-Fi matters more than its metrics
            log.error("metrics: cannot listen on %s (%s): running without metrics",
                      _hostport(host, port), exc.strerror or exc)
            return
        log.info("metrics on http://%s/metrics", _hostport(host, self._listener.port))

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
