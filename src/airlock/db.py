"""Airlock's state: plans, validations, decisions, the apply journal and the audit log.

SQLAlchemy 2.x over SQLite (WAL) by default; the schema uses only portable types so the same
tables serve PostgreSQL. The schema is created and upgraded by Alembic (``migrations/``).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from airlock.errors import AirlockError, BusyError, StorageError, storage_error

SCHEMA_HEAD = "0005"
"""The newest Alembic revision in migrations/versions (a test keeps the two equal)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class PlanRow(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(4096), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    """The plan's canonical JSON: the exact content its digest covers."""
    status: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ValidationRow(Base):
    __tablename__ = "validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    digest: Mapped[str] = mapped_column(String(80))
    valid: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    validation_id: Mapped[int] = mapped_column(ForeignKey("validations.id"))
    digest: Mapped[str] = mapped_column(String(80))
    decision: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TransactionRow(Base):
    """The journal: one apply or rollback, with every step it will take, written before it starts."""

    __tablename__ = "transactions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    scope: Mapped[str] = mapped_column(String(4096))
    steps: Mapped[list[Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class AuditRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    plan_id: Mapped[str | None] = mapped_column(String(100), index=True)
    payload: Mapped[str] = mapped_column(Text)
    """Canonical JSON, stored as text so the bytes that were hashed are the bytes kept."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128), default=None)
    """HMAC-SHA256 of ``hash`` under the audit key kept outside the database (see audit.py)."""


class TokenRow(Base):
    """An API token: only the SHA-256 of its secret is kept."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class UploadRow(Base):
    """A body someone put into the content store (``PUT /api/v1/content``): only who uploaded
    it may name it in a plan; the bytes are in the store, never here."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DraftRow(Base):
    """The pending plan of one principal over one scope (:mod:`airlock.drafts`): operations in
    the stored plan format (write bodies named by SHA-256 in the content store)."""

    __tablename__ = "drafts"

    scope: Mapped[str] = mapped_column(String(4096), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    operations: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSessionRow(Base):
    """A signed-in review page: its own secret (only the SHA-256 kept), revocable, expiring."""

    __tablename__ = "web_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    """The token the page's forms carry: bound to this session."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync, and write transactions that lock early."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE: a writing transaction takes the write lock at BEGIN, so two processes never
        # both read the audit chain's head and then race to append after it. Reads (an engine
        # with the ``read_only`` option) begin deferred and, under WAL, never wait for writers.
        if connection.get_execution_options().get("read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


MIGRATIONS = Path(__file__).parent / "migrations"


def database_error(exc: OperationalError, state_dir: Path) -> AirlockError:
    """A state-database failure said plainly: the disk is full, the filesystem is read-only..."""
    name = str(getattr(exc.orig, "sqlite_errorname", "") or "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return BusyError("the state database is busy", hint="another process holds it; retry")
    try:
        read_only = bool(os.statvfs(state_dir).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    code = (
        errno.ENOSPC
        if name.startswith("SQLITE_FULL")
        else errno.EROFS
        if read_only or name.startswith("SQLITE_READONLY")
        else None
    )
    if code is None:
        return StorageError(
            f"the state database failed: {exc.orig}",
            hint="check the database and the disk it is on; an interrupted apply is finished "
            "by `airlock recover`",
        )
    error = storage_error(
        OSError(code, os.strerror(code)), "write the state database", str(state_dir)
    )
    error.hint += "; an interrupted apply is then finished by `airlock recover`"
    return error


_MIGRATE_LOCK = threading.Lock()
"""Alembic's ``context`` and ``op`` are process-wide proxies: one migration at a time per process."""


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the latest migration (Alembic is imported only when one is due)."""
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no version table yet: a new database
        current = None
    if current == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with _MIGRATE_LOCK, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
