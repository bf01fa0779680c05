"""What each overwrite of a plan changes inside its file: old and new bytes, and their text diff.

For every change of a plan's validation that overwrites a file with a write (an agent's edit is
such a write), :func:`overwrite_diffs` finds the two sides and diffs them (:mod:`airlock.text_diff`):

* the new bytes are the write's body, from the content store by its SHA-256
  (:attr:`airlock.plan.Write.stored`; an inline body, in a plan not yet stored, as it is);
* the old bytes, while the plan is not applied, are the real file's, and only if they still hash
  to the change's ``sha256_before`` (else the file changed since the plan was checked, and that is
  said instead); a file that an earlier operation of the same plan writes is that write's body;
* for an applied plan, the old bytes are the copy the apply kept aside (the transaction's trash,
  ``.airlock/trash/<txn>/<n>`` for change ``n``: see :mod:`airlock.journal`), checked the same way.

Either side larger than :data:`airlock.text_diff.MAX_BYTES` is not read. Nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airlock import text_diff
from airlock.before_after import scope_relative
from airlock.content import ContentStore
from airlock.errors import AirlockError
from airlock.journal import trash_dir
from airlock.names import escaped
from airlock.paths import RelPath
from airlock.plan import Plan, Write
from airlock.storage.base import Kind, Storage
from airlock.text_diff import TextDiff
from airlock.validation import Change, Validation

if TYPE_CHECKING:
    from airlock.records import PlanRecord
    from airlock.workspace import Workspace

CHANGED_SINCE = "the file changed since the plan was checked: check the plan again to see its diff"
AFTER_APPLY = "the old file is kept aside; diff not available after apply"


@dataclass(frozen=True)
class FileDiff:
    """The diff of one overwrite (``op``: the operation's index, from 0; ``path``: as in the
    change, workspace-relative)."""

    op: int
    path: str
    diff: TextDiff
    copies: list[str] | None = None
    """The change's ``copies`` when the report has them (see :class:`Change`), else None."""


def _split(text: str) -> RelPath:
    return tuple(text.split("/"))


def _unavailable(change: Change, why: str) -> FileDiff:
    return FileDiff(change.op, change.path, TextDiff(unavailable=why), change.copies)


def _too_big(size: int, side: str) -> str | None:
    if size > text_diff.MAX_BYTES:
        return (
            f"the {side} file is larger than {text_diff.MAX_BYTES // (1 << 20)} MiB: no text diff"
        )
    return None


def _body(op: Write, content: ContentStore | None) -> bytes:
    blob = op.stored
    if blob is None:
        return op.content()
    if content is None:
        raise LookupError("no content store")
    return b"".join(content.read(blob.sha256))


def _read(storage: Storage, path: RelPath, gone: str = "the old file is gone") -> bytes | str:
    """The bytes of the regular file at ``path``, or why they cannot be had (``gone``: it is
    not there)."""
    entry = storage.stat(path)
    if entry is None or entry.kind is not Kind.FILE:
        return gone
    too_big = _too_big(entry.size, "old")
    if too_big is not None:
        return too_big
    return b"".join(storage.read(path))


def overwrite_diffs(
    plan: Plan,
    validation: Validation | None,
    storage: Storage,
    content: ContentStore | None,
    *,
    kept_aside: RelPath | str | None = None,
    only: Iterable[int] | None = None,
) -> list[FileDiff]:
    """The diff of every change of ``validation`` that overwrites a file with a write, in the
    plan's order.

    ``kept_aside``: for an applied plan, the trash folder of its apply (the old files are read
    there), or a string saying why they cannot be read; None: the plan is not applied (the old
    files are the real ones). ``only``: just the changes with these operation indexes.
    """
    if validation is None:
        return []
    wanted = None if only is None else set(only)
    written: dict[str, Change] = {}
    """The last change of the plan so far that put a file at each path."""
    diffs: list[FileDiff] = []
    for n, change in enumerate(validation.changes):
        earlier = written.get(change.path)
        if change.action in ("create", "overwrite", "copy", "move"):
            written[change.path] = change
        if change.action != "overwrite" or (wanted is not None and change.op not in wanted):
            continue
        op = plan.operations[change.op] if 0 <= change.op < len(plan.operations) else None
        if not isinstance(op, Write):
            continue
        diffs.append(_one(plan, change, n, op, earlier, storage, content, kept_aside))
    return diffs


