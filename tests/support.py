"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from airlock.permissions import Principal, Role

CASE = "projects/Case-A"


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` except Airlock's state: file bytes, folders, symlink targets."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        if rel_folder.parts[:1] == (".airlock",):
            continue
        for name in dirs:
            path = Path(folder) / name
            key = str(rel_folder / name)
            if key == ".airlock":
                continue
            out[key] = "link:" + os.readlink(path) if path.is_symlink() else "dir"
        for name in files:
            path = Path(folder) / name
            key = str(rel_folder / name)
            if path.is_symlink():
                out[key] = "link:" + os.readlink(path)
            else:
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_plan(
    *operations: dict[str, Any], scope: str = CASE, author: str = "agent"
) -> dict[str, Any]:
    return {
        "scope": scope,
        "description": "test plan",
        "author": author,
        "operations": list(operations),
    }


def person(name: str, role: Role = Role.ADMIN) -> Principal:
    """A principal for library-level tests (the doors authenticate theirs; see the service
    tests for what each role may do)."""
    return Principal(name=name, role=role, via="test")
