"""Alembic environment: the engine comes from ``passerelle.radius.db``.

On SQLite, a batch migration rebuilds a table (copy, drop, rename): with
foreign keys enforced, dropping a table other rows point at fails. So the
migrations run with enforcement off (the pragma only works outside a
transaction) and ``PRAGMA foreign_key_check`` must find nothing before the
transaction commits.
"""

from alembic import context
from sqlalchemy import text

from passerelle.radius.db import make_engine
from passerelle.radius.models import Base

config = context.config
engine = config.attributes.get("engine") or make_engine()
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    # On the driver's connection: SQLAlchemy's would first send BEGIN.
    raw = connection.connection.driver_connection
    assert raw is not None  # a connection just opened has its driver's
    if sqlite:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(connection=connection, target_metadata=Base.metadata,
                              render_as_batch=sqlite)
            context.run_migrations()
            if sqlite:
                broken = connection.execute(text("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing nowhere: {broken[:5]}")
    finally:
        if sqlite:
            raw.execute("PRAGMA foreign_keys=ON")
