"""Every error Airlock raises, in one place.

    AirlockError                      exit 1   HTTP 500  something failed
    ├── InputError                    exit 3   HTTP 400  the caller sent something wrong
    │   ├── PlanFormatError                              the plan does not match the schema
    │   ├── UnsafePathError                              a path could leave its scope
    │   ├── RequestFormatError               HTTP 422  the request does not match the API
    │   ├── BodyTooLargeError                HTTP 413  the request body is over the limit
    │   └── MethodNotAllowedError            HTTP 405  the path does not serve that method
    ├── NotFoundError                 exit 4   HTTP 404  no such plan, job or route
    ├── ConflictError                 exit 5   HTTP 409  the world is not as the request assumed
    │   ├── PlanStateError                               wrong status for this action
    │   ├── StalePlanError                               files changed since validation
    │   ├── RollbackConflictError                        files changed since apply
    │   └── PlanInvalidError                             validation found errors
    ├── NotPermittedError             exit 6   HTTP 403  policy, role or approval forbids it
    │   └── AuthenticationError              HTTP 401  no valid token
    ├── BusyError                     exit 7   HTTP 423  another process holds the scope
    ├── StorageError                  exit 8   HTTP 507  the filesystem refused (full, read-only, denied)
    │   └── RecoveryError                                an interrupted apply or rollback is not undone
    ├── IntegrityError                exit 9   HTTP 500  the audit chain or state is damaged
    ├── PreviewError                  exit 11  HTTP 422  a file cannot be previewed: download it
    ├── SandboxUnavailableError       exit 10  HTTP 503  no sandbox backend can run here
    └── InternalError                 exit 1   HTTP 500  an unexpected failure (a bug)

A subclass without numbers has its parent's. Every message says what went wrong and, in
``hint``, what to do next; each class's docstring says in its first line when it is raised (the
service's OpenAPI document describes each status with these lines, so they are Markdown).

Derived from here and nowhere else:

* **exit codes** of the CLI: ``exit_code`` on each class; :data:`EXIT_OK`, :data:`EXIT_USAGE` and
  :data:`EXIT_RUN_FAILED` for what is not an error; :func:`exit_code_for` for any exception.
* **HTTP statuses** of the service: ``http_status`` on each class.
* **the one error body**, :class:`ErrorBody`, built by :meth:`AirlockError.to_dict` for every door
  (HTTP answers, a job's error, ``--json`` output).
* **translation of foreign exceptions**, once: :func:`storage_error` for an ``OSError`` the
  filesystem raised, :func:`as_airlock_error` for anything else, :func:`failed_and_undone` for
  the step of an apply or rollback that failed and was undone.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from typing import Annotated, ClassVar, Final, TypedDict

EXIT_OK: Final = 0
"""The command did what was asked."""
EXIT_RUN_FAILED: Final = 1
"""``airlock run``: the code it ran failed or was stopped (not an Airlock error)."""
EXIT_USAGE: Final = 2
"""The command line itself is wrong (unknown option, missing argument): the parser's own code."""


class ErrorBody(TypedDict):
    """Every error, whichever door answers it: what went wrong, its kind, what to do next.

    Each field's type is annotated with its description (the service's schema for the body is
    made from this class)."""

    error: Annotated[str, "The error's class in Airlock's error tree, e.g. `StalePlanError`."]
    message: Annotated[str, "What went wrong, for a person (or a model)."]
    detail: Annotated[
        str,
        "The same text as `message`, for clients written for FastAPI services (the seed "
        "service's tools read `detail`).",
    ]
    hint: Annotated[str, "What to do next (empty when there is nothing to add)."]
    details: Annotated[
        list[str], "Particulars: the paths in conflict, the fields that are wrong, and so on."
    ]


