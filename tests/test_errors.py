"""The error tree: each class one HTTP status and one exit code, all of it as the docstring of
``airlock/errors.py`` draws it, one body for every door, and foreign exceptions translated."""

from __future__ import annotations

import errno
import re
from typing import get_type_hints

import pytest

import airlock.service.app  # noqa: F401 - loads every module the doors use, and their errors
from airlock import errors
from airlock.errors import (
    AirlockError,
    ConflictError,
    InternalError,
    RollbackConflictError,
    StalePlanError,
    StorageError,
    UnsafePathError,
)
from airlock.records import ApplyResult
from airlock.service.http_errors import ErrorOut

TREE_LINE = re.compile(
    r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+)\s*(?:exit (?P<exit>\d+))?\s*(?:HTTP (?P<http>\d+))?"
)

INTERNAL_OUTSIDE = {"airlock.journal.StepFailed"}
"""AirlockError subclasses defined outside errors.py: caught inside the workspace, never raised
to a door (the journal's signal that a step failed and was undone)."""


def drawn_tree() -> dict[str, tuple[str | None, int | None, int | None]]:
    """The tree in the module docstring: name -> (parent, exit code, HTTP status)."""
    doc = errors.__doc__ or ""
    block = doc.split("\n\n")[1]
    found: dict[str, tuple[str | None, int | None, int | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = TREE_LINE.match(line.strip("\n").removeprefix("    "))
        assert match, line
        depth = len(match["lead"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        assert match["name"] not in found, f"{match['name']} is drawn twice"
        found[match["name"]] = (
            parent,
            int(match["exit"]) if match["exit"] else None,
            int(match["http"]) if match["http"] else None,
        )
        stack.append((depth, match["name"]))
    return found


def every_subclass(cls: type[AirlockError]) -> set[type[AirlockError]]:
    found: set[type[AirlockError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | every_subclass(sub)
    return found


def test_the_docstring_draws_every_class_with_its_parent_exit_code_and_status() -> None:
    drawn = drawn_tree()
    classes = {cls.__name__: cls for cls in errors.error_classes()}
    assert set(drawn) == set(classes), set(drawn) ^ set(classes)
    for name, (parent, exit_code, http_status) in drawn.items():
        cls = classes[name]
        base = cls.__mro__[1]
        assert base.__name__ == (parent or "Exception"), (name, parent, base)
        # A number drawn is the class's own; none drawn means it has its parent's.
        if exit_code is None:
            assert "exit_code" not in vars(cls) and parent is not None, name
        else:
            assert cls.exit_code == exit_code, name
        if http_status is None:
            assert "http_status" not in vars(cls) and parent is not None, name
        else:
            assert cls.http_status == http_status, name


def test_each_class_has_one_status_one_exit_code_and_a_one_line_summary() -> None:
    for cls in errors.error_classes():
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls
        assert isinstance(cls.exit_code, int) and 0 < cls.exit_code < 126, cls
        assert cls.exit_code not in (errors.EXIT_OK, errors.EXIT_USAGE), cls
        assert "__doc__" in vars(cls) and cls.__doc__, f"{cls.__name__} has no docstring"
        summary = cls.summary()
        assert summary.endswith(".") and summary[0].isupper(), (cls, summary)
    # One exit code means one kind of failure: a code is shared only within one branch.
    roots: dict[int, type[AirlockError]] = {}
    for cls in errors.error_classes():
        first = roots.setdefault(cls.exit_code, cls)
        assert issubclass(cls, first), (cls, first)


def test_every_airlock_error_is_defined_in_errors_py() -> None:
    outside = {
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in every_subclass(AirlockError)
        if cls.__module__.startswith("airlock.") and cls.__module__ != "airlock.errors"
    }
    assert outside <= INTERNAL_OUTSIDE, outside - INTERNAL_OUTSIDE


def test_one_body_for_every_door() -> None:
    error = RollbackConflictError("a/b changed", hint="review it", details=["a/b: changed"])
    body = error.to_dict()
    assert body == {
        "error": "RollbackConflictError",
        "message": "a/b changed",
        "detail": "a/b changed",
        "hint": "review it",
        "details": ["a/b: changed"],
    }
    # The service's schema of the body is the body's own type.
    hints = get_type_hints(errors.ErrorBody)
    assert list(ErrorOut.model_fields) == list(hints)
    for name, field in ErrorOut.model_fields.items():
        assert field.annotation == hints[name], name
        assert field.is_required() and field.description, name
    assert ErrorOut.model_validate(body).model_dump() == body


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (StorageError("could not write: the disk is full", errno=errno.ENOSPC), StorageError),
        (OSError(errno.EIO, "I/O error"), StorageError),
        (OSError(errno.EROFS, "read-only"), StorageError),
        (FileExistsError(errno.EEXIST, "exists"), RollbackConflictError),
        (FileNotFoundError(errno.ENOENT, "gone"), RollbackConflictError),
        (OSError(errno.ENOTEMPTY, "not empty"), RollbackConflictError),
        (StorageError("a link is in the way", errno=errno.ELOOP), RollbackConflictError),
        (UnsafePathError("a link stands in the path"), RollbackConflictError),
        (errors.BusyError("locked"), errors.BusyError),
        (RuntimeError("a bug"), InternalError),
    ],
)
def test_a_failed_and_undone_step_keeps_the_class_of_its_cause(
    cause: BaseException, expected: type[AirlockError]
) -> None:
    error = errors.failed_and_undone(
        cause, "rollback failed and was undone", "retry", conflict=RollbackConflictError
    )
    assert type(error) is expected
    assert (error.message, error.hint) == ("rollback failed and was undone", "retry")
    if isinstance(error, StorageError):
        assert error.errno == getattr(cause, "errno", None)
    applied = errors.failed_and_undone(cause, "apply failed", conflict=StalePlanError)
    assert type(applied) is (StalePlanError if expected is RollbackConflictError else expected)


def test_a_storage_failure_is_never_a_conflict() -> None:
    full = errors.failed_and_undone(OSError(errno.ENOSPC, "full"), "rollback failed")
    assert isinstance(full, StorageError) and not isinstance(full, ConflictError)
    assert (full.http_status, full.exit_code) == (507, 8)


def test_exit_codes_of_anything() -> None:
    assert errors.exit_code_for(StalePlanError("stale")) == 5
    assert errors.exit_code_for(OSError(errno.EACCES, "denied", "x")) == StorageError.exit_code
    assert errors.exit_code_for(KeyError("bug")) == InternalError.exit_code == 1
    translated = errors.as_airlock_error(OSError(errno.EACCES, "denied", "a/b.txt"))
    assert "a/b.txt" in translated.message and translated.hint


def test_an_unexpected_error_shows_its_type_and_nothing_else() -> None:
    error = InternalError.of(RuntimeError("password=hunter2 in /srv/secret"))
    shown = str(error.to_dict())
    assert "RuntimeError" in shown and "hunter2" not in shown and "/srv" not in shown
    assert error.http_status == 500 and error.hint


def test_an_apply_result_exits_with_the_code_of_its_failure() -> None:
    assert ApplyResult("p", True, 1, 0, "t").exit_code == errors.EXIT_OK
    stale = StalePlanError("a.txt changed since validation")
    assert ApplyResult("p", False, 0, 1, "t", "failed", failure=stale).exit_code == 5
    full = StorageError("disk full")
    assert ApplyResult("p", False, 0, 1, "t", "failed", failure=full).exit_code == 8
    assert ApplyResult("p", False, 0, 1, "t", "failed").exit_code == StorageError.exit_code
    # The failure is not part of the JSON the doors show.
    assert "failure" not in ApplyResult("p", False, 0, 1, "t", "x", failure=full).to_dict()
