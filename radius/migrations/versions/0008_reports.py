"""which partner network a company belongs to (reports)

The partner networks' balance counts members of one network at another
network's sites; a company's network is recorded in company_network (one
line at most per company; none: the company belongs to no network).

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('company_network',
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('network_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_company_network_company_id_company'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['network_id'], ['network.id'], name=op.f('fk_company_network_network_id_network'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', name=op.f('pk_company_network'))
    )
    op.create_index(op.f('ix_company_network_network_id'), 'company_network', ['network_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_company_network_network_id'), table_name='company_network')
    op.drop_table('company_network')
