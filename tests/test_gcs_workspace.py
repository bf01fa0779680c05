"""A workspace whose files are in a GCS bucket: the real engine on the emulator (see gcskit).

Plans apply and roll back exactly; the audit log records each object's generation and the
checksums GCS holds; another writer's change between validation and apply, or between two steps
of an apply, is refused as stale and loses nothing; and a kill -9 at a random instant of an
apply, and of a rollback, of a 2,000-object plan (folder moves included) is recovered to the
exact state before it. The bucket's state is read from the emulator's own listings (names, md5 of the bytes,
the metadata a reader sees), never through the backend under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import StalePlanError
from airlock.storage.gcs import FROM_KEY, INO_KEY, MTIME_KEY, SYMLINK_KEY, GcsStorage
from airlock.workspace import Workspace
from crashkit import (
    APPROVER,
    OPERATIONS,
    PLAN,
    PLAN_ID,
    PRE_FILES,
    PRE_FOLDERS,
    PRE_LINKS,
    SCOPE,
    Snapshot,
    events_of,
    expected_after,
    prepare,
)
from gcskit import Gcs, GcsPlanter, env

KEPT_BY_AIRLOCK = (INO_KEY, MTIME_KEY, FROM_KEY)
"""Metadata Airlock adds to what it moves (identity, time, where a folder came from): not what
a reader of the bucket sees as the file."""

Tree = dict[str, tuple[str, str]]
"""path -> ("file", md5 [metadata]) | ("dir", "") | ("symlink", target)."""


@pytest.fixture
def emulated(gcs: Gcs) -> Iterator[Gcs]:
    with env(STORAGE_EMULATOR_HOST=gcs.endpoint):
        yield gcs


def bucket_tree(gcs: Gcs, url: str) -> Tree:
    """The tree a reader of the bucket sees, outside ``.airlock/``: folders (from placeholders
    and from prefixes alike), files (the md5 of their bytes and the metadata a reader sees) and
    symlinks (their target)."""
    tree: Tree = {}
    for key, (md5, metadata) in gcs.objects(url).items():
        parts = key.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            tree["/".join(parts[:depth])] = ("dir", "")
        seen = {k: v for k, v in json.loads(metadata).items() if k not in KEPT_BY_AIRLOCK}
        if key.endswith("/"):
            tree[key.rstrip("/")] = ("dir", "")
        elif SYMLINK_KEY in seen:
            tree[key] = ("symlink", seen[SYMLINK_KEY])
        else:
            tree[key] = ("file", md5 + (" " + json.dumps(seen, sort_keys=True) if seen else ""))
    return tree


def trash(gcs: Gcs, url: str) -> list[str]:
    """The objects kept aside in the bucket's ``.airlock/trash/`` (its placeholder left out)."""
    return [
        k
        for k in gcs.objects(url, everything=True)
        if k.startswith(".airlock/trash/") and k != ".airlock/trash/"
    ]


def md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - GCS's checksum


def model_tree(snapshot: Snapshot) -> Tree:
    tree: Tree = {folder: ("dir", "") for folder in snapshot.folders}
    tree.update({path: ("file", md5(data)) for path, data in snapshot.files.items()})
    tree.update({path: ("symlink", target) for path, target in snapshot.symlinks.items()})
    for path in list(tree):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            tree["/".join(parts[:depth])] = ("dir", "")
    return tree


def plant(
    gcs: Gcs,
    url: str,
    files: Mapping[str, bytes | str],
    folders: list[str] = [],  # noqa: B006 - never changed
    links: Mapping[str, str] | None = None,
) -> None:
    """Objects as gcsfuse or the console would leave them: files, folder placeholders, links."""
    gcs.put(url, {k: v.encode() if isinstance(v, str) else v for k, v in files.items()})
    gcs.put(url, {folder.rstrip("/") + "/": b"" for folder in folders})
    storage = GcsStorage(url, client=gcs.client())
    for path, target in (links or {}).items():
        GcsPlanter(storage).symlink(tuple(path.split("/")), target)
    storage.close()


def pre_snapshot() -> Snapshot:
    """The small tree as a snapshot of a disk would show it (every parent a folder)."""
    files = {k: v.encode() if isinstance(v, str) else v for k, v in PRE_FILES.items()}
    folders = {*PRE_FOLDERS}
    for path in [*files, *PRE_LINKS, *PRE_FOLDERS]:
        parts = path.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return Snapshot(files, frozenset(folders), dict(PRE_LINKS))


