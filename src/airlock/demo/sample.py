"""A deterministic sample law-firm workspace for demos, plus a plan that tidies one case.

``build_sample_workspace(root)`` lays out a small but realistic firm share::

    projects/<Case>/...        four matters; the first (DEMO_CASE) is a mess of loose scans
    Tools/                     the firm's home-grown helper scripts
    Database/clients.csv       the client list
    Reports/<Case>/            a report generated for one matter

``sample_reorganisation()`` returns the JSON plan (a plain dict) a careful paralegal
would submit to file DEMO_CASE properly.

The files are data, in this package's ``data/`` folder: ``workspace.toml`` lists every file
(where it goes, its date, how its bytes are made by :mod:`airlock.demo.formats`),
``workspace/`` holds their text at the paths they are written to (``<name>.pdf.txt`` is the
text of ``<name>.pdf``), and ``reorganisation.toml`` is the plan's folders, moves and deletions.
Everything is fictional (names, claim numbers, ``.example`` addresses, 555-01xx phone
numbers) and byte-for-byte deterministic; only the standard library is used.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

from airlock.demo import formats

__all__ = ["DEMO_CASE", "build_sample_workspace", "sample_reorganisation"]

DEMO_CASE: str = "Abby-Sitgraves-MVA-7-13-2024"

_DATA: Traversable = files("airlock.demo") / "data"

# what each way of making a file's bytes needs, besides path, modified, made and executable
_MADE_KEYS: dict[str, frozenset[str]] = {
    "copy": frozenset(),
    "pdf": frozenset({"title", "producer"}),
    "docx": frozenset(),
    "jpeg": frozenset({"caption", "size"}),
    "duplicate": frozenset({"of"}),
    "thumbs-db": frozenset(),
    "desktop-ini": frozenset(),
    "word-lock": frozenset({"user"}),
}
_FILE_KEYS = frozenset({"path", "modified", "made", "executable"})


@dataclass(frozen=True, slots=True)
class _File:
    path: str  # relative to the workspace root, "/"-separated
    content: bytes
    modified: dt.date
    executable: bool


@dataclass(frozen=True, slots=True)
class _Move:
    source: str  # messy name, flat at the case root
    destination: str
    note: str  # one line for INDEX.md


@dataclass(frozen=True, slots=True)
class _Delete:
    path: str
    note: str


@dataclass(frozen=True, slots=True)
class _Reorganisation:
    author: str
    description: str
    folders: tuple[str, ...]  # mkdir order: parents first; also INDEX.md's section order
    index_intro: str
    moves: tuple[_Move, ...]
    deletes: tuple[_Delete, ...]


def _data_file(path: str) -> Traversable:
    node = _DATA / "workspace"
    for part in PurePosixPath(path).parts:
        node = node / part
    return node


def _lines(path: str) -> list[str]:
    """The lines of a text data file, each without its line end."""
    return _data_file(path).read_text(encoding="utf-8").removesuffix("\n").split("\n")


def _make(entry: Mapping[str, Any], made_so_far: Mapping[str, bytes]) -> bytes:
    path: str = entry["path"]
    match entry.get("made", "copy"):
        case "copy":
            return _data_file(path).read_bytes()
        case "pdf":
            producer = entry.get("producer", formats.PDF_PRODUCER)
            return formats.pdf(entry["title"], _lines(f"{path}.txt"), producer)
        case "docx":
            return formats.docx(_lines(f"{path}.txt"), entry["modified"])
        case "jpeg":
            return formats.jpeg(entry["caption"], entry["size"])
        case "duplicate":
            return made_so_far[entry["of"]]
        case "thumbs-db":
            return formats.thumbs_db()
        case "desktop-ini":
            return formats.DESKTOP_INI
        case "word-lock":
            return formats.word_lock_file(entry["user"])
    raise AssertionError("unreachable: _files checks `made`")


@functools.cache
def _files() -> tuple[_File, ...]:
    """Every file of the share, in workspace.toml's order, with its bytes made."""
    entries = tomllib.loads(_DATA.joinpath("workspace.toml").read_text(encoding="utf-8"))["file"]
    made: dict[str, bytes] = {}
    out: list[_File] = []
    for entry in entries:
        path, modified, kind = entry["path"], entry["modified"], entry.get("made", "copy")
        unknown = set(entry) - _FILE_KEYS - _MADE_KEYS.get(kind, frozenset())
        if kind not in _MADE_KEYS or unknown or type(modified) is not dt.date:
            raise ValueError(f"workspace.toml: bad entry for {path!r}")
        made[path] = _make(entry, made)
        out.append(_File(path, made[path], modified, entry.get("executable", False)))
    return tuple(out)


