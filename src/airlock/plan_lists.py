"""Lists of plans as a reviewer sees them: which tab each plan is on, what a list may be filtered
by, and what one page of a list holds (pure; :meth:`airlock.store.Store.plan_page` runs it).

A plan's tab follows from its status and, for a checked plan, whether its latest report needs a
person's approval (:func:`tab_of`). The store filters and counts by tab in SQL, from the table
:func:`tab_table` derives from :func:`tab_of` itself, so the decision lives here alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from airlock.errors import InputError
from airlock.lifecycle import Status

Tab = Literal["review", "ready", "applied", "failed", "rolled_back", "rejected"]
TAB_KEYS: tuple[Tab, ...] = ("review", "ready", "applied", "failed", "rolled_back", "rejected")
DEFAULT_TAB: Tab = "review"
"""Where a status the engine does not know (none should exist) is listed."""

PER_PAGE = 50
TEXT_LIMIT = 200
"""The most characters a search may have (more are cut off)."""


def tab_of(status: str, needs_approval: bool) -> Tab:
    """Which list a plan belongs on, from the reviewer's point of view."""
    if status == Status.VALIDATED:
        return "review" if needs_approval else "ready"
    if status == Status.APPROVED:
        return "ready"
    if status in (Status.APPLIED, Status.APPLYING, Status.ROLLING_BACK):
        return "applied"
    if status in (Status.FAILED, Status.INVALID):
        return "failed"
    if status == Status.ROLLED_BACK:
        return "rolled_back"
    if status == Status.REJECTED:
        return "rejected"
    return DEFAULT_TAB  # submitted, not checked yet


def tab_table() -> dict[str, tuple[Tab, Tab]]:
    """Every status -> (its tab when its report needs approval, its tab when it does not), as
    :func:`tab_of` decides: what the store turns into SQL."""
    return {status.value: (tab_of(status, True), tab_of(status, False)) for status in Status}


@dataclass(frozen=True)
class PlanFilter:
    """What a list of plans is narrowed to (every field None or empty: no narrowing).

    ``since`` and ``until`` are days in UTC, both included; ``text`` is matched, whatever its
    case, as a part of the plan's id, its description or any path it names.
    """

    scope: str | None = None
    author: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", self.text.strip()[:TEXT_LIMIT])

    @property
    def submitted_from(self) -> dt.datetime | None:
        """The first moment the list includes (UTC), or None."""
        return _midnight(self.since) if self.since else None

    @property
    def submitted_before(self) -> dt.datetime | None:
        """The first moment after ``until`` (UTC), or None."""
        return _midnight(self.until + dt.timedelta(days=1)) if self.until else None

    @property
    def narrowed(self) -> bool:
        return bool(self.scope or self.author or self.since or self.until or self.text)


def parse_day(text: str) -> dt.date | None:
    """A day written YYYY-MM-DD (an empty text: None); anything else is refused."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10 and text[4] == text[7] == "-":
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise InputError(
        f"“{text[:40]}” is not a date", hint="write a day as YYYY-MM-DD, e.g. 2024-07-13"
    )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass
class ListedPlan:
    """One plan as a list shows it: what its row says, without parsing the plan or its report."""

    id: str
    description: str
    scope: str
    author: str
    status: str
    created_at: dt.datetime
    operations: int
    validation_id: int | None = None
    """Its latest validation (None: not checked yet); the fields below are that report's."""
    valid: bool = False
    needs_approval: list[str] = field(default_factory=list)
    error_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def tab(self) -> Tab:
        return tab_of(self.status, bool(self.needs_approval))


@dataclass
class PlanPage:
    """One page of a list: its plans (newest first), how many match in all, and per tab."""

    tab: Tab
    plans: list[ListedPlan]
    total: int
    """How many plans of ``tab`` match the filter."""
    tab_counts: dict[Tab, int]
    """How many plans match the filter on each tab."""
    number: int
    """This page's number (from 1; a number past the last page is the last page)."""
    per_page: int
    scopes: list[str]
    """Every scope that has plans (to choose from)."""
    authors: list[str]
    """Every author of a plan."""
