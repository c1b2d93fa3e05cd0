"""Under systemd (stderr is the journal's stream) every log event is one
line of key=value fields with its priority; elsewhere the readable line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging
from passerelle.cli import setup_logging
setup_logging(verbose=False)
log = logging.getLogger("passerelle.gateway")
log.info('check-in of "a@b.example"\\nsecond line')
try:
    1 / 0
except ZeroDivisionError:
    log.exception("timer %s failed", "sweep")
log.warning("spool: %d record(s) wait", 3)
"""


def run(tmp_path: Path, journal: bool) -> str:
    err = tmp_path / "stderr"
    with err.open("w") as stream:
        found = os.fstat(stream.fileno())
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal:
            env["JOURNAL_STREAM"] = f"{found.st_dev}:{found.st_ino}"
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=stream, env=env, check=True,
                       timeout=30)
    return err.read_text()


def test_one_line_per_event_with_its_priority_under_systemd(tmp_path: Path) -> None:
    lines = run(tmp_path, journal=True).splitlines()
    assert len(lines) == 3, lines
    assert lines[0] == ('<6>level=info logger=passerelle.gateway '
                        'msg="check-in of \\"a@b.example\\"\\nsecond line"')
    assert lines[1].startswith('<3>level=error logger=passerelle.gateway msg="timer sweep '
                               'failed" exc="Traceback (most recent call last):\\n')
    assert lines[1].endswith('ZeroDivisionError: division by zero"')
    assert lines[2] == '<4>level=warning logger=passerelle.gateway msg="spool: 3 record(s) wait"'


def test_a_terminal_gets_the_readable_lines(tmp_path: Path) -> None:
    text = run(tmp_path, journal=False)
    assert " INFO passerelle.gateway: check-in of \"a@b.example\"\nsecond line\n" in text
    assert "Traceback (most recent call last):\n" in text
    assert "level=" not in text