# --- a plan of every kind of operation ---------------------------------------------------------


def test_a_plan_applies_and_rolls_back_exactly_in_a_bucket(emulated: Gcs, tmp_path: Path) -> None:
    url = emulated.new_bucket("firm/files")
    ws = Workspace.init(tmp_path / "ws", storage=url)
    areas = bucket_tree(emulated, url)  # the policy's areas, made by init
    plant(emulated, url, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
    before = bucket_tree(emulated, url)
    listed = emulated.objects(url)
    assert before == areas | model_tree(pre_snapshot())
    prepare(ws, PLAN_ID, PLAN)

    emulated.proxy.reset_counts()
    result = ws.apply(PLAN_ID, by=APPROVER)
    assert result.success, result.error
    assert bucket_tree(emulated, url) == areas | model_tree(
        expected_after(pre_snapshot(), SCOPE, OPERATIONS)
    )
    # Every byte the apply downloaded is one it had to hash: what it overwrote or deleted
    # (validation's SHA-256 of content kept aside); moves and copies download nothing.
    hashed = [SCOPE + "/" + p for p in ("notes.txt", "draft.tmp", "old/x.txt", "old/deeper/y.txt")]
    assert emulated.proxy.downloaded <= sum(len(PRE_FILES[p]) for p in hashed) + len(
        PRE_FILES[SCOPE + "/summary.txt"]
    )

    (applied,) = events_of(ws, PLAN_ID, "applied")
    versions = applied["payload"]["versions"]
    notes = SCOPE + "/notes.txt"
    assert versions[notes]["md5"] == listed[notes][0]
    assert isinstance(versions[notes]["version"], int) and versions[notes]["version"] > 0
    assert versions[notes]["crc32c"]

    kept = trash(emulated, url)
    assert kept, "what the plan replaced and deleted is kept aside in the bucket"

    back = ws.rollback(PLAN_ID, by=APPROVER)
    assert back.success, back.error
    assert bucket_tree(emulated, url) == before
    assert ws.audit_verify().ok

    purged = ws.gc(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    assert purged
    assert trash(emulated, url) == []
    assert bucket_tree(emulated, url) == before
    ws.close()


def test_airlock_init_storage_opens_a_bucket_from_the_cli(emulated: Gcs, tmp_path: Path) -> None:
    url = emulated.new_bucket("cases")
    root = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, "-m", "airlock", "init", "--storage", url, "--workspace", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (root / ".airlock" / "storage").read_text().strip() == url
    assert {"projects/"} <= set(emulated.objects(url, everything=True))
    with Workspace(root) as ws:
        assert ws.location == url
    again = subprocess.run(
        [sys.executable, "-m", "airlock", "init", "--storage", "gs://elsewhere", "--workspace",
         str(root)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert again.returncode != 0
    assert url in again.stderr, "the refusal names the bucket the workspace already uses"


# --- another writer -----------------------------------------------------------------------------

RACE_SCOPE = "projects/Case-R"
RACE_PLAN: dict[str, Any] = {
    "scope": RACE_SCOPE,
    "author": "agent",
    "operations": [
        {"op": "move", "source": "inbox/a.pdf", "destination": "filed/a.pdf", "parents": True},
        {"op": "write", "path": "notes.txt", "text": "notes v2", "overwrite": True},
        {"op": "move", "source": "scans", "destination": "filed/scans"},
    ],
}
RACE_FILES = {
    RACE_SCOPE + "/inbox/a.pdf": b"%PDF a",
    RACE_SCOPE + "/notes.txt": b"notes v1",
    **{f"{RACE_SCOPE}/scans/s{i}.pdf": f"scan {i}".encode() for i in range(20)},
}


def other_writer(gcs: Gcs, url: str, key: str, data: bytes) -> None:
    """Someone else (a gcsfuse user, the console) writes ``key``: no precondition."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    client = gcs.client()
    client.bucket(bucket).blob(f"{prefix}/{key}" if prefix else key).upload_from_string(data)


def test_another_writer_between_validation_and_apply_is_refused_as_stale(
    emulated: Gcs, tmp_path: Path
) -> None:
    url = emulated.new_bucket()
    ws = Workspace.init(tmp_path / "ws", storage=url)
    plant(emulated, url, RACE_FILES)
    prepare(ws, "race", RACE_PLAN)
    # Same size, same second: only the generation (and the checksums) tell the change apart.
    other_writer(emulated, url, RACE_SCOPE + "/scans/s7.pdf", b"scan X")
    after_writer = bucket_tree(emulated, url)
    with pytest.raises(StalePlanError) as refused:
        ws.apply("race", by=APPROVER)
    assert refused.value.details == [RACE_SCOPE + "/scans/s7.pdf: modified since validation"]
    assert bucket_tree(emulated, url) == after_writer
    assert ws.get("race").status == "approved"
    ws.close()


def test_another_writer_during_the_apply_is_refused_and_loses_nothing(
    emulated: Gcs, tmp_path: Path
) -> None:
    """The write lands after the stale check, before the step that acts on the object: the
    step's generation precondition refuses it (the proxy answers 412 as GCS does; the emulator
    alone would not), the apply is undone, and the other writer's bytes are there."""
    url = emulated.new_bucket()
    ws = Workspace.init(tmp_path / "ws", storage=url)
    plant(emulated, url, RACE_FILES)
    before = bucket_tree(emulated, url)
    prepare(ws, "race", RACE_PLAN)
    enforced = emulated.proxy.enforced

    def hook(index: int) -> None:
        if index == 1:  # the first move has run; the overwrite of notes.txt has not
            other_writer(emulated, url, RACE_SCOPE + "/notes.txt", b"theirs")

    result = ws.apply("race", by=APPROVER, hook=hook)
    assert not result.success
    assert isinstance(result.failure, StalePlanError), result.error
    assert emulated.proxy.enforced > enforced, "refused by a generation precondition"
    expected = dict(before)
    expected[RACE_SCOPE + "/notes.txt"] = ("file", md5(b"theirs"))
    assert bucket_tree(emulated, url) == expected
    assert result.differs == [RACE_SCOPE + "/notes.txt: modified since validation"]
    assert ws.get("race").status == "failed"
    ws.close()


@pytest.mark.parametrize("beside", [0, 1], ids=["alone", "beside-another-move"])
def test_a_move_whose_source_gcs_will_not_delete_is_undone_and_leaves_no_copy(
    emulated: Gcs, tmp_path: Path, beside: int
) -> None:
    """The file is copied to its destination, then GCS refuses to delete the source (403: an
    object under a hold; the proxy answers it, the emulator has no holds). The undo must see
    the copy it made, though this apply had looked there and found nothing, and remove it;
    alone, and with another move that runs at once with it (``Storage.rename_many``)."""
    url = emulated.new_bucket()
    ws = Workspace.init(tmp_path / "ws", storage=url)
    plant(emulated, url, RACE_FILES)
    before = bucket_tree(emulated, url)
    other = {"op": "move", "source": "scans/s1.pdf", "destination": "filed/s1.pdf"}
    operations = [RACE_PLAN["operations"][0], *[other] * beside]
    plan = {"scope": RACE_SCOPE, "author": "agent", "operations": operations}
    prepare(ws, "held", plan)
    emulated.proxy.fault("delete", url, RACE_SCOPE + "/inbox/a.pdf", "403")
    result = ws.apply("held", by=APPROVER)
    assert not result.success
    assert "keeps it from change" in (result.error or ""), result.error
    assert result.failure is not None and "hold" in result.failure.hint, result.failure
    assert bucket_tree(emulated, url) == before
    assert ws.get("held").status == "failed"
    assert ws.unfinished() == [], "nothing left for recovery"
    ws.close()


def test_a_new_file_whose_upload_answer_is_lost_is_written_once(
    emulated: Gcs, tmp_path: Path
) -> None:
    """GCS makes the object but the answer never arrives; the client library sends the upload
    again, and GCS refuses it (412: the name is taken, by that same upload). That is this
    write having succeeded, not someone else's file in the way."""
    url = emulated.new_bucket()
    ws = Workspace.init(tmp_path / "ws", storage=url)
    plant(emulated, url, RACE_FILES)
    plan = {
        "scope": RACE_SCOPE,
        "author": "agent",
        "operations": [{"op": "write", "path": "summary.txt", "text": "the summary"}],
    }
    prepare(ws, "lost", plan)
    emulated.proxy.fault("upload", url, RACE_SCOPE + "/summary.txt", "drop")
    uploads = emulated.proxy.calls["upload"]
    result = ws.apply("lost", by=APPROVER)
    assert result.success, result.error
    assert emulated.proxy.calls["upload"] >= uploads + 2, "the upload was sent again"
    assert bucket_tree(emulated, url)[RACE_SCOPE + "/summary.txt"] == ("file", md5(b"the summary"))
    ws.close()


# --- kill -9 mid-apply and mid-rollback of 2,000 objects ------------------------------------------

BIG_SCOPE = "projects/Case-Big"
BIG_FILES: dict[str, bytes] = {
    **{f"{BIG_SCOPE}/Scans/box{i // 100}/s{i:04}.pdf": b"%%PDF scan %d" % i for i in range(1500)},
    **{f"{BIG_SCOPE}/Mail/m{i:03}.eml": b"mail %d" % i for i in range(300)},
    **{f"{BIG_SCOPE}/old/o{i:03}.txt": b"old %d" % i for i in range(196)},
    BIG_SCOPE + "/notes.txt": b"notes v1",
    BIG_SCOPE + "/index.txt": b"index",
    BIG_SCOPE + "/inbox/letter.pdf": b"%PDF letter",
    BIG_SCOPE + "/template.docx": b"PK template",
}
BIG_FOLDERS = [BIG_SCOPE + "/Mail"]  # a placeholder; Scans and old are prefixes only
BIG_PLAN: dict[str, Any] = {
    "scope": BIG_SCOPE,
    "author": "agent",
    "description": "file the case",
    "operations": [
        {"op": "mkdir", "path": "Evidence"},
        {"op": "move", "source": "Scans", "destination": "Evidence/Scans"},
        {"op": "move", "source": "Mail", "destination": "Evidence/Mail"},
        {"op": "delete", "path": "old"},
        {"op": "write", "path": "notes.txt", "text": "notes v2", "overwrite": True},
        {"op": "copy", "source": "template.docx", "destination": "Evidence/template.docx"},
        {"op": "move", "source": "inbox/letter.pdf", "destination": "Evidence/letter.pdf"},
        {"op": "write", "path": "Evidence/README.txt", "text": "filed by the agent"},
    ],
}

_CHILD = r"""
import json, sys
from pathlib import Path
from airlock.permissions import Principal, Role
from airlock.workspace import Workspace

cfg = json.loads(sys.argv[1])
by = Principal("jane", Role.ADMIN, via="test")


def hook(index):
    if index == 0:
        print("started", flush=True)


ws = Workspace(Path(cfg["root"]), recover=False)
if cfg["action"] == "apply":
    result = ws.apply(cfg["plan_id"], by=by, hook=hook)
else:
    result = ws.rollback(cfg["plan_id"], by=by, hook=hook)
print("result " + json.dumps(result.to_dict()), flush=True)
"""


def killed_child(root: Path, action: str, plan_id: str, *, after: float) -> None:
    """Run ``action`` in a child and kill -9 it ``after`` seconds into its first step; it must
    not have finished."""
    cfg = {"root": str(root), "action": action, "plan_id": plan_id}
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "started", line + child.communicate()[1]
        time.sleep(after)
        child.kill()
        _out, err = child.communicate(timeout=300)
        assert child.returncode == -9, f"the child was not killed mid-{action}: {_out} {err}"


@pytest.mark.timeout(900)  # about 70 s here: each of 2,000 objects moves several times
def test_kill_9_mid_apply_and_mid_rollback_of_2000_objects_recovers_exactly(
    emulated: Gcs, tmp_path: Path
) -> None:
    url = emulated.new_bucket("firm")
    root = tmp_path / "ws"
    Workspace.init(root, storage=url).close()
    plant(emulated, url, BIG_FILES, BIG_FOLDERS)
    objects = len(emulated.objects(url))
    assert objects >= 2000
    before = bucket_tree(emulated, url)
    rng = random.Random(13)

    # kill -9 mid-apply at a random instant inside the folder moves (the undo of finished folder
    # moves is the rollback's below; test_crash kills before every step on local disk)
    for n, after in enumerate([rng.uniform(1.0, 6.0)]):
        plan_id = f"apply-{n}"
        with Workspace(root) as ws:
            prepare(ws, plan_id, BIG_PLAN)
        killed_child(root, "apply", plan_id, after=after)
        with Workspace(root) as ws:  # opening recovers
            assert [(r.plan_id, r.kind) for r in ws.recovered] == [(plan_id, "apply")]
            assert ws.get(plan_id).status == "failed"
        assert bucket_tree(emulated, url) == before, f"after the kill of {plan_id}"

    with Workspace(root) as ws:
        prepare(ws, "filed", BIG_PLAN)
        assert ws.apply("filed", by=APPROVER).success
    after_apply = bucket_tree(emulated, url)
    assert after_apply != before
    assert not any(k.startswith(BIG_SCOPE + "/Scans/") for k in after_apply)

    # kill -9 mid-rollback: recovery undoes the rollback, back to the applied state
    killed_child(root, "rollback", "filed", after=rng.uniform(0.5, 4.0))
    with Workspace(root) as ws:
        assert [(r.plan_id, r.kind) for r in ws.recovered] == [("filed", "rollback")]
        assert ws.get("filed").status == "applied"
    assert bucket_tree(emulated, url) == after_apply

    with Workspace(root) as ws:
        assert ws.rollback("filed", by=APPROVER).success
        assert ws.audit_verify().ok
        journal = root / ".airlock" / "journal"
        assert not list(journal.glob("*.cursor"))
    assert bucket_tree(emulated, url) == before


# --- kill -9 while independent file moves run at once ----------------------------------------

SORT_SCOPE = "projects/Case-Sort"
SORT_FILES: dict[str, bytes] = {
    **{
        f"{SORT_SCOPE}/Scans/scan_{i:03}_{'lee' if i % 3 == 0 else 'mercy'}.pdf": b"%%PDF %d" % i
        for i in range(300)
    },
    **{f"{SORT_SCOPE}/drafts/d{i:02}.txt": b"draft %d" % i for i in range(30)},
}  # Scans and drafts are prefixes only: the moves and deletes empty them
SORT_PLAN: dict[str, Any] = {
    "scope": SORT_SCOPE,
    "author": "agent",
    "description": "sort the scans by provider, drop the drafts",
    "operations": [
        {"op": "mkdir", "path": "Medical Records/lee", "parents": True},
        {"op": "mkdir", "path": "Medical Records/mercy"},
        *(
            {
                "op": "move",
                "source": key.removeprefix(SORT_SCOPE + "/"),
                "destination": "Medical Records/"
                + key.rsplit("_", 1)[1].removesuffix(".pdf")
                + "/"
                + key.rsplit("/", 1)[1],
            }
            for key in SORT_FILES
            if "/Scans/" in key
        ),
        *(
            {"op": "delete", "path": key.removeprefix(SORT_SCOPE + "/")}
            for key in SORT_FILES
            if "/drafts/" in key
        ),
    ],
}


@pytest.mark.timeout(900)
def test_kill_9_while_file_moves_run_at_once_recovers_exactly(
    emulated: Gcs, tmp_path: Path
) -> None:
    """A bucket runs a plan's independent file moves and deletes at once (stretches of up to
    256 journal steps): kill -9 inside such a stretch, mid-apply and mid-rollback, at random
    instants; recovery undoes exactly what had happened, and the emptied prefix-only folders
    are still there after the apply, as folders on disk would be."""
    url = emulated.new_bucket("firm")
    root = tmp_path / "ws"
    Workspace.init(root, storage=url).close()
    plant(emulated, url, SORT_FILES)
    before = bucket_tree(emulated, url)
    rng = random.Random(2026)

    for n, after in enumerate([rng.uniform(0.2, 1.5), rng.uniform(0.2, 1.5)]):
        plan_id = f"sort-{n}"
        with Workspace(root) as ws:
            prepare(ws, plan_id, SORT_PLAN)
        killed_child(root, "apply", plan_id, after=after)
        with Workspace(root) as ws:  # opening recovers
            assert [(r.plan_id, r.kind) for r in ws.recovered] == [(plan_id, "apply")]
        assert bucket_tree(emulated, url) == before, f"after the kill of {plan_id} at {after:.2f} s"

    with Workspace(root) as ws:
        prepare(ws, "sorted", SORT_PLAN)
        assert ws.apply("sorted", by=APPROVER).success
    after_apply = bucket_tree(emulated, url)
    assert after_apply[SORT_SCOPE + "/Scans"] == ("dir", ""), "the emptied folder stays"
    assert after_apply[SORT_SCOPE + "/drafts"] == ("dir", "")
    assert not any(k.startswith(SORT_SCOPE + "/Scans/") for k in after_apply)

    killed_child(root, "rollback", "sorted", after=rng.uniform(0.2, 1.5))
    with Workspace(root) as ws:
        assert [(r.plan_id, r.kind) for r in ws.recovered] == [("sorted", "rollback")]
        assert ws.get("sorted").status == "applied"
    assert bucket_tree(emulated, url) == after_apply

    with Workspace(root) as ws:
        assert ws.rollback("sorted", by=APPROVER).success
        assert ws.audit_verify().ok
    assert bucket_tree(emulated, url) == before
