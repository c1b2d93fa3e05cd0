"""accounting records set aside

An accounting record the centre cannot store (a value beyond its column's
range, a row the database refuses) is answered and kept here for ops,
instead of failing its whole batch and leaving the box's spool stuck
behind it (issue 13, finding 9).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounting_quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('received', sa.DateTime(), nullable=False),
    sa.Column('gateway_id', sa.Integer(), nullable=True),
    sa.Column('nasidentifier', sa.String(length=64), nullable=False),
    sa.Column('nasipaddress', sa.String(length=45), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('acctsessionid', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('datagram', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], name=op.f('fk_accounting_quarantine_gateway_id_gateway'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounting_quarantine'))
    )
    with op.batch_alter_table('accounting_quarantine', schema=None) as batch_op:
        batch_op.create_index('ix_accounting_quarantine_received', ['received'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accounting_quarantine', schema=None) as batch_op:
        batch_op.drop_index('ix_accounting_quarantine_received')
    op.drop_table('accounting_quarantine')
