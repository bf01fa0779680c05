"""Property-based tests of the engine: random trees, random plans, real applies and rollbacks.

* A stateful test drives a real workspace on disk (LocalStorage through Workspace): it grows
  random trees in a scope and runs random plans through submit, validate, approve and apply,
  then checks that an invalid plan changed nothing, that the real tree after apply is what the
  validation report said it would be, that a rollback restores the exact prior tree, and that a
  failed or interrupted apply leaves (or, after recovery, returns) the tree exactly as before.
* The validation report's changes, replayed on a dict model, equal the real post-apply tree on
  the memory backend (validate + journal directly).
* parse_plan and paths.parse, fed arbitrary JSON and text, only ever raise InputErrors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from airlock import journal, paths
from airlock.content import ContentStore
from airlock.errors import PlanFormatError, RollbackConflictError, UnsafePathError
from airlock.journal import Cursor, Step
from airlock.paths import STATE_DIR, RelPath, render
from airlock.plan import Plan, Write, parse_plan
from airlock.policy import Policy
from airlock.rollback import find_conflicts
from airlock.storage.base import Kind, Storage
from airlock.storage.gcs import SYMLINK_KEY, GcsStorage
from airlock.storage.memory import MemoryStorage
from airlock.validate import Change, stale_paths, validate
from airlock.workspace import Workspace
from gcskit import Gcs, GcsPlanter
from storage_conformance import Planter
from support import person

SCOPE: RelPath = ("projects", "Case")
SCOPE_TEXT = render(SCOPE)

# Few names, so plans hit existing entries, case-fold and Unicode collisions, and each other.
NAMES = ["a", "b", "A", "c.txt", "dir", "caf\u00e9", "cafe\u0301", " sp"]
SYMLINK_TARGETS = ["a", "../../..", "/etc/passwd", "nowhere", "dir/c.txt", "."]
NEW_NAMES = ["n0", "n1", "n2", "n3", "New.txt", *NAMES]
BAD_PATHS = ["../escape", "/abs", "a//b", "a/./b", "", "a\\b", "a/\x00"]

COMMON = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # No "explain" phase: its line tracer makes a failing case take minutes to report.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- a tree model: path (relative to the workspace root) -> what is there -------------------

Node = tuple[str, bytes | str | None]
Tree = dict[RelPath, Node]
Snap = Callable[[Storage], Tree]
DIR: Node = ("dir", None)
SPECIAL: Node = ("special", None)


def snapshot_disk(root: Path) -> Tree:
    """Every entry under ``root`` except Airlock's state: folders, bytes, symlink targets."""
    tree: Tree = {}

    def visit(folder: Path, rel: RelPath) -> None:
        for name in os.listdir(folder):
            if not rel and name == STATE_DIR:
                continue
            path, key = folder / name, (*rel, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                tree[key] = DIR
                visit(path, key)
            elif stat.S_ISLNK(mode):
                tree[key] = ("symlink", os.readlink(path))
            elif stat.S_ISREG(mode):
                tree[key] = ("file", path.read_bytes())
            else:
                tree[key] = SPECIAL

    visit(root, ())
    return tree


def snapshot_walked(storage: Storage, link_target: Callable[[RelPath], str]) -> Tree:
    """The tree through the storage's own walk and reads; a link's target by ``link_target``
    (the interface never reads one: links are entries, never followed)."""
    tree: Tree = {}
    for path, entry in storage.walk(()):
        if path[0] == STATE_DIR:
            continue
        if entry.kind is Kind.DIR:
            tree[path] = DIR
        elif entry.kind is Kind.FILE:
            tree[path] = ("file", b"".join(storage.read(path)))
        elif entry.kind is Kind.SYMLINK:
            tree[path] = ("symlink", link_target(path))
        else:
            tree[path] = SPECIAL
    return tree


def snapshot_memory(storage: Storage) -> Tree:
    assert isinstance(storage, MemoryStorage)
    return snapshot_walked(storage, lambda path: storage._get(path).target)


def _split(text: str) -> RelPath:
    return tuple(text.split("/"))


def _subtree(tree: Tree, path: RelPath) -> Tree:
    return {key: node for key, node in tree.items() if paths.is_within(key, path)}


def model_digest(tree: Tree, path: RelPath) -> str | None:
    """What validation records for ``path``: a file's SHA-256, a folder's tree digest."""
    node = tree[path]
    if node[0] == "file":
        assert isinstance(node[1], bytes)
        return hashlib.sha256(node[1]).hexdigest()
    if node[0] != "dir":
        return None
    digest = hashlib.sha256()
    for key in sorted(k for k in _subtree(tree, path) if k != path):
        inner = tree[key]
        content = model_digest(tree, key) if inner[0] == "file" else ""
        kind = inner[0]
        line = f"{render(key[len(path) :])}\0{kind}\0{content}\n"
        digest.update(line.encode("utf-8", "surrogatepass"))
    return "tree:" + digest.hexdigest()


def model_apply(
    tree: Tree, changes: list[Change], plan: Plan, store: ContentStore | None = None
) -> Tree:
    """Replay the report's changes on the model, checking the hashes they record (a write's
    body from ``store`` when the plan names a stored one, as submitted plans do)."""
    model = dict(tree)
    for change in changes:
        dest = _split(change.path)
        assert dest[:-1] in model and model[dest[:-1]] == DIR, change
        if change.replaces:
            assert model[dest][0] == "file", change
            assert model_digest(model, dest) == change.sha256_before, change
            del model[dest]
        if change.action == "mkdir":
            assert dest not in model
            model[dest] = DIR
        elif change.action in ("create", "overwrite"):
            assert dest not in model
            op = plan.operations[change.op]
            assert isinstance(op, Write)
            blob = op.stored
            data = (
                op.content() if blob is None or store is None else b"".join(store.read(blob.sha256))
            )
            assert hashlib.sha256(data).hexdigest() == change.sha256_after
            assert change.size == len(data)
            model[dest] = ("file", data)
        elif change.action in ("copy", "move"):
            assert change.source is not None
            source = _split(change.source)
            assert dest not in model
            if change.action == "copy" or change.identity is None:
                assert model_digest(model, source) == change.sha256_after, change
            else:  # a move records what it moves by identity, read from no file
                assert change.sha256_after is None, change
            moving = _subtree(model, source)
            if change.action == "move":
                for key in moving:
                    del model[key]
            for key, node in moving.items():
                model[dest + key[len(source) :]] = node
        else:
            assert dest in model, change
            assert model_digest(model, dest) == change.sha256_before, change
            for key in _subtree(model, dest):
                del model[key]
    return model


# --- random plans drawn from the current tree ---------------------------------------------


def _scope_entries(tree: Tree) -> tuple[list[RelPath], list[RelPath]]:
    """(every entry, every folder) inside the scope, relative to it; the scope itself is ()."""
    entries = sorted(
        key[len(SCOPE) :] for key in tree if len(key) > len(SCOPE) and key[: len(SCOPE)] == SCOPE
    )
    folders = [()] + [rel for rel in entries if tree[SCOPE + rel] == DIR]
    return entries, folders


def draw_path(
    data: st.DataObject, tree: Tree, role: str, *, invalid: bool, recent: list[RelPath]
) -> str:
    """A scope-relative path for ``role``: "source" (mostly an existing entry), "file" (mostly
    an existing file) or "destination" (mostly a name not taken yet). Sometimes anything.

    ``recent`` holds what the plan's earlier operations made, and their parents: often picked,
    so that operations build on each other (write into a new folder, then move or delete it).
    """
    entries, folders = _scope_entries(tree)
    if data.draw(st.integers(0, 2)) == 1:
        entries = [rel for rel in recent if SCOPE + rel in tree] or entries
        folders = [rel for rel in entries if tree[SCOPE + rel] == DIR] or folders
    if role == "file":
        entries = [rel for rel in entries if tree[SCOPE + rel][0] == "file"] or entries
    # Small numbers (which Hypothesis favours) give the likely-valid choice for the role.
    choice = data.draw(st.integers(0, 39 if invalid else 38))
    if choice == 39:
        return data.draw(st.sampled_from(BAD_PATHS))
    want_existing = role in ("source", "file")
    if entries and (choice < 33) == want_existing and choice < 37:
        return render(data.draw(st.sampled_from(entries)))
    folder = data.draw(st.sampled_from(folders))
    if choice == 38:  # under a folder that does not exist (yet)
        return render((*folder, "missing", data.draw(st.sampled_from(NAMES))))
    free = [name for name in NEW_NAMES if (*SCOPE, *folder, name) not in tree]
    name = data.draw(st.sampled_from(free if free and choice < 36 else NAMES))
    return render((*folder, name))


def draw_operation(
    data: st.DataObject, tree: Tree, *, invalid: bool, recent: list[RelPath]
) -> dict[str, Any]:
    kind = data.draw(st.sampled_from(["write", "mkdir", "move", "copy", "delete", "write"]))
    if kind == "mkdir":
        return {
            "op": kind,
            "path": draw_path(data, tree, "destination", invalid=invalid, recent=recent),
        }
    if kind == "delete":
        return {"op": kind, "path": draw_path(data, tree, "source", invalid=invalid, recent=recent)}
    overwrite = data.draw(st.booleans())
    if kind == "write":
        body = data.draw(st.binary(max_size=24))
        role = "file" if overwrite else "destination"
        op: dict[str, Any] = {
            "op": "write",
            "path": draw_path(data, tree, role, invalid=invalid, recent=recent),
        }
        if data.draw(st.booleans()):
            op["base64"] = base64.b64encode(body).decode()
        else:
            op["text"] = body.decode("latin-1")
        return {**op, "overwrite": overwrite}
    return {
        "op": kind,
        "source": draw_path(data, tree, "source", invalid=invalid, recent=recent),
        "destination": draw_path(data, tree, "destination", invalid=invalid, recent=recent),
        "overwrite": overwrite,
    }


def _guess(tree: Tree, op: dict[str, Any]) -> None:
    """Roughly what ``op`` does, on the scratch ``tree`` the next operations are drawn from
    (so that they build on it: write into a new folder, delete what was just moved...)."""

    def key(text: str) -> RelPath:
        return (*SCOPE, *text.split("/"))

    if op.get("parents"):
        made = key(op.get("destination", op.get("path", "")))
        for depth in range(len(SCOPE) + 1, len(made)):
            tree.setdefault(made[:depth], DIR)
    if op["op"] == "mkdir":
        tree.setdefault(key(op["path"]), DIR)
    elif op["op"] == "write":
        tree[key(op["path"])] = ("file", b"")
    elif op["op"] == "delete":
        for inner in _subtree(tree, key(op["path"])):
            del tree[inner]
    else:
        source, dest = key(op["source"]), key(op["destination"])
        moving = _subtree(tree, source)
        if op["op"] == "move":
            for inner in moving:
                del tree[inner]
        tree.update({dest + inner[len(source) :]: node for inner, node in moving.items()})


def draw_plan(data: st.DataObject, tree: Tree, *, invalid: bool = True) -> dict[str, Any]:
    scratch = dict(tree)
    operations = []
    recent: list[RelPath] = []
    for _ in range(data.draw(st.integers(1, 4))):
        op = draw_operation(data, scratch, invalid=invalid, recent=recent)
        if op["op"] != "delete" and data.draw(st.integers(0, 2)) == 0:
            op["parents"] = True  # create the folders it needs (as the seed door always asks)
            where = "destination" if "destination" in op else "path"
            if op[where] not in BAD_PATHS and data.draw(st.integers(0, 1)) == 0:  # folders to make
                folder = data.draw(st.sampled_from(["made", "made/deeper", "n0", "dir/new"]))
                op[where] = f"{folder}/{op[where]}"
        operations.append(op)
        if data.draw(st.integers(0, 3)) and all(
            op.get(name, "a") not in BAD_PATHS for name in ("path", "source", "destination")
        ):
            _guess(scratch, op)
            made = _split(op.get("destination", op.get("path", "")))
            recent.extend(made[:depth] for depth in range(len(made), 0, -1))
    return {
        "scope": SCOPE_TEXT,
        "author": "agent",
        "description": "property test",
        "operations": operations,
    }


ENTRY_KINDS = ["file", "file", "dir", "dir", "symlink", "fifo", "hardlink"]


def draw_tree_additions(data: st.DataObject, tree: Tree) -> list[tuple[RelPath, str, bytes]]:
    """Up to five new entries (scope-relative path, kind, payload) to add to ``tree``."""
    model = {key[len(SCOPE) :]: node for key, node in tree.items() if key[: len(SCOPE)] == SCOPE}
    model[()] = DIR
    out: list[tuple[RelPath, str, bytes]] = []
    for _ in range(data.draw(st.integers(1, 5))):
        folders = sorted(rel for rel, node in model.items() if node == DIR)
        path = (*data.draw(st.sampled_from(folders)), data.draw(st.sampled_from(NAMES)))
        if path in model:
            continue
        kind = data.draw(st.sampled_from(ENTRY_KINDS))
        files = sorted(rel for rel, node in model.items() if node[0] == "file")
        if kind == "hardlink" and not files:
            kind = "file"
        if kind == "file":
            payload = data.draw(st.binary(max_size=48))
            model[path] = ("file", payload)
        elif kind == "hardlink":
            twin = data.draw(st.sampled_from(files))
            payload = render(twin).encode()
            model[path] = model[twin]
        elif kind == "symlink":
            payload = data.draw(st.sampled_from(SYMLINK_TARGETS)).encode()
            model[path] = ("symlink", payload.decode())
        elif kind == "dir":
            payload = b""
            model[path] = DIR
        else:
            payload = b""
            model[path] = SPECIAL
        out.append((path, kind, payload))
    return out


# --- 1. the stateful test on a real workspace --------------------------------------------


def _destination(step: Step) -> RelPath:
    return step.target if step.kind in ("rename", "copy") else step.path


def plantable_steps(steps: list[Step], before: Tree) -> list[int]:
    """Steps that can be made to fail by planting an entry at their destination first.

    Only where nothing the undo of the earlier steps touches is at, above or below that path
    (so the planted entry cannot get in the undo's way: it is outside interference, which the
    engine need not survive) and the path was empty before the apply.
    """
    out = []
    for index, step in enumerate(steps):
        if step.kind == "rmdir":
            continue
        dest = _destination(step)
        if dest in before:
            continue
        touched = [p for s in steps[:index] for p in (s.path, s.target) if p]
        if any(paths.is_within(dest, p) or paths.is_within(p, dest) for p in touched):
            continue
        out.append(index)
    return out


class ApplyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="airlock-props-"))
        self.root = self.tmp / "ws"
        self.ws = Workspace.init(self.root)
        (self.root / "projects" / "Case").mkdir()
        self.applied = self.rolled_back = self.invalid = self.failed = self.recovered = 0

    def teardown(self) -> None:
        note(
            f"applied={self.applied} rolled_back={self.rolled_back} invalid={self.invalid} "
            f"failed={self.failed} recovered={self.recovered}"
        )
        self.ws.close()
        shutil.rmtree(self.tmp)

    # rules

    @initialize(data=st.data())
    def first_tree(self, data: st.DataObject) -> None:
        self.grow_tree(data)

    @rule(data=st.data())
    def grow_tree(self, data: st.DataObject) -> None:
        for rel, kind, payload in draw_tree_additions(data, snapshot_disk(self.root)):
            path = self.root.joinpath(*SCOPE, *rel)
            if kind == "file":
                path.write_bytes(payload)
            elif kind == "dir":
                path.mkdir()
            elif kind == "symlink":
                os.symlink(payload.decode(), path)
            elif kind == "hardlink":
                os.link(self.root.joinpath(*SCOPE, payload.decode()), path)
            else:
                os.mkfifo(path)

    @rule(data=st.data())
    def run_plan(self, data: st.DataObject) -> None:
        before = snapshot_disk(self.root)
        plan_data = draw_plan(data, before)
        note(f"plan: {json.dumps(plan_data['operations'])}")
        try:
            record = self.ws.submit(plan_data, by=person("agent"))
        except (PlanFormatError, UnsafePathError):
            assert snapshot_disk(self.root) == before
            return
        record = self.ws.validate(record.id)
        report = record.validation
        assert report is not None
        if not report.valid:
            self.invalid += 1
            assert record.status == "invalid"
            assert report.changes == [] and report.errors
            assert snapshot_disk(self.root) == before
            return
        assert record.status == "validated"
        assert stale_paths(report.preconditions, self.ws.storage) == []
        expected = model_apply(before, report.changes, record.plan, self.ws.content)
        if report.needs_approval:
            self.ws.approve(record.id, by=person("approver"))
        steps = journal.compile_apply(report.changes, "TXN")
        mode = data.draw(st.sampled_from(["apply", "apply", "plant", "crash"]))
        if mode == "plant":
            plantable = plantable_steps(steps, before)
            if plantable:
                self._failed_apply(record.id, report.changes, data.draw(st.sampled_from(plantable)))
                assert snapshot_disk(self.root) == before
                return
        if mode == "crash":
            self._interrupted_apply(record.id, data.draw(st.integers(0, len(steps) - 1)))
            assert snapshot_disk(self.root) == before
            return
        result = self.ws.apply(record.id, by=person("agent"))
        assert result.success, result.error
        self.applied += 1
        assert snapshot_disk(self.root) == expected
        assert self.ws.rollback_conflicts(record.id) == []
        assert result.transaction_id is not None
        applied_steps = journal.compile_apply(report.changes, result.transaction_id)
        rollback_steps = journal.compile_rollback(applied_steps, "TXN")
        mode = data.draw(st.sampled_from(["clean", "clean", "plant", "crash"]))
        plantable = plantable_steps(rollback_steps, expected)
        if mode == "plant" and plantable:
            self._failed_rollback(record.id, applied_steps, data.draw(st.sampled_from(plantable)))
            assert snapshot_disk(self.root) == expected
        if mode == "crash":
            self._interrupted_rollback(
                record.id, data.draw(st.integers(0, len(rollback_steps) - 1))
            )
            assert snapshot_disk(self.root) == expected
        self.ws.rollback(record.id, by=person("approver"))
        self.rolled_back += 1
        assert self.ws.get(record.id).status == "rolled_back"
        assert snapshot_disk(self.root) == before
        if data.draw(st.booleans()):
            # Apply the same plan again (a new submission) and keep it: the tree moves on.
            again = self.ws.validate(self.ws.submit(plan_data, by=person("agent")).id)
            assert again.validation is not None and again.validation.valid
            assert again.validation.changes == report.changes
            if again.validation.needs_approval:
                self.ws.approve(again.id, by=person("approver"))
            assert self.ws.apply(again.id, by=person("agent")).success
            assert snapshot_disk(self.root) == expected

    @rule(data=st.data())
    def run_another_plan(self, data: st.DataObject) -> None:
        """The same as run_plan: a second rule so that plans run twice as often as trees grow."""
        self.run_plan(data)

    def _txn_id(self) -> str:
        (cursor,) = (self.root / STATE_DIR / "journal").glob("*.cursor")
        return cursor.stem

    def _planting_hook(
        self, compile_steps: Callable[[str], list[Step]], index: int, planted: list[Path]
    ) -> Callable[[int], None]:
        """A hook that, before step ``index``, puts a file where that step puts its entry."""

        def hook(step_index: int) -> None:
            if step_index == index:
                steps = compile_steps(self._txn_id())
                path = self.root.joinpath(*_destination(steps[index]))
                path.write_bytes(b"planted")
                planted.append(path)

        return hook

    def _remove_planted(self, planted: list[Path]) -> None:
        (path,) = planted
        assert path.read_bytes() == b"planted"
        path.unlink()
        assert not list((self.root / STATE_DIR / "journal").glob("*.cursor"))

    def _failed_apply(self, plan_id: str, changes: list[Change], index: int) -> None:
        """Make apply step ``index`` fail for real (its destination is taken): all is undone."""
        planted: list[Path] = []

        def compile_steps(txn_id: str) -> list[Step]:
            return journal.compile_apply(changes, txn_id)

        hook = self._planting_hook(compile_steps, index, planted)
        result = self.ws.apply(plan_id, by=person("agent"), hook=hook)
        assert not result.success
        assert result.error is not None and f"step {index} " in result.error
        self.failed += 1
        assert self.ws.get(plan_id).status == "failed"
        self._remove_planted(planted)

    def _failed_rollback(self, plan_id: str, applied: list[Step], index: int) -> None:
        """Make rollback step ``index`` fail for real: the rollback is undone, still applied."""
        planted: list[Path] = []

        def compile_steps(txn_id: str) -> list[Step]:
            return journal.compile_rollback(applied, txn_id)

        hook = self._planting_hook(compile_steps, index, planted)
        with pytest.raises(RollbackConflictError, match=f"step {index} "):
            self.ws.rollback(plan_id, by=person("approver"), hook=hook)
        self.failed += 1
        assert self.ws.get(plan_id).status == "applied"
        self._remove_planted(planted)

    @staticmethod
    def _crash_before(index: int) -> Callable[[int], None]:
        def hook(step_index: int) -> None:
            if step_index == index:
                raise OSError(5, "injected failure before step", str(step_index))

        return hook

    def _recover(self, plan_id: str, index: int, status: str) -> None:
        recovered = self.ws.recover(by=person("operator"))
        assert [r.plan_id for r in recovered] == [plan_id]
        assert recovered[0].steps_undone == index + 1
        self.recovered += 1
        assert self.ws.get(plan_id).status == status

    def _interrupted_apply(self, plan_id: str, index: int) -> None:
        """The process dies before step ``index`` (the hook raises); recovery undoes it."""
        with pytest.raises(OSError, match="injected failure"):
            self.ws.apply(plan_id, by=person("agent"), hook=self._crash_before(index))
        # A hook's exception is a crash, not a step failure: nothing is undone in-process.
        assert self.ws.get(plan_id).status == "applying"
        self._recover(plan_id, index, "failed")

    def _interrupted_rollback(self, plan_id: str, index: int) -> None:
        with pytest.raises(OSError, match="injected failure"):
            self.ws.rollback(plan_id, by=person("approver"), hook=self._crash_before(index))
        assert self.ws.get(plan_id).status == "rolling_back"
        self._recover(plan_id, index, "applied")

    # invariants

    @invariant()
    def audit_chain_verifies(self) -> None:
        report = self.ws.audit_verify()
        assert report.ok, report.problems

    @invariant()
    def no_transaction_left_running(self) -> None:
        assert not list((self.root / STATE_DIR / "journal").glob("*.cursor"))


