"""Recording what happens to a plan before it is applied: its submission, each validation and
each decision, each in one database transaction with its audit event (its state moved along the
lifecycle, its principal checked first)."""

from __future__ import annotations

from airlock import audit
from airlock.db import DecisionRow, PlanRow, ValidationRow
from airlock.errors import PlanStateError
from airlock.lifecycle import Status
from airlock.permissions import Action, Principal, authorize
from airlock.plan import Plan
from airlock.records import PlanRecord
from airlock.store import Store
from airlock.validation import Validation


def record_plan(store: Store, plan: Plan, plan_id: str, by: Principal) -> PlanRecord:
    """Store ``plan`` as ``plan_id`` (the same content again is a no-op)."""
    with store.write() as session:
        existing = session.get(PlanRow, plan_id)
        if existing is not None:
            if existing.digest != plan.digest:
                raise PlanStateError(
                    f"plan {plan_id!r} already exists with different content",
                    hint="plans never change once submitted; submit the new one under a new id",
                )
            return store.record(session, existing)
        row = PlanRow(
            id=plan_id,
            scope=plan.scope,
            description=plan.description,
            author=plan.author,
            digest=plan.digest,
            body=plan.canonical_json(),
            status=Status.SUBMITTED,
        )
        session.add(row)
        session.flush()
        store.parsed_plan(row, known=plan)
        audit.append_by(
            session,
            "submitted",
            by,
            plan_id,
            {"digest": plan.digest, "scope": plan.scope, "operations": len(plan.operations)},
        )
        return store.record(session, row)


def record_validation(store: Store, plan_id: str, by: Principal, report: Validation) -> PlanRecord:
    """Store ``report`` as the plan's latest validation (``by`` checked again: the plan may have
    moved on while it was simulated)."""
    with store.write() as session:
        row = store.plan(session, plan_id)
        authorize(by, Action.VALIDATE, row)
        stored = ValidationRow(
            plan_id=plan_id,
            digest=row.digest,
            valid=report.valid,
            report=report.model_dump(mode="json"),
        )
        session.add(stored)
        store.set_status(row, Status.VALIDATED if report.valid else Status.INVALID)
        audit.append_by(
            session,
            "validated",
            by,
            plan_id,
            {
                "valid": report.valid,
                "errors": [issue.message for issue in report.errors],
                "warnings": len(report.warnings),
                "counts": report.counts,
                "needs_approval": report.needs_approval,
            },
        )
        session.flush()
        return store.record(session, row, report=(stored.id, report))


def record_decision(
    store: Store,
    plan_id: str,
    decision: Status,
    by: Principal,
    comment: str,
    validation_id: int | None,
) -> PlanRecord:
    """Approve or reject the plan's latest valid validation; with ``validation_id``, only if
    that is the one the person looked at (a newer report is refused: the plan changed since)."""
    action = Action.APPROVE if decision is Status.APPROVED else Action.REJECT
    with store.write() as session:
        row = store.plan(session, plan_id)
        authorize(by, action, row)
        validation = store.latest_validation(session, plan_id)
        if validation_id is not None and (validation is None or validation.id != validation_id):
            raise PlanStateError(
                f"the plan changed since you looked; reload: plan {plan_id!r} was checked "
                f"again after the report you reviewed (validation {validation_id})",
                hint="reload the plan, review its new report, and decide again",
            )
        if validation is None or not validation.valid or validation.digest != row.digest:
            raise PlanStateError(
                f"plan {plan_id!r} has no valid validation of its current content",
                hint=f"run `airlock plan validate {plan_id}` and review the report first",
            )
        session.add(
            DecisionRow(
                plan_id=plan_id,
                validation_id=validation.id,
                digest=row.digest,
                decision=str(decision),
                actor=by.name,
                comment=comment,
            )
        )
        store.set_status(row, decision)
        audit.append_by(
            session,
            str(decision),
            by,
            plan_id,
            {"digest": row.digest, "validation": validation.id, "comment": comment},
        )
        session.flush()
        return store.record(session, row)
