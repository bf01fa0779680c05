"""Tests for the sample law-firm workspace and its demo reorganisation plan."""

from __future__ import annotations

import csv
import json
import re
import stat
import subprocess
import sys
import tomllib
import zipfile
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from airlock.demo.sample import DEMO_CASE, build_sample_workspace, sample_reorganisation

OP_KEYS: dict[str, set[str]] = {
    "mkdir": {"op", "path"},
    "move": {"op", "source", "destination", "overwrite"},
    "copy": {"op", "source", "destination", "overwrite"},
    "write": {"op", "path", "text", "overwrite"},
    "delete": {"op", "path"},
}
FOLDERS = {"Medical Records", "Correspondence", "Police Report", "Photos", "Bills"}
DATED_NAME = re.compile(r"^\d{4}-\d{2}-\d{2} \S.*\.[a-z]+$")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "firm"
    build_sample_workspace(root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def operations() -> list[dict[str, Any]]:
    ops = sample_reorganisation()["operations"]
    assert isinstance(ops, list)
    assert all(isinstance(op, dict) for op in ops)
    return ops


def parent(path: str) -> str:
    value = PurePosixPath(path).parent.as_posix()
    return "" if value == "." else value


def check_rel(path: object) -> str:
    assert isinstance(path, str) and path
    assert "\\" not in path
    pure = PurePosixPath(path)
    assert not pure.is_absolute()
    assert ".." not in pure.parts and "." not in path.split("/")
    assert pure.as_posix() == path
    return path


def assert_xref_is_consistent(rel: str, data: bytes) -> None:
    """Each cross-reference entry of the PDF points at the object it names."""
    xref_at = int(data.rsplit(b"startxref\n", 1)[1].split()[0])
    lines = data[xref_at:].split(b"\n")
    assert lines[0] == b"xref", rel
    count = int(lines[1].split()[1])
    for number, entry in enumerate(lines[3 : 2 + count], start=1):
        offset = int(entry.split()[0])
        assert data[offset:].startswith(b"%d 0 obj" % number), rel


def test_builds_expected_tree(workspace: Path) -> None:
    projects = sorted(p.name for p in (workspace / "projects").iterdir())
    assert DEMO_CASE in projects
    assert 3 <= len(projects) <= 4
    case = workspace / "projects" / DEMO_CASE
    loose = list(case.iterdir())
    assert all(p.is_file() for p in loose)
    assert 20 <= len(loose) <= 30
    for name in ("SCAN_20240714_0001.pdf", "IMG_4471.JPG", "Thumbs.db", "desktop.ini"):
        assert (case / name).is_file()
    assert (workspace / "Tools" / "create_file_inventory.py").is_file()
    assert (workspace / "Database" / "clients.csv").read_text("utf-8").startswith("client_id,")
    assert any((workspace / "Reports").rglob("*.md"))
    files = snapshot(workspace)
    assert sum(len(data) for data in files.values()) < 2_000_000


def test_file_contents_look_real(workspace: Path) -> None:
    for rel, data in snapshot(workspace).items():
        suffix = PurePosixPath(rel).suffix.lower()
        if suffix == ".pdf":
            assert data.startswith(b"%PDF-1.4")
            assert data.rstrip().endswith(b"%%EOF")
            assert_xref_is_consistent(rel, data)
        elif suffix == ".docx" and not PurePosixPath(rel).name.startswith("~$"):
            with zipfile.ZipFile(Path(workspace, rel)) as archive:
                assert "word/document.xml" in archive.namelist()
        elif suffix == ".jpg":
            assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")
        elif suffix in {".txt", ".md", ".eml", ".csv", ".sh", ".py"}:
            data.decode("utf-8")
    record = (workspace / "projects" / DEMO_CASE / "SCAN_20240714_0001.pdf").read_bytes()
    for needle in (b"SITGRAVES, ABBY", b"CONFIDENTIAL", b"99284", b"S13.4XXA"):
        assert needle in record


def test_build_is_deterministic(tmp_path: Path) -> None:
    build_sample_workspace(tmp_path / "a")
    build_sample_workspace(tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_empty_root_is_accepted(tmp_path: Path) -> None:
    build_sample_workspace(tmp_path)
    assert (tmp_path / "projects" / DEMO_CASE).is_dir()


def test_refuses_non_empty_root(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        build_sample_workspace(workspace)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError):
        build_sample_workspace(a_file)


def test_tools_script_is_executable(workspace: Path) -> None:
    script = workspace / "Tools" / "organize_medical_subfolders.sh"
    assert script.read_text("utf-8").startswith("#!")
    assert script.stat().st_mode & stat.S_IXUSR


def test_inventory_tool_runs_on_the_demo_case(workspace: Path, tmp_path: Path) -> None:
    """The Python tool is a real script (linted and type-checked in the source tree) that works."""
    out = tmp_path / "inventory.csv"
    tool = workspace / "Tools" / "create_file_inventory.py"
    assert tool.stat().st_mode & stat.S_IXUSR
    subprocess.run([sys.executable, tool, workspace / "projects" / DEMO_CASE, out], check=True)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "bytes", "modified", "sha256"]
    assert {row[0] for row in rows[1:]} == set(snapshot(workspace / "projects" / DEMO_CASE))


def data_files(node: Traversable, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for child in node.iterdir():
        path = f"{prefix}{child.name}"
        found |= data_files(child, f"{path}/") if child.is_dir() else {path}
    return found


def test_every_data_file_is_used() -> None:
    """Each file under data/workspace/ is a file's bytes (copied) or text (a PDF or document)."""
    data = files("airlock.demo") / "data"
    manifest = tomllib.loads((data / "workspace.toml").read_text(encoding="utf-8"))["file"]
    wanted = {
        entry["path"] + (".txt" if entry.get("made") in {"pdf", "docx"} else "")
        for entry in manifest
        if entry.get("made", "copy") in {"copy", "pdf", "docx"}
    }
    present = {p for p in data_files(data / "workspace") if "__pycache__/" not in p}
    assert present == wanted


def test_plan_shape_and_json_round_trip() -> None:
    plan = sample_reorganisation()
    assert set(plan) == {"scope", "description", "author", "operations"}
    assert plan["scope"] == f"projects/{DEMO_CASE}"
    assert plan["author"] == "paralegal-agent"
    assert isinstance(plan["description"], str) and plan["description"]
    assert json.loads(json.dumps(plan)) == plan
    assert sample_reorganisation() == plan
    for op in operations():
        assert set(op) == OP_KEYS[op["op"]], op
        if "overwrite" in op:
            assert op["overwrite"] is False


def test_plan_applies_cleanly_to_built_tree(workspace: Path) -> None:
    case = workspace / "projects" / DEMO_CASE
    files = snapshot(case)
    originals = dict(files)
    dirs = {p.relative_to(case).as_posix() for p in case.rglob("*") if p.is_dir()} | {""}
    deleted: list[str] = []
    for op in operations():
        kind = op["op"]
        if kind == "mkdir":
            path = check_rel(op["path"])
            assert path not in dirs and path not in files, op
            assert parent(path) in dirs, op
            dirs.add(path)
        elif kind in {"move", "copy"}:
            source, dest = check_rel(op["source"]), check_rel(op["destination"])
            assert source in files, op
            assert dest not in files and dest not in dirs, op
            assert parent(dest) in dirs, op
            files[dest] = files.pop(source) if kind == "move" else files[source]
        elif kind == "write":
            path = check_rel(op["path"])
            assert path not in files and path not in dirs, op
            assert parent(path) in dirs, op
            files[path] = op["text"].encode("utf-8")
        elif kind == "delete":
            path = check_rel(op["path"])
            assert path in files, op
            deleted.append(path)
            del files[path]
        else:
            pytest.fail(f"unknown op {kind!r}")

    # nothing loose is left at the case root except the new index
    assert [p for p in files if "/" not in p] == ["INDEX.md"]
    assert {d.split("/")[0] for d in dirs if d} == FOLDERS
    # every moved file got a dated name; no content was lost except junk and the duplicate
    for path in files:
        if path != "INDEX.md":
            assert DATED_NAME.match(PurePosixPath(path).name), path
    assert {"Thumbs.db", "desktop.ini"} <= set(deleted)
    kept = set(files.values())
    lost = [p for p in deleted if originals[p] not in kept]
    assert set(lost) <= {"Thumbs.db", "desktop.ini", "~$tter to ins co 8-2.docx"}
    assert any(originals[p] in kept for p in deleted), "the exact duplicate is deleted"
    assert len(kept) == len(files)  # no duplicate content remains
    index = files["INDEX.md"].decode("utf-8")
    for path in files:
        assert PurePosixPath(path).name in index or path == "INDEX.md"
    assert all(f"`{p}`" in index for p in deleted)
