"""The reports pages on the console's small network (tests/console/conftest.py),
on SQLite and PostgreSQL: the numbers, the CSV read back with the csv
module, the charts read back as XML, what each role sees, the statement.

The world, at NOW = 2026-12-01 10:00 UTC (11:00 in Brussels, every site's
time zone), by hand:

    axis-0001 alice  Axis  09:00 UTC, open   -> 3600 s
    cei-0001  bob    CEI   09:30 UTC, open   -> 1800 s
    axis-0002 carol  Axis  09:55 UTC, open   ->  300 s
    axis-0003 mallory (nobody's) Axis 09:59, open -> 60 s
    cei-0000  alice  CEI   06:00-07:00 UTC   -> 3600 s

Axis's local hour 10 (09:00-10:00 UTC) holds alice, carol and mallory at
09:59: a peak of 3.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.reports import Column, Table, as_csv
from passerelle.radius import admin
from passerelle.radius.db import transaction
from passerelle.radius.models import CompanyNetwork, CreditEntry, CreditKind, Radacct

from .conftest import ACME_HR, AXIS_MANAGER, GLOBEX_HR, NOC, NOW, World, sign_in

DAY = "from=2026-12-01&to=2026-12-01"
SVG = re.compile(r"<svg .*?</svg>", re.S)


def _csv(client: FlaskClient, name: str, query: str = DAY) -> list[list[str]]:
    answer = client.get(f"/reports/{name}.csv?{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:400]
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True))))


def test_use_per_company_for_network_ops(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    rows = _csv(client, "use")
    assert rows[0] == ["Company", "Site", "People", "Sessions", "Connected (seconds)",
                       "Credit used (seconds)"]
    assert rows[1:] == [["(no company)", "Axis Parc", "1", "1", "60", "0"],
                        ["Acme", "Axis Parc", "1", "1", "3600", "0"],
                        ["Acme", "CEI", "1", "1", "3600", "0"],
                        ["Globex", "Axis Parc", "1", "1", "300", "0"],
                        ["Globex", "CEI", "1", "1", "1800", "0"]]
    occupancy = _csv(client, "occupancy")
    assert occupancy[1:] == [["Axis Parc", "2026-12-01", "10", "3", "", ""],
                             ["CEI", "2026-12-01", "7", "1", "", ""],
                             ["CEI", "2026-12-01", "10", "1", "", ""]]
    working = _csv(client, "working")
    alice = [r for r in working if r[0] == "alice@acme.example"]
    # 07:00-08:00 at CEI, 10:00-11:00 (now, still in) at Axis, local time.
    assert alice == [["alice@acme.example", "Acme", "2026-12-01", "Axis Parc, CEI", "07:00",
                      "11:00", "yes", str(4 * 3600), str(2 * 3600)]]


def test_the_page_and_its_charts(client: FlaskClient, world: World,
                                 factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        admin.set_site(db, "Axis Parc", admin.SiteChanges(capacity=6))
    sign_in(client, NOC)
    page = client.get(f"/reports/?{DAY}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "5 sessions with time" in html
    charts = [ET.fromstring(found) for found in SVG.findall(html)]
    ns = "{http://www.w3.org/2000/svg}"
    axis = next(c for c in charts if c.findtext(f"{ns}title") == "Axis Parc: peak people per day")
    assert [(b.get("data-label"), b.get("data-value")) for b in axis.iter(f"{ns}rect")] == [
        ("01 Dec", "3")]
    assert axis.find(f"{ns}line[@class='limit']") is not None  # the 6 seats
    hours = next(c for c in charts if c.findtext(f"{ns}title") == "Hours connected per company")
    assert {b.get("data-label"): b.get("data-value") for b in hours.iter(f"{ns}rect")} == {
        "(no company)": "0", "Acme": "2", "Globex": "0.6"}
    assert _csv(client, "daily")[1:] == [["Axis Parc", "2026-12-01", "3", "6", "0.5"],
                                         ["CEI", "2026-12-01", "1", "", ""]]


def test_a_company_manager_sees_only_their_company(client: FlaskClient, world: World) -> None:
    sign_in(client, ACME_HR)
    only_acme = [["Acme", "Axis Parc", "1", "1", "3600", "0"],
                 ["Acme", "CEI", "1", "1", "3600", "0"]]
    assert _csv(client, "use")[1:] == only_acme
    globex = world.companies["Globex"]
    # No parameter widens the scope: another company, its site, a network.
    assert _csv(client, "use", f"{DAY}&company={globex}")[1:] == []
    assert _csv(client, "use", f"{DAY}&site={world.sites['CEI']}")[1:] == [only_acme[1]]
    assert _csv(client, "intensive", f"{DAY}&network=1")[1:] == [
        ["alice@acme.example", "Acme", "1", "2", "7200"]]
    page = client.get(f"/reports/?{DAY}&company={globex}").get_data(as_text=True)
    assert "bob@globex.example" not in page and "carol" not in page and "Globex" not in page
    assert client.get(f"/reports/statement?company={globex}").status_code == 404


def test_a_site_manager_sees_their_sites(client: FlaskClient, world: World) -> None:
    sign_in(client, AXIS_MANAGER)
    assert [r[:2] for r in _csv(client, "use")[1:]] == [
        ["(no company)", "Axis Parc"], ["Acme", "Axis Parc"], ["Globex", "Axis Parc"]]
    assert _csv(client, "use", f"{DAY}&site={world.sites['CEI']}")[1:] == []


def test_partner_networks_and_cross_site(client: FlaskClient, world: World,
                                         factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        other = admin.add_network(db, "luxembourg")
        db.flush()
        db.add(CompanyNetwork(company_id=world.companies["Globex"], network_id=other.id))
    sign_in(client, NOC)
    # Globex's people (luxembourg) at wallonia's sites: bob and carol.
    assert _csv(client, "partners")[1:] == [
        ["2026-12", "luxembourg", "wallonia", "2", "2", str(1800 + 300)]]
    assert _csv(client, "cross-site") == [["Company", "Axis Parc", "CEI"],
                                          ["(no company)", "1", "0"], ["Acme", "1", "1"],
                                          ["Globex", "1", "1"]]


def test_csv_cells_are_never_formulas(client: FlaskClient, world: World,
                                      factory: sessionmaker[DB]) -> None:
    evil = "=HYPERLINK(\"http://x.example\")"
    with transaction(factory) as db:
        admin.add_company(db, evil)
        eve = admin.add_person(db, "eve@x.example", evil, "pw")
        db.flush()
        db.add(Radacct(acctsessionid="axis-0666", acctuniqueid="axis0666", username=eve.login,
                       nasipaddress="127.0.0.1", acctstarttime=NOW - timedelta(minutes=10),
                       person_id=eve.id, site_id=world.sites["Axis Parc"]))
    sign_in(client, NOC)
    assert ["'" + evil, "Axis Parc", "1", "1", "600", "0"] in _csv(client, "use")
    table = Table("t", "T", "", [Column("Text"), Column("Number", "number")],
                  [["=1+2", 3], ["+1", 4], ["-1", -5], ["@SUM(A1)", 0], ["plain", 1]])
    assert list(csv.reader(io.StringIO(as_csv(table))))[1:] == [
        ["'=1+2", "3"], ["'+1", "4"], ["'-1", "-5"], ["'@SUM(A1)", "0"], ["plain", "1"]]


def test_bad_requests_say_why(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    for query, words in (("from=2026-13-01", "bad from date"),
                         ("from=2026-12-02&to=2026-12-01", "ends before it starts"),
                         ("from=2020-01-01&to=2026-12-01", "longer than 400 days"),
                         ("site=abc", "bad site filter")):
        answer = client.get(f"/reports/?{query}")
        assert answer.status_code == 400 and words in answer.get_data(as_text=True), query
    assert client.get("/reports/statement?month=2026-1").status_code == 400
    assert client.get("/reports/nothing.csv").status_code == 404


def test_the_monthly_statement(client: FlaskClient, world: World,
                               factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        db.add(CreditEntry(person_id=world.people["alice@acme.example"], seconds=-3600,
                           kind=CreditKind.charge, session_id=world.sessions["cei-0000"],
                           created=NOW - timedelta(hours=3)))
        db.add(CreditEntry(person_id=world.people["bob@globex.example"], seconds=-600,
                           kind=CreditKind.charge, session_id=world.sessions["cei-0001"],
                           created=NOW - timedelta(minutes=20)))
    sign_in(client, ACME_HR)
    page = client.get("/reports/statement").get_data(as_text=True)
    assert "Statement 2026-12 · Acme" in page
    assert '<strong id="credit-used">1:00:00</strong>' in page  # alice's CEI hour, not bob's
    assert page.count("<tr><td data-label=\"Site\">") == 2 and "bob@" not in page
    assert "still open" in page
    sign_in(client, GLOBEX_HR)
    assert '<strong id="credit-used">0:10:00</strong>' in client.get(
        "/reports/statement?month=2026-12").get_data(as_text=True)
    sign_in(client, NOC)
    assert "Choose a company" in client.get("/reports/statement").get_data(as_text=True)
    november = client.get(f"/reports/statement?company={world.companies['Acme']}&month=2026-11")
    assert "No session of its people in this month" in november.get_data(as_text=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_report_menu(client: FlaskClient, world: World) -> None:
    sign_in(client, AXIS_MANAGER)
    page = client.get("/live/").get_data(as_text=True)
    assert 'href="/reports/"' in page


def test_the_statement_prints_alone(client: FlaskClient, world: World) -> None:
    """The printed statement: the stylesheet the page links hides the menu
    and the form on paper, and keeps its tables as tables on a narrow page
    (the phone layout makes cards below 60rem, and A4 is about 50rem)."""
    sign_in(client, ACME_HR)
    page = client.get("/reports/statement").get_data(as_text=True)
    assert '<form method="get" action="/reports/statement" class="filters">' in page
    assert '<section class="statement">' in page and "<header>" in page
    sheet = re.search(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert sheet is not None
    answer = client.get(sheet.group(1))
    css = answer.get_data(as_text=True)
    answer.close()
    printed = css[css.index("@media print {") + len("@media print {"):]
    printed = printed[:printed.index("\n}\n")]
    rules = dict(re.findall(r"^\s*([^{}\n]+?)\s*\{([^}]*)\}", printed, re.M))
    hidden = rules["header, form.filters, .flash, a.button"]
    assert "display: none" in hidden
    assert "display: table-row" in rules["table.cards tr"]
    assert "display: table-cell" in rules["table.cards td"]
    assert "content: none" in rules["table.cards td[data-label]::before"]
