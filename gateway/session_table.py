"""The box's session table, on local disk (SQLite).

One row per session, the session as JSON: the table is small (the clients
of one site) and only the daemon writes it. ``synchronous=FULL`` so that a
session saved before ``kill -9`` or a power cut is there after it. The same
file keeps the daemon's heartbeat, to date what happened while it was down.
Stopped sessions are kept a while (``KEEP_STOPPED``), then pruned once
their accounting has left the spool: the table stays bounded.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .sessions import Counters, Session, Terms

SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    session_id TEXT PRIMARY KEY,
    ipv4 TEXT NOT NULL,
    stopped REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS session_stopped ON session (stopped);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
KEEP_STOPPED = 7 * 86400.0  # seconds; the configuration's sessions.keep_stopped_days
PRUNE_BATCH = 1000  # rows per call: one call never holds the table long


def to_json(session: Session) -> str:
    data = asdict(session)
    class_ = session.terms.class_
    data["terms"]["class_"] = base64.b64encode(class_).decode() if class_ is not None else None
    return json.dumps(data, sort_keys=True)


def from_json(text: str) -> Session:
    data: dict[str, Any] = json.loads(text)
    terms = dict(data.pop("terms"))
    if terms.get("class_") is not None:
        terms["class_"] = base64.b64decode(terms["class_"])
    return Session(
        **{k: v for k, v in data.items() if k not in ("carried", "kernel", "ipv6")},
        terms=Terms(**terms),
        ipv6=tuple(data["ipv6"]),
        carried=Counters(**data["carried"]),
        kernel=Counters(**data["kernel"]),
    )


class SessionTable:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def save(self, session: Session) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO session (session_id, ipv4, stopped, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET ipv4 = excluded.ipv4, "
                "stopped = excluded.stopped, data = excluded.data",
                (session.session_id, session.ipv4, session.stopped, to_json(session)),
            )

    def open_sessions(self) -> list[Session]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM session WHERE stopped IS NULL ORDER BY session_id"
            ).fetchall()
        return [from_json(r[0]) for r in rows]

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM session WHERE session_id = ?", (session_id,)
            ).fetchone()
        return from_json(row[0]) if row else None

    def prune(self, now: float, *, pending: Collection[str], retention: float = KEEP_STOPPED,
              limit: int = PRUNE_BATCH) -> int:
        """Forget, oldest first and at most ``limit``, the sessions stopped
        more than ``retention`` seconds before ``now``, except those whose
        accounting still waits in the spool (``pending``: their session ids).
        The number forgotten."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM session WHERE session_id IN (SELECT session_id FROM session "
                "WHERE stopped < ? AND session_id NOT IN (SELECT value FROM json_each(?)) "
                "ORDER BY stopped LIMIT ?)",
                (now - retention, json.dumps(sorted(pending)), limit))
        return cur.rowcount

    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
