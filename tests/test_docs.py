"""The README's two commands are the ones the project and CI actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "the README opens with a sh block of commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_demo_then_tests() -> None:
    assert readme_commands()[:2] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M)


def test_every_exit_code_in_the_error_tree_is_documented() -> None:
    from airlock import errors

    readme = (ROOT / "README.md").read_text()
    codes = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AirlockError)
    }
    for code in codes:
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} is not in the README"
