"""What the review page shows, computed from plain data: the scope's folder tree before and after a
plan, previews of the files it writes, the plan's tab on the list, and ages.

Pure functions over a validation report's :class:`~airlock.validate.Change` list and a listing of
the scope; :func:`list_scope` is the one reader, and it reads only through the storage interface.

The trees are built the same way whatever the plan's status:

* not applied yet: *before* is the scope as it is now; *after* replays the changes over it;
* applied: *after* is the scope as it is now; *before* is rebuilt by undoing the changes in reverse
  (what was overwritten or deleted is shown from the report, with sizes where the report has them),
  then replayed forward, so both directions mark entries the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from airlock.audit import UNREADABLE
from airlock.content import ContentStore
from airlock.errors import AirlockError
from airlock.paths import STATE_DIR, RelPath, render
from airlock.plan import Plan, Write
from airlock.storage.base import Storage
from airlock.validate import Change

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

PREVIEW_LINES = 40
PREVIEW_BYTES = 64 * 1024


@dataclass(frozen=True)
class Listed:
    """One entry below the scope: its path relative to the scope, kind and size."""

    path: str
    kind: str
    size: int | None


@dataclass
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


@dataclass
class Preview:
    path: str
    size: int
    action: str
    lines: list[str]
    more_lines: int
    binary: bool


def scope_relative(path: str, scope: str) -> str:
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


# --- the trees ----------------------------------------------------------------------------


@dataclass
class _Rec:
    kind: str
    size: int | None
    origin: str | None
    """Where this entry was before the plan; None if the plan made it."""
    how: Mark = "same"
    note: str = ""
    replaces: bool = False


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


def _relocate(state: _Entries[_Rec], source: str, destination: str) -> dict[str, _Rec]:
    """Pop ``source`` and everything below it; return them re-keyed under ``destination``."""
    moved = {}
    for key in state.subtree(source):
        moved[destination + key[len(source) :]] = state.pop(key)
    return moved


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
        for key in self.state.subtree(path):
            rec = self.state.pop(key)
            if rec.origin is not None:
                self.gone.setdefault(rec.origin, why)

    def apply(self, change: Change, scope: str) -> None:
        path = scope_relative(change.path, scope)
        source = scope_relative(change.source, scope) if change.source else ""
        if change.action == "mkdir":
            self.state[path] = _Rec("dir", None, None, "new")
        elif change.action == "create":
            self.state[path] = _Rec("file", change.size, None, "new")
        elif change.action == "overwrite":
            self._existing(path, "file", None)
            self._lose(path, "replaced")
            self.state[path] = _Rec("file", change.size, None, "overwritten", replaces=True)
        elif change.action == "copy":
            self._existing(source, change.kind, change.size if change.kind == "file" else None)
            if change.replaces:
                self._existing(path, "file", None)
                self._lose(path, "replaced")
            copies = {
                path + key[len(source) :]: _Rec(
                    self.state[key].kind, self.state[key].size, None, "new"
                )
                for key in self.state.subtree(source)
            }
            copies[path] = _Rec(
                change.kind, change.size if change.kind == "file" else None, None, "copied"
            )
            copies[path].note = source
            copies[path].replaces = change.replaces
            self.state.update(copies)
        elif change.action == "move":
            self._existing(source, change.kind, change.size if change.kind == "file" else None)
            if change.replaces:
                self._existing(path, "file", None)
                self._lose(path, "replaced")
            moved = _relocate(self.state, source, path)
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
        else:  # delete
            self._existing(path, change.kind, change.size if change.kind == "file" else None)
            self._lose(path, "deleted")

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


def _undo(listing: Sequence[Listed], changes: Sequence[Change], scope: str) -> list[Listed]:
    """Rebuild the scope as it was before ``changes`` from a listing made after them."""
    state: _Entries[Listed] = _Entries()

    def put(item: Listed) -> None:
        state[item.path] = item

    for item in listing:
        put(item)

    for change in reversed(changes):
        path = scope_relative(change.path, scope)
        source = scope_relative(change.source, scope) if change.source else ""
        size = change.size if change.kind == "file" else None
        if change.action in ("mkdir", "create"):
            for key in state.subtree(path):
                state.pop(key)
        elif change.action == "overwrite":
            put(Listed(path, "file", None))
        elif change.action == "copy":
            for key in state.subtree(path):
                state.pop(key)
            if change.replaces:
                put(Listed(path, "file", None))
        elif change.action == "move":
            moved = state.subtree(path)
            if not moved:
                put(Listed(source, change.kind, size))
            for key in moved:
                item = state.pop(key)
                put(Listed(source + key[len(path) :], item.kind, item.size))
            if change.replaces:
                put(Listed(path, "file", None))
        else:  # delete
            put(Listed(path, change.kind, size))
    return sorted(state.values.values(), key=lambda item: item.path.split("/"))


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


# --- previews, tabs, ages -----------------------------------------------------------------


def previews(
    plan: Plan,
    changes: Sequence[Change],
    lines: int = PREVIEW_LINES,
    content: ContentStore | None = None,
) -> list[Preview]:
    """The first lines of every file the plan writes (text as text; anything else said so).
    Stored bodies are previewed from ``content``: only their first bytes are read."""
    out = []
    for change in changes:
        if change.action not in ("create", "overwrite"):
            continue
        op = plan.operations[change.op] if change.op < len(plan.operations) else None
        if not isinstance(op, Write):
            continue
        try:
            data = op.head(content, PREVIEW_BYTES + 1)
        except AirlockError:  # a stored body gone missing: validation reports it, not a preview
            data = b"\x00"
        more = len(data) > PREVIEW_BYTES
        data = data[:PREVIEW_BYTES]
        text: str | None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:  # text cut inside a character is still text
            cut = more and exc.start >= len(data) - 3
            text = data[: exc.start].decode("utf-8") if cut else None
        binary = text is None or "\x00" in text
        all_lines = [] if binary or text is None else text.splitlines()
        shown = all_lines[:lines]
        out.append(
            Preview(
                path=scope_relative(change.path, plan.scope),
                size=change.size,
                action=change.action,
                lines=shown,
                more_lines=len(all_lines) - len(shown),
                binary=binary,
            )
        )
    return out


Tab = Literal["review", "ready", "applied", "failed", "rolled_back", "rejected"]

TABS: list[tuple[Tab, str]] = [
    ("review", "Needs review"),
    ("ready", "Ready to apply"),
    ("applied", "Applied"),
    ("failed", "Failed"),
    ("rolled_back", "Rolled back"),
    ("rejected", "Rejected"),
]


def tab_of(status: str, needs_approval: bool) -> Tab:
    """Which list a plan belongs on, from the reviewer's point of view."""
    if status == "validated":
        return "review" if needs_approval else "ready"
    if status == "approved":
        return "ready"
    if status in ("applied", "applying", "rolling_back"):
        return "applied"
    if status in ("failed", "invalid"):
        return "failed"
    if status == "rolled_back":
        return "rolled_back"
    if status == "rejected":
        return "rejected"
    return "review"  # submitted, not checked yet


