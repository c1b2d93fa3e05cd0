"""reports: a company's partner network, and the reports' roll-up

The partner networks' balance counts members of one network at another
network's sites; a company's network is recorded in company_network (one
line at most per company; none: the company belongs to no network).
report_day and report_hour hold the reports' roll-up of the local days that
are over (report_done lists them), so a report over a year reads sums, not
every session; an index on radacct's stop time finds the sessions of the
days not rolled up yet.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
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
    op.create_table('report_day',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('login', sa.String(length=253), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('carried', sa.Integer(), nullable=False),
    sa.Column('connected', sa.Integer(), nullable=False),
    sa.Column('first_in', sa.DateTime(), nullable=False),
    sa.Column('last_out', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_report_day_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'day', 'login', name=op.f('pk_report_day'))
    )
    op.create_index('ix_report_day_day', 'report_day', ['day'], unique=False)
    op.create_table('report_hour',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('peak', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_report_hour_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'day', 'hour', name=op.f('pk_report_hour'))
    )
    op.create_index('ix_report_hour_day', 'report_hour', ['day'], unique=False)
    op.create_index('ix_radacct_stoptime', 'radacct', ['acctstoptime'], unique=False)
    op.create_table('report_done',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_report_done'))
    )


def downgrade() -> None:
    op.drop_table('report_done')
    op.drop_index('ix_radacct_stoptime', table_name='radacct')
    op.drop_index('ix_report_hour_day', table_name='report_hour')
    op.drop_table('report_hour')
    op.drop_index('ix_report_day_day', table_name='report_day')
    op.drop_table('report_day')
    op.drop_index(op.f('ix_company_network_network_id'), table_name='company_network')
    op.drop_table('company_network')
