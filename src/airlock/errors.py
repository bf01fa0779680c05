"""Every error Airlock raises, in one place.

    AirlockError                      exit 1   HTTP 500
    ├── InputError                    exit 3   HTTP 400  the caller sent something wrong
    │   ├── PlanFormatError                              the plan does not match the schema
    │   └── UnsafePathError                              a path could leave its scope
    ├── NotFoundError                 exit 4   HTTP 404
    ├── ConflictError                 exit 5   HTTP 409  the world is not as the request assumed
    │   ├── PlanStateError                               wrong status for this action
    │   ├── StalePlanError                               files changed since validation
    │   ├── RollbackConflictError                        files changed since apply
    │   └── PlanInvalidError                             validation found errors
    ├── NotPermittedError             exit 6   HTTP 403  policy, role or approval forbids it
    │   └── AuthenticationError              HTTP 401  no valid token
    ├── BusyError                     exit 7   HTTP 423  another process holds the scope
    ├── StorageError                  exit 8   HTTP 507  the filesystem refused (full, read-only, denied)
    ├── IntegrityError                exit 9   HTTP 500  the audit chain or state is damaged
    └── SandboxUnavailableError       exit 10  HTTP 503  no sandbox backend can run here

Every message says what went wrong and, in ``hint``, what to do next. Foreign exceptions
(``OSError``) are translated once, in :func:`storage_error`. The CLI's exit codes and the
service's HTTP statuses come from the class attributes here and nowhere else.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from typing import ClassVar


class AirlockError(Exception):
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

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "details": self.details,
        }


class InputError(AirlockError):
    exit_code = 3
    http_status = 400


class PlanFormatError(InputError):
    pass


class UnsafePathError(InputError):
    pass


class NotFoundError(AirlockError):
    exit_code = 4
    http_status = 404


class ConflictError(AirlockError):
    exit_code = 5
    http_status = 409


class PlanStateError(ConflictError):
    pass


class StalePlanError(ConflictError):
    pass


class RollbackConflictError(ConflictError):
    def __init__(
        self, message: str, hint: str = "", details: Sequence[str] = (), forceable: bool = False
    ) -> None:
        super().__init__(message, hint, details)
        self.forceable = forceable
        """True if ``--force`` rolls back anyway (setting the conflicting entries aside)."""


class PlanInvalidError(ConflictError):
    pass


class NotPermittedError(AirlockError):
    exit_code = 6
    http_status = 403


class AuthenticationError(NotPermittedError):
    http_status = 401


class BusyError(AirlockError):
    exit_code = 7
    http_status = 423


class StorageError(AirlockError):
    exit_code = 8
    http_status = 507

    def __init__(
        self, message: str, hint: str = "", details: Sequence[str] = (), errno: int | None = None
    ) -> None:
        super().__init__(message, hint, details)
        self.errno = errno


class IntegrityError(AirlockError):
    exit_code = 9
    http_status = 500


class SandboxUnavailableError(AirlockError):
    exit_code = 10
    http_status = 503


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
    return StorageError(f"could not {action} {path!r}: {what}", hint=hint, errno=exc.errno)
