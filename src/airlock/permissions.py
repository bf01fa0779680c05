"""Who may do what: the principal behind every action, one table of roles and actions, and the
one decision every door asks (pure).

A door authenticates (a token, a review-page sign-in, the operating-system account) and passes
the :class:`Principal` to the workspace; the workspace calls :func:`authorize` before it acts.
No door checks a role itself: the web page asks :func:`allowed_actions` which buttons to show,
and the workspace refuses whatever it would refuse anyway.

Roles nest::

    agent     read, submit, validate, apply what is approved (or needs no approval), run code
    approver  + approve, reject, roll back
    admin     + manage tokens, recover, collect garbage, re-anchor the audit log

Nobody approves a plan they wrote; the author of a plan is always the principal that submitted it.
"""

from __future__ import annotations

import enum
import getpass
import os
from dataclasses import dataclass
from typing import Protocol

from airlock.errors import AirlockError, NotPermittedError, PlanStateError
from airlock.lifecycle import APPLYABLE, DECIDABLE, ROLLBACKABLE, VALIDATABLE, Status


class Role(enum.StrEnum):
    AGENT = "agent"
    APPROVER = "approver"
    ADMIN = "admin"


class Action(enum.StrEnum):
    READ = "read"
    SUBMIT = "submit"
    VALIDATE = "validate"
    APPROVE = "approve"
    REJECT = "reject"
    APPLY = "apply"
    ROLLBACK = "rollback"
    RUN = "run"
    MANAGE_TOKENS = "manage_tokens"
    RECOVER = "recover"
    GC = "gc"
    ANCHOR_AUDIT = "anchor_audit"


_AGENT = frozenset({Action.READ, Action.SUBMIT, Action.VALIDATE, Action.APPLY, Action.RUN})
_APPROVER = _AGENT | {Action.APPROVE, Action.REJECT, Action.ROLLBACK}
PERMITTED: dict[Role, frozenset[Action]] = {
    Role.AGENT: _AGENT,
    Role.APPROVER: _APPROVER,
    Role.ADMIN: frozenset(Action),
}
"""What each role may do."""

STARTS_FROM: dict[Action, frozenset[Status]] = {
    Action.VALIDATE: VALIDATABLE,
    Action.APPROVE: DECIDABLE,
    Action.REJECT: DECIDABLE,
    Action.APPLY: APPLYABLE,
    Action.ROLLBACK: ROLLBACKABLE,
}
"""The states a plan must be in for each action on it (see :mod:`airlock.lifecycle`)."""

PLAN_ACTIONS = tuple(STARTS_FROM)
"""The actions that act on one plan (the buttons of its page)."""

_VERBS: dict[Action, str] = {
    Action.READ: "read plans and the audit log",
    Action.SUBMIT: "submit plans",
    Action.VALIDATE: "validate plans",
    Action.APPROVE: "approve plans",
    Action.REJECT: "reject plans",
    Action.APPLY: "apply plans",
    Action.ROLLBACK: "roll back plans",
    Action.RUN: "run code",
    Action.MANAGE_TOKENS: "manage tokens",
    Action.RECOVER: "recover unfinished transactions",
    Action.GC: "purge kept-aside files",
    Action.ANCHOR_AUDIT: "re-anchor the audit log",
}


@dataclass(frozen=True)
class Principal:
    """Who acts: a name recorded in the audit log, a role, and how that was established.

    ``via`` is ``"token:<id>"`` for an API token (also behind a review-page sign-in) or ``"os"``
    for the operating-system account of a local operator. ``note`` is what the caller said about
    itself (the command line's ``--actor``): recorded beside the identity, never instead of it.
    """

    name: str
    role: Role
    via: str
    note: str = ""

    @property
    def token_id(self) -> str | None:
        return self.via.removeprefix("token:") if self.via.startswith("token:") else None


def local_operator(note: str = "") -> Principal:
    """The operating-system account running this process, as ``os:<user>``: whoever can run
    Airlock's own commands on the workspace already holds its files and its database, so it is an
    administrator (and, like everyone, may not approve a plan it submitted)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        user = f"uid{os.getuid()}"
    return Principal(name=f"os:{user}", role=Role.ADMIN, via="os", note=note.strip())


def acting(by: Principal | None) -> Principal:
    """``by``, or the local operator for a library caller that names no principal (the
    operating-system account running this process, which holds the workspace anyway)."""
    return by if by is not None else local_operator()


class PlanFacts(Protocol):
    """What the decision needs to know about a plan."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def author(self) -> str: ...


def refusal(by: Principal, action: Action, plan: PlanFacts | None = None) -> AirlockError | None:
    """Why ``by`` may not do ``action`` (to ``plan``), or None if it may."""
    if action not in PERMITTED[by.role]:
        needed = next(role for role in Role if action in PERMITTED[role])
        return NotPermittedError(
            f"{by.name!r} has the role {by.role}, which may not {_VERBS[action]}",
            hint=f"that needs the {needed} role; ask an administrator",
        )
    if plan is None:
        return None
    allowed = STARTS_FROM.get(action)
    if allowed is not None and plan.status not in allowed:
        return PlanStateError(
            f"plan {plan.id!r} is {plan.status}; only a plan that is "
            f"{' or '.join(sorted(allowed))} can {action}",
            hint=f"see `airlock plan show {plan.id}`",
        )
    if action is Action.APPROVE and by.name == plan.author:
        return NotPermittedError(
            f"{by.name!r} wrote plan {plan.id!r} and cannot approve it",
            hint="a different person must approve it",
        )
    return None


def authorize(by: Principal, action: Action, plan: PlanFacts | None = None) -> None:
    """Raise the reason ``by`` may not do ``action`` (to ``plan``), if there is one."""
    refused = refusal(by, action, plan)
    if refused is not None:
        raise refused


def allowed_actions(by: Principal, plan: PlanFacts) -> frozenset[Action]:
    """The actions on ``plan`` that ``by`` may take now (a page shows these buttons only; the
    workspace checks each again, with everything else it knows, when it is taken)."""
    return frozenset(a for a in PLAN_ACTIONS if refusal(by, a, plan) is None)
