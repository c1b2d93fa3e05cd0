"""The RADIUS benchmark's CPU figures cover the measured window only: the
load generator's readings at the window's ends, and the table's arithmetic
on them."""

from __future__ import annotations

import os

from benchmarks import loadgen
from benchmarks.radius_bench import Run, ratios, table


def _run(answered: int, seconds: float, server_cpu: float, db_cpu: float) -> Run:
    result: dict[str, object] = {
        "answered": answered, "good": answered, "lost": 0, "seconds": seconds,
        "rate": round(answered / seconds, 1), "p50_ms": 1.0, "p99_ms": 2.0,
        "loadgen_cpu_seconds": 0.5}
    return Run("passerelle", "acct", result, server_cpu, db_cpu, (1.0, 1.0, 1.0), seconds)


def test_cpu_per_request_is_over_the_requests_the_window_counted() -> None:
    run = _run(answered=20_000, seconds=4.0, server_cpu=3.0, db_cpu=1.0)
    assert run.cpu_per_request_us() == 200.0
    assert run.per_core(run.server_cpu) == 0.75
    row = table([run]).splitlines()[1].split()
    # server, db and load generator per core over the window's 4 s; 200 us a request.
    assert row[-4:] == ["0.75c", "0.25c", "0.12c", "200"]


def test_the_ratio_of_the_medians_and_each_rounds() -> None:
    def run(server: str, rate: float, lost: int = 0) -> Run:
        out = _run(answered=int(rate), seconds=1.0, server_cpu=0.1, db_cpu=0.1)
        out.server, out.result["lost"] = server, lost
        return out

    rounds = [run("passerelle", 4000), run("freeradius", 2000, 7),
              run("passerelle", 3000), run("freeradius", 2000, 5),
              run("passerelle", 4400), run("freeradius", 2000)]
    [line] = ratios(rounds)
    assert line.startswith("acct: ratio passerelle/freeradius 2.00 (median requests/s "
                           "4000 / 2000 over 3 run(s)); by round 2.00, 1.50, 2.20; lost 0 / 12")
    [one] = ratios(rounds[:2])
    assert "by round" not in one and "ratio passerelle/freeradius 2.00" in one


def test_a_window_that_counted_nothing_divides_by_nothing() -> None:
    run = _run(answered=0, seconds=1.0, server_cpu=0.1, db_cpu=0.0)
    run.result["rate"] = 0.0
    run.duration = 0.0
    assert run.cpu_per_request_us() == 0.0
    assert run.per_core(run.server_cpu) == 0.0
    assert table([run]).splitlines()[1].split()[-1] == "0"


def test_the_figures_between_two_readings() -> None:
    start = loadgen.Reading(server=10.0, db=2.0, machine=(100, 10, 1000), own=1.0)
    end = loadgen.Reading(server=13.5, db=3.25, machine=(300, 30, 2000), own=1.5)
    assert loadgen.cpu_figures(start, end) == {
        "server_cpu_seconds": 3.5, "db_cpu_seconds": 1.25, "idle": 0.2, "steal": 0.02,
        "loadgen_cpu_seconds": 0.5}


def test_nothing_watched_reads_no_process_tree() -> None:
    reading = loadgen.read_cpu([], None)
    assert reading.server == reading.db == 0.0 and reading.own > 0
    assert loadgen.read_cpu([os.getpid()], None).server > 0


def test_pids_on_the_command_line() -> None:
    args = loadgen.parser().parse_args(["--kind", "auth", "--port", "1",
                                        "--server-pids", "12,34", "--db-pid", "56"])
    assert (args.server_pids, args.db_pid) == ([12, 34], 56)
    args = loadgen.parser().parse_args(["--kind", "auth", "--port", "1"])
    assert (args.server_pids, args.db_pid) == ([], None)
