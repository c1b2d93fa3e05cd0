"""gateway secrets sealed at rest

The RADIUS shared secrets of the gateways were stored in clear: a leaked
database or backup opened every site. They are now sealed with the server
key (the one that seals CHAP secrets): the column grows to hold the sealed
form, and the rows already there are sealed. Going down opens them again
(it needs the same key file).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:30:00
"""

import sqlalchemy as sa
from alembic import op

from passerelle.radius import passwords

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

gateway = sa.table('gateway', sa.column('id', sa.Integer()), sa.column('secret', sa.Text()))


def _rewrite(change) -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(gateway.c.id, gateway.c.secret)).all():
        conn.execute(gateway.update().where(gateway.c.id == row.id)
                     .values(secret=change(row.secret)))


def _open(sealed: str) -> str:
    clear = passwords.open_sealed(sealed)
    if clear is None:
        raise RuntimeError(f"a gateway secret does not open with the server key "
                           f"{passwords.key_path()}: not going down")
    return clear


def upgrade() -> None:
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=128), type_=sa.Text(),
                              existing_nullable=False)
    _rewrite(passwords.seal)


def downgrade() -> None:
    _rewrite(_open)
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.Text(), type_=sa.String(length=128),
                              existing_nullable=False)
