"""Large plans (F18): validating 50,000 operations, and that plan's review page, each beside a
baseline measured in the same run.

    .venv/bin/python bench/bench_large_plans.py [--ops 50000] [--folders 500] [--rounds 3]

Builds a workspace in a temporary folder: one case whose ``in/`` holds the files to move (100
bytes each) and whose ``junk/`` holds folders of one file each. The plan has ``--ops``
operations (the policy's limit by default), in this order:

* ``mkdir`` of ``--folders`` folders (``out/`` and the folders inside it);
* ``move`` of every file of ``in/`` into one of those folders (the bulk of the plan);
* ``move`` of 100 of the filled folders to new names (each carries its files);
* ``delete`` of 99 junk folders, then of ``junk/`` itself.

Prints, in one run:

* **validate**: ``airlock.validate.validate`` on the workspace's storage (the simulation alone:
  every source stat'ed, every moved file read and hashed, every moved or deleted folder walked),
  median of ``--rounds``; beside it the **baseline**, a plain loop over the same storage doing
  the I/O any validation of these operations must do and nothing else: ``stat`` of each mkdir's
  path, ``stat`` + ``sha256`` of each moved file, ``walk`` + ``sha256`` of each deleted folder's
  files (the folders moved were made by the plan: their files are the moved ones). Then the same for the first quarter and half of the plan (time per operation
  must not grow with the plan's size), and ``Workspace.validate`` once (the simulation plus
  parsing the stored plan and recording the report and its audit event in SQLite).
* **page**: ``airlock serve`` as a separate process; an approver signs in through the page's
  form (``POST /ui/sign-in``) and ``GET /ui/plans/<id>`` is timed from this process over HTTP,
  first, last and a middle page of changes (median of ``--rounds`` after one warm-up each);
  beside it the **baseline**, the same page for a 100-operation plan of the same shape
  (10 mkdir, 80 moves, 5 folder moves, 5 deletes) in the same workspace, which draws its trees.

Goals: 50,000 operations validate in under 2 s; the page renders in under 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from airlock.plan import Delete, Mkdir, Move, Plan, parse_plan
from airlock.storage.base import Kind, Storage
from airlock.tokens import Role, create_token
from airlock.validate import validate
from airlock.workspace import Workspace
from bench_service import wait_healthy  # this folder is on sys.path: the scripts run by path

HOST = "127.0.0.1"
SCOPE = "projects/Big-Case"
RENAMED = 100
DELETED = 100  # 99 junk folders, then junk/ itself


def build_tree(root: Path, files: int, junk: int) -> None:
    base = root / SCOPE
    (base / "in").mkdir(parents=True)
    for i in range(files):
        (base / "in" / f"doc-{i:05d}.pdf").write_bytes(b"%PDF" + b"x" * 96)
    for j in range(junk):
        folder = base / "junk" / f"j-{j:03d}"
        folder.mkdir(parents=True)
        (folder / "Thumbs.db").write_bytes(b"t")


def operations(files: int, folders: int, junk: int) -> list[dict[str, Any]]:
    inner = folders - 1
    ops: list[dict[str, Any]] = [{"op": "mkdir", "path": "out"}]
    ops += [{"op": "mkdir", "path": f"out/f-{k:03d}"} for k in range(inner)]
    ops += [
        {
            "op": "move",
            "source": f"in/doc-{i:05d}.pdf",
            "destination": f"out/f-{i % inner:03d}/doc-{i:05d}.pdf",
        }
        for i in range(files)
    ]
    ops += [
        {"op": "move", "source": f"out/f-{k:03d}", "destination": f"out/g-{k:03d}"}
        for k in range(min(RENAMED, inner))
    ]
    ops += [{"op": "delete", "path": f"junk/j-{j:03d}"} for j in range(junk)]
    ops.append({"op": "delete", "path": "junk"})
    return ops


def shape(ops: int, folders: int) -> tuple[int, int]:
    """(files to move, junk folders) for a plan of ``ops`` operations."""
    junk = DELETED - 1
    files = ops - folders - min(RENAMED, folders - 1) - (junk + 1)
    if files < 1:
        raise SystemExit(f"--ops {ops} is too few for {folders} folders")
    return files, junk


def plan_of(ops: list[dict[str, Any]], scope: str = SCOPE) -> dict[str, Any]:
    return {
        "scope": scope,
        "description": "Bench: file a big inbox",
        "author": "bench",
        "operations": ops,
    }


def baseline_walk(storage: Storage, plan: Plan) -> None:
    """The I/O validating ``plan`` must do, as a plain loop (see the module docstring)."""
    scope = plan.scope_path
    hashed: set[tuple[str, ...]] = set()
    for op in plan.operations:
        if isinstance(op, Mkdir):
            storage.stat((*scope, *op.path.split("/")))
        elif isinstance(op, Move):
            source = (*scope, *op.source.split("/"))
            found = storage.stat(source)
            if found is not None and found.kind is Kind.FILE:
                storage.sha256(source)
                hashed.add(source)
        elif isinstance(op, Delete):
            path = (*scope, *op.path.split("/"))
            if storage.stat(path) is not None:
                for inner, entry in storage.walk(path):
                    if entry.kind is Kind.FILE and inner not in hashed:
                        storage.sha256(inner)


def row(label: str, value: str, note: str) -> None:
    print(f"{label:<28} {value:>9}   {note}")


def median_time(rounds: int, action: Any) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def timed_get(client: httpx.Client, url: str, rounds: int) -> tuple[float, int]:
    """Median seconds of ``rounds`` GETs after one warm-up, and the page's size in bytes."""
    first = client.get(url)
    if first.status_code != 200:
        raise SystemExit(f"GET {url}: {first.status_code} {first.text[:300]}")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return statistics.median(times), len(first.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=50_000)
    parser.add_argument("--folders", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: /tmp)")
    args = parser.parse_args()
    files, junk = shape(args.ops, args.folders)
    parent = Path(tempfile.mkdtemp(prefix="airlock-bench-large-", dir=args.dir))
    root = parent / "workspace"
    server: subprocess.Popen[bytes] | None = None
    try:
        build_tree(root, files, junk)
        small_scope = "projects/Small-Case"
        build_tree(root / "small", 80, 5)
        (root / "small" / SCOPE).rename(root / small_scope)
        shutil.rmtree(root / "small")
        ws = Workspace.init(root)
        big_ops = operations(files, args.folders, junk)
        assert len(big_ops) == args.ops, len(big_ops)
        small_ops = operations(80, 10, 4)[: 10 + 80 + 5] + [
            {"op": "delete", "path": f"junk/j-{j:03d}"} for j in range(4)
        ]
        small_ops.append({"op": "delete", "path": "junk"})
        print(
            f"# {args.ops:,} operations: {args.folders} mkdir, {files:,} file moves, "
            f"{min(RENAMED, args.folders - 1)} folder moves, {junk + 1} deletes; in {parent}"
        )

        # --- validate -------------------------------------------------------------------------
        plan = parse_plan(plan_of(big_ops))
        report = validate(plan, ws.storage, ws.policy, ws.content)  # warm the page cache
        assert report.valid, report.errors[:3]
        baseline_walk(ws.storage, plan)
        ours = median_time(args.rounds, lambda: validate(plan, ws.storage, ws.policy))
        plain = median_time(args.rounds, lambda: baseline_walk(ws.storage, plan))
        print()
        for part in (args.ops // 4, args.ops // 2):
            sub = parse_plan(plan_of(big_ops[:part]))
            seconds = median_time(args.rounds, lambda sub=sub: validate(sub, ws.storage, ws.policy))
            row(f"validate {part:,} ops", f"{seconds:.2f} s", f"{seconds / part * 1e6:.0f} µs/op")
        row(
            f"validate {args.ops:,} ops",
            f"{ours:.2f} s",
            f"{ours / args.ops * 1e6:.0f} µs/op; plain storage walk {plain:.2f} s, ratio "
            f"{ours / plain:.1f}x; goal < 2 s: {'yes' if ours < 2 else 'NO'}",
        )
        big = ws.submit(plan_of(big_ops), plan_id="big")
        start = time.perf_counter()
        record = ws.validate(big.id)
        recorded = time.perf_counter() - start
        assert record.status == "validated", record.status
        row("Workspace.validate", f"{recorded:.2f} s", "simulation + stored plan + report + audit")
        small = ws.submit(plan_of(small_ops, small_scope), plan_id="small")
        assert ws.validate(small.id).status == "validated"
        _token_id, token = create_token(ws, "bench-approver", Role.APPROVER)
        ws.close()

        # --- the review page ------------------------------------------------------------------
        port = free_port()
        base = f"http://{HOST}:{port}"
        serve = ["serve", "--workspace", str(root), "--host", HOST, "--port", str(port)]
        with (parent / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "airlock", *serve], stdout=log, stderr=subprocess.STDOUT
            )
        wait_healthy(base, server, time.monotonic() + 60)
        with httpx.Client(base_url=base, timeout=600) as client:
            signed = client.post(
                "/ui/sign-in",
                data={"token": token, "next": "/ui/"},
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            if signed.status_code != 303:
                raise SystemExit(f"sign-in failed: {signed.status_code} {signed.text[:300]}")
            start = time.perf_counter()
            cold = client.get("/ui/plans/big")
            cold_seconds = time.perf_counter() - start
            assert cold.status_code == 200 and "Where the changes land" in cold.text
            small_page, small_bytes = timed_get(client, "/ui/plans/small", args.rounds)
            print()
            row("page, 100-op plan", f"{small_page * 1000:.0f} ms", f"{small_bytes / 1024:.0f} KiB, "
                "with its trees: the baseline")  # fmt: skip
            row(f"page 1, {args.ops:,}-op plan", f"{cold_seconds * 1000:.0f} ms",
                "the first GET after the service started")  # fmt: skip
            pages = -(-args.ops // 500)
            for number in (1, pages // 2, pages):
                seconds, size = timed_get(client, f"/ui/plans/big?page={number}", args.rounds)
                row(
                    f"page {number}, {args.ops:,}-op plan",
                    f"{seconds * 1000:.0f} ms",
                    f"{size / 1024:.0f} KiB; ratio {seconds / small_page:.1f}x; "
                    f"goal < 1 s: {'yes' if seconds < 1 else 'NO'}",
                )
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
