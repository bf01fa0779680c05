"""A plan's states and the moves between them (pure).

```
submitted → validated ─┬→ approved ─→ applying → applied → rolling_back → rolled_back
            ↘ invalid   └→ rejected              ↘ failed (workspace unchanged; may re-validate)
```

A plan may be validated again from any state before it is applied (its report then replaces the
old one, and an approval of the old one no longer counts). An interrupted apply ends ``failed``
(recovery undoes it); an interrupted or failed rollback leaves the plan ``applied``.
"""

from __future__ import annotations

import enum

from airlock.errors import InputError, InternalError


class Status(enum.StrEnum):
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    INVALID = "invalid"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


_CHECKED = frozenset({Status.VALIDATED, Status.INVALID})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: _CHECKED,
    Status.INVALID: _CHECKED,
    Status.VALIDATED: _CHECKED | {Status.APPROVED, Status.REJECTED, Status.APPLYING},
    Status.APPROVED: _CHECKED | {Status.APPROVED, Status.REJECTED, Status.APPLYING},
    Status.REJECTED: frozenset(),
    Status.APPLYING: frozenset({Status.APPLIED, Status.FAILED}),
    Status.FAILED: _CHECKED,
    Status.APPLIED: frozenset({Status.ROLLING_BACK}),
    Status.ROLLING_BACK: frozenset({Status.ROLLED_BACK, Status.APPLIED}),
    Status.ROLLED_BACK: frozenset(),
}
"""Every state a plan may move to from each state."""

VALIDATABLE = frozenset(s for s, to in TRANSITIONS.items() if Status.VALIDATED in to)
DECIDABLE = frozenset(s for s, to in TRANSITIONS.items() if Status.APPROVED in to)
APPLYABLE = frozenset(s for s, to in TRANSITIONS.items() if Status.APPLYING in to)
ROLLBACKABLE = frozenset(s for s, to in TRANSITIONS.items() if Status.ROLLING_BACK in to)


def move(current: str, new: Status) -> Status:
    """``new`` if a plan in ``current`` may move there; a move the table forbids is a bug in the
    engine (every action checks the state it starts from first), never a client's mistake."""
    if new not in TRANSITIONS[Status(current)]:
        raise InternalError(
            f"internal error: a plan cannot move from {current} to {new}",
            hint="this is a bug in Airlock; report it with the plan's audit events",
        )
    return new


def parse_status(text: str) -> Status:
    """The status ``text`` names; refused, with the list of them, if no plan can have it."""
    try:
        return Status(text)
    except ValueError:
        raise InputError(
            f"no plan status {text!r}", hint="use one of: " + ", ".join(s.value for s in Status)
        ) from None