class AirlockError(Exception):
    """Something failed."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details)

    def __str__(self) -> str:
        text = self.message
        if self.details:
            text += "\n" + "\n".join(f"  - {line}" for line in self.details)
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def to_dict(self) -> ErrorBody:
        """The one error body (see :class:`ErrorBody`)."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "detail": self.message,
            "hint": self.hint,
            "details": self.details,
        }

    @classmethod
    def summary(cls) -> str:
        """The first line of the class's docstring: when it is raised."""
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


class InputError(AirlockError):
    """The request is wrong: a bad path, plan, id, parameter or body."""

    exit_code = 3
    http_status = 400


class PlanFormatError(InputError):
    """The plan does not match the plan schema."""


class UnsafePathError(InputError):
    """A path could leave its scope (`..`, absolute, a link, a reserved name)."""


class RequestFormatError(InputError):
    """The request does not match the API's schema (a missing or mistyped field or parameter)."""

    http_status = 422


class BodyTooLargeError(InputError):
    """The request body is larger than the service's limit."""

    http_status = 413


class MethodNotAllowedError(InputError):
    """The path does not serve that HTTP method."""

    http_status = 405


class NotFoundError(AirlockError):
    """No such plan, job, workspace or route."""

    exit_code = 4
    http_status = 404


class ConflictError(AirlockError):
    """The world is not as the request assumed."""

    exit_code = 5
    http_status = 409


class PlanStateError(ConflictError):
    """The plan's status does not allow this action (or the id is taken)."""


class StalePlanError(ConflictError):
    """Files changed since the plan was validated: validate it again."""


class RollbackConflictError(ConflictError):
    """Files changed since the plan was applied, or a later plan must be rolled back first."""

    def __init__(
        self, message: str, hint: str = "", details: Sequence[str] = (), forceable: bool = False
    ) -> None:
        super().__init__(message, hint, details)
        self.forceable = forceable
        """True if ``--force`` rolls back anyway (setting the conflicting entries aside)."""


class PlanInvalidError(ConflictError):
    """Validation found errors in the plan."""


class NotPermittedError(AirlockError):
    """The caller's role, the policy or a missing approval forbids it."""

    exit_code = 6
    http_status = 403


class AuthenticationError(NotPermittedError):
    """No valid token (missing, unknown, malformed or revoked)."""

    http_status = 401


class BusyError(AirlockError):
    """Another process holds the scope's lock (or the state database): retry."""

    exit_code = 7
    http_status = 423


class StorageError(AirlockError):
    """The filesystem refused (full, read-only, permission denied, I/O error)."""

    exit_code = 8
    http_status = 507

    def __init__(
        self, message: str, hint: str = "", details: Sequence[str] = (), errno: int | None = None
    ) -> None:
        super().__init__(message, hint, details)
        self.errno = errno


class RecoveryError(StorageError):
    """An interrupted apply or rollback is not undone yet: `airlock recover` finishes it."""


class IntegrityError(AirlockError):
    """The audit chain or Airlock's state is damaged."""

    exit_code = 9
    http_status = 500


class PreviewError(AirlockError):
    """A file cannot be previewed (damaged, too large, or too slow to decode): download it."""

    exit_code = 11
    http_status = 422


class SandboxUnavailableError(AirlockError):
    """No sandbox backend can run code here."""

    exit_code = 10
    http_status = 503


class InternalError(AirlockError):
    """An unexpected failure (a bug in Airlock); the details are in the service's log."""

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        """``exc``, which no code expected, as an error that may be shown to anyone: its type
        only, never its text or traceback (they may hold paths or secrets; log them instead)."""
        return cls(
            f"an unexpected error ({type(exc).__name__}) stopped it",
            hint="retry; if it happens again, report it with the time it happened (the log "
            "has the details)",
        )


def error_classes() -> list[type[AirlockError]]:
    """Every class of the tree above, in the order it lists them (parents before children)."""
    return [
        value
        for value in globals().values()
        if isinstance(value, type) and issubclass(value, AirlockError)
    ]


