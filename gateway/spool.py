"""The accounting spool: every record goes to disk first, then to the centre.

A SQLite file (WAL, ``synchronous=FULL``): ``put`` returns only once the
record is on disk, so a ``kill -9`` or a power cut loses nothing. ``deliver``
sends the records oldest first and deletes each one only after its
Accounting-Response; it stops at the first record no server answers, so
the order is kept. A crash between the answer and the delete sends that one
record once more after the restart: the centre folds accounting
idempotently by Acct-Session-Id and NAS, so a repeat changes nothing.

A failed delivery never touches the session it accounts for: the record
waits here until the centre is back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from .acct import AccountingRecord
from .radclient import NoServer

log = logging.getLogger("passerelle.gateway")

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    why TEXT NOT NULL
);
"""


class Sender(Protocol):
    """What the spool needs of a RADIUS client (RadiusClient)."""

    def account(self, record: AccountingRecord) -> None: ...


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the threads, used under _db_lock only.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._db_lock = threading.Lock()
        # deliver() holds this for a whole run so two runs never interleave
        # (which could reorder or double-send records).
        self._deliver_lock = threading.Lock()

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    def put(self, record: AccountingRecord) -> int:
        """Store ``record``; durable when this returns. Its sequence number."""
        text = json.dumps(record.to_json(), sort_keys=True)
        with self._db_lock:
            cur = self._db.execute("INSERT INTO records (record) VALUES (?)", (text,))
            seq = cur.lastrowid
        assert seq is not None
        log.debug("spooled accounting %s of %r as #%d", record.status.label, record.session_id,
                  seq)
        return seq

    def pending(self) -> int:
        with self._db_lock:
            (count,) = self._db.execute("SELECT count(*) FROM records").fetchone()
        return int(count)

    def rejected(self) -> int:
        """Records set aside because they could not be read back."""
        with self._db_lock:
            (count,) = self._db.execute("SELECT count(*) FROM rejected").fetchone()
        return int(count)

    def oldest_age(self, now: float) -> float | None:
        """Seconds the oldest waiting record has waited since its event, or
        None when nothing waits (or its time cannot be read)."""
        oldest = self._oldest()
        if oldest is None:
            return None
        try:
            return float(AccountingRecord.from_json(json.loads(oldest[1])).delay(now))
        except (ValueError, TypeError):
            return None

    def _oldest(self) -> tuple[int, str] | None:
        with self._db_lock:
            row = self._db.execute(
                "SELECT seq, record FROM records ORDER BY seq LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def _delete(self, seq: int) -> None:
        with self._db_lock:
            self._db.execute("DELETE FROM records WHERE seq = ?", (seq,))

    def _set_aside(self, seq: int, text: str, why: str) -> None:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO rejected (seq, record, why) "
                             "VALUES (?, ?, ?)", (seq, text, why))
            self._db.execute("DELETE FROM records WHERE seq = ?", (seq,))
            self._db.execute("COMMIT")

    def deliver(self, client: Sender, *, limit: int | None = None) -> int:
        """Send the spooled records in order; the number delivered. Stops at
        the first record no server answers (NoServer is not raised)."""
        delivered = 0
        with self._deliver_lock:
            while limit is None or delivered < limit:
                row = self._oldest()
                if row is None:
                    break
                seq, text = row
                try:
                    record = AccountingRecord.from_json(json.loads(text))
                except (ValueError, TypeError) as exc:
                    # A record we cannot read would block the spool forever:
                    # keep it for a human, out of the queue.
                    log.error("spool record #%d is unreadable (%s); moved to the rejected "
                              "table of %s", seq, exc, self.path)
                    self._set_aside(seq, text, str(exc))
                    continue
                try:
                    client.account(record)
                except NoServer as exc:
                    log.warning("accounting spool: %s; %d record(s) wait", exc,
                                self.pending())
                    break
                self._delete(seq)
                delivered += 1
        if delivered:
            log.debug("accounting spool: delivered %d record(s)", delivered)
        return delivered


class SpoolSender:
    """A thread that drains the spool when woken and every ``interval`` s."""

    def __init__(self, spool: Spool, client: Sender, *, interval: float = 30.0) -> None:
        self.spool = spool
        self.client = client
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accounting-spool",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, record: AccountingRecord) -> int:
        """Spool ``record`` (durably) and wake the sender."""
        seq = self.spool.put(record)
        self.wake()
        return seq

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current exchange (which may take a whole back-off)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                # One record at a time so stop() does not wait for a long backlog.
                while not self._stop.is_set() and self.spool.deliver(self.client, limit=1):
                    pass
            except Exception:  # the thread's boundary: log, keep the spool running
                log.exception("accounting spool: delivery failed")
