"""What a test needs from the machine, and the one rule when it is missing:
skip with the reason, except under CI (env CI set), where it fails — CI
installs everything, so nothing a test needs may silently skip there."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn

import pytest


def unavailable(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run every test: {why}")
    pytest.skip(why)


def tool(name: str, package: str) -> str:
    """The path of the program ``name`` (from Debian's ``package``)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (apt-get install {package})")
    return path


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it does not end in ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