STATUS_LABELS = {
    "submitted": "Submitted",
    "validated": "Checked",
    "invalid": "Invalid",
    "approved": "Approved",
    "rejected": "Rejected",
    "applying": "Applying…",
    "applied": "Applied",
    "failed": "Failed",
    "rolling_back": "Rolling back…",
    "rolled_back": "Rolled back",
}


def age(then: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long ago, said briefly: "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return "1 day ago" if days == 1 else f"{days} days ago"


def change_badges(counts: dict[str, int]) -> list[tuple[str, str]]:
    """A plan's counts as short phrases with their kind: [("24 moves", "move"), ...]."""
    out: list[tuple[str, str]] = []

    def add(number: int, one: str, many: str, kind: str) -> None:
        if number:
            out.append((f"{number} {one if number == 1 else many}", kind))

    add(counts.get("delete", 0), "deletion", "deletions", "delete")
    add(counts.get("overwrite", 0), "overwrite", "overwrites", "overwrite")
    add(counts.get("move", 0), "move", "moves", "move")
    add(counts.get("copy", 0), "copy", "copies", "copy")
    add(counts.get("write", 0) + counts.get("mkdir", 0), "new", "new", "new")
    return out


def when(text: str) -> str:
    """An ISO timestamp as "2024-07-13 17:05 UTC" (the text itself if it is not one)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


EVENT_LABELS = {
    "submitted": "Submitted",
    "validated": "Checked",
    "approved": "Approved",
    "rejected": "Rejected",
    "applied": "Applied",
    "failed": "Failed",
    "rolled_back": "Rolled back",
    "recovered": "Recovered after a crash",
    "purged": "Kept-aside files purged",
}


def event_summary(kind: str, payload: dict[str, object]) -> str:
    """One line saying what an audit event recorded."""
    if set(payload) == {UNREADABLE}:
        return "its recorded details are unreadable: the database was edited"
    if kind == "submitted":
        return f"{payload.get('operations', '?')} operation(s) in {payload.get('scope', '?')}"
    if kind == "validated":
        if not payload.get("valid"):
            errors = payload.get("errors")
            return f"invalid: {len(errors) if isinstance(errors, list) else '?'} error(s)"
        needs = payload.get("needs_approval")
        if isinstance(needs, list) and needs:
            return "valid; needs approval (" + ", ".join(str(n) for n in needs) + ")"
        return "valid; no approval needed"
    if kind in ("approved", "rejected"):
        comment = str(payload.get("comment") or "")
        return f"“{comment}”" if comment else "no comment"
    if kind in ("applied", "rolled_back"):
        operations = payload.get("operations")
        done = f"{len(operations)} change(s)" if isinstance(operations, list) else "done"
        set_aside = payload.get("set_aside")
        if isinstance(set_aside, list) and set_aside:
            done += f"; forced, {len(set_aside)} changed entr(ies) set aside"
        return done
    if kind == "failed":
        return str(payload.get("error") or "failed; workspace unchanged")
    if kind == "recovered":
        return str(payload.get("result") or "")
    return ""
