"""Sandboxed runs over a workspace whose files are in a GCS bucket (the emulator, see gcskit).

The real path end to end: ``runs.run`` mounts the FUSE view of the scope (a helper process,
:mod:`airlock.sandbox.remote_view`), bubblewrap runs real code over an overlay of it, the capture
turns what the code did into a plan, and the plan applies in the bucket. The proxy in front of
the emulator counts what is downloaded: only what the code opens, and an unchanged object never
twice.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock import runs
from airlock.drafts import Draft
from airlock.permissions import Role
from airlock.sandbox import remote_view
from airlock.sandbox.base import Limits
from airlock.workspace import Workspace
from gcskit import Gcs, env
from support import person

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(
        shutil.which("fusermount3") is None or not os.access("/dev/fuse", os.W_OK),
        reason="FUSE is not usable here (apt-get install fuse3; /dev/fuse)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the view for other ids needs root"),
]

CASE = "projects/Doe-v-Mercy"
LIMITS = Limits(timeout=60, memory=1 << 30, processes=128, output=1 << 20, write=64 << 20)

SORT = r"""
import os
for name in sorted(os.listdir("scans")):
    provider = name.split("_", 2)[2].removesuffix(".pdf")
    os.makedirs(os.path.join("Medical Records", provider), exist_ok=True)
    os.rename(os.path.join("scans", name), os.path.join("Medical Records", provider, name))
with open("notes.txt", "a") as notes:
    notes.write("sorted the scans\n")
