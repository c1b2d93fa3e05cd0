"""The data pages in headless Chromium at a phone's size, served by the real
server: every page fits the screen, nothing breaks the strict
Content-Security-Policy, a top-up and a CSV import done with the forms, and
a company manager who cannot reach another company's people by any URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.portal.console.app import create_app
from passerelle.portal.console.serve import Listening
from passerelle.radius import admin
from passerelle.radius.db import transaction
from tests.need import unavailable

from .conftest import ACME_HR, NOC, PASSWORD, World

CHROMIUM = "/usr/bin/chromium"
WIDTH = 390


@pytest.fixture
def console(factory: sessionmaker[DB], world: World) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        unavailable("the browser test needs Debian's chromium (/usr/bin/chromium)")
    listening = Listening(create_app(factory), "127.0.0.1", 0)
    listening.start()
    try:
        yield listening.url
    finally:
        listening.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_data_pages_on_a_phone(console: str, factory: sessionmaker[DB], world: World,
                                   tmp_path: Path) -> None:
    from playwright.sync_api import Page, sync_playwright

    complaints: list[str] = []

    def sign_in(page: Page, login: str) -> None:
        page.goto(console + "sign-in")
        page.fill("#login", login)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")

    def fits(page: Page, path: str) -> None:
        answer = page.goto(console + path.lstrip("/"))
        assert answer is not None and answer.status == 200, path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"{path} is {width} px wide on a {WIDTH} px screen"

    alice, bob = world.people["alice@acme.example"], world.people["bob@globex.example"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 844}, locale="en-GB")
            page.set_default_timeout(20_000)
            page.on("console", lambda m: complaints.append(m.text) if m.type in (
                "error", "warning") else None)
            page.on("pageerror", lambda e: complaints.append(str(e)))
            sign_in(page, NOC)
            acme, axis = world.companies["Acme"], world.sites["Axis Parc"]
            for path in ("/companies/", f"/companies/{acme}", f"/companies/{acme}/edit",
                         "/companies/new", "/people/", f"/people/{alice}",
                         f"/people/{alice}/edit", "/people/new", "/people/import", "/sites/",
                         f"/sites/{axis}", f"/sites/{axis}/edit", "/sites/new",
                         f"/gateways/{world.gateways['axis-gw']}",
                         f"/gateways/{world.gateways['axis-gw']}/edit", "/gateways/new"):
                fits(page, path)
            page.screenshot(path=str(tmp_path / "gateway-form.png"), full_page=True)

            # A top-up with the form.
            page.goto(console + f"people/{alice}")
            page.fill("#minutes", "45")
            page.fill("#note", "from the phone")
            page.click("text=Top up")
            page.wait_for_selector("text=alice@acme.example: +0:45 of credit.")
            assert page.locator("#credit ~ table, section[aria-labelledby=credit] table") \
                .first.inner_text().count("from the phone") == 1

            # A bad field: admin.py's words next to it, focusable, the page still fits.
            page.fill("#minutes", "lots")
            page.click("text=Top up")
            page.wait_for_selector("#minutes-error")
            assert "a whole number" in page.inner_text("#minutes-error")
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH

            # A CSV import with one bad line: nothing imported, the line named.
            bad = tmp_path / "people.csv"
            bad.write_bytes("\ufefflogin;company;name\ngina@acme.example;Acme;Gina\n"
                            "bad login;Acme;B\n".encode())
            page.goto(console + "people/import")
            page.set_input_files("#file", str(bad))
            page.click("button:has-text('Import')")
            page.wait_for_selector("text=Nothing was imported")
            assert "bad login" in page.inner_text("[role=alert]")
            with transaction(factory) as db:
                assert not [p for p, _ in admin.list_people(db) if p.login.startswith("gina")]
            bad.write_bytes(b"login;company;name\ngina@acme.example;Acme;Gina\n")
            page.set_input_files("#file", str(bad))
            page.click("button:has-text('Import')")
            page.wait_for_selector("text=1 person imported.")
            assert len(page.inner_text("code.secret")) == 16
            page.screenshot(path=str(tmp_path / "import.png"), full_page=True)

            # A company manager: another company's person is not found, by any URL.
            page.click("text=Sign out")
            sign_in(page, ACME_HR)
            for path in (f"people/{bob}", f"people/{bob}/edit",
                         f"companies/{world.companies['Globex']}"):
                answer = page.goto(console + path)
                assert answer is not None and answer.status == 404, path
                assert "bob@" not in page.content()
            fits(page, "/people/")
            assert page.locator("nav >> text=Sites").count() == 0
        finally:
            browser.close()
    # Some Chromium builds warn about their own features; a CSP violation is ours.
    assert not [c for c in complaints if "Content Security Policy" in c or "Refused" in c], \
        complaints
