"""What the review page shows besides the folder trees, computed from plain data: previews of the
files a plan writes, labels (the list's tabs, statuses, events), ages, badges and event summaries.

The trees before and after a plan are built in the core, by :mod:`airlock.before_after`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from airlock.audit import UNREADABLE
from airlock.before_after import scope_relative
from airlock.content import ContentStore
from airlock.errors import AirlockError
from airlock.plan import Plan, Write
from airlock.plan_lists import TAB_KEYS, Tab
from airlock.plan_lists import tab_of as tab_of
from airlock.validation import Change

PREVIEW_LINES = 40
PREVIEW_BYTES = 64 * 1024


@dataclass
class Preview:
    path: str
    size: int
    action: str
    lines: list[str]
    more_lines: int
    binary: bool


def previews(
    plan: Plan,
    changes: Sequence[Change],
    lines: int = PREVIEW_LINES,
    content: ContentStore | None = None,
) -> list[Preview]:
    """The first lines of every file the plan writes (text as text; anything else said so).
    Stored bodies are previewed from ``content``: only their first bytes are read."""
    out = []
    for change in changes:
        if change.action not in ("create", "overwrite"):
            continue
        op = plan.operations[change.op] if change.op < len(plan.operations) else None
        if not isinstance(op, Write):
            continue
        try:
            data = op.head(content, PREVIEW_BYTES + 1)
        except AirlockError:  # a stored body gone missing: validation reports it, not a preview
            data = b"\x00"
        more = len(data) > PREVIEW_BYTES
        data = data[:PREVIEW_BYTES]
        text: str | None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:  # text cut inside a character is still text
            cut = more and exc.start >= len(data) - 3
            text = data[: exc.start].decode("utf-8") if cut else None
        binary = text is None or "\x00" in text
        all_lines = [] if binary or text is None else text.splitlines()
        shown = all_lines[:lines]
        out.append(
            Preview(
                path=scope_relative(change.path, plan.scope),
                size=change.size,
                action=change.action,
                lines=shown,
                more_lines=len(all_lines) - len(shown),
                binary=binary,
            )
        )
    return out


TAB_LABELS: dict[Tab, str] = {
    "review": "Needs review",
    "ready": "Ready to apply",
    "applied": "Applied",
    "failed": "Failed",
    "rolled_back": "Rolled back",
    "rejected": "Rejected",
}
TABS: list[tuple[Tab, str]] = [(key, TAB_LABELS[key]) for key in TAB_KEYS]
"""The list's tabs, in order, with their labels (which plan is on which: ``tab_of``, in the
core's :mod:`airlock.plan_lists`)."""


STATUS_LABELS = {
    "submitted": "Submitted",
    "validated": "Checked",
    "invalid": "Invalid",
    "approved": "Approved",
    "rejected": "Rejected",
    "applying": "Applying…",
    "applied": "Applied",
    "failed": "Failed",
    "rolling_back": "Rolling back…",
    "rolled_back": "Rolled back",
}


def age(then: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long ago, said briefly: "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return "1 day ago" if days == 1 else f"{days} days ago"


def change_badges(counts: dict[str, int]) -> list[tuple[str, str]]:
    """A plan's counts as short phrases with their kind: [("24 moves", "move"), ...]."""
    out: list[tuple[str, str]] = []

    def add(number: int, one: str, many: str, kind: str) -> None:
        if number:
            out.append((f"{number} {one if number == 1 else many}", kind))

    add(counts.get("delete", 0), "deletion", "deletions", "delete")
    add(counts.get("overwrite", 0), "overwrite", "overwrites", "overwrite")
    add(counts.get("move", 0), "move", "moves", "move")
    add(counts.get("copy", 0), "copy", "copies", "copy")
    add(counts.get("write", 0) + counts.get("mkdir", 0), "new", "new", "new")
    return out


def when(text: str) -> str:
    """An ISO timestamp as "2024-07-13 17:05 UTC" (the text itself if it is not one)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


EVENT_LABELS = {
    "submitted": "Submitted",
    "validated": "Checked",
    "approved": "Approved",
    "rejected": "Rejected",
    "applied": "Applied",
    "failed": "Failed",
    "rolled_back": "Rolled back",
    "recovered": "Recovered after a crash",
    "purged": "Kept-aside files purged",
}


def event_summary(kind: str, payload: dict[str, object]) -> str:
    """One line saying what an audit event recorded."""
    if set(payload) == {UNREADABLE}:
        return "its recorded details are unreadable: the database was edited"
    if kind == "submitted":
        return f"{payload.get('operations', '?')} operation(s) in {payload.get('scope', '?')}"
    if kind == "validated":
        if not payload.get("valid"):
            errors = payload.get("errors")
            return f"invalid: {len(errors) if isinstance(errors, list) else '?'} error(s)"
        needs = payload.get("needs_approval")
        if isinstance(needs, list) and needs:
            return "valid; needs approval (" + ", ".join(str(n) for n in needs) + ")"
        return "valid; no approval needed"
    if kind in ("approved", "rejected"):
        comment = str(payload.get("comment") or "")
        return f"“{comment}”" if comment else "no comment"
    if kind in ("applied", "rolled_back"):
        operations = payload.get("operations")
        done = f"{len(operations)} change(s)" if isinstance(operations, list) else "done"
        set_aside = payload.get("set_aside")
        if isinstance(set_aside, list) and set_aside:
            done += f"; forced, {len(set_aside)} changed entr(ies) set aside"
        return done
    if kind == "failed":
        return str(payload.get("error") or "failed; workspace unchanged")
    if kind == "recovered":
        return str(payload.get("result") or "")
    return ""
