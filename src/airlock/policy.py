"""A workspace's policy: which areas plans may change, what is protected, limits, approval.

Plain data, loaded from ``.airlock/policy.toml`` (written by ``airlock init``), with pure
functions over it. Nothing here touches the filesystem except :func:`load_policy`.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from airlock.errors import InputError, UnsafePathError
from airlock.paths import STATE_DIR, RelPath, parse, render

APPROVAL_TRIGGERS = ("delete", "overwrite", "move", "copy", "write", "mkdir")


@dataclass(frozen=True)
class Limits:
    max_operations: int = 50_000
    max_bytes_written: int = 1 << 30
    max_deletions: int = 1_000


@dataclass(frozen=True)
class Policy:
    areas: tuple[str, ...] = ("projects", "Tools", "Database", "Reports")
    read_only: tuple[str, ...] = ("Tools",)
    protected: tuple[str, ...] = ()
    """Glob patterns (workspace-relative, fnmatch) that no plan may change, e.g. 'Database/*.csv'."""
    limits: Limits = field(default_factory=Limits)
    approval_required_for: tuple[str, ...] = ("delete", "overwrite")
    retention_days: float = 30.0
    run_reads: tuple[str, ...] = ("Tools",)
    """What every sandboxed run may read besides its scope (read-only): never a case by default."""
    run_grants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """More read-only paths for the runs of one scope (and the scopes below it)."""
    run_cache_bytes: int = 10 << 30
    """For files in a bucket: the local disk kept for the file bodies runs have read (the
    least recently read go first)."""

    def run_read_paths(self, scope: RelPath) -> list[RelPath]:
        """What a sandboxed run over ``scope`` may see read-only, besides the scope itself: the
        ethical wall. Paths inside the scope, or holding it, are left out."""
        granted = list(self.run_reads)
        for key, extra in self.run_grants:
            granted_to = parse(key, "runs.grants scope")
            if scope[: len(granted_to)] == granted_to:
                granted += extra
        found: list[RelPath] = []
        for text in granted:
            path = parse(text, "runs read path")
            overlaps = path[: len(scope)] == scope or scope[: len(path)] == path
            if path[0] != STATE_DIR and not overlaps and path not in found:
                found.append(path)
        return found

    def scope_problem(self, scope: RelPath) -> str | None:
        """Why a plan may not use this scope, or None if it may."""
        area = scope[0]
        if area not in self.areas:
            return (
                f"scope {render(scope)!r} is not inside a workspace area "
                f"({', '.join(self.areas)}); scope plans to a folder such as 'projects/<case>'"
            )
        if area in self.read_only:
            return f"area {area!r} is read-only by policy; no plan may change it"
        if len(scope) < 2:
            return (
                f"scope {render(scope)!r} is a whole area; scope the plan to one folder in it, "
                f"such as '{area}/<case>'"
            )
        return None

    def protected_by(self, path: RelPath) -> str | None:
        text = render(path)
        for pattern in self.protected:
            if fnmatch.fnmatchcase(text, pattern) or fnmatch.fnmatchcase(text, pattern + "/*"):
                return pattern
        return None

    def needs_approval(self, counts: dict[str, int]) -> list[str]:
        """The reasons a person must approve a plan with these change counts (empty: none)."""
        reasons = []
        for trigger in self.approval_required_for:
            count = counts.get(trigger, 0)
            if trigger == "any" or count:
                reasons.append(f"{count} {trigger}(s)" if trigger != "any" else "policy: all plans")
        return reasons


DEFAULT_POLICY_TOML = """\
# Airlock workspace policy. Edit, then re-validate plans; changes apply to new validations.

# Top-level folders of the workspace that plans may be scoped to.
areas = ["projects", "Tools", "Database", "Reports"]
# Areas no plan may change.
read_only = ["Tools"]
# Workspace-relative glob patterns no plan may create, change, move or delete.
protected = []
# Plans with any of these need a person's approval before apply:
# delete, overwrite, move, copy, write, mkdir, or "any".
approval_required_for = ["delete", "overwrite"]
# Days that deleted and overwritten files are kept aside before `airlock gc` may purge them.
retention_days = 30

[limits]
max_operations = 50000
max_bytes_written = 1073741824
max_deletions = 1000

[runs]
# What a sandboxed run sees, read-only, besides its own scope (writable). Never another case
# by default: this is the ethical wall between clients.
read = ["Tools"]
# For files in a bucket (gs://): bytes of local disk kept for the files runs have read, so an
# unchanged file is not downloaded again (the least recently read go first).
cache_bytes = 10737418240

[runs.grants]
# More read-only paths for the runs of one scope, e.g.
# "projects/Smith-v-Jones" = ["Reports/Smith-v-Jones"]
"""


def load_policy(path: Path) -> Policy:
    if not path.exists():
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        limits = Limits(**data.pop("limits", {}))
        runs = dict(data.pop("runs", {}))
        run_reads = tuple(str(item) for item in runs.pop("read", Policy.run_reads))
        run_cache_bytes = runs.pop("cache_bytes", Policy.run_cache_bytes)
        if not isinstance(run_cache_bytes, int) or run_cache_bytes < 0:
            raise ValueError(
                f"[runs] cache_bytes must be a number of bytes, not {run_cache_bytes!r}"
            )
        run_grants = tuple(
            (str(key), tuple(str(item) for item in value))
            for key, value in dict(runs.pop("grants", {})).items()
        )
        if runs:
            raise ValueError(f"unknown keys in [runs]: {', '.join(sorted(runs))}")
        for text in (*run_reads, *(p for _, extra in run_grants for p in extra)):
            parse(text, "a [runs] path")
        for key, _ in run_grants:
            parse(key, "a [runs.grants] scope")
        policy = Policy(
            areas=tuple(data.pop("areas", Policy.areas)),
            read_only=tuple(data.pop("read_only", Policy.read_only)),
            protected=tuple(data.pop("protected", ())),
            limits=limits,
            approval_required_for=tuple(
                data.pop("approval_required_for", Policy.approval_required_for)
            ),
            retention_days=float(data.pop("retention_days", Policy.retention_days)),
            run_reads=run_reads,
            run_grants=run_grants,
            run_cache_bytes=run_cache_bytes,
        )
    except (tomllib.TOMLDecodeError, TypeError, ValueError, UnsafePathError) as exc:
        raise InputError(
            f"the policy file {str(path)!r} is not valid: {exc}",
            hint="fix it, or delete it to go back to the defaults",
        ) from None
    if data:
        raise InputError(
            f"the policy file {str(path)!r} has unknown keys: {', '.join(sorted(data))}",
            hint="remove them; see the comments in a fresh `airlock init` policy",
        )
    unknown = set(policy.approval_required_for) - {*APPROVAL_TRIGGERS, "any"}
    if unknown:
        raise InputError(
            f"approval_required_for has unknown entries: {', '.join(sorted(unknown))}",
            hint=f"use any of: {', '.join(APPROVAL_TRIGGERS)}, any",
        )
    return policy
