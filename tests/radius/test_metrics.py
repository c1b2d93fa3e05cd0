"""The RADIUS service's metrics: the real `passerelle radius serve` with two
worker processes and `--metrics`, real requests from the box's RADIUS
client, the page scraped over HTTP and read with Prometheus's parser. The
counts are the sum over the workers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, RadiusClient
from passerelle.radius import db
from passerelle.radius.messages import AcctStatus
from tests.boxlab import wait_for
from tests.need import stop
from tests.scrape import dashboard_metrics, free_port, scrape

from . import seed
from .conftest import BIN, start_server

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


JOURNAL_LINE = re.compile(r'^<[0-7]>level=[a-z]+ logger=\S+ msg="([^"\\]|\\.)*"( exc=".*")?$')


def test_under_systemd_every_event_is_one_journal_line(tmp_path: Path) -> None:
    """The real service, two workers, its stderr named by JOURNAL_STREAM as
    systemd does: the main process's lines and the workers' are each one
    key=value line with its priority."""
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    log = tmp_path / "stderr"
    with log.open("w") as err:
        found = os.fstat(err.fileno())
        env = {**os.environ, "PASSERELLE_KEY_FILE": str(tmp_path / "server.key"),
               "JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"}
        proc = subprocess.Popen(
            [str(BIN), "radius", "serve", "--db", url, "--listen", "127.0.0.1",
             "--auth-port", "0", "--acct-port", "0", "--workers", "2",
             "--metrics", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ports = re.search(r"auth (\d+)", line)
        assert ports, line
        auth = int(ports.group(1))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"\x01\x01\x00\x14" + bytes(16), ("127.0.0.1", auth))  # no such client
        wait_for(lambda: "unknown client" in log.read_text(), what="the drop logged")
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()
    lines = [line for line in log.read_text().splitlines() if line]
    assert lines and all(JOURNAL_LINE.match(line) for line in lines), lines
    assert any(line.startswith('<6>level=info logger=passerelle.radius msg="metrics on http')
               for line in lines), lines
    assert any(line.startswith('<4>level=warning logger=passerelle.radius msg="dropped a '
                               'datagram from unknown client 127.0.0.1:') for line in lines), lines
