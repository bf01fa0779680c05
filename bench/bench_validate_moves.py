"""Validation of a plan of moves: its time, and the bytes it reads from storage (goal: 0).

    .venv/bin/python bench/bench_validate_moves.py [--ops 10000] [--size 65536] [--repeat 3]

Builds ``--ops`` files of ``--size`` bytes in a scope on the local disk, then times
``airlock.validate.validate`` of one plan that moves each of them into one of 100 folders the
plan creates, on :class:`~airlock.storage.local.LocalStorage` (page cache warm). Prints the best
and median time of ``--repeat`` runs and the bytes the storage's ``read`` returned in the last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from airlock.paths import RelPath
from airlock.plan import parse_plan
from airlock.policy import Policy
from airlock.storage.local import LocalStorage
from airlock.validate import validate

SCOPE = "projects/Bench-Case"


class CountingStorage(LocalStorage):
    """LocalStorage that counts the bytes its ``read`` hands out."""

    bytes_read = 0

    def read(self, path: RelPath) -> Iterator[bytes]:
        for chunk in super().read(path):
            self.bytes_read += len(chunk)
            yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airlock-bench-validate-") as tmp:
        root = Path(tmp)
        folder = root / SCOPE / "in"
        folder.mkdir(parents=True)
        payload = b"x" * args.size
        for i in range(args.ops):
            (folder / f"doc-{i:05d}.pdf").write_bytes(payload)
        plan = parse_plan(
            {
                "scope": SCOPE,
                "author": "bench",
                "operations": [
                    {"op": "mkdir", "path": "out"},
                    *({"op": "mkdir", "path": f"out/{n:02d}"} for n in range(100)),
                    *(
                        {
                            "op": "move",
                            "source": f"in/doc-{i:05d}.pdf",
                            "destination": f"out/{i % 100:02d}/doc-{i:05d}.pdf",
                        }
                        for i in range(args.ops)
                    ),
                ],
            }
        )
        times = []
        storage = CountingStorage(root)
        for _ in range(args.repeat):
            storage.bytes_read = 0
            start = time.perf_counter()
            report = validate(plan, storage, Policy())
            times.append(time.perf_counter() - start)
            assert report.valid, report.errors[:3]
        storage.close()
    print(
        f"validate {args.ops:,} moves of {args.size:,}-byte files (LocalStorage): "
        f"best {min(times):.3f} s, median {statistics.median(times):.3f} s; "
        f"bytes read {storage.bytes_read:,}"
    )


if __name__ == "__main__":
    main()
