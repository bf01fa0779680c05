"""A plan that moves 10,000 objects in a GCS bucket, beside gcsfs's own ``mv`` of the same objects.

    .venv/bin/python bench/bench_gcs_moves.py [--objects 10000] [--size 4096] [--files 0]

Starts ``fake-gcs-server`` (the tests' emulator, in memory) behind the tests' proxy in counting
mode (it forwards every call and counts it by kind, and the bytes of every download; it enforces
nothing, so it costs Airlock and gcsfs the same hop). It plants ``--objects`` objects of
``--size`` bytes in 100 prefix-only folders under ``projects/Bench-Case/Inbox``, then:

1. **Airlock, at the CLI door**: ``airlock init --storage gs://...``, ``airlock plan submit`` of
   a plan that makes ``Filed`` and moves ``Inbox`` into it (submit validates), ``airlock plan
   approve``, and the timed ``airlock plan apply``: a process that starts, takes the scope lock,
   re-checks the plan against the bucket, journals and applies it (every object a server-side
   rewrite with ``ifGenerationMatch=0`` and ``ifSourceGenerationMatch``, then a delete of that
   generation), commits the audit (SQLite, fsync'd), and exits.
2. **gcsfs**: ``GCSFileSystem.mv(Filed/Inbox, Inbox, recursive=True)`` of the same objects back
   (the baseline: no preconditions, no journal, no audit, no process start).

Neither syncs anything beyond that: a GCS call is durable when it returns. Prints each one's time,
its client CPU (this process and the commands it ran; not the emulator's), API calls per moved
object and bytes downloaded, and the ratios Airlock / gcsfs (time: goal 1.5 or less; calls per
object 3 or less; bytes downloaded 0). The emulator's calls slow down as the bucket grows (see
``gcskit.Emulator``): at 10,000 objects it, not either client, sets the pace. ``--files N`` adds a second plan of N single-file
moves (a journaled step each; independent, so run at once in stretches of up to 256) beside
gcsfs moving the same list of files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' emulator kit

from gcskit import Gcs, env

SCOPE = "projects/Bench-Case"


def airlock(root: Path, endpoint: str, *args: str, token: str | None = None) -> dict[str, Any]:
    extra = {"AIRLOCK_TOKEN": token} if token else {}
    done = subprocess.run(
        [sys.executable, "-m", "airlock", *args, "--workspace", str(root), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "STORAGE_EMULATOR_HOST": endpoint, **extra},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"airlock {' '.join(args)} failed ({done.returncode}): "
                         f"{done.stdout}{done.stderr}")  # fmt: skip
    return dict(json.loads(done.stdout))


def leaf(name: str) -> str:
    return name.rsplit("/", 1)[1]


@dataclass
class Metered:
    seconds: float
    cpu: float
    """CPU seconds of the client (this process and the commands it ran): not the emulator's."""
    calls: Counter[str]
    downloaded: int

    def show(self, name: str, moved: int) -> None:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.calls.items()))
        print(f"  {name:<28} {self.seconds:8.2f} s (client CPU {self.cpu:6.2f} s)   "
              f"{sum(self.calls.values()) / moved:5.2f} calls/object ({kinds})   "
              f"{self.downloaded} bytes downloaded")  # fmt: skip


def _cpu() -> float:
    own, children = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.user + own.system + children.ru_utime + children.ru_stime


def metered(gcs: Gcs, action: Any) -> Metered:
    gcs.proxy.reset_counts()
    started, cpu = time.perf_counter(), _cpu()
    action()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    return Metered(elapsed, cpu, gcs.proxy.calls, gcs.proxy.downloaded)


def airlock_plan(root: Path, gcs: Gcs, plan: dict[str, Any], plan_id: str, agent: str,
                 moved: int) -> Metered:  # fmt: skip
    plan_file = root.parent / f"{plan_id}.json"
    plan_file.write_text(json.dumps(plan))
    submit = ("plan", "submit", str(plan_file), "--id", plan_id)
    metered(gcs, lambda: airlock(root, gcs.endpoint, *submit, token=agent)).show(
        "airlock plan submit", moved
    )
    airlock(root, gcs.endpoint, "plan", "approve", plan_id)
    result: dict[str, Any] = {}

    def apply() -> None:
        result.update(airlock(root, gcs.endpoint, "plan", "apply", plan_id))

    applied = metered(gcs, apply)
    if not result.get("success"):
        raise SystemExit(f"the apply failed: {result}")
    applied.show("airlock plan apply", moved)
    return applied


def ratios(ours: Metered, theirs: Metered, goal: str) -> None:
    print(f"  ratio airlock / gcsfs: time {ours.seconds / theirs.seconds:.2f} {goal}, "
          f"client CPU {ours.cpu / theirs.cpu:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--files", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)  # its moveTo fallback logs each object
    gcs = Gcs(enforce=False)
    try:
        url = gcs.new_bucket()
        bucket = url.removeprefix("gs://")
        payload = b"x" * args.size
        names = [f"Inbox/box{i % 100:02}/doc-{i:05}.pdf" for i in range(args.objects)]
        started = time.perf_counter()
        gcs.put(url, {f"{SCOPE}/{name}": payload for name in names})
        print(f"planted {args.objects} objects of {args.size} bytes in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="airlock-bench-gcs-") as tmp:
            root = Path(tmp) / "ws"
            airlock(root, gcs.endpoint, "init", "--storage", url)
            agent = airlock(root, gcs.endpoint, "token", "create", "--name", "agent", "--role",
                            "agent")["token"]  # fmt: skip
            print(f"\none folder move of {args.objects} objects:")
            folder_plan = {
                "scope": SCOPE,
                "author": "bench",
                "description": "file the inbox",
                "operations": [
                    {"op": "mkdir", "path": "Filed"},
                    {"op": "move", "source": "Inbox", "destination": "Filed/Inbox"},
                ],
            }
            ours = airlock_plan(root, gcs, folder_plan, "folder", agent, args.objects)
            import gcsfs

            with env(STORAGE_EMULATOR_HOST=gcs.endpoint):
                fs = gcsfs.GCSFileSystem(endpoint_url=gcs.endpoint, token="anon")  # noqa: S106
            base = f"{bucket}/{SCOPE}"
            theirs = metered(
                gcs, lambda: fs.mv(f"{base}/Filed/Inbox", f"{base}/Inbox", recursive=True)
            )
            theirs.show("gcsfs mv(recursive=True)", args.objects)
            ratios(ours, theirs, "(goal 1.5 or less)")
            if args.files:
                print(f"\n{args.files} single-file moves (a journaled step each, run at once):")
                moved = names[: args.files]
                files_plan = {
                    "scope": SCOPE,
                    "author": "bench",
                    "description": "file some documents",
                    "operations": [
                        {"op": "mkdir", "path": "Sorted"},
                        *(
                            {"op": "move", "source": name, "destination": f"Sorted/{leaf(name)}"}
                            for name in moved
                        ),
                    ],
                }
                ours = airlock_plan(root, gcs, files_plan, "files", agent, len(moved))
                sources = [f"{base}/Sorted/{leaf(name)}" for name in moved]
                back = [f"{base}/{name}" for name in moved]
                theirs = metered(gcs, lambda: fs.mv(sources, back))
                theirs.show("gcsfs mv(list of files)", len(moved))
                ratios(ours, theirs, "")
    finally:
        gcs.stop()


if __name__ == "__main__":
    main()
