"""A real `passerelle radius serve` process for the integration tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from passerelle.radius.db import make_sessionmaker
from tests.need import stop

from . import seed

BIN = Path(sys.executable).parent / "passerelle"


@dataclass
class Server:
    auth_port: int
    acct_port: int
    proc: subprocess.Popen[str]
    log: Path

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        stop(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


def start_server(db_url: str, tmp_path: Path, workers: int = 1,
                 extra: tuple[str, ...] = ()) -> Server:
    log = tmp_path / f"radius-{len(list(tmp_path.glob('radius-*.log')))}.log"
    env = {**os.environ, "PASSERELLE_KEY_FILE": str(tmp_path / "server.key")}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(BIN), "radius", "serve", "--db", db_url, "--listen", "127.0.0.1",
             "--auth-port", "0", "--acct-port", "0", "--workers", str(workers), *extra],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"auth (\d+) acct (\d+)", line)
    if not match:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError(f"server did not start: {line!r}\n{log.read_text()}")
    return Server(int(match.group(1)), int(match.group(2)), proc, log)


@pytest.fixture
def world(engine: Engine, key_file: Path) -> seed.World:
    return seed.build(make_sessionmaker(engine))


@pytest.fixture
def server(db_url: str, world: seed.World, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(db_url, tmp_path)
    yield srv
    srv.stop()
