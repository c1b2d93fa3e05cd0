from sqlalchemy import Engine, inspect

from passerelle.radius.db import alembic_config
from passerelle.radius.models import Base


def test_migrations_build_the_model(engine: Engine) -> None:
    """The migrated schema has every table and column the models declare."""
    insp = inspect(engine)
    for table in Base.metadata.sorted_tables:
        cols = {c["name"] for c in insp.get_columns(table.name)}
        assert cols == set(table.columns.keys()), table.name


def test_models_and_migrations_agree(engine: Engine) -> None:
    """No model change is left without a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert alembic_config(engine).get_main_option("script_location")


def test_every_migration_goes_down_and_up_again(engine: Engine) -> None:
    from alembic import command

    from passerelle.radius.db import upgrade

    cfg = alembic_config(engine)
    command.downgrade(cfg, "0001")
    assert "ix_credit_entry_person" in {i["name"] for i in inspect(engine).get_indexes(
        "credit_entry")}
    upgrade(engine)
    names = {i["name"] for i in inspect(engine).get_indexes("credit_entry")}
    assert names == {"ix_credit_entry_person_seconds"}


def test_radacct_keeps_room_for_hot_updates(engine: Engine) -> None:
    """PostgreSQL: radacct's pages keep room for the Interim-Updates' row
    versions (migration 0012), and the downgrade gives it back; SQLite has
    no fill factor, and the migration leaves it alone."""
    from alembic import command
    from sqlalchemy import text

    def options() -> list[str]:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT reloptions FROM pg_class WHERE relname = 'radacct'")).scalar() or [])

    if engine.dialect.name != "postgresql":
        command.downgrade(alembic_config(engine), "0011")
        command.upgrade(alembic_config(engine), "head")
        assert "radacct" in inspect(engine).get_table_names()
        return
    assert options() == ["fillfactor=70"]
    command.downgrade(alembic_config(engine), "0011")
    try:
        assert options() == []
    finally:
        command.upgrade(alembic_config(engine), "head")
    assert options() == ["fillfactor=70"]


def test_radacct_indexes_what_is_looked_up(engine: Engine) -> None:
    """Each index of radacct costs every accounting write (migration 0014):
    none on User-Name, which nothing looks sessions up by, and a gateway's
    open sessions (Accounting-On/Off) are found through the open ones only.
    The downgrade gives back the indexes of before."""
    from alembic import command
    from sqlalchemy import select, text

    from passerelle.radius.models import Radacct

    def indexes() -> set[str]:
        return {str(i["name"]) for i in inspect(engine).get_indexes("radacct")}

    assert {"ix_radacct_nas_open", "ix_radacct_live", "ix_radacct_person_live",
            "ix_radacct_starttime", "ix_radacct_stoptime"} <= indexes()
    assert not {"ix_radacct_username", "ix_radacct_open"} & indexes()
    query = select(Radacct.radacctid).where(Radacct.nasipaddress == "192.0.2.1",
                                            Radacct.acctstoptime.is_(None))
    with engine.connect() as conn:
        compiled = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan TO off"))
            plan = conn.execute(text("EXPLAIN " + compiled)).scalars().all()
        else:
            plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + compiled))]
    assert "ix_radacct_nas_open" in " ".join(plan), plan
    command.downgrade(alembic_config(engine), "0013")
    try:
        assert {"ix_radacct_username", "ix_radacct_open"} <= indexes()
        assert "ix_radacct_nas_open" not in indexes()
    finally:
        command.upgrade(alembic_config(engine), "head")
    assert "ix_radacct_nas_open" in indexes()