os.remove("old-draft.txt")
print(open("/workspace/Tools/README").read().strip())
print(sorted(os.listdir("/workspace/projects")))
"""


@pytest.fixture
def emulated(gcs: Gcs) -> Iterator[Gcs]:
    with env(STORAGE_EMULATOR_HOST=gcs.endpoint):
        yield gcs


@pytest.fixture
def bucket(emulated: Gcs, tmp_path: Path) -> Iterator[tuple[str, Workspace]]:
    url = emulated.new_bucket()
    Workspace.init(tmp_path / "ws", storage=url).close()
    with Workspace(tmp_path / "ws") as ws:
        yield url, ws
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        left = [line for line in table if f" airlock-view:{url} " in line]
    assert left == [], "a run left its view of the bucket mounted"


def test_a_run_over_a_bucket_sorts_a_case_and_its_plan_applies_in_the_bucket(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    scans = {
        f"{CASE}/scans/scan_0001_mercy.pdf": b"%PDF mercy 1",
        f"{CASE}/scans/scan_0002_lee.pdf": b"%PDF lee 2",
        f"{CASE}/scans/scan_0003_mercy.pdf": b"%PDF mercy 3",
    }
    notes, draft, tools = b"case notes\n", b"draft\n", b"the firm's tools"
    untouched = os.urandom(1 << 20)
    emulated.put(
        url,
        {
            **scans,
            f"{CASE}/notes.txt": notes,
            f"{CASE}/old-draft.txt": draft,
            f"{CASE}/exhibits/untouched.bin": untouched,
            "projects/Other-Client/privileged.txt": b"not for this run",
            "Tools/README": tools,
        },
    )
    emulated.proxy.reset_counts()

    result = runs.run(ws, CASE, ["python3", "-c", SORT], limits=LIMITS)

    assert result.outcome.exit_code == 0, result.outcome.stderr
    lines = result.outcome.stdout.decode().splitlines()
    assert lines == ["the firm's tools", "['Doe-v-Mercy']"], "Tools readable, no other case shown"
    assert result.capture == "overlay"
    touched = sum(map(len, scans.values())) + len(notes) + len(draft) + len(tools)
    assert emulated.proxy.downloaded == touched + len(notes) + len(draft), (
        "downloaded: once, each file the code opened, moved (the overlay copies it up) or "
        "deleted (capture matches its bytes against the new files); then what validation "
        "reads for the SHA-256 of what the plan overwrites or deletes. Nothing else: not the "
        "exhibit the code never opened, not the other client's file."
    )
    assert result.plan is not None and result.plan.status == "validated"
    ops = {
        (op.op, getattr(op, "source", getattr(op, "path", None)), getattr(op, "destination", None))
        for op in result.plan.plan.operations
    }
    assert ("move", "scans/scan_0002_lee.pdf", "Medical Records/lee/scan_0002_lee.pdf") in ops
    assert ("delete", "old-draft.txt", None) in ops

    ws.approve(result.plan.id, by=person("partner", Role.APPROVER))
    emulated.proxy.reset_counts()
    ws.apply(result.plan.id)

    assert emulated.proxy.downloaded <= len(draft) + len(notes), (
        "apply moves server-side: it reads only what it keeps aside (the delete, the overwrite)"
    )
    names = set(emulated.objects(url))
    assert f"{CASE}/Medical Records/mercy/scan_0001_mercy.pdf" in names
    assert f"{CASE}/Medical Records/lee/scan_0002_lee.pdf" in names
    assert f"{CASE}/scans/scan_0001_mercy.pdf" not in names
    assert f"{CASE}/old-draft.txt" not in names
    assert "projects/Other-Client/privileged.txt" in names


@pytest.mark.skipif(shutil.which("runsc") is None, reason="gVisor is not installed")
def test_a_gvisor_run_over_a_bucket_sees_the_scope_and_its_changes_become_a_plan(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    emulated.put(
        url,
        {
            f"{CASE}/scans/scan_0001_mercy.pdf": b"%PDF mercy 1",
            f"{CASE}/notes.txt": b"case notes\n",
            f"{CASE}/old-draft.txt": b"draft\n",
            "projects/Other-Client/privileged.txt": b"not for this run",
            "Tools/README": b"the firm's tools",
        },
    )
    result = runs.run(ws, CASE, ["python3", "-c", SORT], sandbox="gvisor", limits=LIMITS)
    assert result.outcome.exit_code == 0, result.outcome.stderr
    lines = result.outcome.stdout.decode().splitlines()
    assert lines == ["the firm's tools", "['Doe-v-Mercy']"], "Tools readable, no other case shown"
    assert result.plan is not None and result.plan.status == "validated"
    ops = {
        (op.op, getattr(op, "source", getattr(op, "path", None)), getattr(op, "destination", None))
        for op in result.plan.plan.operations
    }
    assert ("move", "scans/scan_0001_mercy.pdf", "Medical Records/mercy/scan_0001_mercy.pdf") in ops
    assert ("delete", "old-draft.txt", None) in ops


def test_a_run_downloads_only_what_it_opens_and_never_an_unchanged_object_twice(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    big = os.urandom(3 << 20)
    emulated.put(
        url,
        {
            f"{CASE}/exhibit.bin": big,
            f"{CASE}/index.txt": b"index v1\n",
            f"{CASE}/never-opened.bin": os.urandom(2 << 20),
        },
    )
    read = ["sh", "-c", "cat exhibit.bin index.txt | sha256sum; test -f never-opened.bin"]

    def downloaded_by_a_run() -> tuple[int, str]:
        emulated.proxy.reset_counts()
        result = runs.run(ws, CASE, read, limits=LIMITS)
        assert result.outcome.exit_code == 0, result.outcome.stderr
        assert result.plan is None, "reading changes nothing"
        return emulated.proxy.downloaded, result.outcome.stdout.decode().split()[0]

    first = downloaded_by_a_run()
    assert first[0] == len(big) + len(b"index v1\n"), "the first run downloads what it opens"
    again = downloaded_by_a_run()
    assert again == (0, first[1]), "unchanged objects come from the cache: nothing downloaded"

    emulated.put(url, {f"{CASE}/index.txt": b"index v2, longer\n"})  # a new generation
    changed = downloaded_by_a_run()
    assert changed[0] == len(b"index v2, longer\n"), "only the changed object is downloaded"
    assert changed[1] != first[1], "the run sees the new bytes"

    cached = list((ws.state_dir / "cache" / "runs").glob("??/*"))
    assert len(cached) == 3  # exhibit, and both generations of the index


def test_the_cache_keeps_to_the_size_the_policy_sets(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    policy = ws.state_dir / "policy.toml"
    policy.write_text(
        policy.read_text().replace("cache_bytes = 10737418240", "cache_bytes = 1500000")
    )
    with Workspace(ws.root) as small:
        emulated.put(
            url, {f"{CASE}/a.bin": os.urandom(1 << 20), f"{CASE}/b.bin": os.urandom(1 << 20)}
        )
        for name in ("a.bin", "b.bin"):
            assert runs.run(small, CASE, ["cat", name], limits=LIMITS).outcome.exit_code == 0
        cached = list((ws.state_dir / "cache" / "runs").glob("??/*"))
        assert [path.stat().st_size for path in cached] == [1 << 20], "the older body went"


def test_a_failed_run_leaves_nothing_mounted_and_no_helper(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    emulated.put(url, {f"{CASE}/notes.txt": b"notes"})
    result = runs.run(ws, CASE, ["sh", "-c", "echo half > half.txt; exit 3"], limits=LIMITS)
    assert result.outcome.exit_code == 3
    stopped = runs.run(ws, CASE, ["sleep", "30"], limits=Limits(timeout=2))
    assert stopped.outcome.timed_out
    for run in (result, stopped):
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmdline = Path("/proc", pid, "cmdline").read_bytes()
                except OSError:
                    continue
                assert run.run_id.encode() not in cmdline, f"process {pid} outlived {run.run_id}"


def test_a_run_sees_no_host_path_of_the_view_in_its_mount_table(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    url, ws = bucket
    emulated.put(url, {f"{CASE}/notes.txt": b"notes"})
    probe = r"""
