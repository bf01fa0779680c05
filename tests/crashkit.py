"""Helpers for the crash and fault tests: trees, snapshots, and children that die on cue.

* :func:`make_tree` builds files, folders and symlinks under a root.
* :func:`take_snapshot` records every file's bytes, every folder and every symlink's target under
  a workspace root (Airlock's own ``.airlock`` folder excluded); :func:`trash_orphans` and
  :func:`stray_cursors` check the state folder separately.
* :func:`run_child` / :func:`start_child` run a real child process (``sys.executable -c``) that
  opens the workspace and applies, rolls back or recovers a plan, and kills itself with SIGKILL at
  a chosen instant: before journal step N (through the ``hook``), before, during or after its
  M-th filesystem mutation, before its journal cursor exists, in the final ``sync``, or after
  the commit. The parent can also kill it at a random moment (:func:`start_child` with
  ``announce=True``). Scenarios on separate workspaces run in parallel (:func:`run_parallel`).
"""

from __future__ import annotations

import base64
import gc
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import pytest

from airlock import journal
from airlock.paths import STATE_DIR
from airlock.records import PlanRecord
from airlock.workspace import Workspace
from support import person

Action = Literal["apply", "rollback", "recover"]
MutationMode = Literal["before", "during", "after"]
KillPoint = Literal["cursor", "sync", "commit"]
"""Where else a child can die: before its cursor exists, in the final sync, after the commit."""
T = TypeVar("T")

APPROVER = person("jane")
AGENT = "agent"


# --- trees and snapshots --------------------------------------------------------------------


def make_tree(
    root: Path,
    files: Mapping[str, bytes | str] | None = None,
    folders: Iterable[str] = (),
    symlinks: Mapping[str, str] | None = None,
) -> None:
    """Create ``folders``, ``files`` (text is UTF-8) and ``symlinks`` (path -> target) under root."""
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    for rel, target in (symlinks or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)


@dataclass(frozen=True)
class Snapshot:
    """Everything under a workspace root except ``.airlock``: bytes, folders, link targets."""

    files: dict[str, bytes] = field(default_factory=dict)
    folders: frozenset[str] = frozenset()
    symlinks: dict[str, str] = field(default_factory=dict)

    def diff(self, other: Snapshot, limit: int = 20) -> list[str]:
        """What differs from ``other``, for a readable assertion message."""
        out: list[str] = []
        for rel in sorted(self.folders - other.folders):
            out.append(f"folder {rel!r} only in the first")
        for rel in sorted(other.folders - self.folders):
            out.append(f"folder {rel!r} only in the second")
        for rel in sorted(self.files.keys() | other.files.keys()):
            a, b = self.files.get(rel), other.files.get(rel)
            if a != b:
                what = (
                    "missing in the second"
                    if b is None
                    else "missing in the first"
                    if a is None
                    else f"differs ({len(a)} vs {len(b)} bytes)"
                )
                out.append(f"file {rel!r} {what}")
        for rel in sorted(self.symlinks.keys() | other.symlinks.keys()):
            if self.symlinks.get(rel) != other.symlinks.get(rel):
                out.append(
                    f"symlink {rel!r}: {self.symlinks.get(rel)!r} vs {other.symlinks.get(rel)!r}"
                )
        if len(out) > limit:
            out = [*out[:limit], f"... and {len(out) - limit} more"]
        return out


