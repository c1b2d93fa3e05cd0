"""A person's visit, driven in headless Chromium (run inside the lab's client namespace).

    python browser_flow.py OUT_DIR LOGIN PASSWORD

Prints one JSON object: what the person saw at each step. Screenshots go to
OUT_DIR; with PASSERELLE_DOCS_IMG=DIR in the environment, the check-in page
and the key page also go to DIR as portal.png and key.png (the README's
pictures, in docs/img). Only Playwright's public API; nothing here judges:
the test does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

START = "http://192.0.2.80/"
DOCS = {"1-check-in.png": "portal.png", "2-key-and-qr.png": "key.png"}


def for_docs(out: Path) -> None:
    docs = os.environ.get("PASSERELLE_DOCS_IMG")
    if docs:
        for shot, name in DOCS.items():
            shutil.copyfile(out / shot, Path(docs) / name)


def main(out: Path, login: str, password: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        # The box's self-signed certificate: the test trusts it the way a
        # person clicking through would (a site installs a trusted one).
        page = browser.new_page(viewport={"width": 390, "height": 844},  # a phone
                                locale="en-GB", java_script_enabled=False,
                                ignore_https_errors=True)
        page.set_default_timeout(20_000)

        page.goto(START)
        seen["landing_url"] = page.url
        seen["landing_h1"] = page.inner_text("h1")
        seen["landing_banner"] = page.locator(".unencrypted").count()
        page.screenshot(path=str(out / "1-check-in.png"), full_page=True)

        page.fill("#login", login)
        page.fill("#password", password)
        page.check("#accept")
        page.click("button[type=submit]")
        seen["welcome_url"] = page.url
        seen["welcome_h1"] = page.inner_text("h1")
        seen["welcome_banner"] = page.locator(".unencrypted").count()
        seen["key"] = page.inner_text("code.wifi-key")
        seen["ssid"] = page.inner_text("dd.ssid")
        box = page.locator("svg.qr").bounding_box()
        seen["qr_size"] = [box["width"], box["height"]] if box else None
        page.screenshot(path=str(out / "2-key-and-qr.png"), full_page=True)

        way_on = page.locator("a.button")
        seen["way_on_href"] = way_on.get_attribute("href")
        way_on.click()
        seen["upstream_url"] = page.url
        seen["upstream_body"] = page.inner_text("body").strip()
        page.screenshot(path=str(out / "3-upstream.png"), full_page=True)

        page.goto("http://portal.passerelle.internal/status")
        seen["status_url"] = page.url
        seen["status_h1"] = page.inner_text("h1")
        seen["status_left"] = page.inner_text("dd.left")
        page.screenshot(path=str(out / "4-status.png"), full_page=True)

        page.goto("http://portal.passerelle.internal/account")
        seen["account_url"] = page.url
        seen["account_key"] = page.inner_text("code.wifi-key")
        page.click("form[action='/account/rotate'] button[type=submit]")
        seen["rotated_url"] = page.url
        seen["rotated_key"] = page.inner_text("code.wifi-key")
        seen["rotated_ssid"] = page.inner_text("dd.ssid")
        page.screenshot(path=str(out / "4b-account-new-key.png"), full_page=True)

        page.goto("http://portal.passerelle.internal/status")
        page.click("button[type=submit]")
        seen["checked_out_h1"] = page.inner_text("h1")
        page.screenshot(path=str(out / "5-checked-out.png"), full_page=True)

        page.goto(START)
        seen["again_url"] = page.url
        seen["again_h1"] = page.inner_text("h1")
        page.screenshot(path=str(out / "6-captive-again.png"), full_page=True)
        browser.close()
    for_docs(out)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