import json
table = open("/proc/self/mountinfo").read()
print(json.dumps({"airlock-view": "airlock-view" in table, "lines": table}))
"""
    result = runs.run(ws, CASE, ["python3", "-c", probe], limits=LIMITS)
    assert result.outcome.exit_code == 0, result.outcome.stderr
    seen = json.loads(result.outcome.stdout)
    for host in (str(runs.scratch_root()), str(ws.state_dir)):
        assert host not in seen["lines"], f"{host} shows in the run's mount table"
    assert emulated.objects(url)[f"{CASE}/notes.txt"][0], "the object is untouched"


def test_an_agent_draft_runs_over_the_bucket_with_its_pending_changes(
    emulated: Gcs, bucket: tuple[str, Workspace]
) -> None:
    """The deepagents door's path: a draft with a pending write, then code that reads it."""
    url, ws = bucket
    emulated.put(url, {f"{CASE}/notes.txt": b"notes v1\n"})
    draft = Draft(ws, CASE, by=person("agent", Role.AGENT))
    draft.write((*CASE.split("/"), "memo.txt"), b"pending memo\n")
    result = draft.execute(["sh", "-c", "cat memo.txt notes.txt > both.txt"], limits=LIMITS)
    assert result.outcome.exit_code == 0, result.outcome.stderr
    ops = [op.model_dump() for op in draft.simulate().operations]
    assert [op["path"] for op in ops] == ["memo.txt", "both.txt"]
    both = hashlib.sha256(b"pending memo\nnotes v1\n").hexdigest()
    assert ops[1]["sha256"] == both, "the code saw the pending write beside the bucket's file"


def test_the_view_shows_only_its_areas_read_only_and_never_a_newer_object_as_the_old(
    emulated: Gcs, bucket: tuple[str, Workspace], tmp_path: Path
) -> None:
    """The view itself, mounted as a run mounts it and used from the host (as root)."""
    url, ws = bucket
    emulated.put(
        url,
        {
            f"{CASE}/a.txt": b"first",
            f"{CASE}/sub/b.txt": b"inside",
            "projects/Other-Client/privileged.txt": b"not shown",
            "Reports/summary.txt": b"not shown",
        },
    )
    at = tmp_path / "view"
    at.mkdir()
    areas = [tuple(CASE.split("/"))]
    with remote_view.mounted(ws.location, areas, at, tmp_path / "cache", (4321, 4321)):
        assert sorted(os.listdir(at)) == ["projects"]
        assert sorted(os.listdir(at / "projects")) == ["Doe-v-Mercy"]
        case = at / CASE
        assert sorted(os.listdir(case)) == ["a.txt", "sub"]
        assert (case / "sub" / "b.txt").read_bytes() == b"inside"
        assert (case / "a.txt").stat().st_uid == 4321, "files show as the workspace owner's"
        for attempt in (
            lambda: (case / "a.txt").open("ab"),
            lambda: (case / "new.txt").write_bytes(b"x"),
            lambda: (case / "a.txt").unlink(),
            lambda: os.mkdir(case / "new"),
        ):
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EROFS
        assert not (at / "projects" / "Other-Client").exists()
        # Replaced in the bucket after the view listed it: the old generation is gone, and the
        # view answers ESTALE rather than show the new bytes under the old size and key.
        emulated.put(url, {f"{CASE}/a.txt": b"second, longer"})
        with pytest.raises(OSError) as stale:
            (case / "a.txt").read_bytes()
        assert stale.value.errno == errno.ESTALE
    assert not os.path.ismount(at)
    assert list((tmp_path / "cache").glob("??/*")) != [], "what was read is cached"