def as_airlock_error(exc: BaseException) -> AirlockError:
    """Any exception as one of this tree: an AirlockError as it is, an ``OSError`` as a
    StorageError, anything else an :class:`InternalError` (see :meth:`InternalError.of`)."""
    if isinstance(exc, AirlockError):
        return exc
    if isinstance(exc, OSError):
        path = exc.filename if isinstance(exc.filename, str) else ""
        return storage_error(exc, "use" if path else "use the filesystem", path)
    return InternalError.of(exc)


def exit_code_for(exc: BaseException) -> int:
    """The CLI's exit code for any exception (what :func:`as_airlock_error` makes of it)."""
    return as_airlock_error(exc).exit_code


_TREE_CHANGED: Final = frozenset(
    {
        _errno.ENOENT,
        _errno.EEXIST,
        _errno.ENOTDIR,
        _errno.EISDIR,
        _errno.ENOTEMPTY,
        _errno.ELOOP,
        _errno.ESTALE,
    }
)
"""``OSError`` numbers that mean an entry appeared, vanished or changed kind (or a link stands
where a folder was, or an object store refused a write whose precondition no longer held): not
a refusal of the store, a change of the tree."""


def failed_and_undone(
    cause: BaseException,
    message: str,
    hint: str = "",
    *,
    conflict: type[ConflictError] = ConflictError,
) -> AirlockError:
    """The error for an apply or rollback whose step failed with ``cause`` and whose undo
    finished, of the class that says why (and so its exit code and HTTP status):

    * the filesystem refused (a StorageError, or an ``OSError`` such as ENOSPC, EROFS, EACCES,
      EIO): a :class:`StorageError` with its ``errno``, never a conflict;
    * the tree is not as validated (an entry appeared, vanished or changed kind, a link stood in
      the way): ``conflict`` (e.g. :class:`StalePlanError` for an apply,
      :class:`RollbackConflictError` for a rollback);
    * any other Airlock error: its own class; anything else: :class:`InternalError`.
    """
    kind: type[AirlockError]
    code = cause.errno if isinstance(cause, StorageError | OSError) else None
    if code in _TREE_CHANGED:
        kind = conflict
    elif isinstance(cause, StorageError | OSError):
        kind = StorageError
    elif isinstance(cause, UnsafePathError):
        kind = conflict  # a validated plan's paths are safe: a link was put in the way since
    elif isinstance(cause, AirlockError):
        kind = type(cause)
    else:
        kind = InternalError
    error = kind(message, hint)
    if isinstance(error, StorageError):
        error.errno = code
    return error


_OS_HINTS: dict[int, tuple[str, str]] = {
    _errno.ENOSPC: ("the disk is full", "free space on the workspace's filesystem, then retry"),
    _errno.EDQUOT: ("the disk quota is exhausted", "raise the quota or free space, then retry"),
    _errno.EROFS: ("the filesystem is read-only", "remount the workspace read-write, then retry"),
    _errno.EACCES: ("permission denied", "give the Airlock user write access to this folder"),
    _errno.EPERM: ("operation not permitted", "check the file's owner, mode and attributes"),
    _errno.ELOOP: (
        "a symbolic link is in the way",
        "symlinks inside the workspace are never followed; move or delete the link itself",
    ),
    _errno.ENAMETOOLONG: ("a name is too long for this filesystem", "use a shorter name"),
    _errno.EXDEV: (
        "the path crosses into another filesystem",
        "keep the workspace and its .airlock folder on one filesystem",
    ),
}


def storage_error(exc: OSError, action: str, path: str) -> StorageError:
    """Translate an ``OSError`` from the filesystem into a StorageError a person can act on."""
    what, hint = _OS_HINTS.get(
        exc.errno or 0, (exc.strerror or type(exc).__name__, "check the workspace, then retry")
    )
    where = f" {path!r}" if path else ""
    return StorageError(f"could not {action}{where}: {what}", hint=hint, errno=exc.errno)
