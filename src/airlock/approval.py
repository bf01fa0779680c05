"""May this plan be applied now? Its latest validation must be of its current content, valid,
vouched for by the audit log, approved when it needs approval (by an approval the audit log
vouches for, on that validation), and not stale: nothing it validated may have changed since."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from airlock import audit
from airlock.db import PlanRow
from airlock.errors import NotPermittedError, PlanInvalidError, PlanStateError, StalePlanError
from airlock.permissions import Action, Principal, authorize
from airlock.storage import Storage
from airlock.store import Store
from airlock.validate import stale_paths


def applyable_report(session: Session, row: PlanRow, by: Principal, key: bytes) -> dict[str, Any]:
    """The stored report (as JSON, as written: parsing 10,000 changes again costs) if ``by``
    may apply the plan now (staleness aside: :func:`refuse_if_stale`); else the error why not."""
    authorize(by, Action.APPLY, row)
    validation = Store.latest_validation(session, row.id)
    if validation is None or validation.digest != row.digest:
        raise PlanStateError(
            f"plan {row.id!r} has not been validated",
            hint=f"run `airlock plan validate {row.id}` first",
        )
    report: dict[str, Any] = validation.report
    if not audit.vouches(
        session,
        key,
        "validated",
        row.id,
        payload={"valid": report["valid"], "needs_approval": report["needs_approval"]},
        latest=True,
    ):
        raise NotPermittedError(
            f"the validation of plan {row.id!r} is not the one the audit log recorded; "
            "it may have been forged",
            hint=f"run `airlock audit verify`, then `airlock plan validate {row.id}` and "
            "review the new report",
        )
    if not report["valid"]:
        raise PlanInvalidError(
            f"plan {row.id!r} did not pass validation",
            hint="fix the errors in its report and submit a corrected plan",
            details=[issue["message"] for issue in report["errors"]],
        )
    if report["needs_approval"]:
        decision = Store.latest_decision(session, row.id)
        if (
            decision is None
            or decision.decision != "approved"
            or decision.digest != row.digest
            or decision.validation_id != validation.id
        ):
            raise NotPermittedError(
                f"plan {row.id!r} needs a person's approval ({', '.join(report['needs_approval'])})",
                hint=f"an approver runs `airlock plan approve {row.id}` after reviewing its "
                "report (or approves it on the review page)",
            )
        if not audit.vouches(
            session,
            key,
            "approved",
            row.id,
            actor=decision.actor,
            payload={"validation": decision.validation_id, "digest": decision.digest},
        ):
            raise NotPermittedError(
                f"the approval of plan {row.id!r} is not in the audit log; it may have been forged",
                hint="run `airlock audit verify`; a person must approve the plan again",
            )
    return report


def refuse_if_stale(plan_id: str, report: dict[str, Any], storage: Storage) -> None:
    """Raise if anything the report validated changed since (run under the scope lock)."""
    contents = report.get("folder_contents")
    if contents is None and any(
        c["kind"] == "dir" and c["action"] != "mkdir" for c in report["changes"]
    ):
        raise StalePlanError(
            f"plan {plan_id!r} was validated by an older Airlock that did not record what its "
            "folders hold, so its approval cannot be checked against them",
            hint=f"run `airlock plan validate {plan_id}`, review the new report "
            "(and approve it again if it needs approval), then apply",
        )
    stale = stale_paths(report["preconditions"], storage, contents)
    if stale:
        raise StalePlanError(
            f"plan {plan_id!r} is stale: {len(stale)} path(s) changed since it was validated",
            hint=f"run `airlock plan validate {plan_id}`, review the new report "
            "(and approve it again if it needs approval), then apply",
            details=stale[:50],
        )
