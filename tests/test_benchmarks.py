"""Every benchmark still runs: each module imports, and each entry point
runs for a few seconds with tiny parameters and must exit 0 (a benchmark
that nobody runs breaks unnoticed). Nothing here measures speed.

Each entry point starts when its own test runs (``-k`` selects what runs),
in a session of its own with a temporary directory of its own as TMPDIR,
where its throwaway PostgreSQL clusters go. However the test ends (passed,
failed, timed out, interrupted), the benchmark is asked to stop (SIGINT: its
own clean-up runs), then whatever is left of its session is killed, the
clusters in its directory are stopped and the directory removed."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pkgutil
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import benchmarks
from benchmarks import portal_bench, profile_handler, world
from passerelle.gateway import control
from passerelle.lab.netns import remove_stale

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
    # B is this checkout again, through the other-checkout path (seeded by
    # its own code), with an index of its own.
    Entry("benchmarks.radius_ab",
          ("--pairs", "1", "--duration", "1", "--ramp", "0.2", "--people", "5", "--window",
           "16", "--sockets", "2", "--b-checkout", ".", "--b-workers", "1",
           "--b-sql", "CREATE INDEX ix_ab_smoke ON radacct (callingstationid)",
           "--source-port", str(random.randrange(30000, 40000, 2))),
          tools=(("initdb", "postgresql"),), expect="acct: ratio B/A"),
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


GRACE = 20  # seconds a benchmark has to stop its own servers after SIGINT
PR_SET_PDEATHSIG = 1  # prctl(2)
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork


def _interrupt_with_parent() -> None:
    """In the child: SIGINT when the test process dies, even by SIGKILL (the
    benchmark, in a session of its own, would otherwise run on)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


@contextlib.contextmanager
def _started(entry: Entry) -> Iterator[subprocess.Popen[str]]:
    """The entry point, running; stopped and swept whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="passerelle-smoke-"))
    # Like /tmp: a cluster is written by the postgres user when run as root.
    tmp.chmod(0o1777)
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", entry.module, *entry.args], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ,
                                                                   "TMPDIR": str(tmp)},
            start_new_session=True, preexec_fn=_interrupt_with_parent)
        yield proc
    finally:
        if proc is not None:
            _stop(proc)
        _sweep(tmp, labs=entry.root)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # its finally blocks stop its clusters and labs
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            proc.communicate(timeout=GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # what is left of its session
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _sweep(tmp: Path, labs: bool) -> None:
    """Stop the PostgreSQL clusters a benchmark left in ``tmp`` (pg_ctl runs
    them in a session of their own), remove ``tmp``, and the lab namespaces
    whose owner is gone."""
    for pidfile in tmp.glob("passerelle-pg-*/data/postmaster.pid"):
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue  # not running
        if str(pidfile.parent).encode() not in cmdline:
            continue  # the pid is another process's now
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)
    if labs:
        remove_stale()


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


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
def test_benchmark_runs(entry: Entry) -> None:
    if entry.root and os.geteuid() != 0:
        unavailable(f"{entry.module} builds network namespaces: run the tests as root")
    for program, package in entry.tools:
        if _which(program) is None:
            tool(program, package)
    with _started(entry) as proc:
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            got = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
            pytest.fail(f"{entry.module} still running after {TIMEOUT} s:\n{got[-4000:]}")
    assert proc.returncode == 0, f"{entry.module} exited {proc.returncode}:\n{out[-4000:]}"
    assert entry.expect in out, out[-4000:]


def test_the_portal_bench_daemon_answers_every_control_call() -> None:
    """The benchmark's stand-in daemon has every call of the control socket
    (a call it lacks is a 500 the portal hides, and a slower page)."""
    calls = {name for name in vars(control.Backend) if not name.startswith("_")}
    assert calls >= {"who", "offer", "check_in_by_key"}
    missing = sorted(name for name in calls if not callable(getattr(portal_bench._Daemon, name,
                                                                    None)))
    assert not missing, f"benchmarks/portal_bench.py's _Daemon lacks {missing}"


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
