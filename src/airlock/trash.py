"""What applies and rollbacks kept aside, and putting it back.

A plan never destroys a file: what it deletes or overwrites is renamed into its transaction's
trash (``.airlock/trash/<transaction>/<n>``), and so is what a rollback removes (the files the
plan had made, and what a forced rollback set aside). The journal's steps say, for each kept-aside
entry, where it was. :func:`kept_aside` lists what is still there (a rollback moves an apply's
kept-aside files back into place; ``airlock gc`` purges them once the retention has passed), and
:func:`restore` puts one back -- as a plan, submitted and validated like any other, so a person
sees and approves it and it can itself be rolled back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airlock import journal, paths
from airlock.errors import InputError, NotFoundError
from airlock.paths import RelPath, render
from airlock.permissions import Action, Principal, acting, authorize
from airlock.storage.base import Kind

if TYPE_CHECKING:
    from airlock.records import PlanRecord
    from airlock.workspace import Workspace


@dataclass(frozen=True)
class KeptAside:
    """One entry a transaction kept aside."""

    id: str
    """``<transaction>/<n>``: what ``airlock trash restore`` takes."""
    plan_id: str
    transaction: str
    kind: str
    """The transaction's kind: ``apply`` (what the plan deleted or overwrote) or ``rollback``
    (what the rollback removed)."""
    path: str
    """Where the entry was (workspace path)."""
    stored_at: str
    """The kept-aside name (workspace path, under ``.airlock/trash``)."""
    entry: str
    """file, dir or symlink."""
    size: int
    kept_since: str
    """When its transaction finished (ISO 8601, UTC)."""
    days_left: float
    """Until ``airlock gc`` may purge it (the policy's ``retention_days``)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kept_aside(
    ws: Workspace,
    *,
    scope: str | None = None,
    transaction: str | None = None,
    by: Principal | None = None,
) -> list[KeptAside]:
    """Everything still kept aside (newest transaction first), optionally of one scope or one
    transaction."""
    authorize(acting(by), Action.READ)
    now = dt.datetime.now(dt.UTC)
    found: list[KeptAside] = []
    with ws.store.read() as session:
        transactions = sorted(
            ws.store.purgeable(session), key=lambda txn: txn.finished_at or now, reverse=True
        )
        rows = [
            (txn.id, txn.plan_id, txn.kind, txn.scope, txn.finished_at, list(txn.steps))
            for txn in transactions
        ]
    for txn_id, plan_id, kind, txn_scope, finished, steps in rows:
        if (scope is not None and txn_scope != scope) or transaction not in (None, txn_id):
            continue
        finished = _aware(finished or now)
        left = ws.policy.retention_days - (now - finished).total_seconds() / 86400
        for kept in journal.kept_aside(map(journal.Step.from_json, steps), txn_id):
            original = paths.parse(kept["path"], stored=True)
            aside = paths.parse(kept["as"], stored=True)
            entry = ws.storage.stat(aside)
            if entry is None:
                continue  # moved back (by the rollback of this apply), or never made
            found.append(
                KeptAside(
                    id=f"{txn_id}/{aside[-1]}",
                    plan_id=plan_id,
                    transaction=txn_id,
                    kind=kind,
                    path=render(original),
                    stored_at=render(aside),
                    entry=entry.kind.value,
                    size=entry.size if entry.kind is not Kind.DIR else _tree_size(ws, aside),
                    kept_since=finished.isoformat(),
                    days_left=round(max(left, 0.0), 2),
                )
            )
    return found


def restore(
    ws: Workspace,
    item: str,
    *,
    to: str | None = None,
    by: Principal | None = None,
    description: str = "",
) -> PlanRecord:
    """A plan that puts kept-aside ``item`` (``<transaction>/<n>``) back where it was (or at
    workspace path ``to``, inside the same scope), submitted and validated as ``by``. A file
    is written back (refused by validation if something is there now); a folder is made again
    with every file it held."""
    by = acting(by)
    authorize(by, Action.SUBMIT)
    aside_of = kept_aside(ws, transaction=item.partition("/")[0], by=by)
    found = next((k for k in aside_of if k.id == item), None)
    if found is None:
        raise NotFoundError(
            f"nothing kept aside is called {item!r}",
            hint="see `airlock trash list` for what is kept aside (purged entries are gone)",
        )
    with ws.store.read() as session:
        scope = ws.store.transaction(session, found.transaction).scope
    scope_path = paths.parse(scope, "scope")
    target = paths.parse(to if to else found.path, "destination")
    if target[: len(scope_path)] != scope_path or len(target) <= len(scope_path):
        raise InputError(
            f"{render(target)!r} is outside the scope {scope!r} of the plan that kept it aside",
            hint=f"restore it inside {scope}/",
        )
    aside = paths.parse(found.stored_at, stored=True)
    operations: list[dict[str, Any]] = []
    staged: dict[str, int] = {}
    for rel, kind in _entries(ws, aside, found.entry):
        where = render((*target, *rel)[len(scope_path) :])
        if kind is Kind.DIR:
            operations.append({"op": "mkdir", "path": where, "parents": True})
        elif kind is Kind.FILE:
            blob = ws.content.put(ws.storage.read((*aside, *rel)))
            staged[blob.sha256] = blob.size
            operations.append(
                {
                    "op": "write",
                    "path": where,
                    "sha256": blob.sha256,
                    "size": blob.size,
                    "parents": True,
                }
            )
    if not operations:
        raise InputError(
            f"{item!r} holds nothing a plan can restore (a symlink or a special file)",
            hint=f"copy it by hand from {found.stored_at}",
        )
    record = ws.submit(
        {
            "scope": scope,
            "description": description
            or f"Restore {found.path} (kept aside by plan {found.plan_id}, {found.kind})",
            "operations": operations,
        },
        by=by,
        staged=staged,
    )
    return ws.validate(record.id, by=by)


def _entries(ws: Workspace, aside: RelPath, kind: str) -> Iterator[tuple[RelPath, Kind]]:
    """What a kept-aside entry holds, relative to it (a file: itself), parents first."""
    if kind != Kind.DIR.value:
        yield (), Kind(kind)
        return
    yield (), Kind.DIR
    for path, entry in ws.storage.walk(aside):
        yield path[len(aside) :], entry.kind


def _tree_size(ws: Workspace, folder: RelPath) -> int:
    return sum(entry.size for _path, entry in ws.storage.walk(folder) if entry.kind is Kind.FILE)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
