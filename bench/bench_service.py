"""Service load benchmark: 50 concurrent agents against one `airlock serve`, then a loss check.

    .venv/bin/python bench/bench_service.py [--clients 50] [--plans 10] [--cases 10]
                                            [--files 200] [--deadline 600]

Builds a fresh workspace in a temporary folder (``--cases`` case folders under ``projects/``,
each with ``--files`` small files in ``in/``), creates agent tokens with
``airlock token create --json``, starts ``airlock serve`` as a subprocess on a free loopback port,
and from this process runs ``--clients`` agent threads, each submitting, validating and applying
``--plans`` plans: half through the native API (``/api/v1``: submit, validate, apply -> job,
follow the job's server-sent events), half through the seed-compatible API (``/plans``: submit,
validate, apply and wait).

Scopes: half the cases are shared by several clients at once, the other half each belong to one
client. Clients on a shared case use distinct names (no conflict), except that every third plan
also races the case's other clients to create the same ``race/claim-NN.txt``: exactly one wins and
the others must be refused as stale (or invalid, if they validate after the winner applied), with
none of their other changes made.

Prints throughput (plans/s, requests/s), p50/p99 latency per request kind and the count of each
outcome, then checks:

* nothing lost: every file written by an applied plan exists with its bytes, every moved file is
  at its destination and gone from its source, nothing of a refused plan was applied, each race
  has exactly one winner, and the total file count matches;
* no deadlock: every client finished within ``--deadline`` seconds;
* no 500 in the server's log, no plan left applying, and ``GET /api/v1/audit/verify`` is ok.

Exits 0 when every check passes, 1 when one fails, 2 on a deadline overrun. Loopback only; every
loop is bounded; the server is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
PLAN = "plan, end to end:"


@dataclass
class PlanSpec:
    client: int
    index: int
    case: str
    api: str  # "native" or "seed"
    plan_id: str
    folder: str
    writes: dict[str, str]  # path (relative to the scope) -> text
    move: tuple[str, str]
    shared: bool = False  # on a case other clients use at the same time
    race: str | None = None  # the contested path, if this plan takes part in a race

    def core_operations(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = [{"op": "mkdir", "path": self.folder}]
        ops += [{"op": "write", "path": p, "text": t} for p, t in self.writes.items()]
        ops.append({"op": "move", "source": self.move[0], "destination": self.move[1]})
        return ops

    def seed_operations(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = [{"type": "create_dir", "destination": self.folder}]
        ops += [
            {"type": "write_file", "destination": p, "content": t} for p, t in self.writes.items()
        ]
        ops.append({"type": "rename", "source": self.move[0], "destination": self.move[1]})
        return ops


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    results: dict[str, str] = field(default_factory=dict)  # plan id -> outcome
    errors: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[f"{status}"] += 1

    def outcome(self, plan_id: str, outcome: str, note: str = "") -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.results[plan_id] = outcome
            if note and len(self.errors) < 20:
                self.errors.append(f"{plan_id}: {outcome}: {note}")


# --- the workspace -------------------------------------------------------------------------------


def case_name(n: int) -> str:
    return f"Case-{n:02d}"


def build_workspace(root: Path, cases: int, files: int) -> None:
    run_cli("init", "--workspace", str(root))
    for n in range(cases):
        inbox = root / "projects" / case_name(n) / "in"
        inbox.mkdir(parents=True)
        (inbox.parent / "race").mkdir()
        for i in range(files):
            (inbox / f"doc-{i:03d}.txt").write_bytes(f"case {n} document {i}\n".encode() * 8)


def run_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "airlock", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"airlock {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def make_token(root: Path, name: str, role: str) -> str:
    out = run_cli(
        "token", "create", "--workspace", str(root), "--role", role, "--name", name, "--json"
    )
    token: str = json.loads(out)["token"]
    return token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def count_files(root: Path) -> int:
    total = 0
    for _dir, _subdirs, names in os.walk(root / "projects"):
        total += len(names)
    return total


# --- the plans -----------------------------------------------------------------------------------


def assign(clients: int, plans: int, cases: int, files: int) -> list[list[PlanSpec]]:
    """Each client's plans. The first half of the cases are shared, the rest have one client."""
    shared = max(1, cases // 2)
    solo = cases - shared
    solo_clients = min(solo, clients // 2)
    shared_clients = clients - solo_clients
    per_shared = -(-shared_clients // shared)  # clients per shared case, rounded up
    if per_shared * plans > files or plans > files:
        raise SystemExit(f"{files} files per case are too few for {per_shared} x {plans} moves")
    layout: list[list[PlanSpec]] = []
    for c in range(clients):
        if c < shared_clients:
            case, slot, is_shared = c % shared, c // shared, True
        else:
            case, slot, is_shared = shared + (c - shared_clients), 0, False
        specs = []
        for j in range(plans):
            folder = f"out-{c:02d}-{j:02d}"
            doc = f"doc-{slot * plans + j:03d}.txt"
            writes = {
                f"{folder}/note-{k}.txt": f"client {c} plan {j} note {k}\n" + "z" * (100 * k)
                for k in range(3)
            }
            race = f"race/claim-{j:02d}.txt" if is_shared and j % 3 == 0 else None
            if race:
                writes[race] = f"claimed by client {c} in plan {j}\n"
            specs.append(
                PlanSpec(
                    client=c,
                    index=j,
                    case=case_name(case),
                    api="native" if c % 2 == 0 else "seed",
                    plan_id=f"bench-{c:02d}-{j:02d}",
                    folder=folder,
                    writes=writes,
                    move=(f"in/{doc}", f"{folder}/{doc}"),
                    shared=is_shared,
                    race=race,
                )
            )
        layout.append(specs)
    return layout


class Agent:
    def __init__(self, base: str, token: str, stats: Stats, timeout: float) -> None:
        self.client = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout),
        )
        self.stats = stats

    def call(self, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        start = time.perf_counter()
        response = self.client.request(method, url, **kwargs)
        self.stats.record(kind, time.perf_counter() - start, response.status_code)
        return response

    def run(self, specs: list[PlanSpec]) -> None:
        try:
            for spec in specs:
                try:
                    start = time.perf_counter()
                    if spec.api == "native":
                        outcome, note = self.native(spec)
                    else:
                        outcome, note = self.seed(spec)
                    where = "shared case" if spec.shared else "own case"
                    with self.stats.lock:
                        self.stats.latencies[f"{PLAN} {where}"].append(time.perf_counter() - start)
                except httpx.HTTPError as exc:
                    outcome, note = "transport-error", repr(exc)
                self.stats.outcome(spec.plan_id, outcome, note)
        finally:
            self.client.close()

    @staticmethod
    def _refusal(response: httpx.Response) -> tuple[str, str]:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        error = str(body.get("error", ""))
        if response.status_code >= 500:
            return f"http-{response.status_code}", json.dumps(body)[:300]
        if error == "StalePlanError":
            return "stale", ""
        if error == "PlanInvalidError":
            return "invalid", ""
        return f"http-{response.status_code}-{error or 'error'}", str(body.get("detail", ""))[:300]

    def native(self, spec: PlanSpec) -> tuple[str, str]:
        plan = {
            "scope": f"projects/{spec.case}",
            "description": f"bench plan {spec.index} of client {spec.client}",
            "author": f"agent-{spec.client:02d}",
            "operations": spec.core_operations(),
        }
        r = self.call(
            "native submit",
            "POST",
            "/api/v1/plans",
            params={"plan_id": spec.plan_id, "validate": "false"},
            json=plan,
        )
        if r.status_code != 201:
            return self._refusal(r)
        r = self.call("native validate", "POST", f"/api/v1/plans/{spec.plan_id}/validate")
        if r.status_code != 200:
            return self._refusal(r)
        if r.json()["status"] != "validated":
            return "invalid", ""
        r = self.call("native apply (202)", "POST", f"/api/v1/plans/{spec.plan_id}/apply")
        if r.status_code != 202:
            return self._refusal(r)
        job_id = r.json()["job_id"]
        start = time.perf_counter()
        final: dict[str, Any] | None = None
        with self.client.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "done":
                    final = json.loads(line.removeprefix("data: "))
                    break
            status = stream.status_code
        self.stats.record("native job events (SSE)", time.perf_counter() - start, status)
        if final is None:
            return "job-lost", f"SSE ended without a result (HTTP {status})"
        if final["state"] == "succeeded":
            return "applied", ""
        error = (final.get("error") or {}).get("error", "")
        if error == "StalePlanError":
            return "stale", ""
        return "apply-failed", json.dumps(final.get("error") or final.get("result"))[:300]

    def seed(self, spec: PlanSpec) -> tuple[str, str]:
        plan = {
            "plan_id": spec.plan_id,
            "case_name": spec.case,
            "description": f"bench plan {spec.index} of client {spec.client}",
            "operations": spec.seed_operations(),
            "created_by": f"agent-{spec.client:02d}",
        }
        r = self.call("seed submit", "POST", "/plans", json=plan)
        if r.status_code != 200:
            return self._refusal(r)
        r = self.call("seed validate", "POST", f"/plans/{spec.plan_id}/validate")
        if r.status_code != 200:
            return self._refusal(r)
        if not r.json()["valid"]:
            return "invalid", ""
        r = self.call("seed apply (waits)", "POST", f"/plans/{spec.plan_id}/apply")
        if r.status_code == 403 and "overwrite" in r.json().get("detail", ""):
            # A seed write_file over a file that now exists is an overwrite: it waits for a
            # person's approval instead of applying. For a race's loser that is a refusal.
            return "needs-approval", ""
        if r.status_code != 200:
            return self._refusal(r)
        result = r.json()
        if result["success"]:
            return "applied", ""
        if "stale" in (result.get("error_details") or ""):
            return "stale", ""
        return "apply-failed", str(result.get("error_details"))[:300]


# --- the checks ----------------------------------------------------------------------------------


def check_files(root: Path, layout: list[list[PlanSpec]], stats: Stats, initial: int) -> list[str]:
    problems: list[str] = []
    expected_files = initial
    race_winners: dict[tuple[str, str], list[PlanSpec]] = defaultdict(list)
    for specs in layout:
        for spec in specs:
            scope = root / "projects" / spec.case
            outcome = stats.results.get(spec.plan_id)
            source, destination = scope / spec.move[0], scope / spec.move[1]
            if outcome == "applied":
                expected_files += len(spec.writes)
                for rel, text in spec.writes.items():
                    path = scope / rel
                    if not path.is_file():
                        problems.append(f"{spec.plan_id}: {rel} is missing")
                    elif rel != spec.race and path.read_text(encoding="utf-8") != text:
                        problems.append(f"{spec.plan_id}: {rel} has the wrong bytes")
                if spec.race:
                    race_winners[(spec.case, spec.race)].append(spec)
                if not destination.is_file() or source.exists():
                    problems.append(f"{spec.plan_id}: {spec.move[0]} was not moved")
            else:
                if (scope / spec.folder).exists():
                    problems.append(f"{spec.plan_id} ({outcome}): its folder exists")
                if not source.is_file():
                    problems.append(f"{spec.plan_id} ({outcome}): {spec.move[0]} is gone")
    contested = {(s.case, s.race) for specs in layout for s in specs if s.race is not None}
    for case, race in sorted(contested):
        assert race is not None
        winners = race_winners.get((case, race), [])
        path = root / "projects" / case / race
        if len(winners) != 1:
            problems.append(f"{case}/{race}: {len(winners)} applied plans claim it (want 1)")
        elif path.read_text(encoding="utf-8") != winners[0].writes[race]:
            problems.append(f"{case}/{race}: not the winner's bytes")
    found = count_files(root)
    if found != expected_files:
        problems.append(f"{found} files under projects/, expected {expected_files}")
    return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def wait_healthy(base: str, server: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"airlock serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("airlock serve did not become healthy in time")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--plans", type=int, default=10, help="plans per client")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--files", type=int, default=200, help="files per case")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for every client")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-service-"))
    root = tmp / "workspace"
    log_path = tmp / "serve.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        layout = assign(args.clients, args.plans, args.cases, args.files)
        build_workspace(root, args.cases, args.files)
        initial = count_files(root)
        tokens = [make_token(root, f"agent-{n}", "agent") for n in range(5)]
        port = free_port()
        base = f"http://{HOST}:{port}"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [
                    *(sys.executable, "-m", "airlock", "serve", "--workspace", str(root)),
                    *("--host", HOST, "--port", str(port)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(base, server, time.monotonic() + 60)

        shared = max(1, args.cases // 2)
        print(
            f"airlock serve on {base}: {args.cases} cases x {args.files} files "
            f"({initial} files), {args.clients} clients x {args.plans} plans "
            f"(half native, half seed; {shared} shared cases, "
            f"{args.cases - shared} with one client each)"
        )
        stats = Stats()
        agents = [
            Agent(base, tokens[c % len(tokens)], stats, args.deadline) for c in range(args.clients)
        ]
        threads = [
            threading.Thread(target=agent.run, args=(specs,), daemon=True, name=f"agent-{c}")
            for c, (agent, specs) in enumerate(zip(agents, layout, strict=True))
        ]
        started = time.perf_counter()
        deadline = time.monotonic() + args.deadline
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.perf_counter() - started
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            print(
                f"DEADLINE: {len(stuck)} client(s) still running after {args.deadline:.0f} s "
                f"({', '.join(stuck[:10])}): a deadlock or a stall",
                file=sys.stderr,
            )
            return 2

        with stats.lock:
            requests = sum(len(v) for k, v in stats.latencies.items() if not k.startswith(PLAN))
            plans = sum(stats.outcomes.values())
            print(f"\n{plans} plans, {requests} requests in {elapsed:.2f} s")
            print(
                f"throughput: {plans / elapsed:.1f} plans/s, "
                f"{stats.outcomes['applied'] / elapsed:.1f} applied plans/s, "
                f"{requests / elapsed:.1f} requests/s"
            )
            print(f"\n{'request kind':<34}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
            for kind, values in sorted(stats.latencies.items()):
                print(
                    f"{kind:<34}{len(values):>7}{percentile(values, 0.5) * 1000:>10.1f}"
                    f"{percentile(values, 0.99) * 1000:>10.1f}{max(values) * 1000:>10.1f}"
                )
            print("\noutcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())))
            print(
                "HTTP statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.statuses.items()))
            )
            for line in stats.errors:
                print("  " + line)

        problems = []
        expected_outcomes = {"applied", "stale", "invalid", "needs-approval"}
        odd = {k: v for k, v in stats.outcomes.items() if k not in expected_outcomes}
        if odd:
            problems.append(f"unexpected outcomes: {odd}")
        contests = sum(1 for specs in layout for s in specs if s.race)
        losers = (
            stats.outcomes["stale"] + stats.outcomes["invalid"] + stats.outcomes["needs-approval"]
        )
        races = len({(s.case, s.race) for specs in layout for s in specs if s.race})
        if losers != contests - races:
            problems.append(f"{losers} plans lost a race; expected {contests - races}")

        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=120
        ) as admin:
            verify = admin.get("/api/v1/audit/verify").json()
            print(f"\naudit verify: ok={verify.get('ok')} {json.dumps(verify)[:200]}")
            if not verify.get("ok"):
                problems.append(f"audit chain not ok: {verify}")
            listed = admin.get("/api/v1/plans").json()
            by_status = Counter(p["status"] for p in listed)
            print("plan statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
            if by_status["applied"] != stats.outcomes["applied"]:
                problems.append(
                    f"the service lists {by_status['applied']} applied plans, "
                    f"the clients saw {stats.outcomes['applied']}"
                )
            busy = by_status["applying"] + by_status["rolling_back"]
            if busy:
                problems.append(f"{busy} plan(s) left applying or rolling back")
        stop(server)

        problems += check_files(root, layout, stats, initial)
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        errors_500 = sum(
            1 for line in log_text.splitlines() if '"status": 5' in line or "Traceback" in line
        )
        if errors_500:
            problems.append(f"{errors_500} server error line(s) in the log ({log_path})")
        print(
            f"files under projects/: {count_files(root)} "
            f"(started with {initial}, +{count_files(root) - initial})"
        )
        if problems:
            print("\nFAILED:", file=sys.stderr)
            for problem in problems[:50]:
                print("  " + problem, file=sys.stderr)
            args.keep = True
            return 1
        print(
            "\nchecks: nothing lost, every race had one winner, no deadlock, "
            "no server error, audit chain ok"
        )
        return 0
    finally:
        if server is not None:
            stop(server)
        if args.keep:
            print(f"(workspace and server log kept in {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