@functools.cache
def _reorganisation() -> _Reorganisation:
    data = tomllib.loads(_DATA.joinpath("reorganisation.toml").read_text(encoding="utf-8"))
    return _Reorganisation(
        author=data["author"],
        description=data["description"],
        folders=tuple(data["folders"]),
        index_intro=data["index_intro"],
        moves=tuple(_Move(**move) for move in data["move"]),
        deletes=tuple(_Delete(**delete) for delete in data["delete"]),
    )


def _index_markdown(plan: _Reorganisation) -> str:
    lines = [*plan.index_intro.splitlines(), ""]
    for folder in plan.folders:
        entries = sorted(
            (PurePosixPath(move.destination).name, move.note)
            for move in plan.moves
            if PurePosixPath(move.destination).parent.as_posix() == folder
        )
        depth = folder.count("/") + 2
        lines.append(f"{'#' * depth} {folder.rsplit('/', 1)[-1]}")
        lines.append("")
        if not entries:
            lines += ["One sub-folder per provider, below.", ""]
            continue
        lines += [f"- `{name}` - {note}" for name, note in entries]
        lines.append("")
    lines += ["## Removed during reorganisation", ""]
    lines += [f"- `{delete.path}` - {delete.note}" for delete in plan.deletes]
    return "\n".join(lines) + "\n"


def sample_reorganisation() -> dict[str, object]:
    """The plan that files DEMO_CASE's loose scans the way a careful paralegal would."""
    plan = _reorganisation()
    operations: list[dict[str, object]] = [{"op": "mkdir", "path": f} for f in plan.folders]
    folder_rank = {folder: rank for rank, folder in enumerate(plan.folders)}
    moves = sorted(
        plan.moves,
        key=lambda move: (
            folder_rank[PurePosixPath(move.destination).parent.as_posix()],
            move.destination,
        ),
    )
    operations += [
        {"op": "move", "source": move.source, "destination": move.destination, "overwrite": False}
        for move in moves
    ]
    operations += [{"op": "delete", "path": delete.path} for delete in plan.deletes]
    operations.append(
        {"op": "write", "path": "INDEX.md", "text": _index_markdown(plan), "overwrite": False}
    )
    return {
        "scope": f"projects/{DEMO_CASE}",
        "description": plan.description,
        "author": plan.author,
        "operations": operations,
    }


def _timestamp(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(17, 0), tzinfo=dt.UTC).timestamp()


def build_sample_workspace(root: Path) -> None:
    """Create the sample firm share under ``root``, which must be absent or an empty folder.

    Raises FileExistsError if ``root`` exists and is not an empty directory.
    """
    if root.exists() or root.is_symlink():
        if not root.is_dir() or root.is_symlink():
            raise FileExistsError(f"{root} exists and is not a directory; refusing to build there")
        if any(root.iterdir()):
            raise FileExistsError(
                f"{root} is not empty; the sample workspace must be built in a new or empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    for entry in _files():
        target = root.joinpath(*PurePosixPath(entry.path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.content)
        if entry.executable:
            target.chmod(0o755)
        stamp = _timestamp(entry.modified)
        os.utime(target, (stamp, stamp))
