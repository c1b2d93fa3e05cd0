"""The captive portal under wrk: requests/s and p99 latency on one core.

    .venv/bin/python -m benchmarks.portal_bench [--duration 10] [--connections 16]
                                                [--cpu 0] [--threads 2]
                                                [--new-connections]

The portal (the same gunicorn server and app as `passerelle portal run`: one
arbiter and its gthread worker) runs in its own processes pinned to one core
(taskset); a stand-in gateway daemon answers on a real control socket in
another process, and wrk runs on the other core. Scenarios: the captive
redirect of a page and of an OS probe, the probe answers once checked in,
the check-in page, the status page, the key page (QR code), and the RFC 8908
API over HTTPS. wrk keeps its connections open (the server keeps them 5 s);
with --new-connections every request says "Connection: close", so each one
is a new TCP connection and, for the API, a new TLS handshake, as a phone's
first requests often are. Prints a Markdown table for
docs/benchmarks-portal.md."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import procstat

ROOT = Path(__file__).resolve().parent.parent
HOSTNAME = "portal.bench.example"

SCENARIOS = [
    # name, scheme, host, path, checked in, expected status
    ("captive redirect of a page", "http", "example.org", "/news?id=7", False, 302),
    ("probe before check-in (302)", "http", "connectivitycheck.gstatic.com", "/generate_204",
     False, 302),
    ("probe after check-in (204)", "http", "connectivitycheck.gstatic.com", "/generate_204",
     True, 204),
    ("Apple probe after check-in", "http", "captive.apple.com", "/hotspot-detect.html", True,
     200),
    ("check-in page", "http", HOSTNAME, "/", False, 200),
    ("status page", "http", HOSTNAME, "/status", True, 200),
    ("key page with QR code", "http", HOSTNAME, "/welcome", True, 200),
    ("RFC 8908 API (HTTPS)", "https", HOSTNAME, "/api/captive", True, 200),
]


class _Daemon:
    """The stand-in gateway daemon: one client, 127.0.0.1, and its session.
    It answers every call of the control socket (control.Backend), as the
    real daemon would for a station that is not found by its key."""

    def __init__(self) -> None:
        self.session: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        return {"sessions": int(self.session is not None)}

    def who(self, ip: str) -> dict[str, Any]:
        return {"ip": ip, "mac": "02:00:00:00:00:01", "session": self.session}

    def sessions(self) -> list[dict[str, Any]]:
        return [self.session] if self.session else []

    def check_in(self, ip: str, login: str, password: str, chap: bool) -> dict[str, Any]:
        self.session = {"session_id": "bench", "login": login, "mac": "02:00:00:00:00:01",
                        "ip": ip, "started": time.time(), "seconds_used": 60,
                        "seconds_left": 7200, "bytes_up": 10**6, "bytes_down": 10**8,
                        "wifi_key": "tc2a-72ts-2nnn-g8r9", "idle_timeout": 900,
                        "bandwidth_up": None, "bandwidth_down": None}
        return self.session

    def check_out(self, ip: str) -> dict[str, Any]:
        self.session = None
        return {"ended": "bench"}

    def key_of(self, ip: str) -> dict[str, Any]:
        """The personal key the key page shows (Daemon.key_of's shape)."""
        return {"login": self.session["login"] if self.session else "", "session_id": "bench",
                "key": "tc2a-72ts-2nnn-g8r9", "serial": 1, "ssid": "Passerelle-Private"}

    def rotate_key(self, ip: str) -> dict[str, Any]:
        return self.key_of(ip)

    def offer(self, ip: str) -> dict[str, Any]:
        """What the check-in page asks first (Daemon.offer's shape): no key
        known for this station, so the ordinary form."""
        return {"ip": ip, "mac": "02:00:00:00:00:01", "login": None, "mode": "tap",
                "refusal": None}

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        from passerelle.gateway.control import ControlError
        from passerelle.refusal import Refusal

        # As the real daemon answers a one-tap check-in it has no key for.
        raise ControlError.refused(Refusal.unknown_client, f"no key known for {ip}")


def run_daemon(socket_path: Path) -> None:
    from passerelle.gateway.control import ControlServer

    server = ControlServer(socket_path, _Daemon())
    print("ready", flush=True)
    server.serve_forever()


def run_portal(socket_path: Path, state: Path, http_port: int, https_port: int) -> None:
    from passerelle.gateway.control import ControlClient
    from passerelle.portal.app import create_app
    from passerelle.portal.server import portal_listeners, serve
    from passerelle.portal.settings import PortalSettings
    from passerelle.portal.tls import ensure_certificate, server_context

    settings = PortalSettings(hostname=HOSTNAME, http_port=http_port, https_port=https_port,
                              api_url=f"https://{HOSTNAME}:{https_port}/api/captive",
                              ssid="Passerelle", site_name="Bench", box_ipv4="127.0.0.1",
                              # The benchmark's scenarios are plain HTTP, as before.
                              allow_plain_http=True)
    cert, key = ensure_certificate(HOSTNAME, state)
    app = create_app(settings, ControlClient(socket_path, timeout=10))
    serve(app, portal_listeners(["127.0.0.1"], http_port, https_port), server_context(cert, key))


# Counts answers whose status is not the expected one (a 503 from a busy
# control socket, or a 302 where a probe wanted its 204, would otherwise pass).
STATUS_CHECK = """
local expected = tonumber(os.getenv("EXPECT"))
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0; total = 0; seen = "" end
function response(status, headers, body)
  total = total + 1
  if status ~= expected then
    wrong = wrong + 1
    if not string.find(seen, tostring(status)) then seen = seen .. " " .. status end
  end
end
function done(summary, latency, requests)
  local w, t, s = 0, 0, ""
  for _, thread in ipairs(threads) do
    w = w + thread:get("wrong"); t = t + thread:get("total"); s = s .. thread:get("seen")
  end
  io.write(string.format("status-check: %d of %d unexpected:%s\\n", w, t, s))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(args: argparse.Namespace, url: str, headers: list[str], cpu: str, expected: int,
        script: Path) -> dict[str, Any]:
    cmd = ["taskset", "-c", cpu, "wrk", "-t", str(args.threads), "-c", str(args.connections),
           "-d", f"{args.duration}s", "--latency", "-s", str(script),
           *[a for h in headers for a in ("-H", h)], url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "EXPECT": str(expected)}).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    checked = re.search(r"status-check: (\d+) of (\d+) unexpected:(.*)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if not (rate and p99 and p50 and checked):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return {"rps": float(rate.group(1)), "p50": _ms(*p50.groups()), "p99": _ms(*p99.groups()),
            "unexpected": int(checked.group(1)), "total": int(checked.group(2)),
            "statuses": checked.group(3).strip(),
            "socket_errors": sock.group(1).strip() if sock else "", "cmd": " ".join(cmd)}


def check_status(url: str, headers: list[str], expected: int, must_hold: str) -> None:
    out = subprocess.run(["curl", "-sk", "-w", "\\n%{http_code}",
                          *[a for h in headers for a in ("-H", h)], url],
                         capture_output=True, text=True).stdout
    body, _, got = out.rpartition("\n")
    if got != str(expected) or must_hold not in body:
        raise SystemExit(f"{url} ({headers}) answered {got} without {must_hold!r}")


def browser_cookie(http_port: int, tmp: Path) -> str:
    """Check in through the portal's form, as a browser: its session cookie
    is what shows the key page in full (with the QR code)."""
    base = f"http://127.0.0.1:{http_port}"
    jar = tmp / "cookies"
    common = ["curl", "-sS", "-H", f"Host: {HOSTNAME}", "-b", str(jar), "-c", str(jar)]
    page = subprocess.run([*common, f"{base}/"], capture_output=True, text=True).stdout
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        raise SystemExit("no CSRF token on the check-in page")
    subprocess.run([*common, "-o", "/dev/null", "--data-urlencode", f"csrf_token={token[1]}",
                    "--data-urlencode", "login=alice@acme.example", "--data-urlencode",
                    "password=x", "--data-urlencode", "accept=y", f"{base}/check-in"],
                   check=True)
    for line in jar.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 7 and fields[5] == "portal_session":
            return f"portal_session={fields[6]}"
    raise SystemExit("the check-in set no session cookie")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu", default="0", help="the core the portal runs on")
    parser.add_argument("--new-connections", action="store_true",
                        help="a new connection for every request (Connection: close)")
    parser.add_argument("--daemon", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--portal", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.daemon:
        return run_daemon(args.daemon)
    if args.portal:
        sock, state, http_port, https_port = args.portal
        return run_portal(Path(sock), Path(state), int(http_port), int(https_port))
    for tool in ("wrk", "taskset", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"the benchmark needs {tool}")

    from passerelle.gateway.control import ControlClient

    other = str(1 - int(args.cpu)) if os.cpu_count() == 2 else f"{int(args.cpu) + 1}-"
    # The machine may be shared: the load average before and after says how much.
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    sock = tmp / "control.sock"
    http_port, https_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    try:
        daemon = subprocess.Popen(["taskset", "-c", other, sys.executable, "-m",
                                   "benchmarks.portal_bench", "--daemon", str(sock)],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        procs.append(daemon)
        assert daemon.stdout is not None and daemon.stdout.readline() == "ready\n"
        portal = subprocess.Popen(["taskset", "-c", args.cpu, sys.executable, "-m",
                                   "benchmarks.portal_bench", "--portal", str(sock), str(tmp),
                                   str(http_port), str(https_port)],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        procs.append(portal)
        assert portal.stdout is not None and "listening" in portal.stdout.readline()
        control = ControlClient(sock)
        script = tmp / "status.lua"
        script.write_text(STATUS_CHECK)
        rows = []
        control.check_out("127.0.0.1")
        cookie = browser_cookie(http_port, tmp)  # leaves 127.0.0.1 checked in
        for name, scheme, host, path, checked_in, expected in SCENARIOS:
            if checked_in:
                control.check_in("127.0.0.1", "alice@acme.example", "x")
            else:
                control.check_out("127.0.0.1")
            port = http_port if scheme == "http" else https_port
            url = f"{scheme}://127.0.0.1:{port}{path}"
            headers = [f"Host: {host}"]
            if args.new_connections:
                headers.append("Connection: close")
            must_hold = ""
            if path == "/welcome":
                headers.append(f"Cookie: {cookie}")
                must_hold = "<svg"
            check_status(url, headers, expected, must_hold)
            cpu_before = procstat.tree_cpu([portal.pid])
            result = wrk(args, url, headers, other, expected, script)
            # The portal's own CPU per request: what one core it had to itself
            # would serve, whatever else ran on the machine meanwhile.
            used = procstat.tree_cpu([portal.pid]) - cpu_before
            result["cpu_ms"] = used * 1000 / max(1, result["total"])
            rows.append((name, result))
            print(f"{name}: {result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
                  f"p99 {result['p99']:.1f} ms, unexpected status {result['unexpected']} "
                  f"of {result['total']} ({result['statuses'] or '-'}), "
                  f"portal CPU {result['cpu_ms']:.2f} ms/request, "
                  f"socket errors: {result['socket_errors'] or 'none'}", flush=True)
        print()
        load = os.getloadavg()
        print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} "
              f"{load_before[2]:.2f}, at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"on {os.cpu_count()} cores")
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
              f"(on core {other}); portal on core {args.cpu}; "
              + ("a new connection per request" if args.new_connections
                 else "connections kept alive"))
        print()
        print("| scenario | requests/s | p50 ms | p99 ms | wrong status | portal CPU ms/req |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
                  f"{r['unexpected']} of {r['total']} | {r['cpu_ms']:.2f} |")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
