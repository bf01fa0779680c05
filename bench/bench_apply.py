"""Apply, validation and recovery benchmarks, each beside a plain baseline measured in the same run.

    .venv/bin/python bench/bench_apply.py [--ops 10000] [--size 1024]

Prints:
* a 10,000-move plan applied with full journaling vs a plain ``os.rename`` loop over the same
  files, and the ratio (goal: at least 0.5);
* a 10,000-write plan vs a plain ``open/write/close`` loop, and the ratio;
* validation time for the 10,000-operation plan;
* recovery time after a crash (SIGKILL) at the middle of the 10,000-move apply.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airlock.workspace import Workspace

SCOPE = "projects/Bench-Case"


def make_tree(root: Path, count: int, size: int) -> None:
    folder = root / SCOPE / "in"
    folder.mkdir(parents=True)
    payload = b"x" * size
    for i in range(count):
        (folder / f"doc-{i:05d}.pdf").write_bytes(payload)


def drop_caches_hint() -> None:
    os.sync()


def move_plan(count: int) -> dict[str, Any]:
    ops: list[dict[str, Any]] = [{"op": "mkdir", "path": "out"}]
    ops += [
        {"op": "move", "source": f"in/doc-{i:05d}.pdf", "destination": f"out/doc-{i:05d}.pdf"}
        for i in range(count)
    ]
    return {"scope": SCOPE, "description": "bench moves", "author": "bench", "operations": ops}


def write_plan(count: int, size: int) -> dict[str, Any]:
    text = "y" * size
    ops: list[dict[str, Any]] = [{"op": "mkdir", "path": "new"}]
    ops += [{"op": "write", "path": f"new/note-{i:05d}.txt", "text": text} for i in range(count)]
    return {"scope": SCOPE, "description": "bench writes", "author": "bench", "operations": ops}


def plain_moves(root: Path, count: int) -> float:
    base = root / SCOPE
    start = time.perf_counter()
    os.mkdir(base / "out")
    for i in range(count):
        os.rename(base / "in" / f"doc-{i:05d}.pdf", base / "out" / f"doc-{i:05d}.pdf")
    os.sync()
    return time.perf_counter() - start


def plain_writes(root: Path, count: int, size: int) -> float:
    base = root / SCOPE
    data = ("y" * size).encode()
    start = time.perf_counter()
    os.mkdir(base / "new")
    for i in range(count):
        with open(base / "new" / f"note-{i:05d}.txt", "xb") as handle:
            handle.write(data)
    os.sync()
    return time.perf_counter() - start


def fresh_workspace(parent: Path, name: str, count: int, size: int) -> Path:
    root = parent / name
    make_tree(root, count, size)
    Workspace.init(root).close()
    return root


def timed_apply(root: Path, plan: dict[str, Any]) -> tuple[float, float]:
    with Workspace(root) as ws:
        record = ws.submit(plan)
        start = time.perf_counter()
        ws.validate(record.id)
        validated = time.perf_counter()
        result = ws.apply(record.id)
        applied = time.perf_counter()
        assert result.success, result.error
    return validated - start, applied - validated


CRASH_CHILD = """
import os, signal, sys
from airlock.workspace import Workspace
root, plan_id, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
def hook(index):
    if index == at:
        os.kill(os.getpid(), signal.SIGKILL)
with Workspace(root) as ws:
    ws.apply(plan_id, hook=hook)
"""


def timed_recovery(root: Path, plan: dict[str, Any], crash_at: int) -> float:
    with Workspace(root) as ws:
        record = ws.submit(plan)
        ws.validate(record.id)
    child = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(root), record.id, str(crash_at)], check=False
    )
    assert child.returncode == -signal.SIGKILL, child.returncode
    start = time.perf_counter()
    with Workspace(root) as ws:
        recovered = ws.recovered
    elapsed = time.perf_counter() - start
    assert recovered and recovered[0].steps_undone == crash_at + 1, recovered
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build (default: a temp dir)"
    )
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="airlock-bench-", dir=args.dir))
    n, size = args.ops, args.size
    try:
        print(f"# {n} operations, {size}-byte files, in {parent}")

        samples: dict[str, list[float]] = {
            k: [] for k in ("plain_move", "move", "vmove", "plain_write", "write", "vwrite")
        }
        for round_ in range(args.rounds):
            tag = f"r{round_}"
            baseline = fresh_workspace(parent, f"plain-move-{tag}", n, size)
            os.sync()
            samples["plain_move"].append(plain_moves(baseline, n))
            ws_root = fresh_workspace(parent, f"airlock-move-{tag}", n, size)
            os.sync()
            validated, applied = timed_apply(ws_root, move_plan(n))
            samples["vmove"].append(validated)
            samples["move"].append(applied)
            baseline = fresh_workspace(parent, f"plain-write-{tag}", 0, size)
            os.sync()
            samples["plain_write"].append(plain_writes(baseline, n, size))
            ws_root = fresh_workspace(parent, f"airlock-write-{tag}", 0, size)
            os.sync()
            validated, applied = timed_apply(ws_root, write_plan(n, size))
            samples["vwrite"].append(validated)
            samples["write"].append(applied)
        med = {k: statistics.median(v) for k, v in samples.items()}
        plain_move, airlock_move, validate_move = med["plain_move"], med["move"], med["vmove"]
        plain_write, airlock_write, validate_write = med["plain_write"], med["write"], med["vwrite"]

        ws_root = fresh_workspace(parent, "airlock-crash", n, size)
        recovery = timed_recovery(ws_root, move_plan(n), crash_at=n // 2)
        print(f"# medians of {args.rounds} rounds; each timing includes its final sync to disk")

        def row(name: str, plain: float, ours: float) -> None:
            print(
                f"{name:<22} plain {n / plain:>9,.0f} ops/s   airlock {n / ours:>9,.0f} ops/s   "
                f"ratio {plain / ours:.2f}  (goal >= 0.50)"
            )

        row("apply 10k moves", plain_move, airlock_move)
        row("apply 10k writes", plain_write, airlock_write)
        print(f"{'validate 10k moves':<22} {validate_move:.2f} s ({n / validate_move:,.0f} ops/s)")
        print(
            f"{'validate 10k writes':<22} {validate_write:.2f} s ({n / validate_write:,.0f} ops/s)"
        )
        print(
            f"{'recover after crash':<22} {recovery:.2f} s (kill -9 at step {n // 2 + 1} of {n + 2})"
        )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
