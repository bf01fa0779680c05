"""Validation reports a person reads at a glance (like ``terraform plan``), as text.

Pure functions from a :class:`~airlock.workspace.PlanRecord` to lines; the command line colours
them, the service and web page may reuse them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from airlock.names import escaped, misleading
from airlock.records import PlanRecord
from airlock.validation import Change, Validation

SYMBOLS = {
    "mkdir": "+",
    "create": "+",
    "copy": "+",
    "move": "→",
    "overwrite": "~",
    "delete": "-",
}


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _scope_relative(path: str, scope: str) -> str:
    prefix = scope + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def change_line(change: Change, scope: str) -> str:
    """One change as a line; a name that could be misread is shown escaped, and said so."""
    line = _change_line(change, scope)
    reasons = misleading(change.path) + misleading(change.source or "")
    if reasons:
        line += f"   (!) shown escaped: {', '.join(dict.fromkeys(reasons))}"
    return line


def _change_line(change: Change, scope: str) -> str:
    return _bare_line(change, scope) + _copies_note(change, scope)


def _copies_note(change: Change, scope: str) -> str:
    """What a delete or overwrite leaves behind (nothing said when it was not checked)."""
    if change.copies is None:
        return ""
    if not change.copies:
        if change.kind == "dir":
            return "   (!) holds the only copy of some files in the case"
        return "   (!) only copy in the case"
    first = escaped(_scope_relative(change.copies[0], scope))
    more = f" (and {len(change.copies) - 1} more)" if len(change.copies) > 1 else ""
    if change.kind == "dir":
        return f"   every file has a copy that stays, e.g. at {first}{more}"
    return f"   identical copy stays at {first}{more}"


def _bare_line(change: Change, scope: str) -> str:
    path = escaped(_scope_relative(change.path, scope))
    source = escaped(_scope_relative(change.source, scope)) if change.source else ""
    symbol = SYMBOLS[change.action]
    replaced = " (replaces existing, kept aside)" if change.replaces else ""
    if change.action == "mkdir":
        return f"{symbol} mkdir     {path}/"
    if change.action == "create":
        return f"{symbol} create    {path} ({human_bytes(change.size)})"
    if change.action == "overwrite":
        return f"{symbol} overwrite {path} ({human_bytes(change.size)}; old file kept aside)"
    if change.action == "copy":
        return f"{symbol} copy      {source} → {path}{replaced}"
    if change.action == "move":
        return f"{symbol} move      {source} → {path}{replaced}"
    what = "folder " if change.kind == "dir" else ""
    return f"{symbol} delete    {what}{path} ({human_bytes(change.size)}; kept aside)"


def summary_line(validation: Validation) -> str:
    counts = validation.counts
    created = counts.get("write", 0) + counts.get("mkdir", 0) + counts.get("copy", 0)
    parts = [
        f"{created} to create",
        f"{counts.get('move', 0)} to move",
        f"{counts.get('overwrite', 0)} to overwrite",
        f"{counts.get('delete', 0)} to delete",
    ]
    return (
        f"Plan: {', '.join(parts)}; {human_bytes(validation.bytes_written)} written, "
        f"{human_bytes(validation.bytes_removed)} set aside."
    )


def record_lines(record: PlanRecord) -> list[str]:
    """:func:`report_lines` of a plan as the library hands it out."""
    return report_lines(
        record.id,
        record.plan.scope,
        record.plan.description,
        record.author,
        record.digest,
        record.status,
        record.validation,
        reasons(record.plan.operations),
    )


def reasons(operations: Sequence[object]) -> dict[int, str]:
    """The reason each operation gives, by its index (those that give one)."""
    return {index: why for index, op in enumerate(operations) if (why := getattr(op, "reason", ""))}


def changes_with_reasons(
    changes: Sequence[Change], scope: str, why: Mapping[int, str]
) -> Iterator[str]:
    """Each change's line; after the last change of an operation, the reason it gives."""
    for index, change in enumerate(changes):
        yield change_line(change, scope)
        last = index + 1 == len(changes) or changes[index + 1].op != change.op
        if last and change.op in why:
            yield f"    why: {escaped(why[change.op])}"


def report_lines(
    plan_id: str,
    scope: str,
    description: str,
    author: str,
    digest: str,
    status: str,
    validation: Validation | None,
    why: Mapping[int, str] | None = None,
) -> list[str]:
    lines = [
        f"Plan {plan_id} — {status}",
        f"  scope   {scope}",
        f"  author  {author}",
        f"  digest  {digest}",
    ]
    if description:
        lines.append(f"  about   {description}")
    lines.append("")
    if validation is None:
        lines.append("Not validated yet: run `airlock plan validate " + plan_id + "`.")
        return lines
    for line in changes_with_reasons(validation.changes, scope, why or {}):
        lines.append("  " + line)
    if validation.changes:
        lines.append("")
    for issue in validation.errors:
        lines.append(f"error: {escaped(issue.message)}")
    for issue in validation.warnings:
        where = f"operation {issue.op + 1}: " if issue.op is not None else ""
        lines.append(f"warning: {where}{escaped(issue.message)}")
    if validation.errors or validation.warnings:
        lines.append("")
    if validation.valid:
        lines.append(summary_line(validation))
        if validation.needs_approval:
            lines.append("Needs a person's approval: " + ", ".join(validation.needs_approval) + ".")
        else:
            lines.append("No approval needed by policy: it may be applied at once.")
    else:
        lines.append(f"Invalid: {len(validation.errors)} error(s). Nothing will be applied.")
    return lines
