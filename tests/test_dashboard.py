"""deploy/grafana/passerelle.json: a dashboard Grafana imports, whose every
query names metrics the services expose; and every metric they expose is in
the operators' docs. (The lab and centre tests check the same names against
real scrapes: tests/gateway/test_metrics_box.py, tests/radius/test_metrics.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import generate_latest
from sqlalchemy.orm import Session, sessionmaker

from passerelle.gateway import metrics as box
from passerelle.radius import metrics as centre
from tests.radius import seed
from tests.scrape import DASHBOARD, Page, dashboard_metrics, parse

ROOT = Path(__file__).resolve().parent.parent


def box_page(tmp_path: Path) -> Page:
    sources = box.Sources(lambda: 0, lambda: {"allowed4": 0}, tmp_path / "leases")
    return parse(generate_latest(box.Exporter(("127.0.0.1", 0), sources).registry).decode())


def centre_page(factory: sessionmaker[Session]) -> Page:
    seed.build(factory)
    exporter = centre.Exporter(("127.0.0.1", 0), factory, 300)
    return parse(generate_latest(exporter.registry()).decode())


def test_the_dashboard_is_grafanas_and_queries_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "passerelle" and dashboard["title"]
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 10
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    assert [v["type"] for v in dashboard["templating"]["list"]] == ["datasource"]


def test_every_metric_the_dashboard_names_is_exposed(
        tmp_path: Path, factory: sessionmaker[Session], key_file: Path) -> None:
    assert dashboard_metrics("passerelle_gateway_") <= box_page(tmp_path).names()
    assert dashboard_metrics("passerelle_radius_") <= centre_page(factory).names()
    assert dashboard_metrics("passerelle_") == (dashboard_metrics("passerelle_gateway_")
                                                | dashboard_metrics("passerelle_radius_"))


def test_every_metric_exposed_is_documented(
        tmp_path: Path, factory: sessionmaker[Session], key_file: Path) -> None:
    for page, doc in ((box_page(tmp_path), "gateway.md"), (centre_page(factory), "radius.md")):
        text = (ROOT / "docs" / doc).read_text()
        families = {name for name in page.families
                    if name.startswith("passerelle_") and not name.endswith(
                        ("_total", "_bucket", "_count", "_sum", "_created"))}
        assert families
        for name in families:
            counter = f"{name}_total" in page.families
            assert f"`{name}_total" in text if counter else f"`{name}" in text, (doc, name)
