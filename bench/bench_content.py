"""File bodies in the content store: what a big write and a long plan list cost in memory.

Two figures, each at the door users call:

1. **A 1 GiB write through the HTTP API.** A real ``airlock serve``: the body is uploaded as a
   stream (``PUT /api/v1/content``, chunked), a plan names it by SHA-256, and it is validated and
   applied. The figure is how much the server's peak memory (``VmHWM``, read from
   ``/proc/<pid>/status``) rose over the whole upload + submit + validate + apply, against the
   same server's peak after start-up and one small warm-up plan (the baseline: the same process,
   measured in the same run). Goal: less than 64 MiB.
2. **Listing 1,000 plans.** ``airlock plan list --json`` (a real process) over a workspace of
   1,000 plans that each write a 1 KiB file, and over one whose plans each write a 256 KiB file
   (bodies inline in the submitted JSON, as an agent sends them). The figure is the peak memory
   of each listing process (``ru_maxrss`` of the child) and their ratio. Goal: the same memory
   whatever the sizes (ratio near 1).

    python bench/bench_content.py [--gib 1] [--plans 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench_service import free_port, make_token, run_cli, stop, wait_healthy

HOST = "127.0.0.1"
CHUNK = 1 << 20


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc status")


def big_body(size: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        part = block[: min(CHUNK, size - sent)]
        sent += len(part)
        yield part


def big_write(tmp: Path, size: int) -> tuple[int, int, float]:
    """(baseline peak KiB, peak KiB after the big write, seconds for upload..apply)."""
    root = tmp / "big"
    run_cli("init", "--workspace", str(root))
    (root / "projects" / "Case-A").mkdir(parents=True)
    agent = make_token(root, "agent", "agent")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "airlock", "serve", "--workspace", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://{HOST}:{port}"
    try:
        wait_healthy(base, server, time.monotonic() + 60)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {agent}"}, timeout=600
        ) as client:

            def apply(operation: dict[str, object], plan_id: str) -> None:
                plan = {"scope": "projects/Case-A", "operations": [operation]}
                answer = client.post("/api/v1/plans", params={"plan_id": plan_id}, json=plan)
                answer.raise_for_status()
                job = client.post(f"/api/v1/plans/{plan_id}/apply").json()
                while job["state"] not in ("succeeded", "failed"):
                    time.sleep(0.05)
                    job = client.get(f"/api/v1/jobs/{job['job_id']}").json()
                if job["state"] != "succeeded":
                    raise SystemExit(f"apply failed: {job}")

            apply({"op": "write", "path": "warm.txt", "text": "warm-up\n"}, "warm")
            baseline = peak_kib(server.pid)
            started = time.perf_counter()
            uploaded = client.put(
                "/api/v1/content",
                content=big_body(size),
                headers={"Content-Type": "application/octet-stream"},
            )
            uploaded.raise_for_status()
            blob = uploaded.json()
            apply({"op": "write", "path": "big.bin", **blob}, "big")
            seconds = time.perf_counter() - started
            peak = peak_kib(server.pid)
        if (root / "projects" / "Case-A" / "big.bin").stat().st_size != size:
            raise SystemExit("the big file was not written whole")
        return baseline, peak, seconds
    finally:
        stop(server)


def listing_peak(tmp: Path, name: str, plans: int, body: int) -> int:
    """Peak KiB of `airlock plan list --json` over ``plans`` plans writing ``body`` bytes each."""
    root = tmp / name
    run_cli("init", "--workspace", str(root))
    (root / "projects" / "Case-A").mkdir(parents=True)
    script = (
        "import base64, os, sys\n"
        "from airlock.workspace import Workspace\n"
        "ws = Workspace(sys.argv[1])\n"
        "text = base64.b64encode(os.urandom(int(sys.argv[3]) * 3 // 4)).decode()\n"
        "for n in range(int(sys.argv[2])):\n"
        "    ws.submit({'scope': 'projects/Case-A', 'operations': [\n"
        "        {'op': 'write', 'path': f'f{n}.txt', 'text': text + str(n)}]},\n"
        "        plan_id=f'p{n}')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(root), str(plans), str(body)], check=True, timeout=1200
    )
    done = subprocess.run(
        [sys.executable, "-c", _LIST_AND_MEASURE, "plan", "list", "--json", "-w", str(root)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    if len(json.loads(done.stdout)) != plans:
        raise SystemExit("the listing lost plans")
    return int(done.stderr.decode().strip().splitlines()[-1])


_LIST_AND_MEASURE = """
import resource, runpy, sys
sys.argv = ["airlock", *sys.argv[1:]]
try:
    runpy.run_module("airlock", run_name="__main__")
except SystemExit as done:
    if done.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""
"""`airlock ...` in this process, then its own peak memory (KiB) on the last line of stderr."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the big write")
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument(
        "--list-only", action="store_true", help="only the listing (e.g. of an older Airlock)"
    )
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="airlock-bench-content-") as scratch:
        tmp = Path(scratch)
        if not args.list_only:
            baseline, peak, seconds = big_write(tmp, size)
            rise = (peak - baseline) / 1024
            print(
                f"big write: {size / (1 << 30):.2f} GiB uploaded, validated, applied in {seconds:.1f} s"
            )
            print(
                f"  server peak memory: baseline {baseline / 1024:.1f} MiB (after start-up and a "
                f"warm-up plan), after {peak / 1024:.1f} MiB: +{rise:.1f} MiB "
                f"(goal < 64 MiB: {'met' if rise < 64 else 'NOT met'})"
            )
        small = listing_peak(tmp, "small", args.plans, 1024)
        large = listing_peak(tmp, "large", args.plans, 256 * 1024)
        ratio = large / small
        print(
            f"plan list of {args.plans} plans: 1 KiB bodies {small / 1024:.1f} MiB peak, "
            f"256 KiB bodies {large / 1024:.1f} MiB peak: ratio {ratio:.2f} "
            f"(goal: the same whatever the sizes: {'met' if ratio < 1.1 else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
