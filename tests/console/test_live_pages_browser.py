"""The live view's pages in headless Chromium, served by the real server:
the "next page" link, the refresh script on page 2 (a new session changes
the count, not the page: keyset), and a Disconnect from page 2 coming back
to page 2, under the strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.dae_server import DaeServer
from passerelle.portal.console.app import create_app
from passerelle.portal.console.serve import Listening
from passerelle.portal.console.settings import ConsoleSettings
from passerelle.radius.db import transaction
from passerelle.radius.models import Radacct
from tests.need import unavailable

from .conftest import NOC, PASSWORD, Daemon, World

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def console(factory: sessionmaker[DB], world: World, box: DaeServer) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        unavailable("the browser test needs Debian's chromium (/usr/bin/chromium)")
    app = create_app(factory, settings=ConsoleSettings(refresh=1, max_rows=2))
    listening = Listening(app, "127.0.0.1", 0)
    listening.start()
    try:
        yield listening.url
    finally:
        listening.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pages_on_a_phone(console: str, factory: sessionmaker[DB], world: World,
                          daemon: Daemon) -> None:
    from playwright.sync_api import sync_playwright

    complaints: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-GB")
            page.set_default_timeout(20_000)
            page.on("console", lambda m: complaints.append(m.text) if m.type in (
                "error", "warning") else None)
            page.on("pageerror", lambda e: complaints.append(str(e)))

            page.goto(console + "live/")
            page.fill("#login", NOC)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.inner_text("#shown") == "1\u20132"
            assert page.locator("#live tbody tr").count() == 2
            assert page.locator("#newest").count() == 0

            page.click("#next")
            assert "after=" in page.url
            rows = page.locator("#live tbody tr")
            assert rows.count() == 2 and page.inner_text("#shown") == "3\u20134"
            assert "bob@globex.example" in rows.nth(0).inner_text()
            assert "alice@acme.example" in rows.nth(1).inner_text()
            assert page.locator("#next").count() == 0
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            # A new session opens: the refresh shows the new count, and page 2
            # still goes on from the same session (now rows 4 and 5).
            page.evaluate("window.notReloaded = true")
            with transaction(factory) as db:
                db.add(Radacct(acctsessionid="cei-0009", acctuniqueid="cei0009",
                               username="newcomer@acme.example", nasipaddress="127.0.0.2",
                               acctstarttime=datetime.now(UTC).replace(tzinfo=None),
                               site_id=world.sites["CEI"]))
            # (A selector, not a script: the CSP refuses a string evaluated as code.)
            page.wait_for_selector('#live .summary strong >> text="5"', timeout=10_000)
            assert page.evaluate("window.notReloaded") is True
            assert page.inner_text("#shown") == "4\u20135"
            assert "newcomer" not in page.inner_text("#live tbody")

            # Disconnect alice from page 2: the answer, and page 2 again.
            here = page.url
            page.locator("#live tbody tr", has_text="alice@acme.example") \
                .locator("button.danger").click()
            page.wait_for_selector("p.flash.ok")
            assert page.inner_text("p.flash.ok") == \
                "ACK from axis-gw: alice@acme.example is disconnected."
            assert page.url == here and "axis-0001" not in daemon.live
            page.click("#newest")
            assert page.url.endswith("/live/") and page.inner_text("#shown") == "1\u20132"
        finally:
            browser.close()
    assert complaints == [], complaints