def take_snapshot(root: Path) -> Snapshot:
    """Read the whole tree under ``root`` without following symlinks, skipping ``.airlock``."""
    files: dict[str, bytes] = {}
    folders: set[str] = set()
    symlinks: dict[str, str] = {}

    def visit(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not prefix and entry.name == STATE_DIR:
                    continue
                rel = prefix + entry.name
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    symlinks[rel] = os.readlink(entry.path)
                elif stat.S_ISDIR(mode):
                    folders.add(rel)
                    visit(Path(entry.path), rel + "/")
                elif stat.S_ISREG(mode):
                    files[rel] = Path(entry.path).read_bytes()
                else:
                    raise AssertionError(f"unexpected special file {rel!r} in the workspace")

    visit(root, "")
    return Snapshot(files, frozenset(folders), symlinks)


def assert_same(actual: Snapshot, expected: Snapshot, what: str) -> None:
    problems = expected.diff(actual)
    assert not problems, f"{what}: the workspace is not as expected:\n  " + "\n  ".join(problems)


def committed_transactions(ws: Workspace) -> set[str]:
    """Transactions whose kept-aside files legitimately live in ``.airlock/trash``."""
    found = set()
    for event in ws.audit_events():
        if event["kind"] in ("applied", "rolled_back"):
            found.add(str(event["payload"]["transaction"]))
        elif event["kind"] == "purged":
            found.discard(str(event["payload"]["transaction"]))
    return found


def trash_orphans(ws: Workspace) -> list[str]:
    """Entries in ``.airlock/trash`` that belong to no committed transaction (should be none)."""
    trash = ws.root / STATE_DIR / "trash"
    keep = committed_transactions(ws)
    return sorted(name for name in os.listdir(trash) if name not in keep)


def stray_cursors(ws: Workspace) -> list[str]:
    journal_dir = ws.root / STATE_DIR / "journal"
    return sorted(p.name for p in journal_dir.glob("*.cursor")) if journal_dir.is_dir() else []


def assert_clean_state(ws: Workspace) -> None:
    """Nothing half-done is left in the state folder, and the audit chain holds."""
    assert trash_orphans(ws) == [], f"orphaned trash entries: {trash_orphans(ws)}"
    assert stray_cursors(ws) == [], f"stray journal cursors: {stray_cursors(ws)}"
    report = ws.audit_verify()
    assert report.ok, report.problems


# --- a small plan with every kind of operation --------------------------------------------

SCOPE = "projects/Case-A"
S = SCOPE + "/"
PLAN_ID = "small"

PRE_FILES: dict[str, bytes | str] = {
    S + "notes.txt": "notes v1\n",
    S + "template.txt": b"\x00\x01template\xff",
    S + "Exhibits/ex1.pdf": b"%PDF-1.4 exhibit one",
    S + "Exhibits/scans/ex2.png": b"\x89PNG exhibit two",
    S + "inbox/letter.txt": "Dear counsel,\n",
    S + "Photos/a.jpg": b"\xff\xd8 photo a",
    S + "Photos/b.jpg": b"\xff\xd8 photo b",
    S + "draft.tmp": "draft",
    S + "old/x.txt": "x",
    S + "old/deeper/y.txt": "y",
    S + "summary.txt": "summary v1",
    S + "summary-v2.txt": "summary v2",
    "projects/Case-B/other.txt": "another case",
    "Reports/Case-A/report.txt": "report",
}
PRE_FOLDERS = [S + "empty", S + "Exhibits/empty-sub"]
PRE_LINKS = {
    S + "shortcut": "notes.txt",
    S + "old/link": "../notes.txt",
    S + "Photos/latest": "b.jpg",
}
OPERATIONS: list[dict[str, Any]] = [
    {"op": "mkdir", "path": "Evidence"},
    {"op": "mkdir", "path": "Correspondence"},
    {"op": "write", "path": "Evidence/index.txt", "text": "Evidence index\n"},
    {"op": "write", "path": "notes.txt", "text": "notes v2\n", "overwrite": True},
    {"op": "copy", "source": "template.txt", "destination": "Evidence/template-copy.txt"},
    {"op": "copy", "source": "Exhibits", "destination": "Evidence/Exhibits"},
    {"op": "move", "source": "inbox/letter.txt", "destination": "Correspondence/letter.txt"},
    {"op": "move", "source": "Photos", "destination": "Evidence/Photos"},
    {"op": "delete", "path": "draft.tmp"},
    {"op": "delete", "path": "old"},
    {"op": "move", "source": "summary-v2.txt", "destination": "summary.txt", "overwrite": True},
    {
        "op": "write",
        "path": "Evidence/data.bin",
        "base64": base64.b64encode(bytes(range(256))).decode(),
    },
]
PLAN = {
    "scope": SCOPE,
    "description": "every operation kind",
    "author": AGENT,
    "operations": OPERATIONS,
}


# --- plans ----------------------------------------------------------------------------------


def prepare(ws: Workspace, plan_id: str, plan: dict[str, Any] | None = None) -> PlanRecord:
    """Submit (when ``plan`` is given), validate and, if policy wants it, approve a plan."""
    if plan is not None:
        ws.submit(plan, plan_id=plan_id)
    rec = ws.validate(plan_id)
    assert rec.validation is not None
    assert rec.validation.valid, [issue.message for issue in rec.validation.errors]
    if rec.validation.needs_approval:
        rec = ws.approve(plan_id, by=APPROVER, comment="crash test")
    return rec


def apply_step_count(rec: PlanRecord) -> int:
    """How many journal steps applying this validated plan runs."""
    assert rec.validation is not None
    return len(journal.compile_apply(rec.validation.changes, "count"))


def rollback_step_count(rec: PlanRecord) -> int:
    """How many journal steps rolling back this (applied, conflict-free) plan runs."""
    assert rec.validation is not None
    applied = journal.compile_apply(rec.validation.changes, "count")
    return len(journal.compile_rollback(applied, "count"))


def events_of(ws: Workspace, plan_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in ws.audit_events(plan_id) if e["kind"] == kind]


# --- children -------------------------------------------------------------------------------

_CHILD = r"""
import json, os, signal, sys
from pathlib import Path

cfg = json.loads(sys.argv[1])


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def die(why):
    say("dying " + why)
    os.kill(os.getpid(), signal.SIGKILL)


from airlock import journal
from airlock.errors import AirlockError
from airlock.storage import local as local_mod
from airlock.workspace import Workspace
from airlock.permissions import Principal, Role


def person(name):
    return Principal(name, Role.ADMIN, via="test")

if cfg["uid"] is not None:
    # The interpreter may live where the target user cannot read it: do everything that
    # imports lazily once, as root, on a scratch workspace, then drop privileges for good.
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        warm = Workspace.init(Path(scratch))
        (Path(scratch) / "projects" / "w").mkdir()
        (Path(scratch) / "projects" / "w" / "old").write_text("x")
        warm.submit(
            {"scope": "projects/w", "author": "a", "operations": [
                {"op": "write", "path": "n", "text": "n"},
                {"op": "copy", "source": "old", "destination": "c"},
                {"op": "delete", "path": "old"}]},
            plan_id="warm",
        )
        warm.validate("warm")
        warm.approve("warm", by=person("b"))
        assert warm.apply("warm").success
        warm.rollback("warm", by=person("b"))
        warm.audit_verify()
        warm.close()
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])
    assert os.geteuid() == cfg["uid"]

mutation = cfg["kill_at_mutation"]
if mutation is not None:
    seen = []
    mode = cfg["mutation_mode"]

    def wrap(name):
        original = getattr(local_mod.LocalStorage, name)

        def wrapper(self, *args):
            n = len(seen)
            seen.append(name)
            if n == mutation:
                if mode == "before" or (mode == "during" and name != "create"):
                    die(f"before mutation {n} ({name})")
                if mode == "during":
                    path, chunks = args

                    def half():
                        for chunk in chunks:
                            yield bytes(chunk)[: len(chunk) // 2]
                            die(f"during mutation {n} ({name}), half written")
                        die(f"during mutation {n} ({name}), empty file")

                    return original(self, path, half())
            result = original(self, *args)
            if n == mutation and mode == "after":
                die(f"after mutation {n} ({name})")
            return result

        setattr(local_mod.LocalStorage, name, wrapper)

    for name in ("create", "mkdir", "rmdir", "rename", "unlink"):
        wrap(name)

if cfg["kill_in"] == "cursor":  # the journal is committed, its cursor file not yet made
    journal.Cursor.__init__ = lambda self, path: die("creating the cursor")
elif cfg["kill_in"] == "sync":  # every step ran, nothing is committed yet
    local_mod.LocalStorage.sync = lambda self: die("in sync")
elif cfg["kill_in"] == "commit":  # committed in the database, the cursor not yet removed
    journal.Cursor.remove = lambda self: die("after commit")


def hook(index):
    if index == 0 and cfg["announce"]:
        say("started")
    if index == cfg["kill_before"]:
        die(f"before step {index}")
    if index == cfg["hold_at"]:
        say("holding")
        sys.stdin.readline()  # the parent kills this process; it never answers


try:
    ws = Workspace(Path(cfg["root"]), database_url=cfg["database_url"], recover=cfg["recover"])
    if cfg["action"] == "apply":
        out = ws.apply(cfg["plan_id"], by=person("child"), hook=hook).to_dict()
    elif cfg["action"] == "rollback":
        out = ws.rollback(cfg["plan_id"], by=person(cfg["actor"]), hook=hook).to_dict()
    else:
        if cfg["announce"]:
            say("started")
        out = {"recovered": [r.to_dict() for r in ws.recover()]}
    ws.close()
except AirlockError as exc:
    say("error " + json.dumps({"type": type(exc).__name__, "message": str(exc)}))
    sys.exit(3)
if mutation is not None:
    say("mutations " + json.dumps({"names": seen}))
say("result " + json.dumps(out))
"""


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def _payload(self, prefix: str) -> dict[str, Any] | None:
        for line in self.stdout.splitlines():
            if line.startswith(prefix + " "):
                value = json.loads(line[len(prefix) + 1 :])
                assert isinstance(value, dict)
                return value
        return None

    @property
    def result(self) -> dict[str, Any] | None:
        return self._payload("result")

    @property
    def mutations(self) -> list[str]:
        """The filesystem mutations a child run with ``kill_at_mutation`` made, in order."""
        found = self._payload("mutations")
        assert found is not None, self.describe()
        return [str(name) for name in found["names"]]

    @property
    def error(self) -> dict[str, Any] | None:
        return self._payload("error")

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-3000:]}"


