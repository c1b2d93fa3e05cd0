"""The pure parts of the metrics: what a batch adds to the centre's
counters, what the box counts a check-in, an access point's request and a
lease as, the silent-box rule, and the listener's address."""

from __future__ import annotations

import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from passerelle import hostport
from passerelle.gateway import metrics as box
from passerelle.gateway.daemon import Refused
from passerelle.gateway.dnsmasq import Lease
from passerelle.radius import messages as m
from passerelle.radius import metrics as centre
from passerelle.radius.handler import ACCT, AUTH, Batch, Datagram, ServerRequest, _Work
from passerelle.radius.policy import SiteFacts
from passerelle.radius.store import Nas
from passerelle.refusal import Refusal

SECRET = b"s3cret-for-tests"


# The gateway a datagram came from: the counters never read it.
NAS = Nas(id=1, identifier="gw", ip="192.0.2.1", secret=SECRET, require_ma=True, coa_port=3799,
          site_id=1, site=SiteFacts(category=2, opens=None, closes=None))


def _work(request: ServerRequest, reply: m.Reply | None, answered: bool = True) -> _Work:
    port = ACCT if isinstance(request, m.AccountingRequest) else AUTH
    item = _Work(Datagram(b"", ("192.0.2.1", 1812), port), NAS, request, b"key")
    item.reply = reply
    item.data = b"answer" if answered else None
    return item


def test_a_batch_counts_each_type_decision_and_status() -> None:
    access = m.AccessRequest(user_name="alice@acme.example", credential=m.Password("x"))
    start = m.AccountingRequest(status=m.AcctStatus.START, session_id="1")
    interim = m.AccountingRequest(status=m.AcctStatus.INTERIM_UPDATE, session_id="1")
    batch = Batch(0.0, dropped=2, duplicates=1, work=[
        _work(access, m.AccessAccept()),
        _work(access, m.AccessReject(reply_message="no-credit: No credit left")),
        _work(access, m.AccessReject(reply_message="too-many-sessions: Two on")),
        # Another server's words: the box reads them as "rejected", and so do we.
        _work(access, m.AccessReject(reply_message="Go away")),
        _work(start, m.AccountingResponse()),
        _work(interim, m.AccountingResponse()),
        _work(interim, None, answered=False),
        _work(m.StatusServer(), m.AccessAccept()),
    ])
    found = centre.tally(batch)
    assert {k: n for k, n in found.items() if k[0] == "requests"} == {
        ("requests", "Access-Request"): 4, ("requests", "Accounting-Request"): 3,
        ("requests", "Status-Server"): 1}
    assert {k[1]: n for k, n in found.items() if k[0] == "decisions"} == {
        "accept": 1, "no-credit": 1, "too-many-sessions": 1, "rejected": 1}
    # The unanswered one is not an Interim-Update stored: it is counted apart.
    assert {k[1]: n for k, n in found.items() if k[0] == "accounting"} == {
        "Start": 1, "Interim-Update": 1}
    assert {k[0]: n for k, n in found.items() if k[1] == ""} == {
        "unanswered": 1, "dropped": 2, "duplicates": 1}


def test_counting_a_batch_moves_the_counters_by_its_tally() -> None:
    def value(name: str, **labels: str) -> float:
        return centre.COUNTS.get_sample_value(name, labels) or 0.0

    before = (value("passerelle_radius_decisions_total", decision="site-closed"),
              value("passerelle_radius_dropped_total"))
    access = m.AccessRequest(user_name="a@b.example", credential=m.Password("x"))
    centre.count(Batch(0.0, dropped=3, work=[
        _work(access, m.AccessReject(reply_message="site-closed: Closed"))]))
    assert value("passerelle_radius_decisions_total", decision="site-closed") == before[0] + 1
    assert value("passerelle_radius_dropped_total") == before[1] + 3


def test_every_reason_and_type_is_exposed_before_it_happens() -> None:
    text = generate_latest(centre.COUNTS).decode()
    names = {(s.name, tuple(sorted(s.labels.items())))
             for f in text_string_to_metric_families(text) for s in f.samples}
    for refusal in Refusal:
        assert ("passerelle_radius_decisions_total", (("decision", refusal.value),)) in names
        assert ("passerelle_gateway_checkins_total", (("outcome", refusal.value),)) in {
            (s.name, tuple(sorted(s.labels.items())))
            for f in text_string_to_metric_families(generate_latest(box.COUNTS).decode())
            for s in f.samples}
    assert ("passerelle_radius_requests_total", (("type", "Status-Server"),)) in names


