"""One runner for every change Airlock makes to the files: apply, rollback, and their undo when a
step fails or a process dies part-way.

A transaction is crash-safe the same way whatever it does:

1. its steps are written to the database (``running``) and committed before the first runs;
2. a cursor file beside the state counts the steps started;
3. the steps run, then the storage is synced;
4. a failed step undoes the ones before it, and the transaction is recorded ``undone``;
5. otherwise the transaction is recorded ``committed`` in one database commit, with the plan's
   new state and its audit event.

A process that dies between 1 and 5 leaves the transaction ``running``: whoever next holds its
scope's lock (or ``airlock recover``) undoes it from the cursor (:meth:`Transactions.recover`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from airlock import audit, journal
from airlock.db import PlanRow, TransactionRow, utcnow
from airlock.errors import AirlockError, BusyError, StorageError
from airlock.journal import Cursor, Hook, Progress, Step, StepFailed
from airlock.lifecycle import Status
from airlock.locks import lock_key, scope_lock
from airlock.paths import RelPath
from airlock.permissions import Principal
from airlock.records import Recovered
from airlock.storage import Storage
from airlock.storage.base import stored_identity
from airlock.store import Store
from airlock.validate import Change, stale_paths


@dataclass(frozen=True)
class Kind:
    """What a transaction does, and the plan's state while it runs, after it, and after its undo."""

    name: str
    running: Status
    done: Status
    undone: Status


APPLY = Kind("apply", Status.APPLYING, Status.APPLIED, Status.FAILED)
ROLLBACK = Kind("rollback", Status.ROLLING_BACK, Status.ROLLED_BACK, Status.APPLIED)
KINDS = {kind.name: kind for kind in (APPLY, ROLLBACK)}


_CHANGE_DEFAULTS = {
    name: info.default for name, info in Change.model_fields.items() if not info.is_required()
}


def audit_change(change: dict[str, Any]) -> dict[str, Any]:
    """A change as the audit log records it: its paths and hashes, without empty fields."""
    return {k: v for k, v in change.items() if _CHANGE_DEFAULTS.get(k, ...) != v}


def audit_versions(preconditions: dict[str, list[object] | None]) -> dict[str, Any]:
    """For the audit event of an apply: ``{"versions": {path: ...}}``, the store's own version
    and checksums of every entry the plan was validated against and applied on (a GCS object's
    generation, md5 and crc32c); ``{}`` on a filesystem, whose entries have none."""
    found = {path: stored_identity(fp) for path, fp in sorted(preconditions.items())}
    versions = {path: version for path, version in found.items() if version is not None}
    return {"versions": versions} if versions else {}


def undo_outcome(kind: str, differs: list[str]) -> str:
    if not differs:
        return f"restored to the state before the {kind}"
    return (
        f"undone, but {len(differs)} path(s) are not as they were before the {kind} "
        "(changed by someone else meanwhile): " + "; ".join(differs[:5])
    )


