"""balance and class indexes

The balance of a person is the sum of their ledger: an index on
(person_id, seconds) answers it without reading the table. Accounting finds
the decision behind a session by its Class.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:00:00
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('credit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_credit_entry_person_seconds', ['person_id', 'seconds'],
                              unique=False)
        batch_op.drop_index('ix_credit_entry_person')
    with op.batch_alter_table('radpostauth', schema=None) as batch_op:
        batch_op.create_index('ix_radpostauth_class', ['class'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('radpostauth', schema=None) as batch_op:
        batch_op.drop_index('ix_radpostauth_class')
    with op.batch_alter_table('credit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_credit_entry_person', ['person_id'], unique=False)
        batch_op.drop_index('ix_credit_entry_person_seconds')
