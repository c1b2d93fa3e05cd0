"""The box's on-disk session table: what is saved is there after a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from passerelle.gateway import sessions as sm
from passerelle.gateway.session_table import SessionTable, from_json, to_json
from passerelle.gateway.sessions import Cause, Counters, Terms

T0 = 1_800_000_000.0


def a_session(sid: str = "S1", ip: str = "198.51.100.10") -> sm.Session:
    session, _ = sm.check_in(sid, "alice", "02:00:00:00:00:01", ip,
                             Terms(3600, 600, 300, b"\x00\xffclass"), T0, ("2001:db8::10",))
    return sm.observe(session, Counters(2**40, 7, 3, 4), T0 + 5)


def test_json_round_trip_keeps_everything() -> None:
    s = a_session()
    assert from_json(to_json(s)) == s
    ended, _ = sm.end(s, Cause.IDLE_TIMEOUT, T0 + 900)
    assert from_json(to_json(ended)) == ended


def test_open_sessions_and_updates(tmp_path: Path) -> None:
    store = SessionTable(tmp_path / "sessions.db")
    one, two = a_session("S1"), a_session("S2", "198.51.100.11")
    store.save(one)
    store.save(two)
    assert [s.session_id for s in store.open_sessions()] == ["S1", "S2"]
    ended, _ = sm.end(one, Cause.USER_REQUEST, T0 + 60)
    store.save(ended)
    assert [s.session_id for s in store.open_sessions()] == ["S2"]
    assert store.get("S1") == ended
    assert store.prune(T0 + 61, pending=(), retention=0) == 1 and store.get("S1") is None
    store.set_state("heartbeat", "123.5")
    store.set_state("heartbeat", "124.5")
    assert store.get_state("heartbeat") == "124.5" and store.get_state("nope") is None
    store.close()


def test_a_saved_session_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from passerelle.gateway.session_table import SessionTable\n"
        "from tests.gateway.test_session_table import a_session\n"
        f"SessionTable(Path({str(path)!r})).save(a_session())\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                          check=False)
    assert proc.returncode == -9
    assert SessionTable(path).open_sessions() == [a_session()]


# -- stopped rows are pruned (issue 13, finding 8) -----------------------------------------


def _stopped(store: SessionTable, sid: str, at: float) -> None:
    ended, _ = sm.end(a_session(sid, "198.51.100.20"), Cause.USER_REQUEST, at)
    store.save(ended)


def test_prune_forgets_stopped_sessions_after_the_retention(tmp_path: Path) -> None:
    store = SessionTable(tmp_path / "sessions.db")
    day = 86400.0
    store.save(a_session("OPEN"))  # open for ever: never pruned
    _stopped(store, "OLD", T0)
    _stopped(store, "UNSENT", T0)  # its Stop still waits in the spool
    _stopped(store, "RECENT", T0 + 6 * day)
    now = T0 + 7 * day + 1
    assert store.prune(now, pending={"UNSENT"}, retention=7 * day) == 1
    assert store.get("OLD") is None
    assert store.get("UNSENT") is not None and store.get("RECENT") is not None
    assert [s.session_id for s in store.open_sessions()] == ["OPEN"]
    # Once the spool has delivered its Stop, it goes too.
    assert store.prune(now, pending=set(), retention=7 * day) == 1
    assert store.get("UNSENT") is None and store.get("RECENT") is not None
    store.close()


def test_prune_is_bounded_per_call(tmp_path: Path) -> None:
    store = SessionTable(tmp_path / "sessions.db")
    for i in range(25):
        _stopped(store, f"S{i:02}", T0 + i)
    now = T0 + 30 * 86400
    assert store.prune(now, pending=set(), limit=10) == 10
    assert store.get("S00") is None and store.get("S10") is not None  # oldest first
    assert store.prune(now, pending=set(), limit=10) == 10
    assert store.prune(now, pending=set(), limit=10) == 5
    assert store.prune(now, pending=set(), limit=10) == 0
    store.close()
