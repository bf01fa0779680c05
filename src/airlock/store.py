"""The state database: the sessions Airlock's state is read and written in, and every query.

Plans (with their canonical JSON), validations (report and preconditions), decisions,
transactions (the journal) and the audit chain live here (tables in :mod:`airlock.db`). Nothing
outside this module builds a query; the engine's modules ask for rows by what they mean.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from sqlalchemy import JSON, ColumnElement, and_, case, cast, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from airlock import audit, audit_anchor, plan_lists
from airlock.db import (
    DecisionRow,
    DraftRow,
    PlanRow,
    TransactionRow,
    UploadRow,
    ValidationRow,
    database_error,
    make_engine,
    migrate,
    sqlite_url,
    utcnow,
)
from airlock.errors import NotFoundError
from airlock.lifecycle import Status, move
from airlock.plan import Plan, stored_plan
from airlock.plan_lists import ListedPlan, PlanFilter, PlanPage, Tab
from airlock.records import PlanRecord
from airlock.validate import Validation

log = logging.getLogger("airlock")

_T = TypeVar("_T")
_SHA256_FIELD = re.compile(r'"sha256":"([0-9a-f]{64})"')
"""A write's stored body, as a plan's canonical JSON names it."""
_PARSED_KEPT = 16
"""How many parsed plans and reports a store keeps (see ``Store._remember``)."""


class ValidationSummary(TypedDict):
    """A plan's latest validation without its changes: what a list of plans shows of it."""

    validation_id: int
    valid: bool
    needs_approval: list[str]
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    error_count: int
    warning_count: int
    counts: dict[str, int]
    bytes_written: int
    bytes_removed: int


def _plan_filters(status: str | None, scope: str | None) -> list[ColumnElement[bool]]:
    """The conditions of a list of plans (an unknown ``status``: none listed)."""
    filters = []
    if status:
        filters.append(PlanRow.status == status)
    if scope:
        filters.append(PlanRow.scope == scope)
    return filters


def _lower_text(value: object) -> object:
    """SQL ``airlock_lower``: ``lower`` for every script (SQLite's own folds ASCII alone)."""
    return value.lower() if isinstance(value, str) else value


def _add_functions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("airlock_lower", 1, _lower_text, deterministic=True)


def _tab_expression(needs_approval: ColumnElement[bool]) -> ColumnElement[str]:
    """The tab of a plan row, in SQL: :func:`airlock.plan_lists.tab_of`, status by status."""
    whens: list[tuple[ColumnElement[bool], str]] = []
    for status, (if_needed, if_not) in plan_lists.tab_table().items():
        if if_needed != if_not:
            whens.append((and_(PlanRow.status == status, needs_approval), if_needed))
        whens.append((PlanRow.status == status, if_not))
    return case(*whens, else_=plan_lists.DEFAULT_TAB)


