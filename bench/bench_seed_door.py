"""The seed-compatible door beside a naive reference of the same API (issue 10, item 6).

    .venv/bin/python bench/bench_seed_door.py [--files 10000] [--repeat 3]
                                              [--shape existing|mkdir|missing]
                                              [--requires-approval] [--no-strace] [--keep]

Starts two servers as real processes on free loopback ports: ``airlock serve`` on one workspace,
and ``bench/seed_reference.py`` (uvicorn; plans in a dict, one ``shutil.move`` per operation, no
journal, no preconditions, no sync, no audit) on another. Each workspace gets one case per round
(``projects/Case-<n>``) of ``--files`` small files (256 B to 4 KiB) in ``Unsorted/Scan-Batch-NNN/``
folders of 100, plus the 36 folders of a case they are sorted into (``Medical Records/Provider-NN``,
``Correspondence/<year>``, ``Discovery/...``, ...). Through HTTP, from this process, each round
times on both servers the same seed plan: ``POST /plans`` (the body encoded beforehand),
``POST /plans/{id}/validate``, ``POST /plans/{id}/approve`` when the plan needs it (Airlock: with
an approver token, the agent being the author), and ``POST /plans/{id}/apply`` (which, on
Airlock's seed door, waits for the background apply job to finish). Before each server's turn
everything is synced to disk (``os.sync()``, untimed), so neither pays for the other's writes.

Plan shapes (``--shape``):

* ``existing`` (default): one ``move`` per file into the existing sorted folders;
* ``mkdir``: the sorted folders do not exist; the plan creates them (``create_dir`` of every
  folder, parents first) before the moves;
* ``missing``: the sorted folders do not exist and the plan only has the moves (the seed creates
  the folders it needs; Airlock today refuses such a plan as invalid, which is reported).

In the same run, the **plain baseline**: a Python loop of ``os.rename`` over the same number of
files in a third workspace (same layout, destination folders made beforehand), then one
``os.sync()``; Airlock's apply is compared with it (goal: within 2x).

**Bytes read during validate**: the ``rchar`` delta of each server process (``/proc/<pid>/io``)
around the validate call: every byte the process read through read-like calls, database reads
included (nothing is subtracted). Then, cleaner and once (not timed), ``strace -f`` attached to
``airlock serve`` during the validate of one more such plan: the bytes returned by ``read`` /
``pread64`` / ``readv`` / ``preadv`` per file (``-y`` names each descriptor's file), split into the
case's files, Airlock's state (``.airlock``: the database) and anything else. The goal is that
validating a plan of moves reads no file content; the moved files' total size is printed beside.

Every figure is the median of ``--repeat`` rounds (after one small warm-up plan on each server);
the rounds' own values are printed beside. Loopback only; the servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench_service import (  # this folder is on sys.path: the scripts run by path
    HOST,
    free_port,
    make_token,
    run_cli,
    stop,
    wait_healthy,
)

HERE = Path(__file__).resolve().parent
BATCH = 100  # files per source folder
SORTED = (
    [f"Medical Records/Provider-{p:02d}" for p in range(1, 21)]
    + [f"Correspondence/{year}" for year in range(2019, 2025)]
    + [
        "Discovery/Requests",
        "Discovery/Responses",
        "Billing/Invoices",
        "Billing/Liens",
        "Pleadings",
        "Photos/Scene",
        "Photos/Injuries",
        "Insurance/Claims",
        "Insurance/Policy",
        "Intake",
    ]
)
EXTENSIONS = ("pdf", "docx", "jpg", "txt", "msg")
PHASES = ("submit", "validate", "approve", "apply")
READS = ("read", "pread64", "readv", "preadv")
STRACE_LINE = re.compile(r"^(?:read|pread64|readv|preadv)\(\d+<(.*?)>, .*\)\s+=\s+(\d+)")


@dataclass(frozen=True)
class Move:
    source: str
    destination: str
    size: int


def case_moves(files: int) -> list[Move]:
    moves = []
    for i in range(files):
        name = f"scan-{i:05d}.{EXTENSIONS[i % len(EXTENSIONS)]}"
        moves.append(
            Move(
                f"Unsorted/Scan-Batch-{i // BATCH + 1:03d}/{name}",
                f"{SORTED[(i * 7) % len(SORTED)]}/{name}",
                256 + (i * 7919) % 3841,
            )
        )
    return moves


def build_case(case: Path, moves: list[Move], with_sorted: bool) -> None:
    for folder in sorted({os.path.dirname(m.source) for m in moves}):
        os.makedirs(case / folder)
    if with_sorted:
        for folder in SORTED:
            os.makedirs(case / folder)
    for i, move in enumerate(moves):
        line = f"case document {i}: {move.destination}\n".encode()
        (case / move.source).write_bytes((line * (move.size // len(line) + 1))[: move.size])


def seed_operations(moves: list[Move], shape: str) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    if shape == "mkdir":
        parts = [f.split("/") for f in SORTED]
        folders = {"/".join(p[:k]) for p in parts for k in range(1, len(p) + 1)}
        for folder in sorted(folders, key=lambda f: (f.count("/"), f)):
            ops.append({"type": "create_dir", "destination": folder})
    ops += [{"type": "move", "source": m.source, "destination": m.destination} for m in moves]
    return ops


def seed_plan(case: str, plan_id: str, ops: list[dict[str, Any]], approval: bool) -> bytes:
    plan = {
        "plan_id": plan_id,
        "case_name": case,
        "description": f"sort {case}'s scans into its folders",
        "operations": ops,
        "created_by": "bench-agent",
        "requires_approval": approval,
    }
    return json.dumps(plan).encode()


def rchar(pid: int) -> int:
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise SystemExit(f"/proc/{pid}/io has no rchar")


def left_in(folder: Path) -> int:
    return sum(len(names) for _dir, _subdirs, names in os.walk(folder))


@dataclass
class Door:
    name: str
    root: Path
    server: subprocess.Popen[bytes]
    client: httpx.Client
    approver: httpx.Client
    seconds: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    totals: list[float] = field(default_factory=list)
    read_validate: list[int] = field(default_factory=list)
    read_apply: list[int] = field(default_factory=list)
    refused: str = ""

    def post(self, client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
        response = client.post(url, **kwargs)
        if response.status_code != 200:
            raise SystemExit(
                f"{self.name}: POST {url} -> {response.status_code}: {response.text[:500]}"
            )
        return response

    def run(self, case: str, plan_id: str, body: bytes, operations: int) -> dict[str, float]:
        """Submit, validate, approve if needed, apply: seconds per phase (approve: 0 if not)."""
        pid = self.server.pid
        times = dict.fromkeys(PHASES, 0.0)
        os.sync()
        start = time.perf_counter()
        self.post(self.client, "/plans", content=body, headers={"content-type": "application/json"})
        times["submit"] = time.perf_counter() - start

        before = rchar(pid)
        start = time.perf_counter()
        report = self.post(self.client, f"/plans/{plan_id}/validate").json()
        times["validate"] = time.perf_counter() - start
        self.read_validate.append(rchar(pid) - before)
        if not report["valid"]:
            self.refused = f"validate refused the plan: {report['errors'][:2]}"
            return times
        if report["operation_count"] != operations:
            raise SystemExit(f"{self.name}: {report['operation_count']} operations validated")

        needs = (
            json.loads(body)["requires_approval"]
            or "Needs approval:" in (report["dry_run_summary"])
        )
        if needs:
            start = time.perf_counter()
            self.post(
                self.approver, f"/plans/{plan_id}/approve", params={"approved_by": "bench-approver"}
            )
            times["approve"] = time.perf_counter() - start

        os.sync()
        before = rchar(pid)
        start = time.perf_counter()
        result = self.post(self.client, f"/plans/{plan_id}/apply").json()
        times["apply"] = time.perf_counter() - start
        self.read_apply.append(rchar(pid) - before)
        if not result["success"] or result["operations_completed"] != operations:
            raise SystemExit(f"{self.name}: apply of {plan_id} did not succeed: {result}")
        left = left_in(self.root / "projects" / case / "Unsorted")
        if left:
            raise SystemExit(f"{self.name}: {left} files left unsorted after applying {plan_id}")
        return times

    def record(self, times: dict[str, float]) -> None:
        for phase, seconds in times.items():
            self.seconds[phase].append(seconds)
        self.totals.append(sum(times.values()))


def plain_round(case: Path, moves: list[Move]) -> float:
    os.sync()
    start = time.perf_counter()
    for move in moves:
        os.rename(case / move.source, case / move.destination)
    os.sync()
    return time.perf_counter() - start


def strace_validate(door: Door, case: str, plan_id: str, out: Path) -> tuple[str, int | None]:
    """Validate ``plan_id`` with strace attached to the server: what it read, file by file, and
    the bytes read from the case's files (None if strace could not count)."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace not found: the per-file count was skipped", None
    prefix = out / "strace"
    tracer = subprocess.Popen(
        [
            *(strace, "-f", "-ff", "-y", "-s", "0", "-o", str(prefix)),
            *("-e", "trace=" + ",".join(READS), "-p", str(door.server.pid)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    first = tracer.stderr.readline()  # "strace: Process N attached with M threads"
    if "attached" not in first:
        tracer.wait(timeout=30)
        return f"strace could not attach: {first.strip() or tracer.returncode}", None
    start = time.perf_counter()
    report = door.post(door.client, f"/plans/{plan_id}/validate").json()
    traced = time.perf_counter() - start
    tracer.send_signal(signal.SIGINT)
    tracer.communicate(timeout=60)
    case_dir = os.path.realpath(door.root / "projects" / case) + "/"
    state_dir = os.path.realpath(door.root / ".airlock") + "/"
    read: dict[str, int] = {"case": 0, "state": 0, "other": 0}
    case_files: set[str] = set()
    for trace in out.glob("strace.*"):
        for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
            match = STRACE_LINE.match(line)
            if match is None:
                continue
            path, count = match.group(1), int(match.group(2))
            if path.startswith(case_dir):
                read["case"] += count
                if count:
                    case_files.add(path)
            elif path.startswith(state_dir):
                read["state"] += count
            else:
                read["other"] += count
    valid = "valid" if report["valid"] else "invalid"
    return (
        f"{read['case']:,} B from {len(case_files):,} of the case's files, "
        f"{read['state']:,} B from Airlock's state (.airlock: the database), "
        f"{read['other']:,} B from anything else (one more {valid} validate, "
        f"{traced:.2f} s under strace)"
    ), read["case"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def mb(count: float) -> str:
    return f"{count / 1e6:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="files (moves) per plan")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--shape", choices=("existing", "mkdir", "missing"), default="existing")
    parser.add_argument(
        "--requires-approval", action="store_true", help="send requires_approval: true"
    )
    parser.add_argument("--no-strace", action="store_true", help="skip the strace count")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-seed-door-"))
    roots = {name: tmp / name for name in ("airlock", "seed", "plain")}
    servers: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    try:
        moves = case_moves(args.files)
        warm = case_moves(100)
        total_bytes = sum(m.size for m in moves)
        ops = seed_operations(moves, args.shape)
        with_sorted = args.shape == "existing"
        cases = [f"Case-{n + 1}" for n in range(args.repeat)]
        run_cli("init", "--workspace", str(roots["airlock"]))
        for name, root in roots.items():
            for case in cases:
                build_case(root / "projects" / case, moves, with_sorted or name == "plain")
            if name != "plain":
                build_case(root / "projects" / "Warmup", warm, with_sorted)
        probe = not args.no_strace
        if probe:
            build_case(roots["airlock"] / "projects" / "Probe", moves, with_sorted)
        agent = make_token(roots["airlock"], "bench-agent", "agent")
        approver = make_token(roots["airlock"], "bench-approver", "approver")
        os.sync()

        doors: dict[str, Door] = {}
        for name in ("airlock", "seed"):
            port = free_port()
            base = f"http://{HOST}:{port}"
            where = ("--workspace", str(roots[name]), "--host", HOST, "--port", str(port))
            command = (
                [sys.executable, "-m", "airlock", "serve", *where]
                if name == "airlock"
                else [sys.executable, str(HERE / "seed_reference.py"), *where]
            )
            with (tmp / f"{name}.log").open("wb") as log:
                server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            servers.append(server)
            wait_healthy(base, server, time.monotonic() + 60)
            token = {"Authorization": f"Bearer {agent}"}
            client = httpx.Client(base_url=base, headers=token, timeout=600)
            other = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {approver}"}, timeout=600
            )
            clients += [client, other]
            doors[name] = Door(name, roots[name], server, client, other)

        warm_ops = seed_operations(warm, args.shape)
        for door in doors.values():
            body = seed_plan("Warmup", "warm-up", warm_ops, args.requires_approval)
            door.run("Warmup", "warm-up", body, len(warm_ops))
            door.seconds = {p: [] for p in PHASES}
            door.read_validate, door.read_apply = [], []
            door.refused = ""

        plain: list[float] = []
        for n, case in enumerate(cases):
            body = seed_plan(case, f"sort-{case}", ops, args.requires_approval)
            order = ("seed", "airlock") if n % 2 == 0 else ("airlock", "seed")
            for name in order:
                door = doors[name]
                if not door.refused:
                    door.record(door.run(case, f"sort-{case}", body, len(ops)))
            plain.append(plain_round(roots["plain"] / "projects" / case, moves))
        traced, content = "skipped (--no-strace)", None
        if probe:
            body = seed_plan("Probe", "probe", ops, args.requires_approval)
            doors["airlock"].post(
                doors["airlock"].client,
                "/plans",
                content=body,
                headers={"content-type": "application/json"},
            )
            traced, content = strace_validate(doors["airlock"], "Probe", "probe", tmp)

        air, seed = doors["airlock"], doors["seed"]
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"# {args.files:,} files ({mb(total_bytes)}) in {len(cases)} case(s) per workspace, "
            f"in {tmp}; {os.cpu_count()} cores, load average {load}"
        )
        print(
            f"# plan: {len(ops):,} seed operations, shape {args.shape!r} "
            f"({'moves into the 36 existing sorted folders' if with_sorted else 'sorted folders missing'}"
            f"{', requires_approval' if args.requires_approval else ''}); "
            f"medians of {len(cases)} round(s), rounds in brackets"
        )
        print("# airlock: `airlock serve` seed door; seed: bench/seed_reference.py (naive)")
        print(f"\n{'phase':<10}{'airlock':>10}{'seed':>10}{'ratio':>8}   rounds: airlock | seed")
        for phase in PHASES:
            if phase == "approve" and not any(air.seconds[phase] + seed.seconds[phase]):
                print(f"{phase:<10}{'-':>10}{'-':>10}{'-':>8}   (the plan needs no approval)")
                continue
            a, s = median(air.seconds[phase]), median(seed.seconds[phase])
            if air.refused and phase in ("approve", "apply"):
                print(f"{phase:<10}{'refused':>10}{s:>8.2f} s{'-':>8}")
                continue
            rounds = " ".join(f"{v:.2f}" for v in air.seconds[phase])
            rounds += " | " + " ".join(f"{v:.2f}" for v in seed.seconds[phase])
            print(f"{phase:<10}{a:>8.2f} s{s:>8.2f} s{ratio(a, s):>8}   {rounds}")
        a_total, s_total = median(air.totals), median(seed.totals)
        if air.refused:
            print(f"{'total':<10}{'refused':>10}{s_total:>8.2f} s{'-':>8}")
        else:
            print(f"{'total':<10}{a_total:>8.2f} s{s_total:>8.2f} s{ratio(a_total, s_total):>8}")
        approved = any(air.seconds["approve"]) or any(seed.seconds["approve"])
        label = "submit+validate+approve+apply" if approved else "submit+validate+apply"
        if air.refused:
            print(f"\nairlock: {air.refused}")
            print(f"goal: Airlock {label} total < seed total: NOT MET (Airlock refused the plan)")
        else:
            met = "met" if a_total < s_total else "NOT MET"
            print(
                f"\ngoal: Airlock {label} total < seed total: {met} "
                f"({a_total:.2f} s vs {s_total:.2f} s)"
            )
        p = median(plain)
        print(
            f"plain baseline: a Python loop of os.rename over the same {args.files:,} files, "
            f"then one os.sync(): {p:.2f} s   rounds: " + " ".join(f"{v:.2f}" for v in plain)
        )
        a_apply = median(air.seconds["apply"])
        met = "NOT MET (refused)" if air.refused else "met" if a_apply <= 2 * p else "NOT MET"
        print(
            f"goal: Airlock apply within 2x the plain baseline: {met} "
            f"({a_apply:.2f} s / {p:.2f} s = {ratio(a_apply, p)})"
        )
        print(f"\nmoved files' total size: {total_bytes:,} B ({mb(total_bytes)})")
        for door in (air, seed):
            v, a = median(door.read_validate), median(door.read_apply)
            print(
                f"bytes read during validate, {door.name:<7}: {v:>14,.0f} B ({mb(v)}); "
                f"during apply {a:,.0f} B ({mb(a)})   "
                "(rchar of the server process, /proc/<pid>/io"
                + ("; includes database reads)" if door.name == "airlock" else ")")
            )
        print(f"airlock validate under strace -f -y (read/pread64/readv/preadv): {traced}")
        if content is None:
            verdict = "unknown without strace (rchar includes database reads)"
        else:
            verdict = "met" if content == 0 else f"NOT MET ({content:,} B of the case's files)"
        print(f"goal: validating a plan of moves reads no file content: {verdict}")
        return 0
    finally:
        for client in clients:
            client.close()
        for server in servers:
            stop(server)
        if args.keep:
            print(f"(workspaces and server logs kept in {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
