"""Migration 0003 (the console's operators) goes up and down on both databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from passerelle.radius.db import alembic_config, upgrade


def test_operators_migration_down_and_up(engine: Engine) -> None:
    assert {"operator", "operator_site", "audit_entry"} <= set(inspect(engine).get_table_names())
    command.downgrade(alembic_config(engine), "0002")
    tables = set(inspect(engine).get_table_names())
    assert not {"operator", "operator_site", "audit_entry"} & tables and "person" in tables
    upgrade(engine)
    insp = inspect(engine)
    assert {c["name"] for c in insp.get_columns("operator")} >= {
        "login", "password_hash", "role", "company_id", "epoch", "active"}
    assert {fk["referred_table"] for fk in insp.get_foreign_keys("operator_site")} == {
        "operator", "site"}