def test_a_body_opened_while_another_run_trims_the_cache_is_read_whole(
    emulated: Gcs, bucket: tuple[str, Workspace], tmp_path: Path
) -> None:
    """Another run's trim (to 0 bytes, in a racing thread) removes bodies while this view opens
    them: every open still reads the object's bytes, never a missing file taken for ESTALE."""
    url, ws = bucket
    bodies = {f"{CASE}/{n}.txt": f"body {n}\n".encode() * 100 for n in range(5)}
    emulated.put(url, bodies)
    cache = remote_view.Cache(tmp_path / "cache")
    entries = []
    for key in bodies:
        entry = ws.storage.stat(tuple(key.split("/")))
        assert entry is not None
        entries.append((tuple(key.split("/")), entry))
    stop = threading.Event()

    def trim_forever() -> None:
        while not stop.is_set():
            cache.trim(0)

    trimmer = threading.Thread(target=trim_forever)
    trimmer.start()
    try:
        for _ in range(20):
            for (path, entry), expected in zip(entries, bodies.values(), strict=True):
                fd = cache.open(ws.storage, path, entry)
                try:
                    assert os.pread(fd, 1 << 20, 0) == expected
                finally:
                    os.close(fd)
    finally:
        stop.set()
        trimmer.join()


def test_a_trim_removes_a_killed_helpers_unfinished_download_and_spares_a_running_one(
    tmp_path: Path,
) -> None:
    cache = remote_view.Cache(tmp_path / "cache")
    (tmp_path / "cache" / "ab").mkdir(parents=True)
    running = tmp_path / "cache" / "ab" / f"{remote_view.PARTIAL}running"
    abandoned = tmp_path / "cache" / "ab" / f"{remote_view.PARTIAL}abandoned"
    for partial in (running, abandoned):
        partial.write_bytes(b"half")
    hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (hours_ago, hours_ago))
    cache.trim(1 << 30)
    assert running.exists() and not abandoned.exists()


def test_the_view_unmounts_itself_when_airlock_is_killed(
    emulated: Gcs, bucket: tuple[str, Workspace], tmp_path: Path
) -> None:
    """kill -9 of the process that mounted the view (Airlock) while it is mounted: the helper
    sees its standard input close, unmounts, and exits."""
    url, ws = bucket
    emulated.put(url, {f"{CASE}/a.txt": b"a"})
    at = tmp_path / "view"
    at.mkdir()
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from airlock.sandbox import remote_view\n"
        f"with remote_view.mounted({ws.location!r}, [{tuple(CASE.split('/'))!r}], Path({str(at)!r}),"
        f" Path({str(tmp_path / 'cache')!r}), (0, 0)):\n"
        "    print('mounted', flush=True)\n"
        "    time.sleep(120)\n"
    )
    airlock = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE)
    assert airlock.stdout is not None
    assert airlock.stdout.readline() == b"mounted\n"
    assert os.path.ismount(at)
    airlock.kill()
    airlock.wait()
    airlock.stdout.close()
    deadline = time.monotonic() + 15
    while os.path.ismount(at) or _helpers_of(at):
        assert time.monotonic() < deadline, "the view outlived the process that mounted it"
        time.sleep(0.1)


def _helpers_of(at: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if pid.isdigit() and str(at).encode() in Path("/proc", pid, "cmdline").read_bytes():
                found.append(pid)
    return found
