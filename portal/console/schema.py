"""The console needs the latest schema (its operators came with it)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from passerelle.errors import UserError
from passerelle.radius import db
from passerelle.radius.admin_cli import safe_url


def check_schema(engine: Engine) -> None:
    """UserError unless the database is reachable and at the latest revision."""
    url = safe_url(str(engine.url))
    try:
        with engine.connect() as conn:
            current = None
            # Read directly, not through Alembic's context: it logs each look.
            if inspect(conn).has_table("alembic_version"):
                current = conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        raise UserError(f"cannot use the database {url}: {first}") from None
    head = ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()
    if current != head:
        raise UserError(f"the database {url} is at revision {current or 'none'}, the console "
                        f"needs {head}: run 'passerelle db upgrade --db ...' first")
