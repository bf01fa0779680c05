"""One plan's review page, for plans of any size: what it lists, draws and previews, page by page.

A plan may make as many changes as the policy's ``max_operations`` (50,000 by default), and the
page must stay quick to make and possible to read. So it:

* lists the changes :data:`CHANGES_PER_PAGE` at a time (``?page=N``), deletions and overwrites
  first (the plan's order within each kind); a plan without changes (invalid, or not checked yet)
  lists its operations the same way;
* draws the folder trees before and after only for plans of at most :data:`TREE_LIMIT` changes;
  a larger plan gets a summary of the folders its changes land in instead;
* previews the files written by the changes of the page shown, at most :data:`PREVIEWS_LISTED`;
* lists the first :data:`ISSUES_LISTED` errors and warnings, counts the rest by code, and puts
  each operation's warnings beside its change, on whichever page it is;
* shows every name that could be misread escaped (:func:`shown`, see :mod:`airlock.names`).

Pure functions over a plan, its validation report and (for the trees, drawn by
:mod:`airlock.before_after`) a listing of the scope.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from markupsafe import Markup

from airlock import before_after
from airlock.content import ContentStore
from airlock.names import escaped, misleading
from airlock.plan import Plan
from airlock.service import review
from airlock.storage.base import Storage
from airlock.validate import Change, Issue, Validation

CHANGES_PER_PAGE = 500
TREE_LIMIT = 2_000
"""Most changes a plan may make for its page to draw the folder trees (each tree then has at most
the listing's 5,000 entries plus these)."""
FOLDERS_LISTED = 200
PREVIEWS_LISTED = 50
ISSUES_LISTED = 200
RAW_DETAILS_CHARS = 20_000
"""Most characters of an audit event's recorded details printed on the page (an apply of 50,000
changes records every path and hash); the API has them whole."""

ORDER = ("delete", "overwrite", "move", "copy", "create", "mkdir")
"""The order the page lists changes in: what destroys or replaces first."""


@dataclass
class Pager:
    number: int
    pages: int
    first: int
    """The position (from 1) of the first item on this page; 0 when there are none."""
    last: int
    total: int

    @property
    def links(self) -> list[int]:
        """The page numbers to link to: the first, the last, and those near this one."""
        near = range(max(1, self.number - 2), min(self.pages, self.number + 2) + 1)
        return sorted({1, self.pages, *near})


@dataclass
class FolderCount:
    path: str
    """Scope-relative ("" for the scope itself)."""
    counts: dict[str, int]
    """As a validation counts them: mkdir, write, overwrite, move, copy, delete."""


@dataclass
class PlanView:
    pager: Pager
    rows: list[Change]
    """The changes on this page, in the order listed."""
    numbers: list[int]
    """Each row's place in the validation's changes, from 1 (how its files are opened)."""
    operations: list[tuple[int, object, bool]]
    """For a plan without changes: this page's operations (index, operation, refused)."""
    trees: before_after.Trees | None
    """None when the plan is too large to draw (see ``folders``) or makes no change."""
    folders: list[FolderCount] = field(default_factory=list)
    more_folders: int = 0
    previews: list[review.Preview] = field(default_factory=list)
    more_previews: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    unlisted: list[tuple[str, int]] = field(default_factory=list)
    """Errors and warnings not listed, counted by code."""
    op_warnings: dict[int, list[Issue]] = field(default_factory=dict)
    """The warnings of the operations on this page, by operation index."""
    between: bool = False
    """The files are between two states (an apply or rollback runs elsewhere): no trees."""


def page_number(text: str) -> int:
    """A ``?page=`` value as a number from 1 (anything else is the first page)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 9 else 1


def pager(total: int, number: int, per_page: int) -> Pager:
    pages = max(1, -(-total // per_page))
    number = min(max(number, 1), pages)
    start = (number - 1) * per_page
    last = min(total, start + per_page)
    return Pager(number, pages, start + 1 if last > start else 0, last, total)


def ordered(changes: list[Change]) -> list[int]:
    """The indexes of the changes in the order the page lists them (:data:`ORDER`; the plan's
    order within a kind)."""
    rank = {action: index for index, action in enumerate(ORDER)}
    return sorted(range(len(changes)), key=lambda n: rank[changes[n].action])


def folder_counts(changes: list[Change], scope: str) -> list[FolderCount]:
    """The folders the changes land in (a move's destination), with what lands there, by path."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for change in changes:
        folder = before_after.scope_relative(change.path, scope).rpartition("/")[0]
        action = {"create": "write", "mkdir": "mkdir"}.get(change.action, change.action)
        found[folder][action] += 1
        if change.action == "copy" and change.replaces:
            found[folder]["overwrite"] += 1
    return [FolderCount(path, dict(counts)) for path, counts in sorted(found.items())]


def build(
    plan: Plan,
    validation: Validation | None,
    storage: Storage,
    *,
    applied: bool,
    page: int = 1,
    content: ContentStore | None = None,
    listing: tuple[list[before_after.Listed], bool] | None = None,
    between: bool = False,
) -> PlanView:
    """What the page of ``plan`` shows at ``page``. ``applied``: the scope is as the plan left it
    (the trees are rebuilt backwards); reads the scope only to draw the trees, unless given its
    ``listing`` (as :func:`~airlock.before_after.list_scope` returns it). ``between``: the files
    are between two states (an apply or rollback runs) and no listing was kept: no trees."""
    per_page = CHANGES_PER_PAGE
    changes = validation.changes if validation else []
    errors = validation.errors if validation else []
    warnings = validation.warnings if validation else []
    if changes:
        paging = pager(len(changes), page, per_page)
        numbers = [n + 1 for n in ordered(changes)[paging.first - 1 : paging.last]]
        rows = [changes[n - 1] for n in numbers]
        operations: list[tuple[int, object, bool]] = []
    else:
        paging = pager(len(plan.operations), page, per_page)
        refused = {issue.op for issue in errors}
        rows, numbers = [], []
        operations = [
            (index, plan.operations[index], index in refused)
            for index in range(paging.first - 1, paging.last)
        ]
    view = PlanView(paging, rows, numbers, operations, trees=None)
    view.between = between and listing is None
    if changes and len(changes) <= TREE_LIMIT and not view.between:
        entries, truncated = listing or before_after.list_scope(storage, plan.scope)
        view.trees = before_after.build_trees(
            plan.scope, entries, changes, applied=applied, truncated=truncated
        )
    elif changes and not view.between:
        folders = folder_counts(changes, plan.scope)
        view.folders, view.more_folders = folders[:FOLDERS_LISTED], len(folders) - FOLDERS_LISTED
    written = sorted(
        (row for row in rows if row.action in ("create", "overwrite")), key=lambda c: c.op
    )
    view.previews = review.previews(plan, written[:PREVIEWS_LISTED], content=content)
    view.more_previews = max(0, len(written) - PREVIEWS_LISTED)
    view.errors, view.warnings = errors[:ISSUES_LISTED], warnings[:ISSUES_LISTED]
    unlisted = Counter(issue.code for issue in errors[ISSUES_LISTED:])
    unlisted.update(issue.code for issue in warnings[ISSUES_LISTED:])
    view.unlisted = sorted(unlisted.items())
    on_page = {row.op for row in rows} | {index for index, _op, _bad in operations}
    for issue in warnings:
        if issue.op is not None and issue.op in on_page:
            view.op_warnings.setdefault(issue.op, []).append(issue)
    return view


def shown(text: object) -> Markup | str:
    """A name (or any text from a plan) for the page: escaped, and marked so, if a reader could
    misread it (:func:`airlock.names.escaped`); else as it is. A Jinja filter."""
    if not isinstance(text, str):
        return "" if text is None else str(text)
    reasons = misleading(text)
    if not reasons:
        return text
    return Markup('<span class="misleading" title="Shown escaped: {}">{}</span>').format(
        "; ".join(reasons), escaped(text)
    )


def raw_details(payload: object) -> str:
    """An audit event's recorded details as indented JSON, cut at :data:`RAW_DETAILS_CHARS`."""
    compact = json.dumps(payload)
    if len(compact) <= RAW_DETAILS_CHARS:
        return json.dumps(payload, indent=2)
    return (
        compact[:RAW_DETAILS_CHARS]
        + f"… ({len(compact) - RAW_DETAILS_CHARS:,} more characters: GET /api/v1/audit/events has them all)"
    )