class Store:
    """One workspace's state database (SQLite in ``.airlock/`` unless a URL is given)."""

    def __init__(self, state_dir: Path, database_url: str | None = None) -> None:
        self.state_dir = state_dir
        url = (
            database_url
            or os.environ.get("AIRLOCK_DATABASE_URL")
            or sqlite_url(state_dir / "airlock.db")
        )
        self.engine = make_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        if self._sqlite:
            event.listen(self.engine, "connect", _add_functions)
        try:
            migrate(self.engine, url)
            self._reads = sessionmaker(
                self.engine.execution_options(read_only=True), expire_on_commit=False
            )
            with self.read() as session:
                self.anchor = audit_anchor.Anchor.open(state_dir, session)
                """The audit key and head record, outside the database (see that module)."""
        except OperationalError as exc:
            self.close()
            raise database_error(exc, state_dir) from exc
        except BaseException:
            self.close()
            raise
        self._writes = sessionmaker(
            self.engine, expire_on_commit=False, info={audit.KEY_INFO: self.anchor.key}
        )
        self._parsed: dict[tuple[str, object], object] = {}
        """Plans and reports parsed from the database, by digest and validation id (both are
        immutable once stored); callers treat them as read-only."""

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A database transaction (committed when the block ends).

        Once it has committed, the audit events it appended are anchored in the head record
        (after the commit, never before: a crash in between leaves the head behind, not ahead).
        """
        try:
            with self._writes.begin() as session:
                yield session
        except OperationalError as exc:
            raise database_error(exc, self.state_dir) from exc
        if session.info.get(audit.APPENDED_INFO):
            try:
                with self.read() as reading:
                    self.anchor.advance(reading)
            except Exception as exc:  # committed already: a head left behind is what verify allows
                log.warning("the audit head record was not advanced: %s", exc)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only database transaction: it never waits for writers."""
        with self._reads.begin() as session:
            yield session

    # --- plans -------------------------------------------------------------------------------

    @staticmethod
    def plan(session: Session, plan_id: str) -> PlanRow:
        row = session.get(PlanRow, plan_id)
        if row is None:
            raise NotFoundError(f"no plan {plan_id!r}", hint="list plans with `airlock plan list`")
        return row

    @staticmethod
    def plans(session: Session, status: str | None, scope: str | None) -> list[PlanRow]:
        """The plans with ``status`` in ``scope`` (either None: any), newest first."""
        query = select(PlanRow).order_by(PlanRow.created_at.desc())
        return list(session.scalars(query.where(*_plan_filters(status, scope))))

    @staticmethod
    def validation_summaries(
        session: Session, status: str | None, scope: str | None
    ) -> dict[str, ValidationSummary]:
        """The latest validation of every plan :meth:`plans` lists with the same filters, by
        plan id, in one query: its verdict, counts and issues, without its list of changes
        (read from inside the stored report, never parsed whole: a report may hold 50,000)."""
        listed = select(PlanRow.id).where(*_plan_filters(status, scope))
        latest = (
            select(func.max(ValidationRow.id))
            .where(ValidationRow.plan_id.in_(listed))
            .group_by(ValidationRow.plan_id)
        )
        report = ValidationRow.report
        rows = session.execute(
            select(
                ValidationRow.plan_id,
                ValidationRow.id,
                ValidationRow.valid,
                report["needs_approval"],
                report["errors"],
                report["warnings"],
                report["counts"],
                report["bytes_written"],
                report["bytes_removed"],
            ).where(ValidationRow.id.in_(latest))
        )
        return {
            plan_id: {
                "validation_id": validation_id,
                "valid": bool(valid),
                "needs_approval": needs or [],
                "errors": errors or [],
                "warnings": warnings or [],
                "error_count": len(errors or []),
                "warning_count": len(warnings or []),
                "counts": counts or {},
                "bytes_written": written or 0,
                "bytes_removed": removed or 0,
            }
            for plan_id, validation_id, valid, needs, errors, warnings, counts, written, removed in rows
        }

    def plan_page(
        self, session: Session, tab: Tab, where: PlanFilter, number: int, per_page: int
    ) -> PlanPage:
        """Page ``number`` (from 1) of the plans on ``tab`` that match ``where``, newest first,
        with the latest validation of each (read from inside the stored report, never parsed
        whole), how many match on every tab, and the scopes and authors to choose from: four
        queries, whatever the number of plans."""
        latest = (
            select(ValidationRow.plan_id, func.max(ValidationRow.id).label("id"))
            .group_by(ValidationRow.plan_id)
            .subquery("latest")
        )
        report = ValidationRow.report
        needs = func.coalesce(func.json_array_length(report["needs_approval"]), 0) > 0
        on_tab = _tab_expression(needs)
        joined = (
            select()
            .select_from(PlanRow)
            .outerjoin(latest, latest.c.plan_id == PlanRow.id)
            .outerjoin(ValidationRow, ValidationRow.id == latest.c.id)
            .where(*self._list_filters(where))
        )
        counts: dict[Tab, int] = dict.fromkeys(plan_lists.TAB_KEYS, 0)
        for key, count in session.execute(
            joined.add_columns(on_tab, func.count()).group_by(on_tab)
        ):
            counts[key] += count
        total = counts[tab]
        pages = max(1, -(-total // per_page))
        number = min(max(number, 1), pages)
        rows = session.execute(
            joined.add_columns(
                PlanRow.id,
                PlanRow.description,
                PlanRow.scope,
                PlanRow.author,
                PlanRow.status,
                PlanRow.created_at,
                self._operation_count(),
                ValidationRow.id,
                ValidationRow.valid,
                report["needs_approval"],
                func.coalesce(func.json_array_length(report["errors"]), 0),
                report["counts"],
            )
            .where(on_tab == tab)
            .order_by(PlanRow.created_at.desc(), PlanRow.id.desc())
            .offset((number - 1) * per_page)
            .limit(per_page)
        )
        plans = [
            ListedPlan(
                id=plan_id,
                description=description,
                scope=scope,
                author=author,
                status=status,
                created_at=_utc(created_at),
                operations=operations or 0,
                validation_id=validation_id,
                valid=bool(valid),
                needs_approval=needs_approval or [],
                error_count=error_count,
                counts=report_counts or {},
            )
            for (
                plan_id,
                description,
                scope,
                author,
                status,
                created_at,
                operations,
                validation_id,
                valid,
                needs_approval,
                error_count,
                report_counts,
            ) in rows
        ]
        scopes = session.scalars(select(PlanRow.scope).distinct().order_by(PlanRow.scope))
        authors = session.scalars(select(PlanRow.author).distinct().order_by(PlanRow.author))
        return PlanPage(tab, plans, total, counts, number, per_page, list(scopes), list(authors))

    def _list_filters(self, where: PlanFilter) -> list[ColumnElement[bool]]:
        filters = _plan_filters(None, where.scope)
        if where.author:
            filters.append(PlanRow.author == where.author)
        if where.submitted_from is not None:
            filters.append(PlanRow.created_at >= where.submitted_from)
        if where.submitted_before is not None:
            filters.append(PlanRow.created_at < where.submitted_before)
        if where.text:
            lower = func.airlock_lower if self._sqlite else func.lower
            text = where.text.lower()
            in_json = json.dumps(text, ensure_ascii=False)[1:-1]  # as the canonical JSON has it
            filters.append(
                lower(PlanRow.id).contains(text, autoescape=True)
                | lower(PlanRow.description).contains(text, autoescape=True)
                | lower(PlanRow.body).contains(in_json, autoescape=True)
            )
        return filters

    def _operation_count(self) -> ColumnElement[int]:
        """How many operations a plan has, counted in its canonical JSON (never parsed here)."""
        if self._sqlite:
            return func.json_array_length(PlanRow.body, "$.operations")
        return func.json_array_length(cast(PlanRow.body, JSON)["operations"])

    @staticmethod
    def set_status(row: PlanRow, status: Status, reason: str | None = None) -> None:
        """Move the plan to ``status`` (only along :data:`~airlock.lifecycle.TRANSITIONS`)."""
        row.status = move(row.status, status)
        row.reason = reason
        row.updated_at = utcnow()

    @staticmethod
    def latest_validation(session: Session, plan_id: str) -> ValidationRow | None:
        return session.scalars(
            select(ValidationRow)
            .where(ValidationRow.plan_id == plan_id)
            .order_by(ValidationRow.id.desc())
            .limit(1)
        ).first()

    @staticmethod
    def latest_decision(session: Session, plan_id: str) -> DecisionRow | None:
        return session.scalars(
            select(DecisionRow)
            .where(DecisionRow.plan_id == plan_id)
            .order_by(DecisionRow.id.desc())
            .limit(1)
        ).first()

    # --- transactions ------------------------------------------------------------------------

    @staticmethod
    def transaction(session: Session, txn_id: str) -> TransactionRow:
        txn = session.get(TransactionRow, txn_id)
        assert txn is not None, txn_id
        return txn

    @staticmethod
    def running(session: Session) -> list[TransactionRow]:
        return list(
            session.scalars(select(TransactionRow).where(TransactionRow.status == "running"))
        )

    @staticmethod
    def last_apply(session: Session, plan_id: str) -> TransactionRow | None:
        """The plan's newest committed apply."""
        return session.scalars(
            select(TransactionRow)
            .where(TransactionRow.plan_id == plan_id)
            .where(TransactionRow.kind == "apply")
            .where(TransactionRow.status == "committed")
            .order_by(TransactionRow.created_at.desc())
        ).first()

    def applied_after(
        self, session: Session, txn: TransactionRow
    ) -> list[tuple[str, str, list[Any]]]:
        """(plan id, scope, changes) of every plan applied after ``txn`` and still applied."""
        found = []
        later = session.scalars(
            select(TransactionRow)
            .where(TransactionRow.kind == "apply")
            .where(TransactionRow.status == "committed")
            .where(TransactionRow.created_at > txn.created_at)
        )
        for other in later:
            plan = session.get(PlanRow, other.plan_id)
            validation = self.latest_validation(session, other.plan_id)
            if plan is None or plan.status != Status.APPLIED or validation is None:
                continue
            found.append((other.plan_id, other.scope, validation.report["changes"]))
        return found

    @staticmethod
    def purgeable(session: Session) -> list[TransactionRow]:
        """Finished transactions whose kept-aside files are not purged yet."""
        return list(
            session.scalars(
                select(TransactionRow)
                .where(TransactionRow.status.in_(("committed", "undone")))
                .where(TransactionRow.purged_at.is_(None))
            )
        )

    @staticmethod
    def purged(session: Session) -> list[str]:
        return list(
            session.scalars(select(TransactionRow.id).where(TransactionRow.purged_at.is_not(None)))
        )

    # --- uploaded bodies ---------------------------------------------------------------------

    @staticmethod
    def uploads_by(session: Session, name: str, digests: set[str]) -> dict[str, int]:
        """Which of ``digests`` the principal ``name`` uploaded (digest -> size)."""
        if not digests:
            return {}
        rows = session.execute(
            select(UploadRow.sha256, UploadRow.size)
            .where(UploadRow.uploaded_by == name)
            .where(UploadRow.sha256.in_(sorted(digests)))
        )
        return {sha256: size for sha256, size in rows}

    @staticmethod
    def referenced_content(session: Session, since: dt.datetime) -> set[str]:
        """Every body a plan names, and every body uploaded since ``since`` (not yet named)."""
        found = {
            sha256
            for (sha256,) in session.execute(
                select(UploadRow.sha256).where(UploadRow.created_at >= since)
            )
        }
        for (body,) in session.execute(select(PlanRow.body)):
            found.update(_SHA256_FIELD.findall(body))
        for (operations,) in session.execute(select(DraftRow.operations)):
            found.update(_SHA256_FIELD.findall(operations))
        return found

    # --- records -----------------------------------------------------------------------------

    def record(
        self,
        session: Session,
        row: PlanRow,
        full: bool = True,
        remember: bool = False,
        report: tuple[int, Validation] | None = None,
    ) -> PlanRecord:
        """The plan of ``row`` as the library hands it out; ``full`` adds its latest report and
        its decisions. ``remember`` (only from a read session: what it read is committed) keeps
        the parsed report for the next call; ``report``: the latest, just stored (not kept)."""
        record = PlanRecord(
            id=row.id,
            plan=self.parsed_plan(row),
            digest=row.digest,
            status=row.status,
            reason=row.reason,
            created_at=row.created_at,
        )
        if full:
            latest = report or self._parsed_validation(session, row.id, remember)
            if latest is not None:
                record.validation_id, record.validation = latest
            record.decisions = [
                {
                    "decision": d.decision,
                    "actor": d.actor,
                    "comment": d.comment,
                    "digest": d.digest,
                    "validation": d.validation_id,
                    "at": d.created_at.isoformat(),
                }
                for d in session.scalars(
                    select(DecisionRow)
                    .where(DecisionRow.plan_id == row.id)
                    .order_by(DecisionRow.id)
                )
            ]
        return record

    def parsed_plan(self, row: PlanRow, known: Plan | None = None) -> Plan:
        """The plan of ``row``, parsed once per digest (a plan never changes once submitted);
        ``known``: the plan just stored as ``row``, kept instead of parsing it back."""
        plan = self._parsed.get(("plan", row.digest))
        if not isinstance(plan, Plan):
            plan = self._remember(("plan", row.digest), known or stored_plan(row.body))
        return plan

    def _parsed_validation(
        self, session: Session, plan_id: str, remember: bool
    ) -> tuple[int, Validation] | None:
        """The plan's latest report, parsed once per validation (a stored report never changes):
        a 50,000-change report costs a second to read and parse, on every page render.

        Only a committed report may be kept (``remember``, from a read session): a row flushed
        in a write transaction that then fails to commit leaves its id to the next validation.
        """
        validation_id = session.scalars(
            select(ValidationRow.id)
            .where(ValidationRow.plan_id == plan_id)
            .order_by(ValidationRow.id.desc())
            .limit(1)
        ).first()
        if validation_id is None:
            return None
        report = self._parsed.get(("validation", validation_id))
        if not isinstance(report, Validation):
            row = session.get(ValidationRow, validation_id)
            assert row is not None
            report = Validation.model_validate(row.report)
            if remember:
                self._remember(("validation", validation_id), report)
        return validation_id, report

    def _remember(self, key: tuple[str, object], value: _T) -> _T:
        """Keep a parsed record; the oldest go first (a few: they can be large)."""
        self._parsed[key] = value
        while len(self._parsed) > _PARSED_KEPT:
            self._parsed.pop(next(iter(self._parsed)), None)
        return value


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def finished_before(txn: TransactionRow, cutoff: dt.datetime) -> bool:
    finished = txn.finished_at
    if finished is None:
        return False
    if finished.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        finished = finished.replace(tzinfo=dt.UTC)
    return finished <= cutoff
