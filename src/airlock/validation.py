"""The validation report, as data: what a plan would do, what is wrong with it, and the state
of the tree it was simulated on (see :mod:`airlock.simulate` for how it is made).

Stored as JSON with the plan's validation; apply compiles its ``changes`` into journal steps,
rollback checks them, and the doors show them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Action = Literal["mkdir", "create", "overwrite", "move", "copy", "delete"]


class Issue(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    op: int | None = None


class Change(BaseModel):
    """One change the plan makes, in order; apply executes exactly these."""

    op: int
    action: Action
    path: str
    """The entry created, replaced or removed (for a move or copy: the destination)."""
    source: str | None = None
    kind: str = "file"
    """What ``path`` holds afterwards (for a delete: what it held)."""
    size: int = 0
    files: int | None = None
    """For a folder deleted, moved or copied: how many files it holds (``size`` is their bytes
    for a delete or copy)."""
    replaces: bool = False
    """The destination existed and is kept aside (overwrite)."""
    sha256_before: str | None = None
    """Content kept aside or deleted: a file's SHA-256, or a folder's tree digest."""
    sha256_after: str | None = None
    """Content created: a written or copied file's SHA-256, a copied folder's tree digest (and,
    for a move of a file the plan wrote or copied, that file's SHA-256)."""
    identity: str | None = None
    """For a move: what identifies the entry it moves, read from no file (see
    :mod:`airlock.digests`); None for a file the plan wrote or copied (``sha256_after`` names
    it)."""
    copies: list[str] | None = None
    """For a delete or overwrite (a write, copy or move that replaces a file): where identical
    bytes stay in the scope after the plan (see :mod:`airlock.losses`). None: not checked (a
    report made before Airlock looked, or a scope too large to look through); []: what it
    removes is the only copy in the scope; else the paths of identical copies that remain (at
    most a few). For a folder deleted: [] if any file in it has no copy left, else copies of
    its files."""


class Validation(BaseModel):
    valid: bool
    needs_approval: list[str]
    errors: list[Issue]
    warnings: list[Issue]
    changes: list[Change]
    counts: dict[str, int]
    bytes_written: int
    bytes_removed: int
    preconditions: dict[str, list[object] | None]
    """Every real path the simulation looked at, with its fingerprint (None: it was absent)."""
    folder_contents: dict[str, list[str]] | None = None
    """The names in every real folder the plan deletes, moves or copies (and the folders inside
    them), as validated: apply refuses if any of them holds anything else. None in reports made
    before Airlock recorded it (such a plan must be validated again)."""
