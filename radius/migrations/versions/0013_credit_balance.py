"""credit_balance: each person's credit left, kept by the database

The balance was the sum of the person's ledger lines, computed on every
Access-Request and for every accounting batch. A line is written at each
Interim-Update that reports time, so the sum grew by the day: with 300
lines a person, PostgreSQL's CPU per Access-Request went from 30 to 178 us
and per Accounting-Request from 54 to 112 (benchmarks/profile_handler).

credit_balance holds the sum, a few rows a person, and triggers on
credit_entry keep it in the transaction that inserts, deletes or changes
lines, whoever writes them (the RADIUS server, the console, the API, a
person's erasure). On PostgreSQL one statement-level trigger per statement
adds the statement's lines per person into the row of its connection's
shard (see SHARDS), the people in ascending order (two transactions of one
shard lock their rows in the same order: no deadlock); on SQLite, a
trigger per row, one shard. A person's first line makes their row; the
rows go with the person (ON DELETE CASCADE). The existing ledger is summed
into shard 0 here.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Each database connection adds to a row of its own per person (its shard:
# the backend's pid modulo SHARDS): two batches charging the same person
# from two workers do not wait for each other's commit on one row. A
# balance is the sum of the person's few rows.
SHARDS = 16

# (PostgreSQL) The functions read the statement's lines from its
# transition tables. The join with person skips the lines of a person
# being erased (whose rows go with them).
_UPSERT = f"""
  INSERT INTO credit_balance (person_id, shard, seconds)
  SELECT c.person_id, pg_backend_pid() % {SHARDS}, sum(c.delta) FROM ({{lines}}) AS c
  JOIN person AS p ON p.id = c.person_id
  GROUP BY c.person_id HAVING sum(c.delta) <> 0 ORDER BY c.person_id
  ON CONFLICT (person_id, shard)
  DO UPDATE SET seconds = credit_balance.seconds + EXCLUDED.seconds;"""

_PG = [
    f"""CREATE FUNCTION credit_balance_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_UPSERT.format(lines="SELECT person_id, seconds AS delta FROM new_lines")}
  RETURN NULL;
END $$""",
    f"""CREATE FUNCTION credit_balance_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_UPSERT.format(lines="SELECT person_id, -seconds AS delta FROM old_lines")}
  RETURN NULL;
END $$""",
    f"""CREATE FUNCTION credit_balance_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_UPSERT.format(lines="SELECT person_id, -seconds AS delta FROM old_lines "
                            "UNION ALL SELECT person_id, seconds FROM new_lines")}
  RETURN NULL;
END $$""",
    """CREATE TRIGGER credit_entry_balance_insert AFTER INSERT ON credit_entry
REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION credit_balance_add()""",
    """CREATE TRIGGER credit_entry_balance_delete AFTER DELETE ON credit_entry
REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION credit_balance_remove()""",
    """CREATE TRIGGER credit_entry_balance_update AFTER UPDATE ON credit_entry
REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
FOR EACH STATEMENT EXECUTE FUNCTION credit_balance_change()""",
]

# (SQLite: one writer at a time, one shard.)
_SQLITE = [
    """CREATE TRIGGER credit_entry_balance_insert AFTER INSERT ON credit_entry BEGIN
  INSERT INTO credit_balance (person_id, shard, seconds) VALUES (NEW.person_id, 0, NEW.seconds)
  ON CONFLICT (person_id, shard) DO UPDATE SET seconds = seconds + excluded.seconds;
END""",
    """CREATE TRIGGER credit_entry_balance_delete AFTER DELETE ON credit_entry BEGIN
  UPDATE credit_balance SET seconds = seconds - OLD.seconds
  WHERE person_id = OLD.person_id AND shard = 0;
END""",
    """CREATE TRIGGER credit_entry_balance_update AFTER UPDATE OF person_id, seconds
ON credit_entry BEGIN
  UPDATE credit_balance SET seconds = seconds - OLD.seconds
  WHERE person_id = OLD.person_id AND shard = 0;
  INSERT INTO credit_balance (person_id, shard, seconds) VALUES (NEW.person_id, 0, NEW.seconds)
  ON CONFLICT (person_id, shard) DO UPDATE SET seconds = seconds + excluded.seconds;
END""",
]


def upgrade() -> None:
    op.create_table('credit_balance',
    sa.Column('person_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seconds', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'],
                            name=op.f('fk_credit_balance_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', 'shard', name=op.f('pk_credit_balance'))
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No line written between the sum below and the triggers.
        op.execute("LOCK TABLE credit_entry IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO credit_balance (person_id, shard, seconds) "
               "SELECT person_id, 0, sum(seconds) FROM credit_entry GROUP BY person_id")
    for statement in _PG if postgresql else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    for name in ("insert", "delete", "update"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER credit_entry_balance_{name} ON credit_entry")
        else:
            op.execute(f"DROP TRIGGER credit_entry_balance_{name}")
    if op.get_bind().dialect.name == "postgresql":
        for function in ("add", "remove", "change"):
            op.execute(f"DROP FUNCTION credit_balance_{function}()")
    op.drop_table('credit_balance')
