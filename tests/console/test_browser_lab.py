"""The console with a real site (issue 8): a box in the namespace lab
(tests/boxlab.py: `passerelle gateway run`, nftables, dnsmasq) opens a
client's session through the real centre (`passerelle radius serve` in the
up namespace); the real console (`passerelle console run`) serves the
centre's database from the centre's address. Headless Chromium, in the
centre's namespace too, signs in, sees the live session, presses
Disconnect and sees the ACK; the client has lost the internet. The boxes
page shows what the box's heartbeat told."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from passerelle import __version__
from passerelle.radius import admin
from passerelle.radius.db import transaction
from tests.boxlab import BIN, CENTRE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.need import unavailable
from tests.radius import seed

from .conftest import NOC, PASSWORD

CHROMIUM = "/usr/bin/chromium"
PORT = 8090
UPSTREAM = "upstream 203.0.113.2"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    require_lab()
    if not Path(CHROMIUM).exists():
        unavailable("the browser test needs Debian's chromium (/usr/bin/chromium)")
    with site(tmp_path) as built:
        yield built


def console(box: Box) -> str:
    """The console on the centre's address; its URL once it answers."""
    with transaction(box.factory) as db:
        admin.add_operator(db, NOC, PASSWORD, "network-ops",
                           datetime.now(UTC).replace(tzinfo=None))
    box.logs.append(box.tmp / "console.log")
    with (box.tmp / "console.log").open("w") as log:
        box.lab.popen("up", str(BIN), "console", "run", "--db", box.db_url, "--listen",
                      f"{CENTRE}:{PORT}", "--refresh", "1", stdout=log, stderr=log)
    url = f"http://{CENTRE}:{PORT}/"

    def answers() -> bool:
        out = box.lab.run("up", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "-m", "2", url + "sign-in", check=False)
        return out.stdout.strip() == "200"

    wait_for(answers, what="the console", logs=box.read_logs)
    return url


def chromium_in(box: Box, role: str) -> str:
    """A launcher that runs Chromium in the namespace of ``role`` (Playwright
    talks to it over inherited pipes, which cross into the namespace)."""
    script = box.tmp / f"chromium-{role}"
    script.write_text(f'#!/bin/sh\nexec ip netns exec {box.lab.ns[role]} {CHROMIUM} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_disconnect_from_the_console_cuts_a_real_client(box: Box, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    # The lab's centre cuts an idle client after 10 s: too soon for a browser.
    box.stop_centre()
    box.start_centre(idle=900)
    # The box again, so that its first heartbeat reaches this centre.
    box.kill_daemon()
    box.start_daemon()
    result = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    assert box.curl("client") == UPSTREAM
    wait_for(lambda: box.sessions("alice@acme.example"), what="Accounting-Start",
             logs=box.read_logs)
    url = console(box)
    complaints: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_in(box, "up"),
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            page.set_default_timeout(20_000)
            page.on("console", lambda m: complaints.append(m.text) if m.type in (
                "error", "warning") else None)
            page.goto(url + "live/")
            page.fill("#login", NOC)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.url.endswith("/live/")
            row = page.locator("#sessions tbody tr", has_text="alice@acme.example")
            assert row.count() == 1, page.inner_text("main")
            assert "Axis Parc" in row.inner_text()
            # The time left is the Accept's Session-Timeout less the time on.
            left = row.locator('td[data-label="Time left"]').inner_text().strip()
            assert left and left != "-", left
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

            row.locator("button.danger").click()
            page.wait_for_selector("p.flash")
            said = page.inner_text("p.flash")
            assert said == "ACK from axis-gw: alice@acme.example is disconnected.", \
                said + "\n" + box.read_logs()[-3000:]
            assert page.locator("#requests", has_text="ACK from axis-gw").count() == 1
            page.screenshot(path=str(tmp_path / "disconnected.png"), full_page=True)

            # The client has lost the internet: back to the portal.
            wait_for(lambda: box.curl("client") != UPSTREAM, what="the client cut off")
            assert box.curl("client").startswith("portal")
            stopped = wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                                        if r.acctsessionid == result["session_id"]
                                        and r.acctstoptime],
                               what="Accounting-Stop after Disconnect", logs=box.read_logs)
            assert stopped[0].acctterminatecause == "Admin-Reset"
            # The row leaves the live view when the Stop arrives (the page refreshes itself).
            deadline = time.monotonic() + 10
            while row.count() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert row.count() == 0

            # The box's heartbeat (Status-Server at its start) is on the boxes page.
            page.goto(url + "boxes/")
            box_row = page.locator("tbody tr", has_text="axis-gw")
            assert box_row.get_attribute("class") == "ok"
            assert box_row.locator('td[data-label="Software"]').inner_text() == __version__
            # Its spool depth as last reported: 0, or 1 when a heartbeat left
            # while the Stop above was spooled and not yet delivered.
            assert re.search(r"\b[01] waiting\b", box_row.inner_text()), box_row.inner_text()
            page.screenshot(path=str(tmp_path / "boxes.png"), full_page=True)
        finally:
            browser.close()
    # Plain HTTP on an address that is not the loopback (production has TLS
    # in front): Chromium says it ignores the Cross-Origin-Opener-Policy.
    assert [c for c in complaints if "Cross-Origin-Opener-Policy" not in c] == [], complaints
