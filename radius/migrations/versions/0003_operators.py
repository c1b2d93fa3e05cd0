"""operators of the ops console

Who signs in to the console, with their role: network ops, site managers
(with their sites in operator_site) and company managers (with their company).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('operator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=253), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.Enum('network_ops', 'site_manager', 'company_manager', name='operator_role', native_enum=False, length=16), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('last_sign_in', sa.DateTime(), nullable=True),
    sa.CheckConstraint("(role = 'company_manager' AND company_id IS NOT NULL) OR (role <> 'company_manager' AND company_id IS NULL)", name=op.f('ck_operator_company')),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_operator_company_id_company')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator')),
    sa.UniqueConstraint('login', name=op.f('uq_operator_login'))
    )
    op.create_table('operator_site',
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], name=op.f('fk_operator_site_operator_id_operator'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_operator_site_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('operator_id', 'site_id', name=op.f('pk_operator_site'))
    )


def downgrade() -> None:
    op.drop_table('operator_site')
    op.drop_table('operator')
