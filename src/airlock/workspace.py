"""The Airlock library: one workspace, its plans, and everything that may be done to them.

This is the one door every other door (command line, HTTP service, agent tools) goes through, a
facade over modules that each hold one idea: who may act (:mod:`~airlock.permissions`), a plan's
states (:mod:`~airlock.lifecycle`), the state database (:mod:`~airlock.store`), whether a plan
may be applied (:mod:`~airlock.approval`), the one transaction runner for apply, rollback and
recovery (:mod:`~airlock.transactions`), rollback checks (:mod:`~airlock.rollback`) and purges
(:mod:`~airlock.housekeeping`).

Every action takes the :class:`~airlock.permissions.Principal` it is done by (``by``); a library
caller that names none acts as the local operator, the operating-system account running it.
Opening a workspace recovers any transaction a crashed process left half-done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from airlock import audit, housekeeping, journal, rollback
from airlock.approval import applyable_report, refuse_if_stale
from airlock.bodies import check_staged, content_of, store_inline
from airlock.content import Blob, ContentStore
from airlock.db import UploadRow, utcnow
from airlock.errors import (
    AirlockError,
    InputError,
    NotFoundError,
    RollbackConflictError,
    StalePlanError,
    failed_and_undone,
)
from airlock.journal import Hook, Progress, Step
from airlock.lifecycle import Status
from airlock.paths import STATE_DIR
from airlock.permissions import Action, Principal, acting, authorize
from airlock.plan import Write, check_plan_id, new_plan_id, parse_plan
from airlock.plan_lists import PER_PAGE, PlanFilter, PlanPage, Tab
from airlock.policy import DEFAULT_POLICY_TOML, Policy, load_policy
from airlock.recording import record_decision, record_plan, record_validation
from airlock.records import ApplyResult, PlanRecord, Recovered
from airlock.rollback import Conflict, find_conflicts
from airlock.storage import Storage, open_storage
from airlock.store import Store, ValidationSummary
from airlock.transactions import APPLY, ROLLBACK, Transactions, audit_change, audit_versions
from airlock.validate import validate

STORAGE_FILE = "storage"
"""In the state folder: the location of the files when they are not in the workspace folder."""


def stored_location(state_dir: Path) -> str | None:
    try:
        return (state_dir / STORAGE_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


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
        self.location = stored_location(self.state_dir) or str(self.root)
        """Where the files are: this folder, or an address such as ``gs://BUCKET/prefix``."""
        self.storage: Storage = storage if storage is not None else open_storage(self.location)
        self.content = ContentStore(self.state_dir / "content")
        """File bodies too big to keep inline in a plan (see :mod:`airlock.content`)."""
        try:
            self.store = Store(self.state_dir, database_url)
        except BaseException:
            self.storage.close()
            raise
        self.audit_anchor = self.store.anchor
        self.transactions = Transactions(self.store, self.storage, self.state_dir)
        self.gc_kept: list[str] = []
        """What the last :meth:`gc` kept, and why."""
        self.gc_content: list[str] = []
        """The stored bodies the last :meth:`gc` removed (no plan named them)."""
        if recover:
            self.transactions.recovered.extend(self.recover())

    @classmethod
    def init(
        cls, root: Path, *, database_url: str | None = None, storage: str | None = None
    ) -> Workspace:
        """Prepare ``root`` (creating it and its default areas if missing) and open it.

        ``storage`` puts the files elsewhere (``gs://BUCKET[/prefix]``); the state (policy,
        journal, locks, stored bodies, the database) stays in ``root/.airlock`` on local disk."""
        root = Path(root).absolute()
        if root.exists() and not root.is_dir():
            raise InputError(f"{str(root)!r} is not a folder", hint="choose a folder")
        state = root / STATE_DIR
        location = stored_location(state)
        if storage is not None and location not in (None, storage):
            raise InputError(
                f"{str(root)!r} is already the workspace of {location!r}, not {storage!r}",
                hint="choose another folder for the state of the new location",
            )
        files = open_storage(storage) if storage is not None else None
        try:
            for sub in ("trash", "journal", "locks"):
                (state / sub).mkdir(parents=True, exist_ok=True)
            state.chmod(0o700)
            if storage is not None:
                (state / STORAGE_FILE).write_text(storage + "\n", encoding="utf-8")
            policy_file = state / "policy.toml"
            if not policy_file.exists():
                policy_file.write_text(DEFAULT_POLICY_TOML, encoding="utf-8")
            if files is None:
                for area in load_policy(policy_file).areas:
                    (root / area).mkdir(exist_ok=True)
            else:
                areas = [(area,) for area in load_policy(policy_file).areas]
                for folder in [(STATE_DIR,), (STATE_DIR, "trash"), *areas]:
                    if files.stat(folder) is None:
                        files.mkdir(folder)
        except BaseException:
            if files is not None:
                files.close()
            raise
        return cls(root, database_url=database_url, storage=files)

    def close(self) -> None:
        self.store.close()
        self.storage.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A database transaction for modules built on this one (tokens, sessions, runs)."""
        with self.store.write() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with self.store.read() as session:
            yield session

    @property
    def recovered(self) -> list[Recovered]:
        """Transactions this workspace undid for a process that had died (when opened, and
        before an apply or rollback on their scope)."""
        return self.transactions.recovered

    @property
    def recovery_failures(self) -> list[str]:
        """Transactions the last recovery could not undo, and why."""
        return self.transactions.failures

    # --- plans ----------------------------------------------------------------------------------

    def submit(
        self,
        data: object,
        *,
        plan_id: str | None = None,
        by: Principal | None = None,
        staged: Mapping[str, int] | None = None,
    ) -> PlanRecord:
        """Record a new plan, written by ``by`` (whatever its ``author`` field says: the author
        is always the principal that submits). Submitting the same id with the same content
        again is a no-op.

        Inline bodies go into the content store (:func:`~airlock.bodies.store_inline`). A write
        may name a stored body (``sha256`` and ``size``) only if ``by`` uploaded it
        (:meth:`upload`) or it is in ``staged`` (digest -> size): what this caller itself put
        into the store for this plan, as a sandboxed run does.
        """
        by = acting(by)
        authorize(by, Action.SUBMIT)
        plan = parse_plan(data)
        if plan.author != by.name:
            plan = plan.model_copy(update={"author": by.name})
        plan_id = check_plan_id(plan_id) if plan_id else new_plan_id()
        named = {op.sha256 for op in plan.operations if isinstance(op, Write) and op.sha256}
        with self.store.read() as session:
            uploaded = self.store.uploads_by(session, by.name, named)
        check_staged(plan, {**uploaded, **(staged or {})})
        plan, _inline = store_inline(plan, self.content)
        return record_plan(self.store, plan, plan_id, by)

    def upload(self, chunks: Iterable[bytes], *, by: Principal | None = None) -> Blob:
        """Put a file body into the content store, streamed in chunks (never whole in memory),
        so that a plan of ``by`` can name it by SHA-256 and size instead of carrying it."""
        by = acting(by)
        authorize(by, Action.SUBMIT)
        blob = self.content.put(chunks)
        with self.store.write() as session:
            session.add(UploadRow(sha256=blob.sha256, size=blob.size, uploaded_by=by.name))
        return blob

    def get(self, plan_id: str, *, by: Principal | None = None) -> PlanRecord:
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return self.store.record(session, self.store.plan(session, plan_id), remember=True)

    def list_plans(
        self, *, status: str | None = None, scope: str | None = None, by: Principal | None = None
    ) -> list[PlanRecord]:
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            rows = self.store.plans(session, status, scope)
            return [self.store.record(session, row, full=False) for row in rows]

    def plan_summaries(
        self, *, status: str | None = None, scope: str | None = None, by: Principal | None = None
    ) -> dict[str, ValidationSummary]:
        """The latest validation's verdict of every plan :meth:`list_plans` lists (one query,
        without the changes)."""
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return self.store.validation_summaries(session, status, scope)

    def plan_page(
        self,
        tab: Tab = "review",
        where: PlanFilter | None = None,
        *,
        page: int = 1,
        per_page: int = PER_PAGE,
        by: Principal | None = None,
    ) -> PlanPage:
        """One page of the plans on ``tab`` (:func:`~airlock.plan_lists.tab_of`) that match
        ``where``, newest first, with how many match on every tab: a few queries whatever the
        number of plans, and no plan or report parsed."""
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return self.store.plan_page(session, tab, where or PlanFilter(), page, per_page)

    def validate(self, plan_id: str, *, by: Principal | None = None) -> PlanRecord:
        """Simulate the plan against the workspace now; record the report and its preconditions."""
        by = acting(by)
        with self.store.read() as session:
            row = self.store.plan(session, plan_id)
            authorize(by, Action.VALIDATE, row)
            plan = self.store.parsed_plan(row)
        report = validate(plan, self.storage, self.policy, self.content)
        return record_validation(self.store, plan_id, by, report)

    def approve(
        self,
        plan_id: str,
        *,
        by: Principal | None = None,
        comment: str = "",
        validation_id: int | None = None,
    ) -> PlanRecord:
        """Approve the plan's latest validation; with ``validation_id``, only if that is the one
        the approver looked at (a newer report is refused: the plan changed since)."""
        return record_decision(
            self.store, plan_id, Status.APPROVED, acting(by), comment, validation_id
        )

    def reject(
        self,
        plan_id: str,
        *,
        by: Principal | None = None,
        comment: str = "",
        validation_id: int | None = None,
    ) -> PlanRecord:
        return record_decision(
            self.store, plan_id, Status.REJECTED, acting(by), comment, validation_id
        )

    # --- apply ----------------------------------------------------------------------------------

    def check_applyable(self, plan_id: str, *, by: Principal | None = None) -> None:
        """Raise the error ``apply`` would raise now (permission, status, approval, staleness),
        if any: for doors that start an apply in the background and want to refuse at once."""
        with self.store.read() as session:
            row = self.store.plan(session, plan_id)
            report = applyable_report(session, row, acting(by), self.audit_anchor.key)
        refuse_if_stale(plan_id, report, self.storage)

    def apply(
        self,
        plan_id: str,
        *,
        by: Principal | None = None,
        progress: Progress | None = None,
        hook: Hook | None = None,
        lock_timeout: float = 30.0,
    ) -> ApplyResult:
        """Apply an approved (or approval-free) plan all-or-nothing, under the scope lock."""
        by = acting(by)
        with self.store.read() as session:
            row = self.store.plan(session, plan_id)
            authorize(by, Action.APPLY, row)
            scope = row.scope
        with self.transactions.scope(_split(scope), by, lock_timeout):
            with self.store.write() as session:
                row = self.store.plan(session, plan_id)
                body = row.body
                report = applyable_report(session, row, by, self.audit_anchor.key)
                refuse_if_stale(plan_id, report, self.storage)
                txn_id = self.transactions.new_id()
                steps = journal.compile_apply(report["changes"], txn_id)
                self.transactions.begin(session, row, APPLY, txn_id, steps, by)
            changes = len(report["changes"])
            failure = self.transactions.run(
                txn_id, steps, content_of(body, self.content), hook=hook, progress=progress
            )
            if failure is not None:
                differs = self.transactions.undo_differs(report)
                self.transactions.failed_apply(txn_id, by, failure, differs)
                why = failed_and_undone(
                    failure.cause, str(failure), failure.hint, conflict=StalePlanError
                )
                return ApplyResult(
                    plan_id, False, 0, changes, txn_id, str(failure), differs, failure=why
                )
            self.transactions.commit(
                txn_id,
                plan_id,
                APPLY,
                by,
                "applied",
                {
                    "digest": row.digest,
                    "transaction": txn_id,
                    "operations": [audit_change(c) for c in report["changes"]],
                    "kept_aside": journal.kept_aside(steps, txn_id),
                    **audit_versions(report["preconditions"]),
                },
            )
        return ApplyResult(plan_id, True, changes, 0, txn_id)

    def unfinished(self) -> list[str]:
        """Transactions a process that is gone left running: what `airlock recover` undoes."""
        return self.transactions.unfinished()

    # --- rollback -------------------------------------------------------------------------------

    def rollback_conflicts(self, plan_id: str, *, by: Principal | None = None) -> list[Conflict]:
        """What a rollback would have to refuse or override now."""
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            _row, txn, changes = rollback.applied_plan(self.store, session, plan_id, None)
            later = rollback.later_conflicts(self.store, session, txn, changes)
        return later + find_conflicts(self.storage, changes)

    def check_rollback(
        self, plan_id: str, *, force: bool = False, by: Principal | None = None
    ) -> list[Conflict]:
        """Raise the error ``rollback`` would raise now; else return what ``force`` sets aside
        (for doors that start a rollback in the background and want to refuse at once)."""
        with self.store.read() as session:
            _row, txn, changes = rollback.applied_plan(self.store, session, plan_id, acting(by))
            later = rollback.later_conflicts(self.store, session, txn, changes)
        rollback.refuse_incomplete_trash(self.storage, plan_id, txn.id, changes)
        return rollback.refuse(plan_id, later, find_conflicts(self.storage, changes), force)

    def rollback(
        self,
        plan_id: str,
        *,
        by: Principal | None = None,
        force: bool = False,
        progress: Progress | None = None,
        hook: Hook | None = None,
        lock_timeout: float = 30.0,
    ) -> ApplyResult:
        """Restore the exact prior bytes of an applied plan, all-or-nothing."""
        by = acting(by)
        with self.store.read() as session:
            scope = rollback.applied_plan(self.store, session, plan_id, by)[0].scope
        with self.transactions.scope(_split(scope), by, lock_timeout):
            with self.store.write() as session:
                row, applied, changes = rollback.applied_plan(self.store, session, plan_id, by)
                rollback.refuse_incomplete_trash(self.storage, plan_id, applied.id, changes)
                conflicts = rollback.refuse(
                    plan_id,
                    rollback.later_conflicts(self.store, session, applied, changes),
                    find_conflicts(self.storage, changes),
                    force,
                )
                txn_id = self.transactions.new_id()
                steps = journal.compile_rollback([Step.from_json(s) for s in applied.steps], txn_id)
                if conflicts:
                    steps = rollback.forced_steps(self.storage, steps, conflicts, txn_id)
                self.transactions.begin(session, row, ROLLBACK, txn_id, steps, by)
            failure = self.transactions.run(
                txn_id, steps, lambda _op: b"", hook=hook, progress=progress
            )
            if failure is not None:
                self.transactions.undone(
                    txn_id,
                    ROLLBACK,
                    by,
                    str(failure),
                    None,
                    {"transaction": txn_id, "rollback": True, "error": str(failure)},
                )
                raise failed_and_undone(
                    failure.cause,
                    f"rollback of {plan_id!r} failed and was undone: {failure.message}",
                    failure.hint or "fix the cause, then retry the rollback",
                    conflict=RollbackConflictError,
                ) from failure
            self.transactions.commit(
                txn_id,
                plan_id,
                ROLLBACK,
                by,
                "rolled_back",
                {
                    "transaction": txn_id,
                    "of_transaction": applied.id,
                    "forced": bool(conflicts),
                    "set_aside": [str(c) for c in conflicts],
                    "operations": [audit_change(c.model_dump(mode="json")) for c in changes],
                    "kept_aside": journal.kept_aside(steps, txn_id),
                },
            )
        return ApplyResult(plan_id, True, len(changes), 0, txn_id)

    # --- recovery and housekeeping --------------------------------------------------------------

    def recover(self, *, by: Principal | None = None, resolve: bool = False) -> list[Recovered]:
        """Undo every transaction a crashed process left running (skips ones still alive).

        One whose undo cannot finish (a read-only or full filesystem) is left running and listed
        in ``recovery_failures``; its scope refuses applies until it is recovered. ``resolve``:
        see :meth:`~airlock.transactions.Transactions.recover`.
        """
        by = acting(by)
        authorize(by, Action.RECOVER)
        return self.transactions.recover_all(by, resolve)

    def gc(
        self,
        *,
        by: Principal | None = None,
        older_than_days: float | None = None,
        now: dt.datetime | None = None,
    ) -> list[str]:
        """Purge kept-aside files of transactions finished more than the retention period ago
        (what was kept instead, and why, is in ``gc_kept``)."""
        by = acting(by)
        authorize(by, Action.GC)
        days = self.policy.retention_days if older_than_days is None else older_than_days
        now = now or utcnow()
        purged, self.gc_kept = housekeeping.gc(
            self.store, self.storage, self.state_dir, by, days, now
        )
        self.gc_content = housekeeping.collect_content(self.store, self.content, days, now)
        return purged

    # --- audit ----------------------------------------------------------------------------------

    def audit_verify(
        self, *, expect_head: str | None = None, by: Principal | None = None
    ) -> audit.ChainReport:
        """Check the chain, its signatures and head record, and the state tables against it;
        with ``expect_head``, also that the chain holds that hash (one kept elsewhere)."""
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return self.audit_anchor.verify(session, expect_head)

    def audit_verify_plan(self, plan_id: str, *, by: Principal | None = None) -> audit.ChainReport:
        """One plan's events, each checked on its own (hash and signature): cheap enough for
        every render of its page; the whole chain is :meth:`audit_verify`'s."""
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return audit.verify_plan_events(session, self.audit_anchor.key, plan_id)

    def audit_reanchor(
        self, *, by: Principal | None = None
    ) -> tuple[audit.Head | AirlockError | None, audit.Head]:
        """Re-anchor the head record at the chain's newest event, on purpose (after restoring a
        backup of the database alone); returns what the head record said before, and the new."""
        authorize(acting(by), Action.ANCHOR_AUDIT)
        with self.store.read() as session:
            return self.audit_anchor.reanchor(session)

    def audit_events(
        self, plan_id: str | None = None, *, by: Principal | None = None
    ) -> list[dict[str, Any]]:
        authorize(acting(by), Action.READ)
        with self.store.read() as session:
            return list(audit.events(session, plan_id))


def _split(scope: str) -> tuple[str, ...]:
    return tuple(scope.split("/"))
