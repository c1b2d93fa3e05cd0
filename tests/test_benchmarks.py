"""Every benchmark still runs: each module imports, and each entry point
runs for about a second with tiny parameters and must exit 0 (a benchmark
that nobody runs breaks unnoticed). The long ones run at the same time, so
the whole file takes about half a minute; nothing here measures speed."""

from __future__ import annotations

import importlib
import os
import pkgutil
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import benchmarks
from benchmarks import profile_handler, world

from .need import tool, unavailable

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 240


@dataclass(frozen=True)
class Entry:
    module: str
    args: tuple[str, ...]
    tools: tuple[tuple[str, str], ...] = ()  # (program, Debian package)
    root: bool = False
    expect: str = ""  # a line the run must print


ENTRIES = [
    # The default set-up: a throwaway PostgreSQL with fsync and
    # synchronous_commit on, and FreeRADIUS beside Passerelle.
    Entry("benchmarks.radius_bench",
          ("--duration", "1", "--ramp", "0.2", "--people", "5", "--window", "16",
           "--sockets", "2", "--source-port", str(random.randrange(20000, 30000, 2))),
          tools=(("freeradius", "freeradius freeradius-postgresql"),
                 ("initdb", "postgresql")),
          expect="acct: ratio passerelle/freeradius"),
    Entry("benchmarks.portal_bench", ("--duration", "1", "--connections", "2", "--threads", "1"),
          tools=(("wrk", "wrk"), ("taskset", "util-linux"), ("curl", "curl")),
          expect="| RFC 8908 API (HTTPS) |"),
    Entry("benchmarks.gateway_bench",
          ("--bulk", "20", "--runs", "1", "--seconds", "1", "--checkins", "3", "--sessions",
           "10", "--control", "5", "--rate", "100", "--centre-runs", "1"),
          tools=(("iperf3", "iperf3"), ("nft", "nftables")), root=True,
          expect="real box+centre, paced"),
    Entry("benchmarks.console_bench",
          ("--rows", "2000", "--live", "50", "--sites", "4", "--people", "40", "--samples", "2",
           "--plain-samples", "2"),
          tools=(("initdb", "postgresql"),), expect="worst p95 with our indexes"),
    Entry("benchmarks.gateway.forward", ("--rounds", "1", "--seconds", "1", "--bulk", "20"),
          tools=(("iperf3", "iperf3"), ("nft", "nftables")), root=True,
          expect="no rate lookups"),
    Entry("benchmarks.api_bench", ("--rows", "2000", "--repeat", "1"),
          tools=(("initdb", "postgresql"),), expect="OFFSET / keyset"),
    Entry("benchmarks.reports_bench",
          ("--sessions", "2000", "--people", "50", "--sites", "4", "--days", "60"),
          tools=(("initdb", "postgresql"),), expect="| report | month naive |"),
    Entry("benchmarks.radsec_bench", ("--duration", "1", "--threads", "2", "--people", "5"),
          tools=(("radsecproxy", "radsecproxy"),), expect="acct: ratio radsec/udp"),
    Entry("benchmarks.checkin_bench", ("--rounds", "1", "--seconds", "1", "--warmup", "1"),
          tools=(("radsecproxy", "radsecproxy"), ("initdb", "postgresql"), ("nft", "nftables"),
                 ("dnsmasq", "dnsmasq")), root=True, expect="RTT 30 ms: ratio radsec/udp"),
]


@pytest.fixture(scope="module")
def started() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every runnable entry point, started at once (their wall times overlap)."""
    procs: dict[str, subprocess.Popen[str]] = {}
    for entry in ENTRIES:
        if entry.root and os.geteuid() != 0:
            continue
        if any(_which(program) is None for program, _ in entry.tools):
            continue
        procs[entry.module] = subprocess.Popen(
            [sys.executable, "-m", entry.module, *entry.args], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _which(program: str) -> str | None:
    if program == "initdb":
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        return str(found[-1]) if found else shutil.which("initdb")
    return shutil.which(program)


def test_every_benchmark_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(benchmarks.__path__, "benchmarks.")]
    assert "benchmarks.radius_bench" in names and "benchmarks.gateway.centre" in names
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.module)
def test_benchmark_runs(entry: Entry, started: dict[str, subprocess.Popen[str]]) -> None:
    if entry.root and os.geteuid() != 0:
        unavailable(f"{entry.module} builds network namespaces: run the tests as root")
    for program, package in entry.tools:
        if _which(program) is None:
            tool(program, package)
    proc = started[entry.module]
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{entry.module} still running after {TIMEOUT} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{entry.module} exited {proc.returncode}:\n{out[-4000:]}"
    assert entry.expect in out, out[-4000:]


@pytest.mark.parametrize("kind", ["auth", "acct"])
def test_profile_handler(kind: str, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = world.create_database(pg_url, f"profile_smoke_{kind}")
    try:
        assert profile_handler.main(["--db", url, "--kind", kind, "--count", "200",
                                     "--people", "5", "--batch", "32", "--vary",
                                     "--profile"]) == 0
    finally:
        world.drop_database(url)
    out = capsys.readouterr().out
    # Every request answered (accounting makes whole sessions: 198 of 200).
    assert re.search(rf"^{kind}: (\d+)/\1 answered", out, re.M), out[:2000]
    assert "cumulative" in out


@pytest.mark.parametrize(("url", "conninfo"), [
    # No port: libpq's default, not "port=None" (which libpq refuses).
    ("postgresql://bench@db.example/radius", "host=db.example user=bench dbname=radius"),
    ("postgresql+psycopg://postgres@127.0.0.1:5433/postgres",
     "host=127.0.0.1 port=5433 user=postgres dbname=postgres"),
])
def test_a_database_url_without_a_port_works(url: str, conninfo: str) -> None:
    assert world.libpq(url) == conninfo