def test_the_box_counts_a_check_in_by_its_outcome() -> None:
    def value(outcome: str) -> float:
        return box.COUNTS.get_sample_value("passerelle_gateway_checkins_total",
                                           {"outcome": outcome}) or 0.0

    before = {o: value(o) for o in ("accepted", "no-credit", "error")}
    with box.check_in():
        pass
    with pytest.raises(Refused), box.check_in():
        raise Refused(Refusal.no_credit, "no credit")
    with pytest.raises(KeyError), box.check_in():
        raise KeyError("a bug")
    assert {o: value(o) - before[o] for o in before} == {"accepted": 1, "no-credit": 1,
                                                         "error": 1}


def test_an_exchange_is_timed_when_answered_and_a_failure_when_not() -> None:
    sent = m.StatusServer().encode(SECRET)

    def value(name: str) -> float:
        return box.COUNTS.get_sample_value(name, {"server": "192.0.2.10:1812",
                                                  "type": "Status-Server"}) or 0.0

    before = [value(n) for n in ("passerelle_gateway_radius_requests_total",
                                 "passerelle_gateway_radius_failures_total",
                                 "passerelle_gateway_radius_seconds_count")]
    with box.radius_exchange("192.0.2.10", 1812, sent):
        pass
    with pytest.raises(TimeoutError), box.radius_exchange("192.0.2.10", 1812, sent):
        raise TimeoutError
    after = [value(n) for n in ("passerelle_gateway_radius_requests_total",
                                "passerelle_gateway_radius_failures_total",
                                "passerelle_gateway_radius_seconds_count")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_an_access_points_request_is_counted_by_its_reply() -> None:
    request = m.AccessRequest(user_name="aabbccddeeff")
    accept = m.AccessAccept().encode(SECRET, request)
    reject = m.AccessReject().encode(SECRET, request)
    acct = m.AccountingResponse().encode(
        SECRET, m.AccountingRequest(status=m.AcctStatus.START, session_id="1"))
    assert [box.ap_outcome(r) for r in (accept, reject, acct, None)] == \
        ["accept", "reject", "accounting", "dropped"]


def test_only_leases_not_expired_count() -> None:
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    leases = [Lease("aa:bb:cc:dd:ee:01", "198.51.100.10", "", now + timedelta(seconds=1)),
              Lease("aa:bb:cc:dd:ee:02", "198.51.100.11", "", now - timedelta(seconds=1)),
              Lease("aa:bb:cc:dd:ee:03", "198.51.100.12", "", None)]
    assert box.active_leases(leases, now) == 2


def test_a_source_that_fails_is_left_out_of_the_scrape(tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text("4102444800 aa:bb:cc:dd:ee:01 198.51.100.10 laptop *\n")

    def broken() -> dict[str, int]:
        raise OSError("nft: no such table")

    found = {f.name: f for f in box.BoxCollector(box.Sources(lambda: 4, broken, leases))
             .collect()}
    assert set(found) == {"passerelle_gateway_spool_depth", "passerelle_gateway_dhcp_leases"}
    assert found["passerelle_gateway_spool_depth"].samples[0].value == 4
    assert found["passerelle_gateway_dhcp_leases"].samples[0].value == 1


def test_a_box_is_silent_after_the_interim_interval_or_when_never_heard() -> None:
    now = datetime(2026, 1, 5, 9, 0)
    assert not centre.silent(now - timedelta(seconds=300), now, 300)
    assert centre.silent(now - timedelta(seconds=301), now, 300)
    assert centre.silent(None, now, 300)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:9465", ("::1", 9465)),
])
def test_a_listener_address(text: str, expected: tuple[str, int]) -> None:
    assert hostport.parse(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("localhost:9464", "not ADDRESS:PORT with an IP address"),
    ("127.0.0.1", "not ADDRESS:PORT"),
    ("127.0.0.1:http", "not ADDRESS:PORT"),
    ("127.0.0.1:70000", "port 70000 is not between 1 and 65535"),
    ("::1:9464", "not ADDRESS:PORT"),
])
def test_a_bad_listener_address_says_why(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        hostport.parse(text)


def test_the_listener_serves_the_page_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    sources = box.Sources(lambda: 2, lambda: {"allowed4": 1}, tmp_path / "leases")
    for host, url in (("127.0.0.1", "http://127.0.0.1:{}/metrics"),
                      ("::1", "http://[::1]:{}/metrics")):
        exporter = box.Exporter((host, 0), sources)
        exporter.start()
        try:
            assert exporter._listener is not None
            with urllib.request.urlopen(url.format(exporter._listener.port), timeout=5) as r:
                page = r.read().decode()
        finally:
            exporter.stop()
        assert "passerelle_gateway_spool_depth 2.0" in page
        assert 'passerelle_gateway_nft_set_elements{set="allowed4"} 1.0' in page


def test_a_port_taken_leaves_the_service_running_without_metrics(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = box.Exporter(("127.0.0.1", port), box.Sources(
            lambda: 0, dict, tmp_path / "leases"))
        exporter.start()
        exporter.stop()
    assert f"metrics: cannot listen on 127.0.0.1:{port} (Address already in use): running " \
        "without metrics" in caplog.text
