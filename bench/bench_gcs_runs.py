"""Sandboxed runs over a case in a GCS bucket, beside the same runs over the same case on local disk.

    .venv/bin/python bench/bench_gcs_runs.py [--files 200] [--size 262144] [--repeat 3]

Starts ``fake-gcs-server`` (the tests' emulator, in memory) behind the tests' proxy in counting
mode (it counts calls and downloaded bytes, enforces nothing). It plants ``--files`` files of
``--size`` bytes in ``projects/Bench-Case/scans`` both in a bucket and in a local workspace, and
times, at the CLI door (``airlock run``: a process that starts, mounts the view, runs bubblewrap
over a fuse-overlayfs of it, captures, records the ``ran`` audit event, and exits):

1. ``true`` (the fixed cost of a run): local, then over the bucket (the view's helper process
   starting, reaching the bucket and mounting, then unmounting);
2. ``cat scans/* > /dev/null`` (reads every byte): over the bucket with an empty cache (every
   object downloaded once), then again (nothing downloaded: the cache), and locally;
3. the baseline for the cold read: gcsfs ``cat`` of the same objects into memory in one process
   (no sandbox, no process start, concurrent requests): the price of the bytes themselves.

Nothing syncs. Prints each one's median time over ``--repeat`` runs (the cold read is run once
per fresh cache), the bytes downloaded and API calls, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' emulator kit

from gcskit import Gcs, env

SCOPE = "projects/Bench-Case"


def run(root: Path, endpoint: str, command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airlock", "run", "--workspace", str(root), "--scope", SCOPE,
         "--", "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "STORAGE_EMULATOR_HOST": endpoint},
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"airlock run {command!r} failed: {done.stdout}{done.stderr}")


def timed(gcs: Gcs, action: Callable[[], None], repeat: int) -> tuple[float, int, int]:
    """Median seconds, and the downloaded bytes and API calls of the last run."""
    times = []
    for _ in range(repeat):
        gcs.proxy.reset_counts()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), gcs.proxy.downloaded, sum(gcs.proxy.calls.values())


def show(name: str, figures: tuple[float, int, int]) -> None:
    seconds, downloaded, calls = figures
    print(
        f"  {name:<44} {seconds:7.3f} s   {downloaded / 1e6:8.2f} MB downloaded   {calls:5d} calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=256 * 1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from airlock.workspace import Workspace

    gcs = Gcs(enforce=False)
    work = Path(tempfile.mkdtemp(prefix="bench-gcs-runs-"))
    try:
        with env(STORAGE_EMULATOR_HOST=gcs.endpoint):
            url = gcs.new_bucket()
            bucket_ws, local_ws = work / "bucket-ws", work / "local-ws"
            Workspace.init(bucket_ws, storage=url).close()
            Workspace.init(local_ws).close()
            files = {
                f"{SCOPE}/scans/scan_{i:05d}.pdf": os.urandom(args.size) for i in range(args.files)
            }
            gcs.put(url, files)
            for name, data in files.items():
                path = local_ws / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            total = args.files * args.size
            print(f"{args.files} files of {args.size} bytes ({total / 1e6:.1f} MB), "
                  f"median of {args.repeat} runs at the CLI door (airlock run)")  # fmt: skip
            cache = bucket_ws / ".airlock" / "cache" / "runs"

            print("fixed cost of a run (true):")
            local_true = timed(gcs, lambda: run(local_ws, gcs.endpoint, "true"), args.repeat)
            show("local disk", local_true)
            bucket_true = timed(gcs, lambda: run(bucket_ws, gcs.endpoint, "true"), args.repeat)
            show("bucket", bucket_true)

            print("reading every byte (cat scans/* > /dev/null):")
            read = "cat scans/* > /dev/null"

            def cold() -> None:
                shutil.rmtree(cache, ignore_errors=True)
                run(bucket_ws, gcs.endpoint, read)

            bucket_cold = timed(gcs, cold, args.repeat)
            show("bucket, empty cache", bucket_cold)
            bucket_warm = timed(gcs, lambda: run(bucket_ws, gcs.endpoint, read), args.repeat)
            show("bucket, cached (unchanged objects)", bucket_warm)
            local_read = timed(gcs, lambda: run(local_ws, gcs.endpoint, read), args.repeat)
            show("local disk", local_read)

            os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
            import gcsfs

            fs = gcsfs.GCSFileSystem(endpoint_url=gcs.endpoint, token="anon")  # noqa: S106
            names = [f"{url.removeprefix('gs://')}/{name}" for name in files]
            gcsfs_cat = timed(gcs, lambda: fs.cat(names) and None, args.repeat)
            show("gcsfs cat of the same objects (baseline)", gcsfs_cat)

            print("ratios:")
            print(
                f"  fixed cost, bucket / local disk:            {bucket_true[0] / local_true[0]:.2f}"
            )
            print(
                f"  cold read, bucket run / gcsfs cat:          {bucket_cold[0] / gcsfs_cat[0]:.2f}"
            )
            print(
                f"  cached read, bucket / local disk:           {bucket_warm[0] / local_read[0]:.2f}"
            )
            print(
                f"  bytes downloaded, cold / cached:            {bucket_cold[1]} / {bucket_warm[1]}"
            )
    finally:
        gcs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
