"""Alembic environment: migrations run against the URL Airlock passes in its Config."""

from __future__ import annotations

from alembic import context

from airlock.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "airlock.store passes sqlalchemy.url"

connectable = config.attributes.get("connection")
if connectable is None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connectable, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
