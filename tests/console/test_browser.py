"""The console in headless Chromium at a phone's size, served by the real
server: sign in, the live view with its cards, the refresh script under the
strict Content-Security-Policy (no violation, the table updates in place),
and the Disconnect button answered by the box's RFC 5176 server."""

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
    app = create_app(factory, settings=ConsoleSettings(refresh=1))
    listening = Listening(app, "127.0.0.1", 0)
    listening.start()
    try:
        yield listening.url
    finally:
        listening.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ops_on_a_phone(console: str, factory: sessionmaker[DB], world: World,
                        daemon: Daemon, tmp_path: Path) -> None:
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
            assert "/sign-in" in page.url
            page.fill("#login", NOC)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.url.endswith("/live/")
            assert page.locator("#live tbody tr").count() == 4
            # Cards on a phone: nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

            # A new session opens at a site: the table shows it without a reload.
            page.evaluate("window.notReloaded = true")
            with transaction(factory) as db:
                db.add(Radacct(acctsessionid="cei-0009", acctuniqueid="cei0009",
                               username="newcomer@acme.example", nasipaddress="127.0.0.2",
                               acctstarttime=datetime.now(UTC).replace(tzinfo=None),
                               site_id=world.sites["CEI"]))
            page.wait_for_selector("#live >> text=newcomer@acme.example", timeout=10_000)
            assert page.evaluate("window.notReloaded") is True
            assert page.locator("#live tbody tr").count() == 5

            # Disconnect alice (axis-gw's box answers on 127.0.0.1).
            row = page.locator("#live tbody tr", has_text="alice@acme.example")
            row.locator("button.danger").click()
            page.wait_for_selector("p.flash.ok")
            assert page.inner_text("p.flash.ok") == \
                "ACK from axis-gw: alice@acme.example is disconnected."
            assert "axis-0001" not in daemon.live
            page.screenshot(path=str(tmp_path / "disconnected.png"), full_page=True)

            page.goto(console + "boxes/")
            assert page.locator("tr.silent, tr.never").count() >= 1
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "boxes.png"), full_page=True)
        finally:
            browser.close()
    assert complaints == [], complaints
