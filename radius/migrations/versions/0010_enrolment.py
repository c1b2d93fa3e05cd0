"""enrolment of boxes

One-time enrolment codes (hashed), the TLS client certificates the centre's
CA issued to boxes (revocable), and the CA itself (its key sealed with the
server key).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enrolment_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('expires', sa.DateTime(), nullable=False),
    sa.Column('used', sa.DateTime(), nullable=True),
    sa.Column('used_from', sa.String(length=45), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], name=op.f('fk_enrolment_code_gateway_id_gateway'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_enrolment_code_code_hash'))
    )
    op.create_index(op.f('ix_enrolment_code_gateway_id'), 'enrolment_code', ['gateway_id'], unique=False)
    op.create_table('gateway_certificate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('issued', sa.DateTime(), nullable=False),
    sa.Column('not_after', sa.DateTime(), nullable=False),
    sa.Column('revoked', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], name=op.f('fk_gateway_certificate_gateway_id_gateway'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_certificate')),
    sa.UniqueConstraint('serial', name=op.f('uq_gateway_certificate_serial'))
    )
    op.create_index(op.f('ix_gateway_certificate_gateway_id'), 'gateway_certificate', ['gateway_id'], unique=False)
    op.create_table('certificate_authority',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cert_pem', sa.Text(), nullable=False),
    sa.Column('key_pem', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_authority'))
    )


def downgrade() -> None:
    op.drop_table('certificate_authority')
    op.drop_index(op.f('ix_gateway_certificate_gateway_id'), table_name='gateway_certificate')
    op.drop_table('gateway_certificate')
    op.drop_index(op.f('ix_enrolment_code_gateway_id'), table_name='enrolment_code')
    op.drop_table('enrolment_code')
