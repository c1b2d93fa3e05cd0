"""A report in headless Chromium, served by the real server: the form, the
chart drawn by the server (no script, nothing from another origin, no
Content-Security-Policy complaint) and a CSV download read back."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.app import create_app
from passerelle.portal.console.serve import Listening
from passerelle.portal.console.settings import ConsoleSettings
from tests.need import unavailable

from .conftest import NOC, PASSWORD, Clock, World

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def console(factory: sessionmaker[DB], world: World) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        unavailable("the browser test needs Debian's chromium (/usr/bin/chromium)")
    # The world's clock: its sessions are still open at NOW.
    app = create_app(factory, settings=ConsoleSettings(refresh=0), clock=Clock())
    listening = Listening(app, "127.0.0.1", 0)
    listening.start()
    try:
        yield listening.url
    finally:
        listening.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_report_with_its_chart_and_a_csv(console: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    complaints: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                    accept_downloads=True)
            page.set_default_timeout(20_000)
            page.on("console", lambda m: complaints.append(m.text) if m.type in (
                "error", "warning") else None)
            page.on("pageerror", lambda e: complaints.append(str(e)))
            page.on("request", lambda r: complaints.append(f"left the console: {r.url}")
                    if not r.url.startswith(console) else None)

            page.goto(console + "reports/")
            page.fill("#login", NOC)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert "/reports/" in page.url
            page.fill("#from", "2026-12-01")
            page.fill("#to", "2026-12-01")
            page.click("form.filters button[type=submit]")
            page.wait_for_url("**/reports/?from=2026-12-01*")

            chart = page.locator("#charts svg", has_text="Axis Parc: peak people per day")
            bar = chart.locator("rect.bar")
            assert bar.count() == 1 and bar.get_attribute("data-value") == "3"
            box = bar.bounding_box()
            assert box is not None and box["height"] > 10  # drawn, not just present
            assert page.locator("#use tbody tr").count() == 5
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

            with page.expect_download() as download:
                page.locator("#use a", has_text="CSV").click()
            saved = tmp_path / "use.csv"
            download.value.save_as(saved)
            assert download.value.suggested_filename == "use-2026-12-01-2026-12-01.csv"
            with saved.open(newline="") as f:
                rows = list(csv.reader(f))
            assert rows[0][0] == "Company" and ["Acme", "CEI", "1", "1", "3600", "0"] in rows
        finally:
            browser.close()
    assert complaints == [], complaints
