"""What the library hands back: a plan with its report and decisions, an apply's result, a
recovered transaction. Plain data with ``to_dict`` for the JSON doors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from airlock.plan import Plan
from airlock.validate import Validation


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.id,
            "scope": self.plan.scope,
            "description": self.plan.description,
            "author": self.plan.author,
            "digest": self.digest,
            "status": self.status,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "operations": [
                op.model_dump(mode="json", exclude_none=True) for op in self.plan.operations
            ],
            "validation": self.validation.model_dump(mode="json") if self.validation else None,
            "validation_id": self.validation_id,
            "decisions": self.decisions,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "success": self.success,
            "operations_completed": self.operations_completed,
            "operations_failed": self.operations_failed,
            "transaction_id": self.transaction_id,
            "error": self.error,
            "differs": self.differs,
        }


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
