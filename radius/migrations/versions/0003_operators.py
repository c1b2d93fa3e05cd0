"""operators of the ops console

Who signs in to the console, with their role: network ops, site managers
(with their sites in operator_site) and company managers (with their company);
and audit_entry, who did what from it and when.

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

    op.create_table('audit_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=253), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('subject_kind', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], name=op.f('fk_audit_entry_operator_id_operator'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entry_subject', ['subject_kind', 'subject_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_subject')
        batch_op.drop_index('ix_audit_entry_at')
    op.drop_table('audit_entry')
    op.drop_table('operator_site')
    op.drop_table('operator')
