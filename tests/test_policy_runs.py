"""The policy's `[runs]` table: what a sandboxed run may read besides its scope (the ethical wall)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.errors import InputError
from airlock.policy import DEFAULT_POLICY_TOML, Policy, load_policy

CASE_A = ("projects", "Case-A")


def test_by_default_a_run_reads_tools_and_no_case() -> None:
    assert Policy().run_read_paths(CASE_A) == [("Tools",)]


def test_a_grant_reaches_its_scope_and_the_scopes_below_it_only() -> None:
    policy = Policy(run_grants=(("projects/Case-A", ("Reports/Case-A", "projects/Case-B")),))

    assert policy.run_read_paths(CASE_A) == [
        ("Tools",),
        ("Reports", "Case-A"),
        ("projects", "Case-B"),
    ]
    assert policy.run_read_paths((*CASE_A, "sub")) == policy.run_read_paths(CASE_A)
    assert policy.run_read_paths(("projects", "Case-B")) == [("Tools",)]
    assert policy.run_read_paths(("projects", "Case-AB")) == [("Tools",)]


def test_the_scope_itself_what_holds_it_and_airlocks_state_are_never_read_areas(
    tmp_path: Path,
) -> None:
    policy = Policy(run_reads=("Tools", "projects", "projects/Case-A/sub", "Tools"))

    assert policy.run_read_paths(CASE_A) == [("Tools",)]

    path = tmp_path / "policy.toml"
    path.write_text('[runs]\nread = ["Tools", ".airlock"]\n', encoding="utf-8")
    with pytest.raises(InputError, match="Airlock's own state folder"):
        load_policy(path)


def test_the_default_policy_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY_TOML, encoding="utf-8")

    policy = load_policy(path)

    assert policy.run_reads == ("Tools",)
    assert policy.run_grants == ()


def test_grants_load_from_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[runs]\nread = ["Tools", "Database/forms"]\n'
        '[runs.grants]\n"projects/Case-A" = ["Reports/Case-A"]\n',
        encoding="utf-8",
    )

    policy = load_policy(path)

    assert policy.run_read_paths(CASE_A) == [
        ("Tools",),
        ("Database", "forms"),
        ("Reports", "Case-A"),
    ]


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[runs]\nread = ["../etc"]\n', "'..'"),
        ('[runs]\nread = ["/etc"]\n', "absolute"),
        ('[runs]\nwrite = ["Tools"]\n', "unknown keys in [runs]: write"),
        ('[runs.grants]\n"projects/A" = ["Tools/../.."]\n', "'..'"),
    ],
)
def test_a_bad_runs_table_is_refused_with_what_is_wrong(
    tmp_path: Path, toml: str, says: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(toml, encoding="utf-8")

    with pytest.raises(InputError) as raised:
        load_policy(path)

    assert says in raised.value.message
    assert raised.value.hint