ApplyMachine.TestCase.settings = settings(COMMON, max_examples=40, stateful_step_count=10)
# A failing case takes minutes to shrink (each step is a real apply): let it finish reporting.
TestApplyMachine = pytest.mark.timeout(900)(ApplyMachine.TestCase)


# --- 2. the validation report predicts the post-apply tree (memory backend) --------------


class MemoryPlanter:
    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def symlink(self, path: RelPath, target: str) -> None:
        self.storage.add_symlink(path, target)

    def special(self, path: RelPath) -> None:
        self.storage.add_special(path)


def grow_tree(storage: Storage, planter: Planter, data: st.DataObject, snapshot: Snap) -> None:
    """A random tree in the scope of an empty ``storage``."""
    for folder in ((STATE_DIR,), (STATE_DIR, "trash"), ("projects",), SCOPE):
        storage.mkdir(folder)
    for _ in range(data.draw(st.integers(1, 3))):
        for rel, kind, payload in draw_tree_additions(data, snapshot(storage)):
            path = SCOPE + rel
            if kind == "file":
                storage.create(path, [payload])
            elif kind == "hardlink":
                storage.copy_file(SCOPE + _split(payload.decode()), path)
            elif kind == "dir":
                storage.mkdir(path)
            elif kind == "symlink":
                planter.symlink(path, payload.decode())
            else:
                planter.special(path)


