"""Alembic environment: the engine comes from ``passerelle.radius.db``."""

from alembic import context

from passerelle.radius.db import make_engine
from passerelle.radius.models import Base

config = context.config
engine = config.attributes.get("engine") or make_engine()

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