def _config(
    root: Path,
    plan_id: str | None,
    action: Action,
    *,
    kill_before: int | None = None,
    kill_at_mutation: int | None = None,
    mutation_mode: MutationMode = "before",
    kill_in: KillPoint | None = None,
    announce: bool = False,
    hold_at: int | None = None,
    recover: bool = True,
    database_url: str | None = None,
    user: int | None = None,
) -> list[str]:
    """The child's command line.

    ``action`` is done on plan ``plan_id`` by a child that opens ``Workspace(root)`` (recovering
    on open unless ``recover`` is False) and then dies by SIGKILL: before journal step
    ``kill_before`` (in the hook); ``before``/``during``/``after`` its ``kill_at_mutation``-th
    filesystem mutation (``during``: a ``create`` gets half its bytes, then the process dies);
    or at ``kill_in``. ``announce`` prints ``started`` at step 0 (or before ``recover()``);
    ``hold_at`` prints ``holding`` and blocks at that step until the parent kills it; ``user`` drops to that uid/gid.
    The child prints ``result {json}`` or ``error {json}`` when it finishes.
    """
    cfg = {
        "root": str(root),
        "plan_id": plan_id,
        "action": action,
        "actor": APPROVER.name,
        "kill_before": kill_before,
        "kill_at_mutation": kill_at_mutation,
        "mutation_mode": mutation_mode,
        "kill_in": kill_in,
        "announce": announce,
        "hold_at": hold_at,
        "recover": recover,
        "database_url": database_url,
        "uid": user,
        "gid": user,
    }
    return [sys.executable, "-c", _CHILD, json.dumps(cfg)]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AIRLOCK_DATABASE_URL", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_child(
    root: Path,
    plan_id: str | None,
    action: Action = "apply",
    *,
    timeout: float = 120.0,
    **options: Any,
) -> ChildResult:
    """Run a child to completion (or to its death); see :func:`_config` for ``options``."""
    proc = subprocess.run(
        _config(root, plan_id, action, **options),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_child_env(),
        check=False,
    )
    return ChildResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class RunningChild:
    proc: subprocess.Popen[str]
    stderr_file: IO[bytes]
    lines: list[str] = field(default_factory=list)

    def __enter__(self) -> RunningChild:
        return self

    def __exit__(self, *_exc: object) -> None:
        """Never leave a child behind when a test fails half-way."""
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait(timeout=60)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        if not self.stderr_file.closed:
            self.stderr_file.close()

    def wait_for(self, marker: str) -> None:
        """Read stdout lines until ``marker`` (the child dies if it fails: EOF ends the wait)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.rstrip("\n") == marker:
                return
        raise AssertionError(
            f"the child ended before saying {marker!r}:\n{self.finish().describe()}"
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def finish(self, timeout: float = 60.0) -> ChildResult:
        """Collect the child once it ends by itself or was killed (stdin stays open until then)."""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.proc.stdin.close()
        self.stderr_file.seek(0)
        err = self.stderr_file.read().decode(errors="replace")
        self.stderr_file.close()
        return ChildResult(self.proc.returncode, "\n".join([*self.lines, out]), err)


def start_child(
    root: Path, plan_id: str | None, action: Action = "apply", **options: Any
) -> RunningChild:
    """Start a child without waiting; stdin stays open so a ``hold_at`` step blocks on it."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in RunningChild.finish
    proc = subprocess.Popen(
        _config(root, plan_id, action, **options),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=_child_env(),
    )
    return RunningChild(proc, err)