def check_prediction(storage: Storage, data: st.DataObject, snapshot: Snap) -> None:
    """Validate a random plan on ``storage``; the report's changes replayed on a model must be
    the tree the journal's apply makes; an apply or rollback interrupted before any step and
    undone gives the tree back; the rollback restores the tree before the plan."""
    before = snapshot(storage)
    plan = parse_plan(draw_plan(data, before, invalid=False))
    note(f"plan: {plan.canonical_json()}")
    report = validate(plan, storage, Policy())
    assert snapshot(storage) == before
    if not report.valid:
        assert report.changes == [] and report.errors
        return
    assert stale_paths(report.preconditions, storage) == []
    expected = model_apply(before, report.changes, plan)

    def content(index: int) -> bytes:
        op = plan.operations[index]
        assert isinstance(op, Write)
        return op.content()

    steps = journal.compile_apply(report.changes, "t-apply")
    back = journal.compile_rollback(steps, "t-rollback")
    with tempfile.TemporaryDirectory() as tmp:
        # Sometimes the process "dies" before a step; undoing from the cursor, as recovery
        # does, must give back the tree as it was before the interrupted run.
        for run, want, make in ((steps, before, content), (back, expected, _no_content)):
            crash = data.draw(st.none() | st.integers(0, len(run) - 1))
            if crash is not None:
                _interrupted_run(storage, run, Path(tmp) / "crash.cursor", make, crash)
                assert snapshot(storage) == want
            cursor = Cursor(Path(tmp) / "run.cursor")
            journal.run_steps(storage, run, cursor, make)
            cursor.remove()
            if run is steps:
                assert snapshot(storage) == expected
                assert find_conflicts(storage, report.changes) == []
    assert snapshot(storage) == before


