"""A plan's scope as two folder trees, before and after its changes, each entry marked with what
happens to it: what a reviewer is shown, by any door (today the review page).

Pure functions over a validation report's :class:`~airlock.validation.Change` list and a listing
of the scope; :func:`list_scope` is the one reader, and it reads only through the storage
interface.

The trees are built the same way whatever the plan's status:

* not applied yet: *before* is the scope as it is now; *after* replays the changes over it;
* applied: *after* is the scope as it is now; *before* is rebuilt by undoing the changes in reverse
  (what was overwritten or deleted is shown from the report, with sizes where the report has them),
  then replayed forward, so both directions mark entries the same way.

The replay here is the only replay of a report's changes over a tree. The simulation's
:class:`~airlock.view.View` and the journal's steps are not reused for it, on purpose: the view
reads the real tree lazily and records every path it looks at as a precondition (replaying on it
would re-read the storage the report already describes, and it cannot run backwards), and the
journal's steps (:func:`~airlock.journal.compile_apply`) keep only what apply needs to do (renames
into the trash, writes by operation index), not what the trees show (kinds, sizes, deleted or
replaced, where a copy came from).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from airlock.errors import AirlockError
from airlock.paths import STATE_DIR, RelPath, render
from airlock.storage.base import Storage
from airlock.validation import Change

Mark = Literal[
    "same",  # untouched
    "new",  # created by the plan (mkdir, write)
    "copied",  # a copy of ``note``
    "moved",  # before: moves to ``note``; after: moved here from ``note``
    "carried",  # inside a folder that moves: moves with it
    "deleted",  # before only: deleted (kept aside)
    "replaced",  # before only: overwritten; the old content is kept aside
    "overwritten",  # after only: new content over an existing file
]

LISTING_LIMIT = 5000
"""Most entries of a scope listed for the trees (a case folder with more is shown in part)."""


@dataclass(frozen=True)
class Listed:
    """One entry below the scope: its path relative to the scope, kind and size."""

    path: str
    kind: str
    size: int | None


@dataclass(slots=True)
class Node:
    name: str
    path: str
    """Relative to the scope; "" for the scope itself."""
    kind: str
    size: int | None = None
    mark: Mark = "same"
    note: str = ""
    """For a move: the other end; for a copy: its source (scope-relative)."""
    replaces: bool = False
    """After: this entry replaced an existing file (kept aside)."""
    children: list[Node] = field(default_factory=list)
    changed: bool = False
    """This entry or anything below it changes."""
    entries: int = 0
    """How many entries are below it."""

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"


@dataclass
class Trees:
    before: Node
    after: Node
    truncated: bool = False
    """The scope had more than the listing limit: untouched entries may be missing."""
    reconstructed: bool = False
    """The before tree was rebuilt from the report (the plan is applied)."""


def scope_relative(path: str, scope: str) -> str:
    """A workspace path relative to ``scope`` ("" for the scope itself; outside it, unchanged)."""
    prefix = scope + "/"
    if path.startswith(prefix):
        return path[len(prefix) :]
    return "" if path == scope else path


def list_scope(
    storage: Storage, scope: str, limit: int = LISTING_LIMIT
) -> tuple[list[Listed], bool]:
    """The entries below ``scope`` (parents first), at most ``limit``; and whether there were more.

    A scope that cannot be listed (missing, or reached through a symlink) lists as empty.
    """
    base: RelPath = tuple(scope.split("/"))
    found: list[Listed] = []
    try:
        for path, entry in storage.walk(base):
            rel = path[len(base) :]
            if rel[:1] == (STATE_DIR,):
                continue
            if len(found) >= limit:
                return found, True
            kind = str(entry.kind)
            found.append(Listed(render(rel), kind, entry.size if kind == "file" else None))
    except (AirlockError, OSError):
        return found, False
    return found, False


def build_trees(
    scope: str,
    listing: Sequence[Listed],
    changes: Sequence[Change],
    *,
    applied: bool = False,
    truncated: bool = False,
) -> Trees:
    """The scope's tree before and after ``changes``.

    ``listing`` is the scope now: before the plan, or after it when ``applied`` is true.
    """
    before_listing = _undo(listing, changes, scope) if applied else list(listing)
    replay = _Replay(before_listing)
    for change in changes:
        replay.apply(change, scope)
    before, after = replay.trees()
    before.name = after.name = scope.rsplit("/", 1)[-1]
    return Trees(before, after, truncated=truncated, reconstructed=applied)


# --- entries by path ----------------------------------------------------------------------

V = TypeVar("V")


class _Entries(Generic[V]):
    """Entries by scope-relative path, with an index of each folder's children, so that a folder's
    subtree is found by walking it, not by scanning every entry: a plan of 50,000 changes that
    moves and deletes folders is replayed in time proportional to its size."""

    def __init__(self) -> None:
        self.values: dict[str, V] = {}
        self._kids: dict[str, set[str]] = {}
        """For a folder ("" for the scope), the names below it that are entries or lead to one."""

    def __contains__(self, path: str) -> bool:
        return path in self.values

    def __getitem__(self, path: str) -> V:
        return self.values[path]

    def get(self, path: str) -> V | None:
        return self.values.get(path)

    def __setitem__(self, path: str, value: V) -> None:
        if path not in self.values:
            child = path
            while child:
                parent, _, name = child.rpartition("/")
                names = self._kids.get(parent)
                if names is None:
                    self._kids[parent] = {name}
                elif name in names:
                    break  # this folder, and so every one above it, is indexed already
                else:
                    names.add(name)
                child = parent
        self.values[path] = value

    def setdefault(self, path: str, value: V) -> V:
        if path not in self.values:
            self[path] = value
        return self.values[path]

    def update(self, items: dict[str, V]) -> None:
        for path, value in items.items():
            self[path] = value

    def pop(self, path: str) -> V:
        value = self.values.pop(path)
        while path and path not in self.values and not self._kids.get(path):
            self._kids.pop(path, None)
            parent, _, name = path.rpartition("/")
            self._kids[parent].discard(name)
            path = parent
        return value

    def subtree(self, path: str) -> list[str]:
        """``path`` (if it is an entry) and every entry below it."""
        found = [path] if path in self.values else []
        pending = [path]
        while pending:
            here = pending.pop()
            for name in self._kids.get(here, ()):
                key = f"{here}/{name}" if here else name
                if key in self.values:
                    found.append(key)
                pending.append(key)
        return found

    def remove(self, path: str) -> list[V]:
        """Pop ``path`` and everything below it."""
        return [self.pop(key) for key in self.subtree(path)]

    def relocate(self, source: str, destination: str) -> dict[str, V]:
        """Pop ``source`` and everything below it; return them re-keyed under ``destination``
        (for the caller to put back, once it has updated them)."""
        return {destination + key[len(source) :]: self.pop(key) for key in self.subtree(source)}


# --- the replay, forward --------------------------------------------------------------------


@dataclass(slots=True)
class _Rec:
    kind: str
    size: int | None
    origin: str | None
    """Where this entry was before the plan; None if the plan made it."""
    how: Mark = "same"
    note: str = ""
    replaces: bool = False


class _Replay:
    """Replays changes over a listing, remembering what happened to every original entry."""

    def __init__(self, listing: Iterable[Listed]) -> None:
        self.before: dict[str, Listed] = {}
        self.state: _Entries[_Rec] = _Entries()
        for item in listing:
            self._add_before(item)
        self.gone: dict[str, Mark] = {}

    def _add_before(self, item: Listed) -> None:
        if item.path in self.before:
            return
        parts = item.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in self.before:
                self.before[parent] = Listed(parent, "dir", None)
                self.state.setdefault(parent, _Rec("dir", None, parent))
        self.before[item.path] = item
        self.state[item.path] = _Rec(item.kind, item.size, item.path)

    def _existing(self, path: str, kind: str, size: int | None) -> _Rec:
        """The entry at ``path`` now; an unlisted one (a truncated listing) is taken as original."""
        if path not in self.state:
            self._add_before(Listed(path, kind, size))
        return self.state[path]

    def _lose(self, path: str, why: Mark) -> None:
        for rec in self.state.remove(path):
            if rec.origin is not None:
                self.gone.setdefault(rec.origin, why)

    def apply(self, change: Change, scope: str) -> None:
        path = scope_relative(change.path, scope)
        source = scope_relative(change.source, scope) if change.source else ""
        size = change.size if change.kind == "file" else None
        if change.action == "mkdir":
            self.state[path] = _Rec("dir", None, None, "new")
        elif change.action == "create":
            self.state[path] = _Rec("file", change.size, None, "new")
        elif change.action == "overwrite":
            self._existing(path, "file", None)
            self._lose(path, "replaced")
            self.state[path] = _Rec("file", change.size, None, "overwritten", replaces=True)
        elif change.action in ("copy", "move"):
            self._existing(source, change.kind, size)
            if change.replaces:
                self._existing(path, "file", None)
                self._lose(path, "replaced")
            if change.action == "copy":
                self._copy(source, path, change, size)
            else:
                self._move(source, path, change)
        else:  # delete
            self._existing(path, change.kind, size)
            self._lose(path, "deleted")

    def _copy(self, source: str, path: str, change: Change, size: int | None) -> None:
        copies = {
            path + key[len(source) :]: _Rec(self.state[key].kind, self.state[key].size, None, "new")
            for key in self.state.subtree(source)
        }
        copies[path] = _Rec(
            change.kind, size, origin=None, how="copied", note=source, replaces=change.replaces
        )
        self.state.update(copies)

    def _move(self, source: str, path: str, change: Change) -> None:
        moved = self.state.relocate(source, path)
        for key, rec in moved.items():
            if rec.how in ("same", "carried", "moved") and rec.origin is not None:
                if rec.origin == key:
                    rec.how, rec.note = "same", ""
                elif key == path:
                    rec.how, rec.note = "moved", rec.origin
                elif rec.how == "same":
                    rec.how = "carried"
        moved[path].replaces = moved[path].replaces or change.replaces
        self.state.update(moved)

    def trees(self) -> tuple[Node, Node]:
        finals = {
            rec.origin: key for key, rec in self.state.values.items() if rec.origin is not None
        }
        before_items: dict[str, tuple[str, int | None, Mark, str, bool]] = {}
        for path, item in self.before.items():
            mark: Mark = "same"
            note = ""
            if path in self.gone:
                mark = self.gone[path]
            else:
                final = finals.get(path)
                rec = self.state.get(final) if final is not None else None
                if final is not None and rec is not None and final != path:
                    mark, note = ("carried", final) if rec.how == "carried" else ("moved", final)
            before_items[path] = (item.kind, item.size, mark, note, False)
        after_items = {
            key: (rec.kind, rec.size, rec.how, rec.note, rec.replaces)
            for key, rec in self.state.values.items()
        }
        return _build(before_items), _build(after_items)


def _build(items: dict[str, tuple[str, int | None, Mark, str, bool]]) -> Node:
    root = Node(name="", path="", kind="dir")
    nodes: dict[str, Node] = {"": root}

    def node_for(path: str) -> Node:
        found = nodes.get(path)
        if found is not None:
            return found
        parent_path, _, name = path.rpartition("/")
        parent = node_for(parent_path)
        kind, size, mark, note, replaces = items.get(path, ("dir", None, "same", "", False))
        made = Node(
            name=name, path=path, kind=kind, size=size, mark=mark, note=note, replaces=replaces
        )
        parent.children.append(made)
        nodes[path] = made
        return made

    for path in items:
        node_for(path)
    _finish(root)
    return root


def _finish(node: Node) -> None:
    node.children.sort(key=lambda child: (not child.is_dir, child.name.casefold(), child.name))
    node.changed = node.mark not in ("same", "carried") and bool(node.path)
    node.entries = 0
    for child in node.children:
        _finish(child)
        node.changed = node.changed or child.changed
        node.entries += 1 + child.entries


# --- the replay, backward (an applied plan) -----------------------------------------------


def _undo(listing: Sequence[Listed], changes: Sequence[Change], scope: str) -> list[Listed]:
    """Rebuild the scope as it was before ``changes`` from a listing made after them."""
    state: _Entries[Listed] = _Entries()

    def put(path: str, kind: str, size: int | None) -> None:
        state[path] = Listed(path, kind, size)

    for item in listing:
        state[item.path] = item
    for change in reversed(changes):
        path = scope_relative(change.path, scope)
        size = change.size if change.kind == "file" else None
        if change.action in ("mkdir", "create"):
            state.remove(path)
        elif change.action == "overwrite":
            put(path, "file", None)  # what it replaced: the report has no size for it
        elif change.action == "copy":
            state.remove(path)
            if change.replaces:
                put(path, "file", None)
        elif change.action == "move":
            source = scope_relative(change.source or "", scope)
            moved = state.subtree(path)
            if not moved:  # not listed (a truncated listing): as the report has it
                put(source, change.kind, size)
            for key in moved:
                item = state.pop(key)
                put(source + key[len(path) :], item.kind, item.size)
            if change.replaces:
                put(path, "file", None)
        else:  # delete
            put(path, change.kind, size)
    return sorted(state.values.values(), key=lambda item: item.path.split("/"))