# --- an independent model of what a plan does -------------------------------------------------


def _content(op: Mapping[str, Any]) -> bytes:
    if op.get("text") is not None:
        return str(op["text"]).encode()
    return base64.b64decode(str(op["base64"]))


def expected_after(
    before: Snapshot, scope: str, operations: Iterable[Mapping[str, Any]]
) -> Snapshot:
    """What the tree should hold after ``operations`` succeed (a model, not Airlock's code)."""
    files = dict(before.files)
    folders = set(before.folders)
    links = dict(before.symlinks)

    def under(path: str) -> list[str]:
        keys = [*files, *folders, *links]
        return [k for k in keys if k == path or k.startswith(path + "/")]

    def take(path: str) -> dict[str, tuple[str, bytes | str | None]]:
        out: dict[str, tuple[str, bytes | str | None]] = {}
        for key in under(path):
            rest = key[len(path) :]
            if key in files:
                out[rest] = ("file", files.pop(key))
            elif key in links:
                out[rest] = ("link", links.pop(key))
            else:
                folders.discard(key)
                out[rest] = ("dir", None)
        return out

    def put(path: str, entries: Mapping[str, tuple[str, bytes | str | None]]) -> None:
        for rest, (kind, value) in entries.items():
            if kind == "file":
                assert isinstance(value, bytes)
                files[path + rest] = value
            elif kind == "link":
                assert isinstance(value, str)
                links[path + rest] = value
            else:
                folders.add(path + rest)

    for op in operations:
        kind = op["op"]
        if kind == "mkdir":
            folders.add(f"{scope}/{op['path']}")
        elif kind == "write":
            files[f"{scope}/{op['path']}"] = _content(op)
        elif kind == "delete":
            take(f"{scope}/{op['path']}")
        else:
            source, destination = f"{scope}/{op['source']}", f"{scope}/{op['destination']}"
            entries = take(source)
            if kind == "copy":
                put(source, entries)
            take(destination)
            put(destination, entries)
    return Snapshot(files, frozenset(folders), links)


def run_parallel(call: Callable[[T], None], items: Iterable[T], workers: int | None = None) -> None:
    """Run independent scenarios (each on its own workspace) on every core; re-raise failures."""
    with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(call, item) for item in items]:
            future.result()


# --- mounts (root only) -------------------------------------------------------------------


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


class Mounts:
    """Mounts made by one test, undone (innermost first) when it ends."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, where: Path, size: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
        self.points.append(where)
        return where

    def bind(self, source: Path, target: Path) -> None:
        done = _run("mount", "--bind", str(source), str(target))
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        self.points.append(target)

    @staticmethod
    def remount(where: Path, mode: str) -> None:
        done = _run("mount", "-o", f"remount,{mode}", str(where))
        assert done.returncode == 0, f"remount,{mode} {where}: {done.stderr}"

    def undo(self) -> None:
        gc.collect()  # a workspace that failed to open may still hold descriptors
        for point in reversed(self.points):
            _run("mount", "-o", "remount,rw", str(point))
            if _run("umount", str(point)).returncode != 0:
                _run("umount", "-l", str(point))
