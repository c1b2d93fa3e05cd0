"""The teleworker at the portal while the centre fails, in the namespace lab.

The box (`passerelle gateway run`) has two central nodes, `passerelle radius
serve` on 192.0.2.10 and 192.0.2.11 (one database), and the real portal
(`passerelle portal run`) in front. A person checks in through the portal
with curl, as a browser would (the form, its CSRF token, HTTPS):

- node 1 killed (SIGKILL): the check-in goes through node 2;
- node 2 killed too: the check-in page answers 503 with the plain words
  of the refusal `centre-unreachable`, not an error page or a traceback;
- the first person leaves meanwhile: the Stop waits in the box's spool and
  is delivered to node 1 once it is back, the session charged once.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from tests.boxlab import BIN, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.need import unavailable
from tests.portal.test_lab import PORTAL_NAME, PORTAL_URL, RUN
from tests.radius import seed

SECOND = "192.0.2.11"
EXTRA = f"""
[dns]
upstream = ["203.0.113.1"]

[[radius.servers]]
host = "{SECOND}"
secret = "{seed.SECRET}"
"""
UNREACHABLE = "The network's centre does not answer right now."


def check_in(box: Box, client: str, login: str) -> tuple[int, str, float]:
    """The check-in form as a browser sends it: its status, page and time."""
    jar = box.tmp / f"{client}.cookies"
    common = ("-sS", "-m", "20", "-k", "-b", str(jar), "-c", str(jar))
    form = box.lab.run(client, "curl", *common, PORTAL_URL,
                       check=False)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.stdout)
    assert token, form.stdout + form.stderr
    started = time.monotonic()
    out = box.lab.run(client, "curl", *common, "-e", PORTAL_URL, "-o", "/dev/stderr",
                      "-w", "%{http_code}", "-d", f"csrf_token={html.unescape(token[1])}",
                      "-d", f"login={login}", "-d", f"password={seed.PASSWORD}",
                      "-d", "accept=y", f"{PORTAL_URL}check-in", check=False, timeout=30)
    return int(out.stdout or 0), out.stderr, time.monotonic() - started


def test_check_in_fails_over_then_says_plainly_the_centre_cannot_be_reached(
        tmp_path: Path) -> None:
    require_lab()
    if shutil.which("curl") is None:
        unavailable("the lab test needs curl")
    with site(tmp_path, portal=False, extra_config=EXTRA) as box:
        lab = box.lab
        lab.run("up", "ip", "addr", "add", f"{SECOND}/32", "dev", "lo")
        with box._log("centre2") as err:
            second = lab.popen("up", str(BIN), "radius", "serve", "--db", box.db_url,
                               "--listen", SECOND, env={**os.environ, "PASSERELLE_KEY_FILE":
                                                        str(tmp_path / "server.key")},
                               stderr=err)
        assert second.stdout is not None and "listening" in second.stdout.readline()
        with box._log("portal") as log:
            portal = lab.popen("gw", sys.executable, "-c", RUN, "-v", "portal", "run",
                               "--config", str(box.config), stderr=log)
        try:
            assert portal.stdout is not None
            assert "portal listening" in portal.stdout.readline(), box.read_logs()
            wait_for(lambda: lab.run("client", "getent", "hosts", PORTAL_NAME,
                                     check=False).returncode == 0,
                     what="the portal's name", logs=box.read_logs)

            assert box.centre is not None
            box.centre.send_signal(signal.SIGKILL)
            box.centre.wait(10)
            status, page, _ = check_in(box, "client", "alice@acme.example")
            assert status == 303, page + box.read_logs()
            assert box.curl("client") == "upstream 203.0.113.2"
            rows = wait_for(lambda: box.sessions("alice@acme.example"),
                            what="the Start at node 2", logs=box.read_logs)
            assert len(rows) == 1

            second.send_signal(signal.SIGKILL)
            second.wait(10)
            status, page, took = check_in(box, "client2", "bob@slowco.example")
            print(f"check-in with both nodes down answered in {took:.2f} s")
            assert status == 503, page
            assert UNREACHABLE in page and "Try again in a minute." in page, page
            assert "Traceback" not in page and "Internal Server Error" not in page
            # Each node had its tries (2 sends, 0.5 s then 1 s), no more.
            assert took < 6.0, took
            assert not box.curl("client2").startswith("upstream")

            # Alice leaves while both are dead: her Stop waits in the spool,
            # and goes to node 1 when it is back, once.
            box.control.check_out("198.51.100.10")
            wait_for(lambda: box.control.status()["spool_pending"] >= 1, what="a spooled Stop",
                     logs=box.read_logs)
            box.start_centre()
            wait_for(lambda: box.control.status()["spool_pending"] == 0, timeout=60,
                     what="the spool to drain to node 1", logs=box.read_logs)
            rows = box.sessions("alice@acme.example")
            assert len(rows) == 1 and rows[0].acctterminatecause == "User-Request", rows
            assert box.charged("alice") == rows[0].acctsessiontime == rows[0].charged
            assert "Traceback" not in box.read_logs()
        finally:
            portal.terminate()
            portal.wait(10)
            if second.poll() is None:
                second.terminate()
                second.wait(10)
            if second.stdout is not None:
                second.stdout.close()
