"""Purging what finished transactions kept aside, once the policy's retention has passed.

A purge is recorded (``purged_at`` and a ``purged`` audit event) before anything is removed: a
purge cut short (killed, a full disk) leaves a transaction marked purged, so no rollback runs
over half its files, and the next ``airlock gc`` finishes the removal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

from airlock import audit, journal
from airlock.content import ContentStore
from airlock.db import TransactionRow, utcnow
from airlock.locks import scope_lock
from airlock.paths import RelPath
from airlock.permissions import Principal
from airlock.storage import Storage
from airlock.store import Store, finished_before


def gc(
    store: Store, storage: Storage, state_dir: Path, by: Principal, days: float, now: dt.datetime
) -> tuple[list[str], list[str]]:
    """Purge the kept-aside files of transactions finished ``days`` before ``now``; returns
    (the transactions purged, why others were kept)."""
    cutoff = now - dt.timedelta(days=days)
    purged: list[str] = []
    kept: list[str] = []
    with store.read() as session:
        candidates = [txn for txn in store.purgeable(session) if finished_before(txn, cutoff)]
    for txn in candidates:
        trash = journal.trash_dir(txn.id)
        with scope_lock(state_dir / "locks", tuple(txn.scope.split("/")), timeout=30):
            with store.read() as session:
                row = session.get(TransactionRow, txn.id)
                if row is None or row.purged_at is not None:
                    continue
            if txn.status == "undone" and _holds_anything(storage, trash):
                # An undone transaction's trash is empty once its undo is complete. Bytes still
                # there mean the undo stopped short (e.g. a cursor lost to a power cut): keep
                # them for a person to restore, never purge them.
                kept.append(
                    f"{txn.id} of plan {txn.plan_id}: kept-aside files remain after its undo; "
                    f"inspect {state_dir / 'trash' / txn.id}"
                )
                continue
            with store.write() as session:
                store.transaction(session, txn.id).purged_at = utcnow()
                audit.append_by(
                    session,
                    "purged",
                    by,
                    txn.plan_id,
                    {"transaction": txn.id, "older_than_days": days},
                )
            storage.remove_tree(trash)
        purged.append(txn.id)
    finish_purges(store, storage)
    return purged, kept


CONTENT_GRACE = dt.timedelta(hours=1)
"""A body no plan names yet is kept this long: a run staging its capture, or an upload whose
plan is still being written, names its bodies a moment after storing them."""


def collect_content(
    store: Store, content: ContentStore, days: float, now: dt.datetime
) -> list[str]:
    """Remove stored bodies that no plan names and that nobody uploaded in the last ``days``
    (and none younger than :data:`CONTENT_GRACE`); returns their digests."""
    with store.read() as session:
        needed = store.referenced_content(session, now - dt.timedelta(days=days))
    cutoff = (now - CONTENT_GRACE).timestamp()
    removed = []
    for sha256, stored_at in content.blobs():
        if sha256 not in needed and stored_at < cutoff:
            content.remove(sha256)
            removed.append(sha256)
    return removed


def finish_purges(store: Store, storage: Storage) -> None:
    """Remove what an interrupted purge left in the trash of transactions marked purged."""
    with store.read() as session:
        done = store.purged(session)
    for txn_id in done:
        with contextlib.suppress(FileNotFoundError):  # another gc got there first
            storage.remove_tree(journal.trash_dir(txn_id))


def _holds_anything(storage: Storage, folder: RelPath) -> bool:
    try:
        return bool(storage.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return False
