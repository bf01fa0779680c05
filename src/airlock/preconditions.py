"""Preconditions: the state of every real path a plan's simulation looked at, recorded with its
report, and the check, under the scope lock at apply (and after an undo), that it still holds.

A stale plan (its world changed since it was reviewed) is refused; see :func:`stale_paths`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from airlock.errors import UnsafePathError
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Storage


def record(seen: Mapping[RelPath, Entry | None]) -> dict[str, list[object] | None]:
    """The preconditions of what the simulation saw: each path's fingerprint (None: absent)."""
    return {render(path): (entry.fingerprint() if entry else None) for path, entry in seen.items()}


def stale_paths(
    preconditions: dict[str, list[object] | None],
    storage: Storage,
    folder_contents: dict[str, list[str]] | None = None,
    *,
    after_undo: bool = False,
) -> list[str]:
    """The recorded paths whose state differs now, each with what changed; and, for each folder
    the plan deletes, moves or copies, every name it holds now that it did not hold then.

    ``after_undo``: check that an undone apply left the tree as validated. An entry renamed away
    and back keeps its inode, size and modification time, but not its change time (on disk) or
    its generation (in a bucket): those are not compared.
    """
    changed = _stale_entries(preconditions, storage, after_undo)
    for text, names in (folder_contents or {}).items():
        path = tuple(text.split("/")) if text else ()
        try:
            now = storage.listdir(path)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            continue  # the folder itself is gone or replaced: its own precondition says so
        was = set(names)
        for name in sorted(set(now) - was):
            changed.append(
                f"{render((*path, name))}: added since validation, inside a folder the plan "
                "deletes, moves or copies"
            )
        for name in sorted(was - set(now)):
            if render((*path, name)) not in preconditions:  # else reported above
                changed.append(f"{render((*path, name))}: disappeared since validation")
    return changed


def _current(paths: Iterable[str], storage: Storage) -> dict[str, Entry | UnsafePathError | None]:
    """Each path's entry now, looked up folder by folder (one lookup of each folder)."""
    by_folder: dict[RelPath, list[str]] = {}
    now: dict[str, Entry | UnsafePathError | None] = {}
    for text in paths:
        if not text:  # the workspace's root itself
            now[""] = storage.stat(())
            continue
        path = tuple(text.split("/"))
        by_folder.setdefault(path[:-1], []).append(path[-1])
    for folder, names in by_folder.items():
        prefix = render(folder) + "/" if folder else ""
        try:
            for name, entry in storage.stat_names(folder, names).items():
                now[prefix + name] = entry
        except UnsafePathError as exc:
            now.update((prefix + name, exc) for name in names)
    return now


def _stale_entries(
    preconditions: dict[str, list[object] | None], storage: Storage, after_undo: bool
) -> list[str]:
    changed = []
    current = _current(preconditions, storage)
    for text, expected in preconditions.items():
        found = current[text]
        if isinstance(found, UnsafePathError):
            changed.append(f"{text}: now passes through a symbolic link")
            continue
        now = found.fingerprint() if found else None
        if after_undo and now is not None and expected is not None and len(now) == 5:
            now, expected = now[:3] + now[4:], expected[:3] + expected[4:]
        elif after_undo and found is not None and found.version:
            # An object moved away and back is a new object (a new generation) with the same
            # bytes, identity and time: what a rename keeps is what must be as it was.
            now, expected = found.fingerprint(lasting=True), (expected or [])[:5]
        if now != expected:
            if expected is None:
                changed.append(f"{text}: appeared since validation")
            elif now is None:
                changed.append(f"{text}: disappeared since validation")
            elif now[0] != expected[0]:
                changed.append(f"{text}: was a {expected[0]}, is now a {now[0]}")
            else:
                changed.append(f"{text}: modified since validation")
    return changed