@settings(COMMON, max_examples=300)
@given(data=st.data())
def test_validation_predicts_the_applied_tree(data: st.DataObject) -> None:
    storage = MemoryStorage()
    grow_tree(storage, MemoryPlanter(storage), data, snapshot_memory)
    check_prediction(storage, data, snapshot_memory)


def snapshot_gcs(storage: Storage) -> Tree:
    assert isinstance(storage, GcsStorage)

    def target(path: RelPath) -> str:
        found = storage._object(path)
        assert found is not None
        return found.metadata[SYMLINK_KEY]

    return snapshot_walked(storage, target)


@settings(COMMON, max_examples=25)
@given(data=st.data())
def test_validation_predicts_the_applied_tree_on_gcs(gcs: Gcs, data: st.DataObject) -> None:
    """The same on a bucket of the GCS emulator: the backend's object-by-object folder moves
    and generation preconditions change nothing of what a plan does (fewer examples: every
    call is an HTTP request)."""
    storage = GcsStorage(gcs.new_bucket(), client=gcs.client())
    try:
        grow_tree(storage, GcsPlanter(storage), data, snapshot_gcs)
        check_prediction(storage, data, snapshot_gcs)
    finally:
        storage.close()


class _Crash(Exception):
    pass


def _no_content(_op: int) -> bytes:
    return b""


