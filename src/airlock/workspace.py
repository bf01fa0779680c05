"""The Airlock library: one workspace, its plans, and everything that may be done to them.

This is the one door every other door (command line, HTTP service, agent tools) goes through.
It ties the pure parts together — :mod:`~airlock.plan`, :mod:`~airlock.validate`,
:mod:`~airlock.policy`, :mod:`~airlock.journal`, :mod:`~airlock.rollback` — with the state store
(:mod:`~airlock.db`, :mod:`~airlock.audit`), the scope locks and a storage backend.

Opening a workspace recovers any transaction a crashed process left half-done.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from airlock import audit, audit_anchor, journal
from airlock.content import ContentStore
from airlock.db import (
    DecisionRow,
    PlanRow,
    TransactionRow,
    ValidationRow,
    database_error,
    make_engine,
    migrate,
    sqlite_url,
    utcnow,
)
from airlock.errors import (
    AirlockError,
    BusyError,
    InputError,
    NotFoundError,
    NotPermittedError,
    PlanInvalidError,
    PlanStateError,
    RollbackConflictError,
    StalePlanError,
    StorageError,
)
from airlock.journal import Cursor, Hook, Progress, Step, StepFailed
from airlock.locks import lock_key, scope_lock
from airlock.paths import STATE_DIR, RelPath
from airlock.plan import Plan, Write, check_plan_id, new_plan_id, parse_plan, stored_plan
from airlock.policy import DEFAULT_POLICY_TOML, Policy, load_policy
from airlock.records import ApplyResult, PlanRecord, Recovered
from airlock.rollback import Conflict, find_conflicts, missing_kept_aside
from airlock.storage import Storage
from airlock.storage.local import LocalStorage
from airlock.validate import Change, Validation, stale_paths, validate

log = logging.getLogger("airlock")

# Plan statuses, and the ones each action may start from.
VALIDATABLE = {"submitted", "invalid", "validated", "approved", "failed"}
DECIDABLE = {"validated", "approved"}
APPLYABLE = {"validated", "approved"}


_T = TypeVar("_T")
_PARSED_KEPT = 16
"""How many parsed plans and reports a workspace keeps (see ``Workspace._remember``)."""


def _new_txn_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def _content_of(body: str, store: ContentStore) -> journal.Content:
    """Each write's bytes, from the plan's stored JSON (validated at submit), parsed on first use;
    a stored body streams from the content store in chunks."""
    operations: list[dict[str, Any]] = []

    def content(index: int) -> bytes | Iterator[bytes]:
        if not operations:
            operations.extend(json.loads(body)["operations"])
        op = operations[index]
        if op.get("text") is not None:
            return str(op["text"]).encode("utf-8")
        if op.get("sha256") is not None:
            return store.read(op["sha256"])
        return base64.b64decode(op["base64"], validate=True)

    return content


def _check_staged(plan: Plan, staged: Mapping[str, int] | None) -> None:
    """Refuse a write naming a stored body its submitter did not stage in this call.

    Digests of files in other cases appear in the audit log; a plan that could name any blob
    could copy another client's confidential file into this case. Only a caller that has just
    put the bytes into the store itself (a sandboxed run) may refer to them.
    """
    for number, op in enumerate(plan.operations, 1):
        blob = op.stored if isinstance(op, Write) else None
        if blob is None:
            continue
        assert isinstance(op, Write)
        if staged is None or staged.get(blob.sha256) != blob.size:
            raise InputError(
                f"operation {number} (write {op.path!r}) names stored content {blob.sha256} "
                "that was not staged by this submission",
                hint="send the file's bytes as 'text' or 'base64'; stored content can only come "
                "from a sandboxed run's own capture",
            )


class Workspace:
    """An Airlock workspace: a folder of files, its policy, and its state."""

    def __init__(
        self,
        root: Path,
        *,
        database_url: str | None = None,
        storage: Storage | None = None,
        recover: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.state_dir = self.root / STATE_DIR
        if not self.state_dir.is_dir():
            raise NotFoundError(
                f"{str(self.root)!r} is not an Airlock workspace (no {STATE_DIR}/ folder)",
                hint=f"run `airlock init --workspace {self.root}` first",
            )
        self.policy: Policy = load_policy(self.state_dir / "policy.toml")
        self.storage: Storage = storage if storage is not None else LocalStorage(self.root)
        self.content = ContentStore(self.state_dir / "content")
        """File bodies too big to keep inline in a plan (see :mod:`airlock.content`)."""
        url = (
            database_url
            or os.environ.get("AIRLOCK_DATABASE_URL")
            or sqlite_url(self.state_dir / "airlock.db")
        )
        self.engine: Engine = make_engine(url)
        try:
            migrate(self.engine, url)
        except OperationalError as exc:
            self.close()
            raise database_error(exc, self.state_dir) from exc
        self._read_sessions = sessionmaker(
            self.engine.execution_options(read_only=True), expire_on_commit=False
        )
        try:
            with self.read_session() as session:
                self.audit_anchor = audit_anchor.Anchor.open(self.state_dir, session)
                """The audit key and head record, outside the database (see that module)."""
        except OperationalError as exc:
            self.close()
            raise database_error(exc, self.state_dir) from exc
        except BaseException:
            self.close()
            raise
        self._sessions = sessionmaker(
            self.engine, expire_on_commit=False, info={audit.KEY_INFO: self.audit_anchor.key}
        )
        self._parsed: dict[tuple[str, object], object] = {}
        """Plans and reports parsed from the database, by digest and validation id (both are
        immutable once stored); callers treat them as read-only."""
        self.recovery_failures: list[str] = []
        self.gc_kept: list[str] = []
        self.recovered: list[Recovered] = []
        self.recovered = self.recover() if recover else []

    # --- set-up -------------------------------------------------------------------------------

    @classmethod
    def init(cls, root: Path, *, database_url: str | None = None) -> Workspace:
        """Prepare ``root`` (creating it and its default areas if missing) and open it."""
        root = Path(root).absolute()
        if root.exists() and not root.is_dir():
            raise InputError(f"{str(root)!r} is not a folder", hint="choose a folder")
        state = root / STATE_DIR
        for sub in ("trash", "journal", "locks"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        policy_file = state / "policy.toml"
        if not policy_file.exists():
            policy_file.write_text(DEFAULT_POLICY_TOML, encoding="utf-8")
        for area in load_policy(policy_file).areas:
            (root / area).mkdir(exist_ok=True)
        return cls(root, database_url=database_url)

    def close(self) -> None:
        self.engine.dispose()
        self.storage.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A database transaction (committed when the block ends) for modules built on this one.

        Once it has committed, the audit events it appended are anchored in the head record
        (after the commit, never before: a crash in between leaves the head behind, not ahead).
        """
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise database_error(exc, self.state_dir) from exc
        if session.info.get(audit.APPENDED_INFO):
            try:
                with self.read_session() as reading:
                    self.audit_anchor.advance(reading)
            except Exception as exc:  # committed already: a head left behind is what verify allows
                log.warning("the audit head record was not advanced: %s", exc)

    _session = session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only database transaction: it never waits for writers."""
        with self._read_sessions.begin() as session:
            yield session

    # --- plans ----------------------------------------------------------------------------------

    def submit(
        self,
        data: object,
        *,
        plan_id: str | None = None,
        actor: str | None = None,
        staged: Mapping[str, int] | None = None,
    ) -> PlanRecord:
        """Record a new plan. Submitting the same id with the same content again is a no-op.

        A write may name a body in the content store (``sha256`` and ``size``) only if it is in
        ``staged`` (digest -> size): what this caller itself put into the store for this plan,
        as a sandboxed run does. The doors (CLI, HTTP) never pass ``staged``, so a plan from
        outside cannot refer to stored content; see :func:`_check_staged`.
        """
        plan = parse_plan(data)
        _check_staged(plan, staged)
        plan_id = check_plan_id(plan_id) if plan_id else new_plan_id()
        actor = actor or plan.author
        with self._session() as session:
            existing = session.get(PlanRow, plan_id)
            if existing is not None:
                if existing.digest != plan.digest:
                    raise PlanStateError(
                        f"plan {plan_id!r} already exists with different content",
                        hint="plans never change once submitted; submit the new one under a new id",
                    )
                return self._record(session, existing)
            row = PlanRow(
                id=plan_id,
                scope=plan.scope,
                description=plan.description,
                author=plan.author,
                digest=plan.digest,
                body=plan.canonical_json(),
                status="submitted",
            )
            session.add(row)
            session.flush()
            audit.append(
                session,
                "submitted",
                actor,
                plan_id,
                {"digest": plan.digest, "scope": plan.scope, "operations": len(plan.operations)},
            )
            return self._record(session, row)

    def get(self, plan_id: str) -> PlanRecord:
        with self.read_session() as session:
            return self._record(session, self._row(session, plan_id), remember=True)

    def list_plans(
        self, *, status: str | None = None, scope: str | None = None
    ) -> list[PlanRecord]:
        with self.read_session() as session:
            query = select(PlanRow).order_by(PlanRow.created_at.desc())
            if status:
                query = query.where(PlanRow.status == status)
            if scope:
                query = query.where(PlanRow.scope == scope)
            return [self._record(session, row, full=False) for row in session.scalars(query)]

    def validate(self, plan_id: str, *, actor: str = "airlock") -> PlanRecord:
        """Simulate the plan against the workspace now; record the report and its preconditions."""
        with self._session() as session:
            row = self._row(session, plan_id)
            self._require(row, VALIDATABLE, "validate")
            plan = stored_plan(row.body)
        report = validate(plan, self.storage, self.policy, self.content)
        with self._session() as session:
            row = self._row(session, plan_id)
            self._require(row, VALIDATABLE, "validate")
            session.add(
                ValidationRow(
                    plan_id=plan_id,
                    digest=row.digest,
                    valid=report.valid,
                    report=report.model_dump(mode="json"),
                )
            )
            self._set_status(row, "validated" if report.valid else "invalid")
            audit.append(
                session,
                "validated",
                actor,
                plan_id,
                {
                    "valid": report.valid,
                    "errors": [issue.message for issue in report.errors],
                    "warnings": len(report.warnings),
                    "counts": report.counts,
                    "needs_approval": report.needs_approval,
                },
            )
            session.flush()
            return self._record(session, row)

    def approve(
        self, plan_id: str, *, actor: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        """Approve the plan's latest validation; with ``validation_id``, only if that is the one
        the approver looked at (a newer report is refused: the plan changed since)."""
        return self._decide(plan_id, "approved", actor, comment, validation_id)

    def reject(
        self, plan_id: str, *, actor: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        return self._decide(plan_id, "rejected", actor, comment, validation_id)

    def _decide(
        self,
        plan_id: str,
        decision: str,
        actor: str,
        comment: str,
        validation_id: int | None = None,
    ) -> PlanRecord:
        if not actor.strip():
            raise InputError(
                "an approval or rejection needs the name of who decides", hint="pass --actor NAME"
            )
        with self._session() as session:
            row = self._row(session, plan_id)
            self._require(row, DECIDABLE, decision.removesuffix("d"))
            validation = self._latest_validation(session, plan_id)
            if validation_id is not None and (validation is None or validation.id != validation_id):
                raise PlanStateError(
                    f"the plan changed since you looked; reload: plan {plan_id!r} was checked "
                    f"again after the report you reviewed (validation {validation_id})",
                    hint="reload the plan, review its new report, and decide again",
                )
            if validation is None or not validation.valid or validation.digest != row.digest:
                raise PlanStateError(
                    f"plan {plan_id!r} has no valid validation of its current content",
                    hint=f"run `airlock plan validate {plan_id}` and review the report first",
                )
            if decision == "approved" and actor == row.author:
                raise NotPermittedError(
                    f"{actor!r} wrote plan {plan_id!r} and cannot approve it",
                    hint="a different person must approve it",
                )
            session.add(
                DecisionRow(
                    plan_id=plan_id,
                    validation_id=validation.id,
                    digest=row.digest,
                    decision=decision,
                    actor=actor,
                    comment=comment,
                )
            )
            self._set_status(row, decision)
            audit.append(
                session,
                decision,
                actor,
                plan_id,
                {"digest": row.digest, "validation": validation.id, "comment": comment},
            )
            session.flush()
            return self._record(session, row)

    # --- apply ----------------------------------------------------------------------------------

    def apply(
        self,
        plan_id: str,
        *,
        actor: str = "airlock",
        progress: Progress | None = None,
        hook: Hook | None = None,
        lock_timeout: float = 30.0,
    ) -> ApplyResult:
        """Apply an approved (or approval-free) plan all-or-nothing, under the scope lock."""
        with self._session() as session:
            scope = tuple(self._row(session, plan_id).scope.split("/"))
        with scope_lock(self.state_dir / "locks", scope, lock_timeout), self.storage.batch():
            self._recover_scope(scope, actor)
            with self._session() as session:
                row = self._row(session, plan_id)
                body, scope_text = row.body, row.scope
                raw_report = self._check_applyable(session, row)
                self._refuse_if_stale(plan_id, raw_report)
                txn_id = _new_txn_id()
                steps = journal.compile_apply(raw_report["changes"], txn_id)
                session.add(
                    TransactionRow(
                        id=txn_id,
                        plan_id=plan_id,
                        kind="apply",
                        status="running",
                        scope=scope_text,
                        steps=[step.to_json() for step in steps],
                        actor=actor,
                    )
                )
                self._set_status(row, "applying")
            # The journal is committed (and fsynced) before the first step runs.
            cursor = Cursor(self._cursor_path(txn_id))
            try:
                journal.run_steps(
                    self.storage,
                    steps,
                    cursor,
                    _content_of(body, self.content),
                    hook=hook or journal._no_hook,
                    progress=progress,
                )
                self.storage.sync()
            except StepFailed as failure:
                cursor.remove()
                differs = self._undo_differs(raw_report)
                try:
                    self._finish_failed(plan_id, txn_id, actor, failure, differs)
                except StorageError as exc:
                    raise StorageError(
                        f"{failure.message}; "
                        + (
                            "the workspace was restored to the state before the plan"
                            if not differs
                            else self._undo_outcome("apply", differs)
                        )
                        + f", but recording that failed: {exc.message}",
                        hint=exc.hint,
                        errno=exc.errno,
                    ) from exc
                return ApplyResult(
                    plan_id=plan_id,
                    success=False,
                    operations_completed=0,
                    operations_failed=len(raw_report["changes"]),
                    transaction_id=txn_id,
                    error=str(failure),
                    differs=differs,
                )
            except BaseException:
                # Undo could not finish (the filesystem refuses it): leave the journal running
                # so `airlock recover` completes it once the cause is fixed.
                cursor.close()
                raise
            with self._recording(plan_id, "apply"), self._session() as session:
                txn = session.get(TransactionRow, txn_id)
                assert txn is not None
                txn.status = "committed"
                txn.finished_at = utcnow()
                row = self._row(session, plan_id)
                self._set_status(row, "applied")
                audit.append(
                    session,
                    "applied",
                    actor,
                    plan_id,
                    {
                        "digest": row.digest,
                        "transaction": txn_id,
                        "operations": [_audit_change(c) for c in raw_report["changes"]],
                    },
                )
            cursor.remove()
        return ApplyResult(
            plan_id=plan_id,
            success=True,
            operations_completed=len(raw_report["changes"]),
            operations_failed=0,
            transaction_id=txn_id,
        )

    @staticmethod
    @contextmanager
    def _recording(plan_id: str, kind: str) -> Iterator[None]:
        """Around the commit that records a finished apply or rollback: every step has run and
        is durable, so if recording fails, say that (not "unchanged") and what happens next."""
        try:
            yield
        except (StorageError, BusyError) as exc:
            after = (
                "restoring the state before the plan; then apply it again"
                if kind == "apply"
                else "so the plan stays applied; then roll it back again"
            )
            raise StorageError(
                f"every change of the {kind} of plan {plan_id!r} was made on disk, but recording "
                f"the {kind} failed: {exc.message}. The {kind} is left unfinished: `airlock "
                "recover --check` and the service's /health report it, and the next apply or "
                "rollback on its scope undoes it first",
                hint=f"{exc.hint}; once that is fixed, `airlock recover` (also run when the "
                f"service starts) undoes the {kind}, {after}",
                errno=getattr(exc, "errno", None),
            ) from exc

    def unfinished(self) -> list[str]:
        """Transactions left running by a process that is gone (their scope is not locked): what
        `airlock recover` will undo. A transaction a live process is running is not listed."""
        with self.read_session() as session:
            running = list(
                session.scalars(select(TransactionRow).where(TransactionRow.status == "running"))
            )
        found = []
        for txn in running:
            try:
                with scope_lock(self.state_dir / "locks", tuple(txn.scope.split("/")), timeout=0):
                    pass
            except BusyError:
                continue  # a live apply or rollback holds the scope
            found.append(
                f"the {txn.kind} {txn.id} of plan {txn.plan_id} (scope {txn.scope}) is "
                "unfinished; `airlock recover` undoes it"
            )
        return found

    def check_applyable(self, plan_id: str) -> None:
        """Raise the error ``apply`` would raise now (status, approval, staleness), if any.

        For callers that start an apply in the background and want to refuse at once; apply
        checks all of it again under the scope lock.
        """
        with self.read_session() as session:
            raw_report = self._check_applyable(session, self._row(session, plan_id))
        self._refuse_if_stale(plan_id, raw_report)

    def _refuse_if_stale(self, plan_id: str, report: dict[str, Any]) -> None:
        contents = report.get("folder_contents")
        if contents is None and any(
            c["kind"] == "dir" and c["action"] != "mkdir" for c in report["changes"]
        ):
            raise StalePlanError(
                f"plan {plan_id!r} was validated by an older Airlock that did not record what its "
                "folders hold, so its approval cannot be checked against them",
                hint=f"run `airlock plan validate {plan_id}`, review the new report "
                "(and approve it again if it needs approval), then apply",
            )
        stale = stale_paths(report["preconditions"], self.storage, contents)
        if stale:
            raise StalePlanError(
                f"plan {plan_id!r} is stale: {len(stale)} path(s) changed since it was validated",
                hint=f"run `airlock plan validate {plan_id}`, review the new report "
                "(and approve it again if it needs approval), then apply",
                details=stale[:50],
            )

    def _check_applyable(self, session: Session, row: PlanRow) -> dict[str, Any]:
        """The stored report (as JSON, as written: parsing 10,000 changes again costs) if the
        plan may be applied now; else the error that says why not."""
        self._require(row, APPLYABLE, "apply")
        validation = self._latest_validation(session, row.id)
        if validation is None or validation.digest != row.digest:
            raise PlanStateError(
                f"plan {row.id!r} has not been validated",
                hint=f"run `airlock plan validate {row.id}` first",
            )
        report: dict[str, Any] = validation.report
        if not audit.vouches(
            session,
            self.audit_anchor.key,
            "validated",
            row.id,
            payload={"valid": report["valid"], "needs_approval": report["needs_approval"]},
            latest=True,
        ):
            raise NotPermittedError(
                f"the validation of plan {row.id!r} is not the one the audit log recorded; "
                "it may have been forged",
                hint=f"run `airlock audit verify`, then `airlock plan validate {row.id}` and "
                "review the new report",
            )
        if not report["valid"]:
            raise PlanInvalidError(
                f"plan {row.id!r} did not pass validation",
                hint="fix the errors in its report and submit a corrected plan",
                details=[issue["message"] for issue in report["errors"]],
            )
        if report["needs_approval"]:
            decision = session.scalars(
                select(DecisionRow)
                .where(DecisionRow.plan_id == row.id)
                .order_by(DecisionRow.id.desc())
                .limit(1)
            ).first()
            if (
                decision is None
                or decision.decision != "approved"
                or decision.digest != row.digest
                or decision.validation_id != validation.id
            ):
                raise NotPermittedError(
                    f"plan {row.id!r} needs a person's approval ({', '.join(report['needs_approval'])})",
                    hint=f"an approver runs `airlock plan approve {row.id} --actor NAME` after "
                    "reviewing its report",
                )
            if not audit.vouches(
                session,
                self.audit_anchor.key,
                "approved",
                row.id,
                actor=decision.actor,
                payload={"validation": decision.validation_id, "digest": decision.digest},
            ):
                raise NotPermittedError(
                    f"the approval of plan {row.id!r} is not in the audit log; it may have been "
                    "forged",
                    hint="run `airlock audit verify`; a person must approve the plan again",
                )
        return report

    def _undo_differs(self, report: dict[str, Any]) -> list[str]:
        """After an apply was undone: the validated paths that are not as they were before it.
        Only another writer acting during the apply (outside Airlock's promise) leaves any; the
        report must then say which, never "unchanged"."""
        try:
            return stale_paths(
                report["preconditions"],
                self.storage,
                report.get("folder_contents"),
                after_undo=True,
            )
        except (AirlockError, OSError) as exc:  # never what keeps a finished undo open
            text = exc.message if isinstance(exc, AirlockError) else str(exc)
            return [f"the tree could not be checked after the undo: {text}"]

    @staticmethod
    def _undo_outcome(kind: str, differs: list[str]) -> str:
        if not differs:
            return f"restored to the state before the {kind}"
        return (
            f"undone, but {len(differs)} path(s) are not as they were before the {kind} "
            "(changed by someone else meanwhile): " + "; ".join(differs[:5])
        )

    def _finish_failed(
        self, plan_id: str, txn_id: str, actor: str, failure: StepFailed, differs: list[str]
    ) -> None:
        with self._session() as session:
            txn = session.get(TransactionRow, txn_id)
            assert txn is not None
            txn.status = "undone"
            txn.error = str(failure)
            txn.finished_at = utcnow()
            row = self._row(session, plan_id)
            reason = (
                str(failure)
                if not differs
                else f"{failure}; {self._undo_outcome('apply', differs)}"
            )
            self._set_status(row, "failed", reason=reason)
            audit.append(
                session,
                "failed",
                actor,
                plan_id,
                {
                    "transaction": txn_id,
                    "error": str(failure),
                    "workspace": "unchanged" if not differs else "restored except the paths listed",
                    **({"differs": differs[:1000]} if differs else {}),
                },
            )

    # --- rollback -------------------------------------------------------------------------------

    def rollback_conflicts(self, plan_id: str) -> list[Conflict]:
        with self.read_session() as session:
            _row, txn, changes = self._applied(session, plan_id)
            later = self._later_plan_conflicts(session, txn, changes)
        return later + find_conflicts(self.storage, changes)

    def check_rollback(self, plan_id: str, *, force: bool = False) -> list[Conflict]:
        """Raise the error ``rollback`` would raise now; else return what ``force`` sets aside.

        For doors that start a rollback in the background and want to refuse at once; rollback
        checks all of it again under the scope lock.
        """
        with self.read_session() as session:
            _row, txn, changes = self._applied(session, plan_id)
            later = self._later_plan_conflicts(session, txn, changes)
        self._refuse_incomplete_trash(plan_id, txn.id, changes)
        return self._refuse_rollback(plan_id, later, find_conflicts(self.storage, changes), force)

    def _refuse_incomplete_trash(self, plan_id: str, txn_id: str, changes: list[Change]) -> None:
        missing = missing_kept_aside(self.storage, changes, journal.trash_dir(txn_id))
        if missing:
            raise RollbackConflictError(
                f"plan {plan_id!r} cannot be rolled back: {len(missing)} of the files it kept "
                "aside are gone or incomplete, so the rollback could not restore them",
                hint=f"they may have been removed by an interrupted `airlock gc` or by hand; "
                f"put them back into {STATE_DIR}/trash/{txn_id}/ from a backup, then retry. "
                "--force does not override this",
                details=missing[:50],
            )

    @staticmethod
    def _refuse_rollback(
        plan_id: str, later: list[Conflict], conflicts: list[Conflict], force: bool
    ) -> list[Conflict]:
        if later:
            raise RollbackConflictError(
                f"plan {plan_id!r} cannot be rolled back before the plans applied after "
                "it on the same paths",
                hint="roll those back first (newest first); --force does not override this",
                details=[str(c) for c in later[:50]],
            )
        if conflicts and not force:
            raise RollbackConflictError(
                f"plan {plan_id!r} cannot be rolled back cleanly: {len(conflicts)} "
                "path(s) changed since it was applied",
                forceable=True,
                hint="review them; `--force` rolls back anyway and sets these aside "
                "in the trash (listed in the audit log)",
                details=[str(c) for c in conflicts[:50]],
            )
        return conflicts

    def _later_plan_conflicts(
        self, session: Session, txn: TransactionRow, changes: list[Change]
    ) -> list[Conflict]:
        """Paths this plan touched that a plan applied after it (and not rolled back) touched
        too: rolling back first would undo or carry off that plan's work."""
        ours: set[str] = set()
        for change in changes:
            ours.update(p for p in (change.path, change.source) if p)
        ours_prefixes = {
            p[:i] for p in ours for i in range(len(p) + 1) if i == len(p) or p[i] == "/"
        }
        key = lock_key(tuple(txn.scope.split("/")))
        conflicts: list[Conflict] = []
        later = session.scalars(
            select(TransactionRow)
            .where(TransactionRow.kind == "apply")
            .where(TransactionRow.status == "committed")
            .where(TransactionRow.created_at > txn.created_at)
        )
        for other in later:
            if lock_key(tuple(other.scope.split("/"))) != key:
                continue
            plan = session.get(PlanRow, other.plan_id)
            validation = self._latest_validation(session, other.plan_id)
            if plan is None or plan.status != "applied" or validation is None:
                continue
            for change in validation.report["changes"]:
                for text in (change["path"], change.get("source")):
                    if not text:
                        continue
                    parts = text.split("/")
                    above = any("/".join(parts[:i]) in ours for i in range(1, len(parts) + 1))
                    if above or text in ours_prefixes:
                        conflicts.append(
                            Conflict(
                                text,
                                f"changed by plan {other.plan_id}, applied later; roll that "
                                "plan back first",
                            )
                        )
        return conflicts

    def rollback(
        self,
        plan_id: str,
        *,
        actor: str,
        force: bool = False,
        progress: Progress | None = None,
        hook: Hook | None = None,
        lock_timeout: float = 30.0,
    ) -> ApplyResult:
        """Restore the exact prior bytes of an applied plan, all-or-nothing."""
        with self._session() as session:
            row, _txn, _changes = self._applied(session, plan_id)
            scope = tuple(row.scope.split("/"))
        with scope_lock(self.state_dir / "locks", scope, lock_timeout), self.storage.batch():
            self._recover_scope(scope, actor)
            with self._session() as session:
                row, applied_txn, changes = self._applied(session, plan_id)
                self._refuse_incomplete_trash(plan_id, applied_txn.id, changes)
                conflicts = self._refuse_rollback(
                    plan_id,
                    self._later_plan_conflicts(session, applied_txn, changes),
                    find_conflicts(self.storage, changes),
                    force,
                )
                txn_id = _new_txn_id()
                applied_steps = [Step.from_json(s) for s in applied_txn.steps]
                steps = journal.compile_rollback(applied_steps, txn_id)
                if conflicts:
                    steps = self._forced(steps, conflicts, txn_id)
                session.add(
                    TransactionRow(
                        id=txn_id,
                        plan_id=plan_id,
                        kind="rollback",
                        status="running",
                        scope=row.scope,
                        steps=[step.to_json() for step in steps],
                        actor=actor,
                    )
                )
                self._set_status(row, "rolling_back")
            cursor = Cursor(self._cursor_path(txn_id))
            try:
                journal.run_steps(
                    self.storage,
                    steps,
                    cursor,
                    lambda _op: b"",
                    hook=hook or journal._no_hook,
                    progress=progress,
                )
                self.storage.sync()
            except StepFailed as failure:
                cursor.remove()
                with self._session() as session:
                    txn = session.get(TransactionRow, txn_id)
                    assert txn is not None
                    txn.status, txn.error, txn.finished_at = "undone", str(failure), utcnow()
                    self._set_status(self._row(session, plan_id), "applied")
                    audit.append(
                        session,
                        "failed",
                        actor,
                        plan_id,
                        {"transaction": txn_id, "rollback": True, "error": str(failure)},
                    )
                raise RollbackConflictError(
                    f"rollback of {plan_id!r} failed and was undone: {failure.message}",
                    hint=failure.hint or "fix the cause, then retry the rollback",
                ) from failure
            except BaseException:
                cursor.close()
                raise
            with self._recording(plan_id, "rollback"), self._session() as session:
                txn = session.get(TransactionRow, txn_id)
                assert txn is not None
                txn.status, txn.finished_at = "committed", utcnow()
                self._set_status(self._row(session, plan_id), "rolled_back")
                audit.append(
                    session,
                    "rolled_back",
                    actor,
                    plan_id,
                    {
                        "transaction": txn_id,
                        "of_transaction": applied_txn.id,
                        "forced": bool(conflicts),
                        "set_aside": [str(c) for c in conflicts],
                        "operations": [_audit_change(c.model_dump(mode="json")) for c in changes],
                    },
                )
            cursor.remove()
        return ApplyResult(plan_id, True, len(changes), 0, txn_id)

    def _forced(self, steps: list[Step], conflicts: list[Conflict], txn_id: str) -> list[Step]:
        """Set conflicting entries aside first, then skip every step that would act on one of
        them (or below one) or on an entry that is gone: the rest of the rollback runs as if
        the plan had never made them. Nothing is deleted; set-aside entries stay in the trash."""
        trash = journal.trash_dir(txn_id)
        extra: list[Step] = []
        untouchable: list[RelPath] = []
        for n, conflict in enumerate(conflicts):
            path = tuple(conflict.path.split("/"))
            if self.storage.stat(path) is None:
                untouchable.append(path)
            elif "modified" not in conflict.reason:
                extra.append(Step("rename", path, (*trash, f"forced-{n}")))
                untouchable.append(path)

        def blocked(step: Step) -> bool:
            return step.kind in ("rename", "rmdir") and any(
                step.path[: len(p)] == p for p in untouchable
            )

        return [steps[0], *extra, *(s for s in steps[1:] if not blocked(s))]

    def _applied(
        self, session: Session, plan_id: str
    ) -> tuple[PlanRow, TransactionRow, list[Change]]:
        row = self._row(session, plan_id)
        self._require(row, {"applied"}, "roll back")
        txn = session.scalars(
            select(TransactionRow)
            .where(TransactionRow.plan_id == plan_id)
            .where(TransactionRow.kind == "apply")
            .where(TransactionRow.status == "committed")
            .order_by(TransactionRow.created_at.desc())
        ).first()
        if txn is None:
            raise PlanStateError(f"plan {plan_id!r} has no committed apply to roll back")
        if txn.purged_at is not None:
            raise PlanStateError(
                f"plan {plan_id!r} cannot be rolled back: its kept-aside files were purged "
                f"by `airlock gc` on {txn.purged_at:%Y-%m-%d}",
            )
        validation = self._latest_validation(session, plan_id)
        assert validation is not None
        return row, txn, Validation.model_validate(validation.report).changes

    # --- recovery and housekeeping -----------------------------------------------------------

    def recover(self, *, actor: str = "airlock", resolve: bool = False) -> list[Recovered]:
        """Undo every transaction a crashed process left running (skips ones still alive).

        A transaction whose undo cannot finish (a read-only or full filesystem) is left running
        and listed in ``recovery_failures``; its scope refuses applies until it is recovered.
        ``resolve`` (an operator's `airlock recover --resolve`, when the cause cannot be fixed):
        skip the undo steps that fail, finish the rest, and close the transaction, listing what
        was skipped and every path not as it was before; nothing is deleted.
        """
        with self._session() as session:
            running = list(
                session.scalars(select(TransactionRow).where(TransactionRow.status == "running"))
            )
        done = []
        self.recovery_failures = []
        for txn in running:
            scope = tuple(txn.scope.split("/"))
            try:
                with scope_lock(self.state_dir / "locks", scope, timeout=0):
                    done.append(self._recover_one(txn.id, actor, resolve))
            except BusyError:  # the scope is locked: a live process is applying, leave it
                continue
            except AirlockError as exc:
                self.recovery_failures.append(f"transaction {txn.id} of plan {txn.plan_id}: {exc}")
        for stray in (self.state_dir / "journal").glob("*.cursor"):
            with self._session() as session:
                txn_row = session.get(TransactionRow, stray.stem)
                if txn_row is None or txn_row.status != "running":
                    stray.unlink(missing_ok=True)
        return done

    def _recover_scope(self, scope: RelPath, actor: str) -> None:
        """With the scope's lock held: first undo any transaction on it that a dead process left
        running (holding the lock proves its owner is gone). Raises if that undo cannot finish,
        so nothing is ever applied on top of a half-applied plan."""
        key = lock_key(scope)
        with self.read_session() as session:
            running = [
                txn.id
                for txn in session.scalars(
                    select(TransactionRow).where(TransactionRow.status == "running")
                )
                if lock_key(tuple(txn.scope.split("/"))) == key
            ]
        for txn_id in running:
            self.recovered.append(self._recover_one(txn_id, actor))

    def _recover_one(self, txn_id: str, actor: str, resolve: bool = False) -> Recovered:
        with self._session() as session:
            txn = session.get(TransactionRow, txn_id)
            assert txn is not None
            if txn.status != "running":
                return Recovered(txn_id, txn.plan_id, txn.kind, 0)
            steps = [Step.from_json(s) for s in txn.steps]
            plan_id, kind = txn.plan_id, txn.kind
        path = self._cursor_path(txn_id)
        started = Cursor.read(path)
        started = 0 if started is None else min(started, len(steps))
        cursor = Cursor(path)
        skipped: list[str] | None = [] if resolve else None
        with self.storage.batch():
            journal.undo_steps(self.storage, steps, started, cursor, skipped)
        self.storage.sync()
        differs: list[str] = []
        if kind == "apply":  # a rollback's undo is checked by the next rollback's conflicts
            with self.read_session() as session:
                validation = self._latest_validation(session, plan_id)
            if validation is not None:
                differs = self._undo_differs(validation.report)
        outcome = self._undo_outcome(kind, differs)
        if skipped:
            outcome = f"resolved by an operator, {len(skipped)} undo step(s) skipped; {outcome}"
        with self._session() as session:
            txn = session.get(TransactionRow, txn_id)
            assert txn is not None
            txn.status, txn.finished_at = "undone", utcnow()
            txn.error = f"interrupted; {outcome}"
            row = self._row(session, plan_id)
            if kind == "apply":
                self._set_status(row, "failed", reason=f"apply was interrupted; {outcome}")
            else:
                self._set_status(
                    row,
                    "applied",
                    reason=f"rollback was interrupted; plan is still applied; {outcome}",
                )
            audit.append(
                session,
                "recovered",
                actor,
                plan_id,
                {
                    "transaction": txn_id,
                    "kind": kind,
                    "steps_started": started,
                    "result": outcome,
                    **({"differs": differs[:1000]} if differs else {}),
                    **({"skipped": skipped} if skipped else {}),
                },
            )
        cursor.remove()
        return Recovered(txn_id, plan_id, kind, started, differs, skipped or [])

    def gc(
        self,
        *,
        actor: str = "airlock",
        older_than_days: float | None = None,
        now: dt.datetime | None = None,
    ) -> list[str]:
        """Purge kept-aside files of transactions finished more than the retention period ago."""
        days = self.policy.retention_days if older_than_days is None else older_than_days
        cutoff = (now or utcnow()) - dt.timedelta(days=days)
        purged = []
        self.gc_kept = []
        with self._session() as session:
            candidates = list(
                session.scalars(
                    select(TransactionRow)
                    .where(TransactionRow.status.in_(("committed", "undone")))
                    .where(TransactionRow.purged_at.is_(None))
                )
            )
        for txn in candidates:
            finished = txn.finished_at
            if finished is None:
                continue
            if finished.tzinfo is None:
                finished = finished.replace(tzinfo=dt.UTC)
            if finished > cutoff:
                continue
            trash = journal.trash_dir(txn.id)
            scope = tuple(txn.scope.split("/"))
            with scope_lock(self.state_dir / "locks", scope, timeout=30):
                with self.read_session() as session:
                    row = session.get(TransactionRow, txn.id)
                    if row is None or row.purged_at is not None:
                        continue
                if txn.status == "undone" and self._holds_anything(trash):
                    # An undone transaction's trash is empty once its undo is complete. Bytes
                    # still there mean the undo stopped short (e.g. a cursor lost to a power
                    # cut): keep them for a person to restore, never purge them.
                    self.gc_kept.append(
                        f"{txn.id} of plan {txn.plan_id}: kept-aside files remain after its undo; "
                        f"inspect {self.state_dir / 'trash' / txn.id}"
                    )
                    continue
                # Recorded first: a purge cut short (killed, or a full disk) leaves a
                # transaction marked purged, so no rollback runs over half its files.
                with self._session() as session:
                    row = session.get(TransactionRow, txn.id)
                    assert row is not None
                    row.purged_at = utcnow()
                    audit.append(
                        session,
                        "purged",
                        actor,
                        txn.plan_id,
                        {"transaction": txn.id, "older_than_days": days},
                    )
                self.storage.remove_tree(trash)
            purged.append(txn.id)
        self._finish_purges()
        return purged

    def _finish_purges(self) -> None:
        """Remove what an interrupted purge left in the trash of transactions marked purged."""
        with self.read_session() as session:
            done = list(
                session.scalars(
                    select(TransactionRow.id).where(TransactionRow.purged_at.is_not(None))
                )
            )
        for txn_id in done:
            trash = journal.trash_dir(txn_id)
            with contextlib.suppress(FileNotFoundError):  # another gc got there first
                self.storage.remove_tree(trash)

    def _holds_anything(self, folder: RelPath) -> bool:
        try:
            return bool(self.storage.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return False

    # --- audit ----------------------------------------------------------------------------------

    def audit_verify(self, *, expect_head: str | None = None) -> audit.ChainReport:
        """Check the chain, its signatures and head record, and the state tables against it;
        with ``expect_head``, also that the chain holds that hash (one kept elsewhere)."""
        with self.read_session() as session:
            return self.audit_anchor.verify(session, expect_head)

    def audit_verify_plan(self, plan_id: str) -> audit.ChainReport:
        """One plan's events, each checked on its own (hash and signature): cheap enough for
        every render of its page; the whole chain is :meth:`audit_verify`'s."""
        with self.read_session() as session:
            return audit.verify_plan_events(session, self.audit_anchor.key, plan_id)

    def audit_reanchor(self) -> tuple[audit.Head | AirlockError | None, audit.Head]:
        """Re-anchor the head record at the chain's newest event, on purpose (after restoring a
        backup of the database alone); returns what the head record said before, and the new."""
        with self.read_session() as session:
            return self.audit_anchor.reanchor(session)

    def audit_events(self, plan_id: str | None = None) -> list[dict[str, Any]]:
        with self.read_session() as session:
            return list(audit.events(session, plan_id))

    # --- helpers --------------------------------------------------------------------------------

    def _cursor_path(self, txn_id: str) -> Path:
        directory = self.state_dir / "journal"
        directory.mkdir(exist_ok=True)
        return directory / f"{txn_id}.cursor"

    @staticmethod
    def _row(session: Session, plan_id: str) -> PlanRow:
        row = session.get(PlanRow, plan_id)
        if row is None:
            raise NotFoundError(f"no plan {plan_id!r}", hint="list plans with `airlock plan list`")
        return row

    @staticmethod
    def _require(row: PlanRow, allowed: set[str], action: str) -> None:
        if row.status not in allowed:
            raise PlanStateError(
                f"plan {row.id!r} is {row.status}; only a plan that is "
                f"{' or '.join(sorted(allowed))} can {action}",
                hint=f"see `airlock plan show {row.id}`",
            )

    @staticmethod
    def _set_status(row: PlanRow, status: str, reason: str | None = None) -> None:
        row.status = status
        row.reason = reason
        row.updated_at = utcnow()

    @staticmethod
    def _latest_validation(session: Session, plan_id: str) -> ValidationRow | None:
        return session.scalars(
            select(ValidationRow)
            .where(ValidationRow.plan_id == plan_id)
            .order_by(ValidationRow.id.desc())
            .limit(1)
        ).first()

    def _parsed_plan(self, row: PlanRow) -> Plan:
        """The plan of ``row``, parsed once per digest (a plan never changes once submitted)."""
        plan = self._parsed.get(("plan", row.digest))
        if not isinstance(plan, Plan):
            plan = self._remember(("plan", row.digest), stored_plan(row.body))
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

    def _record(
        self, session: Session, row: PlanRow, full: bool = True, remember: bool = False
    ) -> PlanRecord:
        record = PlanRecord(
            id=row.id,
            plan=self._parsed_plan(row),
            digest=row.digest,
            status=row.status,
            reason=row.reason,
            created_at=row.created_at,
        )
        if full:
            latest = self._parsed_validation(session, row.id, remember)
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


_CHANGE_DEFAULTS = {
    name: info.default for name, info in Change.model_fields.items() if not info.is_required()
}


def _audit_change(change: dict[str, Any]) -> dict[str, Any]:
    """A change as the audit log records it: its paths and hashes, without empty fields."""
    return {k: v for k, v in change.items() if _CHANGE_DEFAULTS.get(k, ...) != v}
