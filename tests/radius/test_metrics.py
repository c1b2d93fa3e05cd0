"""The RADIUS service's metrics: the real `passerelle radius serve` with two
worker processes and `--metrics`, real requests from the box's RADIUS
client, the page scraped over HTTP and read with Prometheus's parser. The
counts are the sum over the workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.radclient import NasIdentity, RadiusClient, RadiusServer
from passerelle.radius.messages import AcctStatus
from tests.boxlab import wait_for
from tests.scrape import dashboard_metrics, free_port, scrape

from . import seed
from .conftest import start_server

pytestmark = pytest.mark.integration

SITE = "Axis Parc"


def test_requests_decisions_sessions_and_boxes_are_counted(
        db_url: str, world: seed.World, tmp_path: Path) -> None:
    port = free_port()
    server = start_server(db_url, tmp_path, workers=2,
                          extra=("--metrics", f"127.0.0.1:{port}"))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        first = scrape(url)
        # Nothing heard from the seeded box yet, nor any session open.
        assert first.value("passerelle_radius_boxes", site=SITE) == 1
        assert first.value("passerelle_radius_boxes_silent", site=SITE) == 1
        assert first.value("passerelle_radius_sessions_open", site=SITE) == 0
        assert first.total("passerelle_radius_requests_total") == 0

        client = RadiusClient(
            (RadiusServer("127.0.0.1", seed.SECRET.encode(), server.auth_port,
                          server.acct_port),),
            NasIdentity("axis-gw", "127.0.0.1"), timeout=2, tries=2)
        accepts = 6  # each from a socket of its own: the kernel spreads them over the workers
        for _ in range(accepts):
            assert client.authenticate("alice@acme.example", seed.PASSWORD,
                                       mac="02:00:00:00:00:0a", ipv4="198.51.100.10").accepted
        refusals = [("alice@acme.example", "wrong", "bad-credentials"),
                    ("carol@gone.example", seed.PASSWORD, "company-suspended"),
                    ("grace@acme.example", seed.PASSWORD, "no-credit")]
        for login, password, _ in refusals:
            result = client.authenticate(login, password, mac="02:00:00:00:00:0b",
                                         ipv4="198.51.100.11")
            assert not result.accepted
        client.account(AccountingRecord(AcctStatus.START, "S-1", "alice@acme.example",
                                        "02:00:00:00:00:0a", "198.51.100.10",
                                        event_time=seed.now().timestamp()))
        assert client.status({}) == 1

        page = wait_for(lambda: _settled(url, accepts + len(refusals)),
                        what="every request counted", logs=server.logs)
        assert page.value("passerelle_radius_requests_total",
                          type="Access-Request") == accepts + len(refusals)
        assert page.value("passerelle_radius_requests_total", type="Accounting-Request") == 1
        assert page.value("passerelle_radius_requests_total", type="Status-Server") == 1
        assert page.value("passerelle_radius_decisions_total", decision="accept") == accepts
        for _, _, reason in refusals:
            assert page.value("passerelle_radius_decisions_total", decision=reason) == 1
        assert page.value("passerelle_radius_decisions_total", decision="site-closed") == 0
        assert page.value("passerelle_radius_accounting_total", status="Start") == 1
        # A transaction per batch at least one per request here (they came one by one).
        assert page.value("passerelle_radius_batch_seconds_count") >= accepts + 3
        assert page.value("passerelle_radius_batch_seconds_sum") > 0
        # Read from the database at the scrape: the Start opened a session, the box spoke.
        assert page.value("passerelle_radius_sessions_open", site=SITE) == 1
        assert page.value("passerelle_radius_boxes_silent", site=SITE) == 0
        assert dashboard_metrics("passerelle_radius_") <= page.names()
    finally:
        server.stop()


def _settled(url: str, access: int):
    """The page once both workers' counts of the Access-Requests add up."""
    page = scrape(url)
    got = page.get("passerelle_radius_requests_total", type="Access-Request")
    return page if got == access else None