class Transactions:
    """The runner, over one workspace's state store, storage and journal folder."""

    def __init__(self, store: Store, storage: Storage, state_dir: Path) -> None:
        self.store = store
        self.storage = storage
        self.state_dir = state_dir
        self.recovered: list[Recovered] = []
        """Transactions this workspace undid for a process that had died."""
        self.failures: list[str] = []
        """Transactions the last :meth:`recover_all` could not undo (and why)."""
        self._cursors: dict[str, Cursor] = {}
        """Cursors of transactions whose steps have run, until their commit is recorded."""

    # --- running -----------------------------------------------------------------------------

    @contextmanager
    def scope(self, scope: RelPath, by: Principal, timeout: float) -> Iterator[None]:
        """Hold the scope's lock, batch storage calls, and first undo any transaction on the
        scope that a dead process left running (holding the lock proves its owner is gone);
        raise if that undo cannot finish, so nothing is ever done on top of a half-done plan."""
        with scope_lock(self.state_dir / "locks", scope, timeout), self.storage.batch():
            key = lock_key(scope)
            with self.store.read() as session:
                running = [
                    txn.id
                    for txn in self.store.running(session)
                    if lock_key(tuple(txn.scope.split("/"))) == key
                ]
            for txn_id in running:
                self.recovered.append(self.recover(txn_id, by))
            yield

    @staticmethod
    def new_id() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)

    def begin(
        self,
        session: Session,
        row: PlanRow,
        kind: Kind,
        txn_id: str,
        steps: list[Step],
        by: Principal,
    ) -> None:
        """Record the transaction's steps (committed with ``session``, before any runs)."""
        session.add(
            TransactionRow(
                id=txn_id,
                plan_id=row.id,
                kind=kind.name,
                status="running",
                scope=row.scope,
                steps=[step.to_json() for step in steps],
                actor=by.name,
            )
        )
        self.store.set_status(row, kind.running)

    def run(
        self,
        txn_id: str,
        steps: list[Step],
        content: journal.Content,
        *,
        hook: Hook | None,
        progress: Progress | None,
    ) -> StepFailed | None:
        """Run the steps and sync; a failed step is undone (and returned). Anything else that
        stops them (the undo itself failing, a signal) leaves the transaction running, for
        recovery to complete once the cause is fixed."""
        cursor = Cursor(self._cursor_path(txn_id))
        try:
            journal.run_steps(
                self.storage,
                steps,
                cursor,
                content,
                hook=hook or journal._no_hook,
                progress=progress,
            )
            self.storage.sync()
        except StepFailed as failure:
            cursor.remove()
            return failure
        except BaseException:
            cursor.close()
            raise
        self._cursors[txn_id] = cursor  # removed once the commit is recorded
        return None

    def commit(
        self,
        txn_id: str,
        plan_id: str,
        kind: Kind,
        by: Principal,
        event_kind: str,
        payload: dict[str, Any],
    ) -> None:
        """Record the finished transaction of ``plan_id``, the plan's new state and its audit
        event at once."""
        cursor = self._cursors.pop(txn_id)
        try:
            with self._recording(plan_id, kind), self.store.write() as session:
                txn = self.store.transaction(session, txn_id)
                txn.status, txn.finished_at = "committed", utcnow()
                self.store.set_status(self.store.plan(session, plan_id), kind.done)
                audit.append_by(session, event_kind, by, plan_id, payload)
        except BaseException:
            cursor.close()
            raise
        cursor.remove()

    def undone(
        self,
        txn_id: str,
        kind: Kind,
        by: Principal,
        error: str,
        reason: str | None,
        payload: dict[str, Any],
    ) -> None:
        """Record a transaction whose failed step was undone, and the plan's state after it."""
        with self.store.write() as session:
            txn = self.store.transaction(session, txn_id)
            txn.status, txn.error, txn.finished_at = "undone", error, utcnow()
            self.store.set_status(self.store.plan(session, txn.plan_id), kind.undone, reason)
            audit.append_by(session, "failed", by, txn.plan_id, payload)

    @staticmethod
    @contextmanager
    def _recording(plan_id: str, kind: Kind) -> Iterator[None]:
        """Around the commit that records a finished apply or rollback: every step has run and
        is durable, so if recording fails, say that (not "unchanged") and what happens next."""
        try:
            yield
        except (StorageError, BusyError) as exc:
            after = (
                "restoring the state before the plan; then apply it again"
                if kind is APPLY
                else "so the plan stays applied; then roll it back again"
            )
            raise StorageError(
                f"every change of the {kind.name} of plan {plan_id!r} was made on disk, but "
                f"recording the {kind.name} failed: {exc.message}. The {kind.name} is left "
                "unfinished: `airlock recover --check` and the service's /health report it, and "
                "the next apply or rollback on its scope undoes it first",
                hint=f"{exc.hint}; once that is fixed, `airlock recover` (also run when the "
                f"service starts) undoes the {kind.name}, {after}",
                errno=getattr(exc, "errno", None),
            ) from exc

    def failed_apply(
        self, txn_id: str, by: Principal, failure: StepFailed, differs: list[str]
    ) -> None:
        """Record an apply whose failed step was undone: the plan ``failed``, and whether the
        undo left any path not as validated (``differs``: someone else changed it meanwhile)."""
        reason = str(failure) if not differs else f"{failure}; {undo_outcome('apply', differs)}"
        try:
            self.undone(
                txn_id,
                APPLY,
                by,
                str(failure),
                reason,
                {
                    "transaction": txn_id,
                    "error": str(failure),
                    "workspace": "unchanged" if not differs else "restored except the paths listed",
                    **({"differs": differs[:1000]} if differs else {}),
                },
            )
        except StorageError as exc:
            restored = (
                "the workspace was restored to the state before the plan"
                if not differs
                else undo_outcome("apply", differs)
            )
            raise StorageError(
                f"{failure.message}; {restored}, but recording that failed: {exc.message}",
                hint=exc.hint,
                errno=exc.errno,
            ) from exc

    # --- checking an undo --------------------------------------------------------------------

    def undo_differs(self, report: dict[str, Any]) -> list[str]:
        """After an apply was undone: the validated paths that are not as they were before it.
        Only another writer acting during the apply (outside Airlock's promise) leaves any; the
        report must then say which, never "unchanged"."""
        try:
            with self.storage.batch():  # each folder listed once, not once per entry in it
                return stale_paths(
                    report["preconditions"],
                    self.storage,
                    report.get("folder_contents"),
                    after_undo=True,
                )
        except (AirlockError, OSError) as exc:  # never what keeps a finished undo open
            text = exc.message if isinstance(exc, AirlockError) else str(exc)
            return [f"the tree could not be checked after the undo: {text}"]

    # --- recovery ----------------------------------------------------------------------------

    def unfinished(self) -> list[str]:
        """Transactions left running by a process that is gone (their scope is not locked): what
        `airlock recover` will undo. A transaction a live process is running is not listed."""
        with self.store.read() as session:
            running = self.store.running(session)
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

    def recover_all(self, by: Principal, resolve: bool = False) -> list[Recovered]:
        """Undo every transaction a crashed process left running (skips ones still alive);
        those whose undo cannot finish stay running and are listed in :attr:`failures`."""
        with self.store.read() as session:
            running = self.store.running(session)
        done = []
        self.failures = []
        for txn in running:
            try:
                with scope_lock(self.state_dir / "locks", tuple(txn.scope.split("/")), timeout=0):
                    done.append(self.recover(txn.id, by, resolve))
            except BusyError:  # the scope is locked: a live process is applying, leave it
                continue
            except AirlockError as exc:
                self.failures.append(f"transaction {txn.id} of plan {txn.plan_id}: {exc}")
        for stray in (self.state_dir / "journal").glob("*.cursor"):
            with self.store.read() as session:
                row = session.get(TransactionRow, stray.stem)
                if row is None or row.status != "running":
                    stray.unlink(missing_ok=True)
        return done

    def recover(self, txn_id: str, by: Principal, resolve: bool = False) -> Recovered:
        """Undo one running transaction from its cursor (its scope's lock held).

        ``resolve`` (an operator's `airlock recover --resolve`, when the cause cannot be fixed):
        skip the undo steps that fail, finish the rest, and close the transaction, listing what
        was skipped and every path not as it was before; nothing is deleted.
        """
        with self.store.read() as session:
            txn = self.store.transaction(session, txn_id)
            if txn.status != "running":
                return Recovered(txn_id, txn.plan_id, txn.kind, 0)
            steps = [Step.from_json(s) for s in txn.steps]
            plan_id, kind = txn.plan_id, KINDS[txn.kind]
        path = self._cursor_path(txn_id)
        started = Cursor.read(path)
        started = 0 if started is None else min(started, len(steps))
        cursor = Cursor(path)
        skipped: list[str] | None = [] if resolve else None
        with self.storage.batch():
            journal.undo_steps(self.storage, steps, started, cursor, skipped)
        self.storage.sync()
        differs: list[str] = []
        if kind is APPLY:  # a rollback's undo is checked by the next rollback's conflicts
            with self.store.read() as session:
                validation = self.store.latest_validation(session, plan_id)
            if validation is not None:
                differs = self.undo_differs(validation.report)
        outcome = undo_outcome(kind.name, differs)
        if skipped:
            outcome = f"resolved by an operator, {len(skipped)} undo step(s) skipped; {outcome}"
        with self.store.write() as session:
            txn = self.store.transaction(session, txn_id)
            txn.status, txn.finished_at = "undone", utcnow()
            txn.error = f"interrupted; {outcome}"
            reason = (
                f"apply was interrupted; {outcome}"
                if kind is APPLY
                else f"rollback was interrupted; plan is still applied; {outcome}"
            )
            self.store.set_status(self.store.plan(session, plan_id), kind.undone, reason)
            audit.append_by(
                session,
                "recovered",
                by,
                plan_id,
                {
                    "transaction": txn_id,
                    "kind": kind.name,
                    "steps_started": started,
                    "result": outcome,
                    **({"differs": differs[:1000]} if differs else {}),
                    **({"skipped": skipped} if skipped else {}),
                },
            )
        cursor.remove()
        return Recovered(txn_id, plan_id, kind.name, started, differs, skipped or [])

    def _cursor_path(self, txn_id: str) -> Path:
        directory = self.state_dir / "journal"
        directory.mkdir(exist_ok=True)
        return directory / f"{txn_id}.cursor"