def _interrupted_run(
    storage: Storage, steps: list[Step], path: Path, content: journal.Content, crash: int
) -> None:
    def hook(index: int) -> None:
        if index == crash:
            raise _Crash

    cursor = Cursor(path)
    with pytest.raises(_Crash):
        journal.run_steps(storage, steps, cursor, content, hook=hook)
    cursor.close()
    started = Cursor.read(path)
    assert started == crash + 1
    cursor = Cursor(path)
    journal.undo_steps(storage, steps, started, cursor)
    cursor.remove()


# --- 3. untrusted input only ever raises input errors -----------------------------------


ANY_TEXT = st.one_of(
    st.text(max_size=12),
    st.lists(
        st.sampled_from(["/", ".", "..", "\\", "\x00", "a", "\u00e9", "\ud800"]), max_size=8
    ).map("".join),
    st.sampled_from([*BAD_PATHS, "a", "a/b", "x" * 256, "\ud800", "caf\u00e9/x"]),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)
OPERATION = st.fixed_dictionaries(
    {"op": st.sampled_from(["mkdir", "write", "copy", "move", "delete", "rename", ""])},
    optional={
        "path": ANY_TEXT | JSON,
        "source": ANY_TEXT,
        "destination": ANY_TEXT,
        "text": ANY_TEXT | JSON,
        "base64": st.sampled_from(["", "AAE=", "AAE", "!!", "\u00e9", "\ud800"]) | JSON,
        "overwrite": st.booleans() | JSON,
        "extra": JSON,
    },
)
PLAN_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "scope": ANY_TEXT | st.sampled_from(["projects/Case", ".airlock/x", "projects"]),
        "description": ANY_TEXT | JSON,
        "author": ANY_TEXT,
        "operations": st.lists(OPERATION, max_size=3) | JSON,
        "unknown": JSON,
    },
)


