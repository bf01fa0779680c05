"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from airlock.db import Base
from airlock.workspace import Workspace


def test_migrations_match_models(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    engine = create_engine(f"sqlite:///{tmp_path / 'ws' / '.airlock' / 'airlock.db'}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert {
        "plans",
        "validations",
        "decisions",
        "transactions",
        "audit_events",
        "alembic_version",
    } <= tables


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    Workspace(tmp_path / "ws").close()
    engine = create_engine(f"sqlite:///{tmp_path / 'ws' / '.airlock' / 'airlock.db'}")
    with engine.connect() as connection:
        versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    engine.dispose()
    from airlock.db import SCHEMA_HEAD

    assert versions == [(SCHEMA_HEAD,)]


def test_schema_head_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from airlock.db import MIGRATIONS, SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD
