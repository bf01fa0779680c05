"""Sandboxed runs: latency beside bare bwrap/runsc, and capture time against the scope's size.

    .venv/bin/python bench/bench_runs.py [--runs 50] [--files 100000] [--quick]

Prints, in one run, each figure beside a baseline measured in the same run:

* the latency (p50/p95) of ``true`` through ``airlock.runs.run(ws, scope, ["true"],
  sandbox="bwrap")`` (the call the service and the agent tools make) on a small workspace, beside
  a bare ``bwrap`` with the same arguments the backend builds for an equivalent request (view =
  the real scope folder), started the same way (``subprocess`` from Python, pipes for output);
  the same for gVisor: ``runsc --network=none do true`` beside ``runs.run(..., sandbox="gvisor")``
  (skipped when not root or runsc is missing). Goals: the bubblewrap path within 3x of bare
  bubblewrap and under 50 ms p50;
* the command line end to end (``airlock run --workspace W --scope S -- true``) beside bare bwrap
  and beside ``airlock --help`` (the interpreter and imports alone);
* a run that changes 1,000 files (800 overwritten, 100 new, 100 renamed) in a scope of 100,000
  files and in a scope of 1,000 files, through ``runs.run`` end to end, with where the time went
  (sandbox, reading the upper layer, capture, the rest: submit, validate, audit). Goal: the
  same time for both sizes. Beside it, the copy fallback on both sizes, which grows with the
  scope: a copy made as the launcher makes it (``cp -a``, ``chown -R`` to the sandbox's ids when
  root, a marker touched), then ``copy_changes``.

The large scope is built once and kept in ``--cache`` (default /tmp/airlock-bench-runs-cache);
runs never change the real files (their plans are not applied), so it can be reused.
``--quick`` uses 10,000 files and fewer repetitions (a smoke test).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from airlock import runs
from airlock.capture import Captured, Change, Sides, capture
from airlock.paths import STATE_DIR
from airlock.sandbox import collect
from airlock.sandbox.base import Request
from airlock.sandbox.bwrap import Bwrap
from airlock.sandbox.ids import sandbox_ids
from airlock.sandbox.layers import Found, copy_changes, upper_changes
from airlock.workspace import Workspace

SMALL_SCOPE = "projects/Bench-Run"
BIG_SCOPE = "projects/Bench-Capture"
PER_FOLDER = 100
CHANGED_FOLDERS = 10  # the 1,000 changed files are the first 10 folders' 100 files each

CHANGE_SCRIPT = """
import os
for d in range(10):
    for f in range(100):
        path = f"d{d:04d}/f{f:02d}.txt"
        if f % 10 == 0:
            os.rename(path, f"d{d:04d}/renamed-f{f:02d}.txt")
        elif f % 10 == 1:
            with open(f"d{d:04d}/new-{f:02d}.txt", "x") as handle:
                handle.write(f"new file {d} {f}\\n")
        else:
            with open(path, "w") as handle:
                handle.write(f"changed {d} {f}\\n")
