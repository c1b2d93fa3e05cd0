"""radacct: room on each page for the Interim-Updates' new row versions

An Interim-Update changes no indexed column of its session (counters,
update time, the charged mark), so PostgreSQL can write the new version
as a HOT update, with no entry in radacct's eight indexes, if the row's
page has room for it. Pages filled to the brim by new sessions had none:
most updates went to another page and into every index. A fill factor of
70 keeps 30 % of each page for them (a Stop changes acctstoptime, which is
indexed, so it is never HOT). It applies to pages written from
now on; an existing table's full pages keep their rows until rewritten
(VACUUM FULL or pg_repack, not done here: it locks the table). SQLite has
no such setting.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:20:00
"""

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE radacct SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE radacct RESET (fillfactor)")
