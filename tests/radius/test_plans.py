"""The centre's PostgreSQL statements find their rows by an index, however
small the tables were when their plans were made (docs/benchmarks.md:
cached plans with sequential scans read radacct whole for every batch).
PostgreSQL only: SQLite has no planner settings to check."""

from __future__ import annotations

from sqlalchemy import Connection, text

from passerelle.radius import server, store


def plan(conn: Connection, sql: str, **params: object) -> str:
    return "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql), params))


def test_worker_connections_take_no_sequential_scans(pg_url: str) -> None:
    engine = server.make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW enable_seqscan").scalar() == "off"
            # Planned once per connection, not for every batch.
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == \
                "force_generic_plan"
            # The tables are empty: the planner would read them whole.
            locking = plan(conn, store._lock_sql(), uids=["a" * 32], classes=["psl1:x"])
            assert "Seq Scan" not in locking, locking
            assert "uq_radacct_acctuniqueid" in locking and "ix_wifi_key_class" in locking
            update = plan(conn, store._update_sql("radacct", "radacctid", ("charged",), "rows"),
                          rows='[{"radacctid": 1, "charged": 5}]', rows_keys="{1}")
            assert "Seq Scan" not in update and "pk_radacct" in update, update
    finally:
        engine.dispose()


def test_a_worker_transaction_left_idle_is_ended_by_postgresql(pg_url: str) -> None:
    """A node that hangs mid-batch must not hold its row locks for ever: the
    other node, to which the boxes resend the same records, would wait on
    them (tests/gateway/test_failover.py hangs a node that way)."""
    engine = server.make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SHOW idle_in_transaction_session_timeout").scalar() == \
                server.IDLE_IN_TRANSACTION
    finally:
        engine.dispose()
