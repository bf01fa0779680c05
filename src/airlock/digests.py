"""What validation records of an entry, and rollback computes again to compare: a file's or a
folder's content digest, and the identity of what a move carries (read from no file).

Pure functions over entries' stats and digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from airlock.storage.base import Entry, Kind


def tree_digest(entries: Iterable[tuple[str, Kind, str]]) -> str:
    """A folder's digest: its entries (relative path, kind, file SHA-256 or ""), parents first."""
    digest = hashlib.sha256()
    for rel, kind, content in entries:
        digest.update(f"{rel}\0{kind}\0{content}\n".encode("utf-8", "surrogatepass"))
    return "tree:" + digest.hexdigest()


# A move reads no file. What it moves is recorded by identity instead of by content, and the
# rollback checks that identity before it moves the entry back:
#
# * a file or symlink: kind, inode, size and modification time. A rename keeps all four (it
#   changes the entry's ctime, which is why ctime is left out). Any write after the move gives
#   a new modification time; an editor's save-by-rename gives a new inode. What this cannot see
#   is an in-place edit of the same size whose writer then sets the old modification time back
#   (utimensat): the rollback then moves the edited file back, losing nothing (a move keeps no
#   copy to restore; the bytes go back with the entry).
# * a folder: its inode, and the full fingerprint (ctime included: renaming a folder leaves its
#   entries' ctimes alone) of every entry inside that no change of the plan placed there, so an
#   edit inside, even one that puts the modification time back, an entry added, removed or
#   swapped, is seen. What a change of the plan placed inside is checked on its own.
# * a folder the plan made (a mkdir or a folder copy, then moved): the SHA-256 of each file
#   inside that no change placed on its own (what a copy put there; their digests are known,
#   so nothing is read at validation either).


def entry_identity(entry: Entry) -> str:
    """A file's or symlink's identity across a rename (see above)."""
    return f"id:{entry.kind}:{entry.ino}:{entry.size}:{entry.mtime_ns}"


def tree_identity(ino: int | None, entries: Iterable[tuple[str, list[object]]]) -> str:
    """A moved folder's identity: its inode (None: a folder the plan made) and, parents first,
    the entries inside that no change placed, each with its fingerprint (or, in a folder the
    plan made, its kind and a file's SHA-256)."""
    digest = hashlib.sha256(f"{ino}\n".encode())
    for rel, item in entries:
        digest.update(f"{rel}\0{json.dumps(item)}\n".encode("utf-8", "surrogatepass"))
    return ("tree-id:" if ino is not None else "tree-new:") + digest.hexdigest()
