"""one personal Wi-Fi key per person

A key was issued at each check-in (wifi_key, in clear) and revoked at
check-out. Each person now has one key, the same at every site
(person_key), sealed with the server key with its PMK for the network's
private SSID (network.private_ssid, new). A person with a session open now
keeps the key of that session as their personal key, so a device that has
it keeps working; the old rows stay as history, revoked, their passphrases
blanked (a leaked database must not hold a key in clear). Going down drops
the personal keys; the blanked passphrases do not come back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:45:00
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from passerelle.radius import passwords

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DEFAULT_SSID = 'Passerelle-Private'

network = sa.table('network', sa.column('id', sa.Integer()),
                   sa.column('private_ssid', sa.String(32)))
site = sa.table('site', sa.column('id', sa.Integer()), sa.column('network_id', sa.Integer()))
gateway = sa.table('gateway', sa.column('id', sa.Integer()), sa.column('site_id', sa.Integer()))
wifi_key = sa.table('wifi_key', sa.column('id', sa.Integer()),
                    sa.column('person_id', sa.Integer()), sa.column('passphrase', sa.String(64)),
                    sa.column('gateway_id', sa.Integer()), sa.column('issued', sa.DateTime()),
                    sa.column('revoked', sa.DateTime()))


def _pmk(passphrase: str, ssid: str) -> str:
    # IEEE 802.11 J.4: written out here so that the migration does not
    # change when the application's code does.
    return hashlib.pbkdf2_hmac('sha1', passphrase.encode(), ssid.encode(), 4096, 32).hex()


def upgrade() -> None:
    # Not in batch mode: SQLite adds a column in place, and recreating the
    # table would trip the foreign keys of the sites.
    op.add_column('network', sa.Column('private_ssid', sa.String(length=32),
                                       server_default=DEFAULT_SSID, nullable=False))
    person_key = op.create_table(
        'person_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('serial', sa.Integer(), nullable=False),
        sa.Column('passphrase', sa.Text(), nullable=False),
        sa.Column('ssid', sa.String(length=32), nullable=False),
        sa.Column('pmk', sa.Text(), nullable=False),
        sa.Column('created', sa.DateTime(), nullable=False),
        sa.Column('revoked', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'],
                                name=op.f('fk_person_key_person_id_person'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_person_key')),
    )
    with op.batch_alter_table('person_key', schema=None) as batch_op:
        batch_op.create_index('ix_person_key_current', ['person_id'], unique=True,
                              sqlite_where=sa.text('revoked IS NULL'),
                              postgresql_where=sa.text('revoked IS NULL'))

    conn = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    ssids = dict(conn.execute(
        sa.select(gateway.c.id, network.c.private_ssid)
        .join(site, site.c.id == gateway.c.site_id)
        .join(network, network.c.id == site.c.network_id)).all())
    newest: dict[int, tuple[str, str]] = {}
    for row in conn.execute(sa.select(wifi_key).where(wifi_key.c.revoked.is_(None))
                            .order_by(wifi_key.c.issued, wifi_key.c.id)):
        if 8 <= len(row.passphrase) <= 63:
            newest[row.person_id] = (row.passphrase,
                                     ssids.get(row.gateway_id) or DEFAULT_SSID)
    rows = [{'person_id': person, 'serial': 1, 'passphrase': passwords.seal(key),
             'ssid': ssid, 'pmk': passwords.seal(_pmk(key, ssid)), 'created': now,
             'revoked': None} for person, (key, ssid) in sorted(newest.items())]
    if rows:
        op.bulk_insert(person_key, rows)
    conn.execute(wifi_key.update().where(wifi_key.c.revoked.is_(None)).values(revoked=now))
    conn.execute(wifi_key.update().values(passphrase=''))


def downgrade() -> None:
    with op.batch_alter_table('person_key', schema=None) as batch_op:
        batch_op.drop_index('ix_person_key_current')
    op.drop_table('person_key')
    # SQLite >= 3.35 drops a column in place (see upgrade).
    op.execute('ALTER TABLE network DROP COLUMN private_ssid')
