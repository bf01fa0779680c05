"""Crash tests: kill -9 a real process at every instant of an apply, a rollback and a recovery.

The invariant (docs in ``airlock.journal``): a plan applies all-or-nothing, and after a kill -9
at any instant, opening the workspace (which recovers) returns it exactly to the state before
the interrupted transaction (Airlock rolls back, never forward), with nothing lost and nothing
left over in ``.airlock``. Every scenario runs in a child process (``sys.executable -c``) that
kills itself with SIGKILL at a chosen point, or is killed by this process at a random moment.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airlock.journal import Cursor
from airlock.workspace import Workspace
from crashkit import (
    AGENT,
    APPROVER,
    OPERATIONS,
    PLAN,
    PLAN_ID,
    PRE_FILES,
    PRE_FOLDERS,
    PRE_LINKS,
    SCOPE,
    MutationMode,
    Snapshot,
    apply_step_count,
    assert_clean_state,
    assert_same,
    events_of,
    expected_after,
    make_tree,
    prepare,
    rollback_step_count,
    run_child,
    run_parallel,
    start_child,
    take_snapshot,
)


def build_small(root: Path) -> tuple[Snapshot, int]:
    """A workspace with the small plan validated and approved: (its snapshot, apply steps)."""
    with Workspace.init(root) as ws:
        make_tree(root, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
        rec = prepare(ws, PLAN_ID, PLAN)
        steps = apply_step_count(rec)
    return take_snapshot(root), steps


def build_applied(root: Path) -> tuple[Snapshot, Snapshot, int]:
    """The small plan applied: (snapshot before, snapshot after, rollback steps)."""
    pre, _steps = build_small(root)
    with Workspace(root) as ws:
        result = ws.apply(PLAN_ID, by=APPROVER)
        assert result.success, result.error
        rec = ws.get(PLAN_ID)
    return pre, take_snapshot(root), rollback_step_count(rec)


def check_recovered_apply(root: Path, pre: Snapshot, where: str, steps_started: int | None) -> None:
    """Reopen after a crashed apply: before-state, plan failed, audited; then it applies."""
    with Workspace(root) as ws:
        got = [(r.plan_id, r.kind) for r in ws.recovered]
        assert got == [(PLAN_ID, "apply")], f"{where}: recovered {got}"
        if steps_started is not None:
            assert ws.recovered[0].steps_undone == steps_started, where
        assert_same(take_snapshot(root), pre, where)
        assert ws.get(PLAN_ID).status == "failed", where
        recovered = events_of(ws, PLAN_ID, "recovered")
        assert [e["payload"]["kind"] for e in recovered] == ["apply"], where
        assert_clean_state(ws)

        prepare(ws, PLAN_ID)
        result = ws.apply(PLAN_ID, by=APPROVER)
        assert result.success, f"{where}: apply after recovery failed: {result.error}"
        assert_same(
            take_snapshot(root), expected_after(pre, SCOPE, OPERATIONS), where + ", re-applied"
        )
        assert ws.get(PLAN_ID).status == "applied"
        assert_clean_state(ws)


# --- the plan itself ----------------------------------------------------------------------


def test_small_plan_uses_every_operation_and_matches_the_model(tmp_path: Path) -> None:
    pre, steps = build_small(tmp_path / "ws")
    with Workspace(tmp_path / "ws") as ws:
        validation = ws.get(PLAN_ID).validation
        assert validation is not None
        kinds = {(c.action, c.kind, c.replaces) for c in validation.changes}
        for wanted in [
            ("mkdir", "dir", False),
            ("create", "file", False),
            ("overwrite", "file", True),
            ("copy", "file", False),
            ("copy", "dir", False),
            ("move", "file", False),
            ("move", "dir", False),
            ("move", "file", True),
            ("delete", "file", False),
            ("delete", "dir", False),
        ]:
            assert wanted in kinds, f"the plan has no {wanted} change: {sorted(kinds)}"
        assert steps == len(validation.changes) + 1 + sum(c.replaces for c in validation.changes)
        assert ws.apply(PLAN_ID, by=APPROVER).success
        assert_same(take_snapshot(ws.root), expected_after(pre, SCOPE, OPERATIONS), "applied")
        assert_clean_state(ws)
        assert ws.rollback(PLAN_ID, by=APPROVER).success
        assert_same(take_snapshot(ws.root), pre, "rolled back")
        assert_clean_state(ws)


# --- apply --------------------------------------------------------------------------------


def test_apply_killed_before_every_step_recovers_to_before(tmp_path: Path) -> None:
    _pre, steps = build_small(tmp_path / "probe")
    assert steps >= 15

    def scenario(n: int) -> None:
        """Kill before step ``n``; -1: before the cursor exists; ``steps``: in the final sync."""
        root = tmp_path / f"kill-{n}"
        pre, _ = build_small(root)
        if n < 0:
            child = run_child(root, PLAN_ID, kill_in="cursor")
            where = "apply killed after its journal was committed, before its cursor existed"
        elif n < steps:
            child = run_child(root, PLAN_ID, kill_before=n)
            where = f"apply killed before step {n} of {steps}"
        else:
            child = run_child(root, PLAN_ID, kill_in="sync")
            where = f"apply killed after its last step (in the final sync), {steps} steps"
        assert child.killed, child.describe()
        check_recovered_apply(root, pre, where, steps_started=min(n + 1, steps))

    run_parallel(scenario, range(-1, steps + 1))


def test_apply_killed_after_commit_stays_applied(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    pre, _steps = build_small(root)
    child = run_child(root, PLAN_ID, kill_in="commit")
    assert child.killed, child.describe()
    with Workspace(root) as ws:
        assert ws.recovered == []
        assert ws.get(PLAN_ID).status == "applied"
        assert [e["kind"] for e in ws.audit_events(PLAN_ID)][-1] == "applied"
        assert_same(take_snapshot(root), expected_after(pre, SCOPE, OPERATIONS), "committed apply")
        assert_clean_state(ws)
        assert ws.rollback(PLAN_ID, by=APPROVER).success
        assert_same(take_snapshot(root), pre, "rolled back")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["during", "after"])
def test_apply_killed_at_every_filesystem_mutation(tmp_path: Path, mode: MutationMode) -> None:
    """Finer than steps: inside a folder copy, after a step but before the cursor moves on, and
    half-way through writing a file. ("before" mutation m is "after" m - 1 inside a step, and a
    kill before step N at a step's first mutation, so it adds nothing.)"""
    probe = tmp_path / "probe"
    build_small(probe)
    counted = run_child(probe, PLAN_ID, kill_at_mutation=10**9)
    assert counted.returncode == 0, counted.describe()
    names = counted.mutations
    indices = [m for m, name in enumerate(names) if mode != "during" or name == "create"]
    assert indices

    def scenario(m: int) -> None:
        root = tmp_path / f"m{m}"
        pre, _ = build_small(root)
        child = run_child(root, PLAN_ID, kill_at_mutation=m, mutation_mode=mode)
        assert child.killed, child.describe()
        check_recovered_apply(root, pre, f"apply killed {mode} mutation {m} ({names[m]})", None)

    run_parallel(scenario, indices)


# --- rollback -----------------------------------------------------------------------------


def check_recovered_rollback(root: Path, pre: Snapshot, post: Snapshot, where: str) -> None:
    with Workspace(root) as ws:
        got = [(r.plan_id, r.kind) for r in ws.recovered]
        assert got == [(PLAN_ID, "rollback")], f"{where}: recovered {got}"
        assert_same(take_snapshot(root), post, where)
        assert ws.get(PLAN_ID).status == "applied", where
        recovered = events_of(ws, PLAN_ID, "recovered")
        assert [e["payload"]["kind"] for e in recovered] == ["rollback"], where
        assert_clean_state(ws)

        assert ws.rollback_conflicts(PLAN_ID) == []
        result = ws.rollback(PLAN_ID, by=APPROVER)
        assert result.success, where
        assert_same(take_snapshot(root), pre, where + ", rolled back again")
        assert ws.get(PLAN_ID).status == "rolled_back"
        assert_clean_state(ws)


def test_rollback_killed_before_every_step_recovers_to_applied(tmp_path: Path) -> None:
    _pre, _post, steps = build_applied(tmp_path / "probe")

    def scenario(n: int) -> None:
        root = tmp_path / f"kill-{n}"
        pre, post, _ = build_applied(root)
        if n < 0:
            child = run_child(root, PLAN_ID, "rollback", kill_in="cursor")
            where = "rollback killed before its cursor existed"
        elif n < steps:
            child = run_child(root, PLAN_ID, "rollback", kill_before=n)
            where = f"rollback killed before step {n} of {steps}"
        else:
            child = run_child(root, PLAN_ID, "rollback", kill_in="sync")
            where = f"rollback killed after its last step, {steps} steps"
        assert child.killed, child.describe()
        check_recovered_rollback(root, pre, post, where)

    run_parallel(scenario, range(-1, steps + 1))


@pytest.mark.slow
def test_rollback_killed_after_every_filesystem_mutation(tmp_path: Path) -> None:
    """Each rollback step done but the cursor not moved on yet."""
    probe = tmp_path / "probe"
    build_applied(probe)
    counted = run_child(probe, PLAN_ID, "rollback", kill_at_mutation=10**9)
    assert counted.returncode == 0, counted.describe()
    names = counted.mutations

    def scenario(m: int) -> None:
        root = tmp_path / f"m{m}"
        pre, post, _ = build_applied(root)
        child = run_child(root, PLAN_ID, "rollback", kill_at_mutation=m, mutation_mode="after")
        assert child.killed, child.describe()
        check_recovered_rollback(
            root, pre, post, f"rollback killed after mutation {m} ({names[m]})"
        )

    run_parallel(scenario, range(len(names)))


def test_rollback_killed_after_commit_stays_rolled_back(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    pre, _post, _steps = build_applied(root)
    child = run_child(root, PLAN_ID, "rollback", kill_in="commit")
    assert child.killed, child.describe()
    with Workspace(root) as ws:
        assert ws.recovered == []
        assert ws.get(PLAN_ID).status == "rolled_back"
        assert_same(take_snapshot(root), pre, "committed rollback")
        assert_clean_state(ws)


# --- a crash during recovery --------------------------------------------------------------


def crashed_apply(root: Path) -> Snapshot:
    """The small plan's apply killed after all its steps: recovery has everything to undo."""
    pre, _steps = build_small(root)
    child = run_child(root, PLAN_ID, kill_in="sync")
    assert child.killed, child.describe()
    return pre


def recovery_killed_at_mutations(tmp_path: Path, sample: int | None = None) -> None:
    """Kill a recovering child right before and right after its m-th undo mutation (before: the
    cursor may just have moved back; after: the undo is done, the cursor not yet moved), for
    every m or a sample; a second recovery must still give the state before the plan."""
    crashed = tmp_path / "crashed"
    pre = crashed_apply(crashed)
    probe = tmp_path / "probe"
    shutil.copytree(crashed, probe, symlinks=True)
    counted = run_child(probe, None, "recover", recover=False, kill_at_mutation=10**9)
    assert counted.returncode == 0, counted.describe()
    names = counted.mutations
    assert len(names) >= 15, names

    def scenario(case: tuple[int, MutationMode]) -> None:
        m, mode = case
        where = f"recovery killed {mode} undo mutation {m} of {len(names)} ({names[m]})"
        root = tmp_path / f"{mode}-{m}"
        shutil.copytree(crashed, root, symlinks=True)
        child = run_child(
            root, None, "recover", recover=False, kill_at_mutation=m, mutation_mode=mode
        )
        assert child.killed, child.describe()
        check_recovered_apply(root, pre, where + ", then recovered again", None)

    indices = list(range(len(names)))
    if sample is not None:
        # the first and last undo, and a seeded spread in between
        middle = sorted(random.Random(7).sample(indices[1:-1], sample - 2))
        indices = [indices[0], *middle, indices[-1]]
    modes: list[MutationMode] = ["before", "after"]
    run_parallel(scenario, [(m, mode) for m in indices for mode in modes])


def test_recovery_killed_at_some_undo_mutations_then_recovered_again(tmp_path: Path) -> None:
    recovery_killed_at_mutations(tmp_path, sample=5)


@pytest.mark.slow
def test_recovery_killed_at_every_undo_mutation_then_recovered_again(tmp_path: Path) -> None:
    recovery_killed_at_mutations(tmp_path)


def test_recovery_killed_twice_in_a_row(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    pre = crashed_apply(root)
    for m in (3, 1):
        child = run_child(
            root, None, "recover", recover=False, kill_at_mutation=m, mutation_mode="after"
        )
        assert child.killed, child.describe()
    check_recovered_apply(root, pre, "two recoveries killed, then a third", None)


# --- a 10,000-operation plan ----------------------------------------------------------------

BIG_SCOPE = "projects/Big"
BIG_ID = "big"
BIG_INBOX = 5000


def big_plan() -> tuple[dict[str, bytes | str], dict[str, Any]]:
    """5,000 small files in an inbox; 10,000 operations: mostly moves and writes, in 4 folders."""
    files: dict[str, bytes | str] = {
        f"{BIG_SCOPE}/inbox/f{i:05d}.txt": f"inbox file {i}\n" for i in range(BIG_INBOX)
    }
    folders = "ABCD"
    ops: list[dict[str, Any]] = [{"op": "mkdir", "path": d} for d in folders]
    for i in range(BIG_INBOX - 50):
        ops.append(
            {
                "op": "move",
                "source": f"inbox/f{i:05d}.txt",
                "destination": f"{folders[i % 4]}/f{i:05d}.txt",
            }
        )
    for i in range(BIG_INBOX - 50, BIG_INBOX):
        ops.append({"op": "delete", "path": f"inbox/f{i:05d}.txt"})
    for i in range(4896):
        ops.append(
            {"op": "write", "path": f"{folders[i % 4]}/new{i:05d}.txt", "text": f"new {i}\n"}
        )
    for i in range(96):
        ops.append(
            {
                "op": "write",
                "path": f"A/f{i * 4:05d}.txt",
                "text": f"overwritten {i}\n",
                "overwrite": True,
            }
        )
    ops.append({"op": "move", "source": "D", "destination": "inbox/D"})
    ops.append({"op": "copy", "source": "inbox/D/new00003.txt", "destination": "copied.txt"})
    ops.append({"op": "delete", "path": "B/new00001.txt"})
    ops.append({"op": "mkdir", "path": "E"})
    assert len(ops) == 10_000
    return files, {"scope": BIG_SCOPE, "author": AGENT, "description": "big", "operations": ops}


def recover_big(
    root: Path, pre: Snapshot, where: str, steps_started: int | None, may_be_done: bool = False
) -> None:
    """Reopen (recovering), check the before-state, and approve the plan again for the next run.

    ``may_be_done``: an earlier recovery may already have finished (then nothing is left to do).
    """
    with Workspace(root) as ws:
        got = [(r.plan_id, r.kind) for r in ws.recovered]
        assert got == [(BIG_ID, "apply")] or (may_be_done and got == []), f"{where}: {got}"
        if steps_started is not None:
            assert ws.recovered[0].steps_undone == steps_started, where
        assert_same(take_snapshot(root), pre, where)
        assert ws.get(BIG_ID).status == "failed", where
        assert ws.audit_events(BIG_ID)[-1]["kind"] == "recovered", where
        assert_clean_state(ws)
        prepare(ws, BIG_ID)


def cursor_value(root: Path) -> int | None:
    found = list((root / ".airlock" / "journal").glob("*.cursor"))
    assert len(found) <= 1, found
    return Cursor.read(found[0]) if found else None


@pytest.mark.slow
def test_big_plan_killed_at_random_instants(tmp_path: Path) -> None:
    rng = random.Random(20240713)
    root = tmp_path / "big"
    files, plan = big_plan()
    with Workspace.init(root) as ws:
        make_tree(root, files)
        rec = prepare(ws, BIG_ID, plan)
        steps = apply_step_count(rec)
    pre = take_snapshot(root)
    assert steps > 10_000

    # 1. the child kills itself before 5 random steps
    for n in sorted(rng.sample(range(steps), 5)):
        result = run_child(root, BIG_ID, kill_before=n)
        assert result.killed, result.describe()
        recover_big(root, pre, f"big apply killed before step {n} of {steps}", n + 1)

    # 2. the parent kills the child at a random moment while it applies. The child waits at the
    #    last step, so a late kill still lands inside the apply; a first run that the parent
    #    kills there measures how long a whole apply takes
    with start_child(root, BIG_ID, announce=True, hold_at=steps - 1) as child:
        child.wait_for("started")
        started = time.monotonic()
        child.wait_for("holding")
        full_apply = time.monotonic() - started
        child.kill()
        result = child.finish()
    assert result.killed, result.describe()
    recover_big(root, pre, "big apply killed by the parent at its last step", steps)
    for k in range(3):
        delay = rng.uniform(0.02, 0.98) * full_apply
        with start_child(root, BIG_ID, announce=True, hold_at=steps - 1) as child:
            child.wait_for("started")
            threading.Event().wait(delay)
            child.kill()
            result = child.finish()
        assert result.killed, result.describe()
        landed = cursor_value(root)
        where = (
            f"big apply killed by the parent {delay:.3f}s of {full_apply:.3f}s in "
            f"(kill {k}, cursor at {landed} of {steps})"
        )
        recover_big(root, pre, where, landed)

    # 3. a crash during recovery: kill the recovering child at a random moment, then at a random
    #    undo mutation, then recover for real
    n = rng.randrange(steps // 2, steps)
    child_result = run_child(root, BIG_ID, kill_before=n)
    assert child_result.killed, child_result.describe()
    delay = rng.uniform(0.0, 0.9) * full_apply * n / steps  # undo runs about as fast
    with start_child(root, None, "recover", recover=False, announce=True) as child:
        child.wait_for("started")
        threading.Event().wait(delay)
        child.kill()
        result = child.finish()
    assert result.killed or result.returncode == 0, result.describe()  # or it finished first
    left = cursor_value(root)  # None: the recovery finished before the kill
    where = f"big recovery killed {delay:.3f}s in with {left} of {n + 1} steps left to undo"
    if left is not None and left > 2:
        m = rng.randrange(0, left - 2)  # fewer than the undos left: it dies at one
        again = run_child(
            root, None, "recover", recover=False, kill_at_mutation=m, mutation_mode="after"
        )
        assert again.killed, again.describe()
        where += f", then right after undo mutation {m}"
    recover_big(root, pre, where, None, may_be_done=True)

    # 4. and, uninterrupted, it applies exactly as modelled and rolls back exactly
    with Workspace(root) as ws:
        result_apply = ws.apply(BIG_ID, by=APPROVER)
        assert result_apply.success, result_apply.error
        assert_same(
            take_snapshot(root), expected_after(pre, BIG_SCOPE, plan["operations"]), "big applied"
        )
        assert ws.rollback(BIG_ID, by=APPROVER).success
        assert_same(take_snapshot(root), pre, "big rolled back")
        assert_clean_state(ws)


def test_workspaces_open_concurrently_in_threads(tmp_path: Path) -> None:
    """The scenarios above run in threads: creating workspaces at once must not race.

    (Alembic's ``context`` is process-wide; ``airlock.workspace._migrate`` serialises it.)
    """

    def scenario(n: int) -> None:
        for k in range(3):
            with Workspace.init(tmp_path / f"{n}-{k}") as ws:
                ws.submit({"scope": "projects", "operations": [{"op": "mkdir", "path": "x"}]})
                assert ws.audit_verify().ok

    run_parallel(scenario, range(4), workers=4)
