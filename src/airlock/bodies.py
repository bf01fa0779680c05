"""The bytes of a plan's writes: kept in the content store, never in the state database.

At submit, an inline body (``text`` or ``base64``) goes into the content store and the write
names it by SHA-256 and size (:func:`store_inline`), so the plan the database keeps holds no file
bytes whatever their size. A write may name a stored body only if the submitter put it there:
inline in this plan, uploaded by the same principal (``PUT /api/v1/content``), or staged by a
sandboxed run for its own plan (:func:`check_staged`). At apply, bodies stream from the store in
chunks (:func:`content_of`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

from airlock import journal
from airlock.content import ContentStore
from airlock.errors import InputError
from airlock.plan import Plan, Write


def content_of(body: str, store: ContentStore) -> journal.Content:
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


def store_inline(plan: Plan, store: ContentStore) -> tuple[Plan, dict[str, int]]:
    """The plan with every inline body moved into ``store`` (the write names it instead), and
    the bodies so stored (digest -> size)."""
    stored: dict[str, int] = {}
    operations: list[Any] = []
    for op in plan.operations:
        if isinstance(op, Write) and op.stored is None:
            blob = store.put([op.content()])
            stored[blob.sha256] = blob.size
            op = op.model_copy(
                update={"text": None, "base64": None, "sha256": blob.sha256, "size": blob.size}
            )
        operations.append(op)
    if not stored:
        return plan, stored
    return plan.model_copy(update={"operations": operations}), stored


def check_staged(plan: Plan, staged: Mapping[str, int] | None) -> None:
    """Refuse a write naming a stored body its submitter did not put into the store.

    Digests of files in other cases appear in the audit log; a plan that could name any blob
    could copy another client's confidential file into this case. ``staged`` holds what the
    submitter put there (digest -> size): its own inline bodies, its uploads, a run's capture.
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
                hint="send the file's bytes as 'text' or 'base64', or upload them first "
                "(PUT /api/v1/content) with the same token; a plan names only content its "
                "submitter put into the store: inline, uploaded, or a sandboxed run's own capture",
            )
