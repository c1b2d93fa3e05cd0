"""the DAE outbox, box health, the session limit, the live-session indexes

dae_request queues the Disconnect- and CoA-Requests the centre sends to the
boxes, retried until answered; gateway records what each box tells in its
Status-Server heartbeat and its last Accounting-On/Off; company gets the
plan's limit of simultaneous sessions; radpostauth keeps an Accept's
Session-Timeout; two partial indexes cover the open sessions only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_OPEN = sa.text('acctstoptime IS NULL')


def upgrade() -> None:
    op.create_table('dae_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('gateway_id', sa.Integer(), nullable=False),
    sa.Column('radacct_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'acked', 'naked', 'gave_up', name='dae_state', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try', sa.DateTime(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('answered', sa.DateTime(), nullable=True),
    sa.Column('error_cause', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=253), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], name=op.f('fk_dae_request_gateway_id_gateway'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['radacct_id'], ['radacct.radacctid'], name=op.f('fk_dae_request_radacct_id_radacct'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dae_request'))
    )
    with op.batch_alter_table('dae_request', schema=None) as batch_op:
        batch_op.create_index('ix_dae_request_due', ['state', 'next_try'], unique=False)
        batch_op.create_index('ix_dae_request_session', ['radacct_id'], unique=False)
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_status', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('software_version', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('spool_depth', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_accounting_on', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_accounting_off', sa.DateTime(), nullable=True))
    with op.batch_alter_table('company', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_sessions', sa.Integer(), nullable=True))
    with op.batch_alter_table('radpostauth', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sessiontimeout', sa.BigInteger(), nullable=True))
    op.create_index('ix_radacct_live', 'radacct', ['acctstarttime', 'radacctid'], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index('ix_radacct_person_live', 'radacct', ['person_id'], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)


def downgrade() -> None:
    op.drop_index('ix_radacct_person_live', table_name='radacct')
    op.drop_index('ix_radacct_live', table_name='radacct')
    with op.batch_alter_table('radpostauth', schema=None) as batch_op:
        batch_op.drop_column('sessiontimeout')
    with op.batch_alter_table('company', schema=None) as batch_op:
        batch_op.drop_column('max_sessions')
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.drop_column('last_accounting_off')
        batch_op.drop_column('last_accounting_on')
        batch_op.drop_column('spool_depth')
        batch_op.drop_column('software_version')
        batch_op.drop_column('last_status')
    with op.batch_alter_table('dae_request', schema=None) as batch_op:
        batch_op.drop_index('ix_dae_request_session')
        batch_op.drop_index('ix_dae_request_due')
    op.drop_table('dae_request')
