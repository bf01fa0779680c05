"""Capture of big and sparse files (issue #8: H1, M7), each beside a baseline measured in the same run.

    .venv/bin/python bench/bench_capture.py [--size-mib 1024] [--sparse-gib 100]

A run's result is a plain folder here (as in copy mode), read through ``LocalSides``; no sandbox
is started, so the figures are capture's own. Prints:

* the resident memory of a fresh Airlock process (imports and an open workspace: the baseline),
  and how much its peak grows while it captures, submits and validates a random file of
  ``--size-mib`` MiB, then while it applies that plan (goal: < 64 MiB for 1 GiB);
* the time of that capture beside ``sha256sum`` and ``openssl dgst -sha256`` of the same file and
  a plain copy of it (``cp`` then ``sync``): the two things capture does are hash, and stage a
  durable copy;
* the size of the plan's record in the database (the body must not be in it);
* a sparse file of ``--sparse-gib`` GiB under the default write limit: how long capture takes to
  refuse it and how many bytes it read (goal: none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from airlock.db import PlanRow
from airlock.workspace import Workspace

SCOPE = "projects/Bench-Case"
MIB = 1 << 20

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from airlock.capture import Change, Kind, capture
    from airlock.sandbox.base import Limits
    from airlock.sandbox.changes import LocalSides
    from airlock.workspace import Workspace

    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    def bytes_read():
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])

    root, result, name, scope = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    ws = Workspace(root)
    sides = LocalSides(ws.storage, tuple(scope.split("/")), result, ws.content)
    limit = Limits().write
    out = {"limit": limit}
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM (the peak) restarts from here
    out["base_rss"] = status("VmRSS")
    start, read = time.perf_counter(), bytes_read()
    captured = capture([Change((name,), Kind.FILE)], sides, write_limit=limit)
    out["capture_s"] = time.perf_counter() - start
    out["read"] = bytes_read() - read
    out["skipped"] = captured.skipped
    if captured.operations:
        plan = {"scope": scope, "author": "bench", "operations": captured.operations}
        record = ws.validate(ws.submit(plan, staged=captured.staged).id)
        out["submit_s"] = time.perf_counter() - start - out["capture_s"]
        out["capture_peak"] = status("VmHWM") - out["base_rss"]
        out["plan_id"] = record.id
        Path("/proc/self/clear_refs").write_text("5")
        base = status("VmRSS")
        start = time.perf_counter()
        assert ws.apply(record.id).success
        out["apply_s"] = time.perf_counter() - start
        out["apply_peak"] = status("VmHWM") - base
    print(json.dumps(out))
    """
)


def child(root: Path, result: Path, name: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(result), name, SCOPE],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for n in range(0, size, MIB):
            handle.write(os.urandom(min(MIB, size - n)))
    os.sync()


def mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--sparse-gib", type=int, default=100)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="airlock-bench-capture-", dir="/var/tmp") as tmp:
        parent = Path(tmp)
        root = parent / "ws"
        (root / SCOPE).mkdir(parents=True)
        Workspace.init(root).close()
        result = parent / "result"
        result.mkdir()
        big = result / "big.bin"
        write_random(big, size)
        print(f"# {args.size_mib:,} MiB random file in {parent}, page cache warm for every reader")

        # Baselines, same file, same run: hash it (coreutils, and OpenSSL's SHA-256, which is
        # what Python's hashlib uses); copy it durably.
        hash_s = min(timed(["sha256sum", str(big)]) for _ in range(2))
        openssl = shutil.which("openssl")
        ossl_s = (
            min(timed([openssl, "dgst", "-sha256", str(big)]) for _ in range(2)) if openssl else 0
        )
        copy_s = timed(["sh", "-c", f'cp "{big}" "{parent}/copy.bin" && sync'])
        (parent / "copy.bin").unlink()
        os.sync()

        got = child(root, result, "big.bin")
        base = got["base_rss"]
        print(f"{'baseline RSS (imports + open workspace)':<44} {mib(base):>12}")
        print(
            f"{'capture + submit + validate: peak RSS grows':<44} {mib(got['capture_peak']):>12}"
            f"   ({got['capture_peak'] / size:.2%} of the file; goal < 64 MiB per GiB)"
        )
        print(
            f"{'apply of that plan: peak RSS grows':<44} {mib(got['apply_peak']):>12}"
            f"   ({got['apply_peak'] / size:.2%} of the file)"
        )
        print(
            f"{'capture (hash + staged durable copy)':<44} {got['capture_s']:>10.2f} s"
            f"   vs sha256sum {hash_s:.2f} s (x{got['capture_s'] / hash_s:.2f}),"
            f" cp+sync {copy_s:.2f} s (x{got['capture_s'] / copy_s:.2f}),"
            f" both {hash_s + copy_s:.2f} s (x{got['capture_s'] / (hash_s + copy_s):.2f})"
        )
        if ossl_s:
            both = ossl_s + copy_s
            print(
                f"{'':<44} {'':>12}   vs openssl dgst -sha256 {ossl_s:.2f} s"
                f" (x{got['capture_s'] / ossl_s:.2f}), that + cp+sync {both:.2f} s"
                f" (x{got['capture_s'] / both:.2f})"
            )
        print(f"{'submit + validate (body not read)':<44} {got['submit_s']:>10.2f} s")
        print(
            f"{'apply (stream from store, verify, sync)':<44} {got['apply_s']:>10.2f} s"
            f"   vs cp+sync x{got['apply_s'] / copy_s:.2f}"
        )
        with Workspace(root) as ws, ws.read_session() as session:
            body = session.scalars(select(PlanRow.body).where(PlanRow.id == got["plan_id"])).one()
        db = sum(p.stat().st_size for p in (root / ".airlock").glob("airlock.db*"))
        print(f"{'plan record in the database':<44} {len(body):>8,} B   (database files {mib(db)})")

        sparse = result / "sparse.bin"
        with sparse.open("wb") as handle:
            handle.truncate(args.sparse_gib << 30)
        got = child(root, result, "sparse.bin")
        refused = bool(got["skipped"]) and "write limit" in got["skipped"][0]["reason"]
        label = f"{args.sparse_gib} GiB sparse file, write limit {mib(got['limit'])}"
        print(
            f"{label:<44} "
            f"{'refused' if refused else 'NOT REFUSED'} in {got['capture_s'] * 1000:.1f} ms,"
            f" {got['read']:,} bytes read"
        )


if __name__ == "__main__":
    main()