"""
"""800 overwrites, 100 new files, 100 renames: 1,000 changed files, the same for every scope."""


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_checked(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run a command the way the runner starts one: no stdin, output collected on pipes."""
    done = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        **kwargs,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{argv[0]} failed (exit {done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    return done


def library_true(ws: Workspace, sandbox: str) -> runs.RunResult:
    result = runs.run(ws, SMALL_SCOPE, ["true"], sandbox=sandbox)
    if result.outcome.exit_code != 0 or result.plan is not None:
        raise SystemExit(f"runs.run({sandbox}) of `true` went wrong: {result.to_dict()}")
    return result


def row(name: str, samples: Sequence[float], note: str = "") -> None:
    print(
        f"{name:<46} {len(samples):>4} {ms(statistics.median(samples))} "
        f"{ms(percentile(samples, 95))}  {note}".rstrip()
    )


# --- 1. latency of `true` --------------------------------------------------------------------


def small_workspace(parent: Path) -> Workspace:
    root = parent / "small"
    ws = Workspace.init(root)
    scope = root / SMALL_SCOPE
    scope.mkdir(parents=True)
    for i in range(10):
        (scope / f"note-{i}.txt").write_text(f"note {i}\n", encoding="utf-8")
    return ws


def bare_bwrap_argv(ws: Workspace, scratch: Path) -> tuple[list[str], list[int]]:
    """What the bwrap backend builds for this run, with the real scope folder as the view.

    As root it runs as the sandbox's ids, as runs do (the scope and scratch must then be
    reachable by them); otherwise as this user (the subordinate ids exist only inside the
    launcher's user namespace)."""
    scope = tuple(SMALL_SCOPE.split("/"))
    scratch.mkdir(mode=0o711)
    ids = sandbox_ids(ws.root.stat().st_uid)
    if isinstance(ids, str):
        raise SystemExit(f"sandboxed runs cannot start here: {ids}")
    run_as = (ids.host_uid, ids.host_gid) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    request = Request(
        command=("true",),
        scope=scope,
        view=ws.root.joinpath(*scope),
        scratch=scratch,
        run_as=run_as,
        limits=runs.default_limits(ws),
        cgroup=True,  # as the library builds it when it has a cgroup: bwrap alone, no prlimit
    )
    argv = Bwrap().argv(request)
    if os.geteuid() != 0:  # setpriv cannot drop groups unprivileged: bwrap as this user
        argv = argv[argv.index("--") + 1 :]
    return argv, request.descriptors


def run_bare(argv: list[str], fds: list[int]) -> None:
    """The backend's argv, with the descriptors it names (bwrap reads its options from one),
    each rewound: what the launcher hands bwrap, without the launcher."""
    for fd in fds:
        os.lseek(fd, 0, os.SEEK_SET)
    run_checked(argv, pass_fds=fds)


def latency(ws: Workspace, parent: Path, n: int, n_gvisor: int) -> dict[str, float]:
    bare_argv, bare_fds = bare_bwrap_argv(ws, parent / "bare-scratch")
    library_true(ws, "bwrap")  # warm-up: the first run also probes whether overlays mount here
    run_bare(bare_argv, bare_fds)
    bare: list[float] = []
    library: list[float] = []
    inside: list[float] = []
    for _ in range(n):  # interleaved, so drift on the machine hits both alike
        bare.append(timed(lambda: run_bare(bare_argv, bare_fds)))
        start = time.perf_counter()
        result = library_true(ws, "bwrap")
        library.append(time.perf_counter() - start)
        inside.append(result.outcome.seconds)
    rest = [lib - sandboxed for lib, sandboxed in zip(library, inside, strict=True)]

    print(f"{'latency of `true`':<46} runs   p50 ms   p95 ms")
    row("bare bwrap (the backend's argv)", bare)
    row('runs.run(sandbox="bwrap")', library)
    row("  of which launcher + bwrap (outcome.seconds)", inside)
    row("  of which the rest (cgroup, scratch, audit)", rest)
    figures = {"bare": statistics.median(bare), "library": statistics.median(library)}

    runsc = shutil.which("runsc")
    if runsc is None or os.geteuid() != 0:
        why = "runsc is missing" if runsc is None else "not root"
        print(f"gVisor: skipped ({why})")
    else:
        state = parent / "runsc-state"
        bare_runsc = [runsc, "--root", str(state), "--network=none", "do", "true"]
        run_checked(bare_runsc)
        library_true(ws, "gvisor")
        bare_g: list[float] = []
        library_g: list[float] = []
        for _ in range(n_gvisor):
            bare_g.append(timed(lambda: run_checked(bare_runsc)))
            library_g.append(timed(lambda: library_true(ws, "gvisor")))
        row("bare runsc --network=none do true", bare_g)
        row('runs.run(sandbox="gvisor")', library_g)
        figures["gvisor_ratio"] = statistics.median(library_g) / statistics.median(bare_g)
    ratio = figures["library"] / figures["bare"]
    p50 = figures["library"] * 1000
    print(
        f"bwrap: library/bare p50 ratio {ratio:.2f} (goal <= 3: {'yes' if ratio <= 3 else 'NO'}); "
        f"library p50 {p50:.1f} ms (goal < 50 ms: {'yes' if p50 < 50 else 'NO'})"
    )
    if "gvisor_ratio" in figures:
        print(f"gVisor: library/bare p50 ratio {figures['gvisor_ratio']:.2f}")
    return figures


# --- 2. the command line ---------------------------------------------------------------------


def command_line(ws: Workspace, n: int, bare_p50: float) -> None:
    airlock = Path(sys.executable).with_name("airlock")
    print()
    print(f"{'command line, end to end':<46} runs   p50 ms   p95 ms")
    if not airlock.exists():
        print("CLI: not available (no airlock script beside the interpreter)")
        return
    argv = [str(airlock), "run", "--workspace", str(ws.root), "--scope", SMALL_SCOPE, "--", "true"]
    probe = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if probe.returncode != 0:
        first = (probe.stderr or probe.stdout).decode(errors="replace").strip().splitlines()
        print(f"CLI: not available (exit {probe.returncode}: {first[0] if first else ''})")
        return
    startup: list[float] = []
    cli: list[float] = []
    for _ in range(n):
        startup.append(timed(lambda: run_checked([str(airlock), "--help"])))
        cli.append(timed(lambda: run_checked(argv)))
    row("airlock --help (interpreter + imports only)", startup)
    row("airlock run --workspace W --scope S -- true", cli)
    print(f"CLI/bare bwrap p50 ratio {statistics.median(cli) / bare_p50:.1f}")


# --- 3. capture against the scope's size -----------------------------------------------------


def build_scope(folder: Path, files: int) -> None:
    for d in range(math.ceil(files / PER_FOLDER)):
        sub = folder / f"d{d:04d}"
        sub.mkdir(parents=True)
        for f in range(min(PER_FOLDER, files - d * PER_FOLDER)):
            (sub / f"f{f:02d}.txt").write_bytes(f"file {d} {f}\n".encode())


def cached_workspace(cache: Path, files: int) -> Workspace:
    """A workspace whose scope holds ``files`` small files; the tree is built once and kept,
    Airlock's state is made afresh each time."""
    root = cache / f"ws-{files}"
    done = cache / f"ws-{files}.complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        start = time.perf_counter()
        build_scope(root / BIG_SCOPE, files)
        done.touch()
        print(f"# built a scope of {files:,} files in {time.perf_counter() - start:.1f} s")
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)
    return Workspace.init(root)


class Timers:
    """Wall time spent in the functions runs.run calls (through airlock.sandbox.collect) to read
    changes and capture them. Only where Airlock is root: otherwise collect runs in a process of
    its own inside the run's namespaces, and its time is counted in "rest"."""

    def __init__(self) -> None:
        self.read = 0.0
        self.capture = 0.0

    def install(self) -> Callable[[], None]:
        """Wrap the functions collect looks up in its module; returns what undoes it."""

        def timed_upper(upper: Path, merged: Path, lower: Path) -> Found:
            start = time.perf_counter()
            try:
                return upper_changes(upper, merged, lower)
            finally:
                self.read += time.perf_counter() - start

        def timed_copy(original: Path, copy: Path, copied: Path) -> Found:
            start = time.perf_counter()
            try:
                return copy_changes(original, copy, copied)
            finally:
                self.read += time.perf_counter() - start

        def timed_capture(
            changes: Iterable[Change], sides: Sides, *, write_limit: int | None = None
        ) -> Captured:
            start = time.perf_counter()
            try:
                return capture(changes, sides, write_limit=write_limit)
            finally:
                self.capture += time.perf_counter() - start

        wrappers: dict[str, object] = {
            "upper_changes": timed_upper,
            "copy_changes": timed_copy,
            "capture": timed_capture,
        }
        originals = {name: getattr(collect, name) for name in wrappers}
        for name, wrapper in wrappers.items():
            setattr(collect, name, wrapper)

        def uninstall() -> None:
            for name, original in originals.items():
                setattr(collect, name, original)

        return uninstall


def change_run(ws: Workspace) -> dict[str, float]:
    """One runs.run of the change script, with where the time went."""
    timers = Timers()
    uninstall = timers.install()
    try:
        start = time.perf_counter()
        result = runs.run(ws, BIG_SCOPE, ["python3", "-c", CHANGE_SCRIPT])
        total = time.perf_counter() - start
    finally:
        uninstall()
    ops = [op.op for op in result.plan.plan.operations] if result.plan else []
    counts = dict(Counter(ops))
    if result.outcome.exit_code != 0 or counts != {"write": 900, "move": 100}:
        raise SystemExit(f"the change run went wrong: {counts} {result.to_dict()}")
    sandbox = result.outcome.seconds
    return {
        "total": total,
        "sandbox": sandbox,
        "read": timers.read,
        "capture": timers.capture,
        "rest": total - sandbox - timers.read - timers.capture,
    }


def copy_as_the_launcher(original: Path, copy: Path) -> None:
    """What the launcher does in copy mode before the run: ``cp -a``, then (when root) the copy
    is given to the sandbox's ids."""
    copy.mkdir()
    run_checked(["cp", "-a", f"{original}/.", f"{copy}/"])
    ids = sandbox_ids(original.stat().st_uid)
    if os.geteuid() == 0 and not isinstance(ids, str):
        run_checked(["chown", "-R", "-P", f"{ids.host_uid}:{ids.host_gid}", str(copy)])


def copy_mode(ws: Workspace, parent: Path, rounds: int) -> dict[str, float]:
    """The fallback's own cost: copy the scope, change the copy, diff it against the original."""
    original = ws.root / BIG_SCOPE
    copies: list[float] = []
    diffs: list[float] = []
    for i in range(rounds):
        copy = parent / f"copy-{i}"
        marker = parent / f"copied-{i}"
        start = time.perf_counter()
        copy_as_the_launcher(original, copy)
        copies.append(time.perf_counter() - start)
        # Untimed: a file copied within the marker's timestamp tick counts as changed (capture
        # then finds its bytes equal); waiting a tick keeps the count below exact.
        time.sleep(0.05)
        marker.touch()
        run_checked([sys.executable, "-c", CHANGE_SCRIPT], cwd=copy)
        start = time.perf_counter()
        found = copy_changes(original, copy, marker)
        diffs.append(time.perf_counter() - start)
        changes = len(found.changes)
        if changes != 1100 or found.skipped:  # 800 changed, 100 new, 100 renamed (gone + new)
            raise SystemExit(
                f"copy_changes found {changes} changes (expected 1,100), skipped {found.skipped}"
            )
        shutil.rmtree(copy)
    return {"copy": statistics.median(copies), "diff": statistics.median(diffs)}


def capture_section(
    cache: Path, parent: Path, sizes: Sequence[int], rounds: int, copy_rounds: int
) -> None:
    workspaces = {files: cached_workspace(cache, files) for files in sizes}
    try:
        os.sync()
        for ws in workspaces.values():
            change_run(ws)  # warm-up (page cache, overlay probe)
        samples: dict[int, list[dict[str, float]]] = {files: [] for files in sizes}
        for _ in range(rounds):  # interleaved, so drift on the machine hits both sizes alike
            for files, ws in workspaces.items():
                samples[files].append(change_run(ws))
        copies = {files: copy_mode(ws, parent, copy_rounds) for files, ws in workspaces.items()}
    finally:
        for ws in workspaces.values():
            ws.close()
    results = {
        files: {key: statistics.median(one[key] for one in runs_) for key in runs_[0]}
        for files, runs_ in samples.items()
    }
    print()
    print(
        "capture: 1,000 changed files (800 overwritten, 100 new, 100 renamed), "
        f"runs.run end to end, median of {rounds} (copy fallback: of {copy_rounds})"
    )
    print(
        f"{'scope files':>11} {'run s':>7} {'sandbox':>8} {'read':>7} {'capture':>8} "
        f"{'rest':>7} | {'cp -a':>10} {'copy_changes':>12}"
    )
    for files in sizes:
        r, c = results[files], copies[files]
        print(
            f"{files:>11,} {r['total']:>7.2f} {r['sandbox']:>8.2f} {r['read']:>7.3f} "
            f"{r['capture']:>8.3f} {r['rest']:>7.2f} | {c['copy']:>10.2f} {c['diff']:>12.2f}"
        )
    small, big = sizes[0], sizes[-1]
    run_ratio = results[big]["total"] / results[small]["total"]
    small_capture = results[small]["read"] + results[small]["capture"]
    big_capture = results[big]["read"] + results[big]["capture"]
    capture_ratio = big_capture / small_capture if small_capture else math.nan
    copy_ratio = (copies[big]["copy"] + copies[big]["diff"]) / (
        copies[small]["copy"] + copies[small]["diff"]
    )
    print(
        f"ratio {big:,} / {small:,} files: run {run_ratio:.2f}, read + capture "
        f"{capture_ratio:.2f} (goal ~1); copy fallback {copy_ratio:.1f}"
    )
    unprivileged = "; not root: read and capture run in the run's namespace, counted in rest"
    print(
        "(sandbox = launcher + bwrap + the script, outcome.seconds; read = upper_changes; "
        f"rest = scratch, cgroup, submit, validate, audit{'' if os.geteuid() == 0 else unprivileged})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 files, fewer repetitions")
    parser.add_argument("--runs", type=int, default=None, help="runs of `true` (default 50)")
    parser.add_argument("--gvisor-runs", type=int, default=None, help="default 10")
    parser.add_argument("--cli-runs", type=int, default=None, help="default 10")
    parser.add_argument("--files", type=int, default=None, help="large scope (default 100,000)")
    parser.add_argument("--rounds", type=int, default=None, help="capture rounds (default 5)")
    parser.add_argument("--copy-rounds", type=int, default=1, help="copy fallback rounds")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "airlock-bench-runs-cache"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build (default: a temp dir)"
    )
    args = parser.parse_args()
    quick = args.quick
    n = args.runs or (20 if quick else 50)
    n_gvisor = args.gvisor_runs or (5 if quick else 10)
    n_cli = args.cli_runs or (5 if quick else 10)
    files = args.files or (10_000 if quick else 100_000)
    rounds = args.rounds or (1 if quick else 5)
    args.cache.mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="airlock-bench-runs-", dir=args.dir))
    parent.chmod(0o711)  # bare bwrap runs as the sandbox's ids: they must reach the scope in it
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"# {os.cpu_count()} cores (load average {load}), euid {os.geteuid()}, in {parent}")
        ws = small_workspace(parent)
        try:
            figures = latency(ws, parent, n, n_gvisor)
            command_line(ws, n_cli, figures["bare"])
        finally:
            ws.close()
        capture_section(args.cache, parent, [1000, files], rounds, args.copy_rounds)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
