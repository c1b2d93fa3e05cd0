"""A teleworker at the portal, run in a client namespace of the lab: loads
the check-in page, submits the form and follows the answer to the key page,
checks out, and again, for ``--seconds``. What is timed is what the person
waits for: from the form's submission (the connection for the POST opened)
to the last byte of the key page (the 303's GET /welcome), over HTTPS as a
site serves it, each request on a new connection (the portal's server
closes after each answer). The key page must show a key.

    python -m benchmarks.checkin.visitor --box 198.51.100.1 --cafile PEM
        --login L --password P [--seconds 10] [--warmup 2]

Prints one JSON line: {"took": [seconds, ...], "failed": [reasons, ...]}.
The first ``--warmup`` check-ins are not counted (the centre's password
cache, radsecproxy's connection).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import socket
import ssl
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode

PORTAL = "portal.passerelle.internal"  # gateway/config.py's default portal.hostname
PORT = 8443
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
KEY = re.compile(r'<code class="wifi-key">([^<]+)</code>')
MAX_WARMUP_FAILURES = 20  # then the run is broken, not slow


class Refused(Exception):
    """The portal did not answer what a check-in gets."""


class _Portal(http.client.HTTPSConnection):
    """HTTPS to the box's address, the certificate checked for the portal's
    name (no DNS look-up per request, as a browser's cache)."""

    def __init__(self, box: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(PORTAL, PORT, context=context, timeout=timeout)
        self.box = box

    def connect(self) -> None:
        raw = socket.create_connection((self.box, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=PORTAL)  # type: ignore[attr-defined]


class Browser:
    def __init__(self, box: str, cafile: str, timeout: float = 30.0) -> None:
        self.box = box
        self.context = ssl.create_default_context(cafile=cafile)
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.token = ""  # the last page's CSRF token

    def request(self, method: str, path: str, form: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], str]:
        conn = _Portal(self.box, self.context, self.timeout)
        headers = {"Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            # What a browser sends with a form over HTTPS (Flask-WTF checks the Referer).
            headers["Referer"] = f"https://{PORTAL}:{PORT}/"
            headers["Origin"] = f"https://{PORTAL}:{PORT}"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        for value in resp.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(value)
            self.cookies.update({name: morsel.value for name, morsel in jar.items()})
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text


def check_in(browser: Browser, login: str, password: str) -> float:
    """One check-in: seconds from submitting the form to the key page."""
    status, _, page = browser.request("GET", "/")
    token = TOKEN.search(page)
    if status != 200 or token is None:
        raise Refused(f"check-in page: {status}")
    browser.token = token[1]
    started = time.perf_counter()
    status, headers, page = browser.request("POST", "/check-in", {
        "csrf_token": token[1], "login": login, "password": password, "accept": "y", "to": ""})
    if status != 303 or not headers.get("location", "").endswith("/welcome"):
        reason = re.search(r"<title>([^<]*)", page)
        raise Refused(f"check-in: {status} {reason[1] if reason else ''}".strip())
    status, _, page = browser.request("GET", "/welcome")
    took = time.perf_counter() - started
    if status != 200 or not KEY.search(page):
        raise Refused(f"key page: {status}, {'a key' if KEY.search(page) else 'no key'}")
    return took


def check_out(browser: Browser) -> None:
    status, _, _ = browser.request("POST", "/check-out", {"csrf_token": browser.token})
    if status != 200:
        raise Refused(f"check-out: {status}")


def visit(browser: Browser, login: str, password: str) -> float:
    """Check in and out again; the check-in's seconds. After a failure the
    session is ended if there is one, so the next visit starts captive."""
    try:
        took = check_in(browser, login, password)
        check_out(browser)
    except (Refused, OSError, http.client.HTTPException):
        with contextlib.suppress(Refused, OSError, http.client.HTTPException):
            check_out(browser)
        time.sleep(0.2)  # not a tight loop against a portal that refuses
        raise
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--box", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    browser = Browser(args.box, args.cafile)
    took: list[float] = []
    failed: list[str] = []
    warmed = 0
    while warmed < args.warmup and len(failed) < MAX_WARMUP_FAILURES:
        try:
            visit(browser, args.login, args.password)
            warmed += 1
        except (Refused, OSError, http.client.HTTPException) as exc:
            failed.append(f"warm-up: {type(exc).__name__}: {exc}")
    end = time.monotonic() + (args.seconds if warmed == args.warmup else 0)
    while time.monotonic() < end:
        try:
            took.append(visit(browser, args.login, args.password))
        except (Refused, OSError, http.client.HTTPException) as exc:
            failed.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"took": took, "failed": failed}), flush=True)


if __name__ == "__main__":
    main()
