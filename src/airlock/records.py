"""What the library hands back: a plan with its report and decisions, an apply's result, a
recovered transaction. Plain data, with ``to_model`` (a pydantic model: the schema the doors
document) and ``to_dict`` (that model as JSON data) for the doors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, WrapSerializer

from airlock.errors import EXIT_OK, AirlockError, StorageError
from airlock.lifecycle import Status
from airlock.plan import Operation, Plan
from airlock.validate import Validation


def _as_submitted(value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    # Each operation as the plan gave it: a write without the body fields it left unset (the
    # only operation with fields that may be None; a plan may have 50,000 operations).
    return [
        {k: v for k, v in op.items() if v is not None} if op["op"] == "write" else op
        for op in handler(value)
    ]


class DecisionOut(BaseModel):
    """An approval or rejection: bound to the plan's digest and to the validation reviewed."""

    decision: Literal["approved", "rejected"]
    actor: str = Field(description="The principal that decided.")
    comment: str
    digest: str = Field(description="The digest of the plan's content that was decided on.")
    validation: int | None = Field(description="The id of the validation the approver saw.")
    at: str = Field(description="ISO 8601 date and time, in UTC.")


class PlanOut(BaseModel):
    """A plan with its status, its latest validation report and the decisions on it."""

    plan_id: str
    scope: str
    description: str
    author: str = Field(description="The principal that submitted it (never its approver).")
    digest: str = Field(description="SHA-256 of the plan's exact content.")
    status: Status
    reason: str | None = Field(description="Why the plan is in its status (e.g. why it failed).")
    created_at: str = Field(description="ISO 8601 date and time, in UTC.")
    operations: Annotated[list[Operation], WrapSerializer(_as_submitted)]
    validation: Validation | None = Field(
        description="The latest dry run: errors, warnings, every change, counts and bytes."
    )
    validation_id: int | None = Field(
        description="The id of that validation: send it with a decision, so that a plan checked "
        "again since is not decided on unseen."
    )
    decisions: list[DecisionOut]


@dataclass
class PlanRecord:
    id: str
    plan: Plan
    digest: str
    status: str
    reason: str | None
    created_at: dt.datetime
    validation: Validation | None = None
    validation_id: int | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def author(self) -> str:
        """The principal that submitted the plan."""
        return self.plan.author

    @property
    def needs_approval(self) -> list[str]:
        """Why the policy wants a person's approval of it, by its latest validation (empty: it
        needs none, or it is not validated)."""
        return self.validation.needs_approval if self.validation is not None else []

    def to_model(self) -> PlanOut:
        # Built from parts that are valid already: nothing is checked again (a plan may have
        # 50,000 operations).
        return PlanOut.model_construct(
            plan_id=self.id,
            scope=self.plan.scope,
            description=self.plan.description,
            author=self.plan.author,
            digest=self.digest,
            status=Status(self.status),
            reason=self.reason,
            created_at=self.created_at.isoformat(),
            operations=self.plan.operations,
            validation=self.validation,
            validation_id=self.validation_id,
            decisions=[DecisionOut.model_construct(**d) for d in self.decisions],
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_model().model_dump(mode="json")


class ApplyResultOut(BaseModel):
    """What an apply or rollback did."""

    plan_id: str
    success: bool
    operations_completed: int
    operations_failed: int
    transaction_id: str | None
    error: str | None = Field(description="Why it failed (it was undone); null on success.")
    differs: list[str] = Field(
        description="After a failed apply's undo: paths not as they were before it (changed by "
        "someone else meanwhile). Empty: the workspace is exactly as before."
    )


@dataclass
class ApplyResult:
    plan_id: str
    success: bool
    operations_completed: int
    operations_failed: int
    transaction_id: str | None
    error: str | None = None
    differs: list[str] = field(default_factory=list)
    """After a failed apply's undo: paths that are not as they were before it (someone else
    changed them meanwhile). Empty: the workspace is exactly as before."""
    failure: AirlockError | None = field(default=None, compare=False, repr=False)
    """Why it failed, as an error of the tree (see :func:`airlock.errors.failed_and_undone`);
    not part of the JSON (``error`` has its text)."""

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 on success, else the code of the error it failed with (a
        failure not recorded as an error counts as a storage failure)."""
        if self.success:
            return EXIT_OK
        return StorageError.exit_code if self.failure is None else self.failure.exit_code

    def to_model(self) -> ApplyResultOut:
        return ApplyResultOut(
            plan_id=self.plan_id,
            success=self.success,
            operations_completed=self.operations_completed,
            operations_failed=self.operations_failed,
            transaction_id=self.transaction_id,
            error=self.error,
            differs=self.differs,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_model().model_dump(mode="json")


@dataclass
class Recovered:
    transaction_id: str
    plan_id: str
    kind: str
    steps_undone: int
    differs: list[str] = field(default_factory=list)
    """Paths not as they were before the transaction after its undo (see ApplyResult)."""
    skipped: list[str] = field(default_factory=list)
    """Undo steps `airlock recover --resolve` could not run and left out."""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()