def _one(
    plan: Plan,
    change: Change,
    n: int,
    op: Write,
    earlier: Change | None,
    storage: Storage,
    content: ContentStore | None,
    kept_aside: RelPath | str | None,
) -> FileDiff:
    too_big = _too_big(change.size, "new")
    if too_big is not None:
        return _unavailable(change, too_big)
    if isinstance(kept_aside, str):
        return _unavailable(change, kept_aside)
    old: bytes | str
    try:
        new = _body(op, content)
        if kept_aside is not None:
            old = _read(storage, (*kept_aside, str(n)), "the old file's kept-aside copy is gone")
        elif earlier is not None:
            earlier_op = plan.operations[earlier.op]
            if earlier.action not in ("create", "overwrite") or not isinstance(earlier_op, Write):
                return _unavailable(
                    change, "the old file is made by an earlier operation of this plan"
                )
            old = _body(earlier_op, content)
        else:
            old = _read(storage, _split(change.path))
    except (AirlockError, LookupError, OSError) as exc:
        why = exc.message if isinstance(exc, AirlockError) else str(exc)
        return _unavailable(change, f"the file's content cannot be read: {why}")
    if isinstance(old, str):
        return _unavailable(change, old)
    if change.sha256_before is not None and hashlib.sha256(old).hexdigest() != change.sha256_before:
        return _unavailable(change, CHANGED_SINCE)
    return FileDiff(change.op, change.path, text_diff.diff_bytes(old, new), change.copies)


def kept_aside_of(ws: Workspace, record: PlanRecord) -> RelPath | str | None:
    """Where ``record``'s old files are for :func:`overwrite_diffs`: None while the plan is not
    applied (the real files); for an applied plan, its apply's trash folder; else why not."""
    if record.status == "applied":
        with ws.read_session() as session:
            txn = ws.store.last_apply(session, record.id)
            if txn is None:
                return AFTER_APPLY
            if txn.purged_at is not None:
                return "the old file was kept aside and has since been purged by `airlock gc`"
            return trash_dir(txn.id)
    if record.status in ("applying", "rolling_back"):
        return f"the plan is {record.status.replace('_', ' ')}: diff not available meanwhile"
    return None


def record_diffs(
    ws: Workspace, record: PlanRecord, only: Iterable[int] | None = None
) -> list[FileDiff]:
    """:func:`overwrite_diffs` of a plan as the library hands it out, read from ``ws``."""
    if record.validation is None:
        return []
    return overwrite_diffs(
        record.plan,
        record.validation,
        ws.storage,
        ws.content,
        kept_aside=kept_aside_of(ws, record),
        only=only,
    )


def diff_lines(diffs: list[FileDiff], scope: str, *, max_lines: int | None = None) -> list[str]:
    """The diffs as plain text for the command line: a heading per file, then its diff."""
    lines: list[str] = []
    for item in diffs:
        diff = item.diff
        counts = "" if diff.unavailable else f" (-{diff.removed} +{diff.added} lines)"
        lines.append(
            f"~ overwrite {escaped(scope_relative(item.path, scope))}  operation {item.op + 1}{counts}"
        )
        if item.copies == []:
            lines.append("  (!) the old file is the only copy in the scope")
        lines.extend("  " + line for line in text_diff.render(diff, max_lines=max_lines))
        lines.append("")
    if not diffs:
        lines.append("No overwrites to show.")
    return lines


def diff_json(item: FileDiff) -> dict[str, Any]:
    """A :class:`FileDiff` as JSON data (for ``--json``)."""
    data: dict[str, Any] = dataclasses.asdict(item)
    data["operation"] = item.op + 1
    return data


DIFFS_LISTED = 20
"""Most overwrites a page shows the diff of (those of the changes it lists)."""
DIFF_LINES_SHOWN = 200
"""Most lines of one file's diff a page shows (then "… N more lines")."""


@dataclass(frozen=True)
class ShownDiff:
    """One file's diff as a page shows it: cut to :data:`DIFF_LINES_SHOWN` lines."""

    item: FileDiff
    hunks: list[text_diff.Hunk]
    more_lines: int


def page_diffs(
    ws: Workspace, record: PlanRecord, ops: Iterable[int]
) -> tuple[list[ShownDiff], int]:
    """The diffs of the overwrites among operations ``ops`` (the changes a page lists), at
    most :data:`DIFFS_LISTED`, each cut to :data:`DIFF_LINES_SHOWN` lines; and how many
    overwrites were left out."""
    wanted = set(ops)
    overwrites = [
        c.op
        for c in (record.validation.changes if record.validation else [])
        if c.action == "overwrite" and c.op in wanted
    ]
    diffs = record_diffs(ws, record, only=overwrites[:DIFFS_LISTED])
    shown = []
    for item in diffs:
        hunks, more = text_diff.clipped(item.diff, DIFF_LINES_SHOWN)
        shown.append(ShownDiff(item, hunks, more))
    return shown, max(0, len(overwrites) - DIFFS_LISTED)
