"""CPU time of process trees, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by the live processes under ``roots``."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None:
                stats[int(entry)] = got
    wanted = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                grew = True
    return sum(stats[pid][1] for pid in wanted if pid in stats)


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_times() -> tuple[int, int, int]:
    """(idle, steal, total) clock ticks of all CPUs since boot, from
    /proc/stat: idle includes waiting for I/O; steal is time a virtual
    machine's host gave to others while this machine wanted to run."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return idle, steal, sum(fields[:8])


def shares(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[float, float]:
    """The idle and steal shares of the machine's CPU time between two
    machine_times() readings."""
    total = max(1, after[2] - before[2])
    return (after[0] - before[0]) / total, (after[1] - before[1]) / total