GOOD_PATH = st.sampled_from(["a", "a/b", "caf\u00e9", "x y/z"])
NEARLY_VALID = st.fixed_dictionaries(
    {
        "scope": st.sampled_from(["projects/Case", "Reports/x/y"]) | ANY_TEXT,
        "operations": st.lists(
            st.fixed_dictionaries(
                {"op": st.sampled_from(["mkdir", "write", "copy", "move", "delete"])},
                optional={
                    "path": GOOD_PATH | ANY_TEXT,
                    "source": GOOD_PATH | ANY_TEXT,
                    "destination": GOOD_PATH | ANY_TEXT,
                    "text": ANY_TEXT,
                    "base64": st.sampled_from(["", "AAE=", "AAE", "!!", "\u00e9"]),
                    "overwrite": st.booleans() | JSON,
                },
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={"description": ANY_TEXT, "author": ANY_TEXT},
)


# A well-formed plan with arbitrary strings wherever a string goes.
WELL_FORMED = st.fixed_dictionaries(
    {
        "scope": st.just("projects/Case") | GOOD_PATH.map("projects/".__add__),
        "description": st.just("") | ANY_TEXT,
        "author": st.just("agent") | ANY_TEXT,
        "operations": st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"op": st.just("write"), "path": GOOD_PATH | ANY_TEXT, "text": ANY_TEXT}
                ),
                st.fixed_dictionaries({"op": st.just("mkdir"), "path": GOOD_PATH | ANY_TEXT}),
                st.fixed_dictionaries(
                    {"op": st.just("move"), "source": GOOD_PATH, "destination": ANY_TEXT}
                ),
            ),
            min_size=1,
            max_size=3,
        ),
    }
)


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


