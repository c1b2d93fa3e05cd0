"""radacct: two indexes fewer for every accounting write

Every new session, and every Interim-Update or Stop that is not a HOT
update, adds an entry to each index of radacct whose condition the row
meets; each entry is CPU for PostgreSQL and WAL that the commit waits to
write to disk. Two of them did not earn that:

- ix_radacct_username: no query of ours looks sessions up by User-Name
  (a person's sessions are found by person_id); it came with FreeRADIUS's
  column set.
- ix_radacct_open (nasipaddress, acctstoptime) served one query, closing
  a gateway's open sessions at its Accounting-On/Off. It becomes
  ix_radacct_nas_open, (nasipaddress) over the open sessions only: a
  Stop no longer adds an entry, and the query reads the same rows.

Building the new index reads radacct once and holds its writes meanwhile
(seconds for millions of sessions); the accounting records that arrive
then wait in the boxes' spools, as during any stop of the centre.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_OPEN = sa.text("acctstoptime IS NULL")


def upgrade() -> None:
    op.create_index('ix_radacct_nas_open', 'radacct', ['nasipaddress'], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.drop_index('ix_radacct_open', table_name='radacct')
    op.drop_index('ix_radacct_username', table_name='radacct')


def downgrade() -> None:
    op.create_index('ix_radacct_username', 'radacct', ['username'], unique=False)
    op.create_index('ix_radacct_open', 'radacct', ['nasipaddress', 'acctstoptime'], unique=False)
    op.drop_index('ix_radacct_nas_open', table_name='radacct')
