"""reports: the roll-up's monthly grain

report_month holds the day rows of report_day summed per person, site and
calendar month (local days of the site), for the months the roll-up holds
whole (report_month_done), so a report over a year reads twelve rows per
person and site instead of some 250. An index on report_day (login, day)
lets working time read a person's days in order. The monthly rows are made
by the next roll-up (a report request or python -m
passerelle.radius.reports_rollup), not here.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_month',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('login', sa.String(length=253), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('carried', sa.Integer(), nullable=False),
    sa.Column('connected', sa.Integer(), nullable=False),
    sa.Column('first_in', sa.DateTime(), nullable=False),
    sa.Column('last_out', sa.DateTime(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_report_month_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_month'))
    )
    op.create_index('ix_report_month_month', 'report_month', ['month'], unique=False)
    op.create_table('report_month_done',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_report_month_done'))
    )
    op.create_index('ix_report_day_login_day', 'report_day', ['login', 'day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_report_day_login_day', table_name='report_day')
    op.drop_table('report_month_done')
    op.drop_index('ix_report_month_month', table_name='report_month')
    op.drop_table('report_month')