UNTRUSTED = st.one_of(
    JSON,
    PLAN_LIKE,
    PLAN_LIKE.map(_json_text),
    PLAN_LIKE.map(json.dumps),
    NEARLY_VALID,
    NEARLY_VALID.map(_json_text),
    WELL_FORMED,
    WELL_FORMED.map(_json_text),
    st.text(max_size=40),
    st.binary(max_size=40),
)


@settings(COMMON, max_examples=600)
@given(UNTRUSTED)
@example({"scope": "projects/Case", "operations": [{"op": "write", "path": "a", "text": "\ud800"}]})
@example('{"scope": "projects/Case", "operations": [{"op": "mkdir", "path": "\\ud800"}]}')
@example(b'{"scope": "projects/Case", "operations": [{"op": "mkdir", "path": "\xff"}]}')
def test_parse_plan_raises_only_input_errors(data: object) -> None:
    try:
        plan = parse_plan(data)
    except (PlanFormatError, UnsafePathError) as exc:
        assert exc.message
        return
    # Whatever parses must be usable end to end: digest, stored body, contents, paths.
    assert plan.digest.startswith("sha256:")
    assert Plan.model_validate_json(plan.canonical_json()) == plan
    assert plan.scope_path[0] != STATE_DIR
    for op in plan.operations:
        if isinstance(op, Write):
            op.content()


@settings(COMMON, max_examples=600)
@given(st.one_of(ANY_TEXT, st.text(max_size=300)))
def test_paths_parse_raises_only_unsafe_path_errors(text: str) -> None:
    try:
        parsed = paths.parse(text)
    except UnsafePathError as exc:
        assert exc.message
        return
    assert render(parsed) == text
    for name in parsed:
        assert name not in ("", ".", "..")
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert len(name.encode("utf-8")) <= paths.NAME_MAX_BYTES
