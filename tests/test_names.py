"""Names a person could misread (src/airlock/names.py), and how the command line's report shows
them (src/airlock/report.py)."""

from __future__ import annotations

import pytest

from airlock import names
from airlock.report import change_line, report_lines
from airlock.validate import Change, Issue, Validation


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("invоice.pdf", "inv\\u043eice.pdf"),
        ("рор.pdf", "\\u0440\\u043e\\u0440.pdf"),
        ("report\u202efdp.exe", "report\\u202efdp.exe"),
        ("scan\u200b1.pdf", "scan\\u200b1.pdf"),
        ("no\u00a0break.txt", "no\\u00a0break.txt"),
        ("plain name.txt", "plain name.txt"),
        ("Договор contract.pdf", "Договор contract.pdf"),
        ("東京タワー.txt", "東京タワー.txt"),
        ("Müller v. Smith.pdf", "Müller v. Smith.pdf"),
    ],
)
def test_names_that_could_be_misread_are_escaped_and_no_others(text: str, shown: str) -> None:
    assert names.escaped(text) == shown
    assert bool(names.misleading(text)) == (shown != text)


def test_look_alikes_say_which_word_and_scripts() -> None:
    (mixed,) = names.look_alikes("Bills/invоice 2024.pdf")
    assert (mixed.word, mixed.scripts, mixed.whole) == ("invоice", ("CYRILLIC", "LATIN"), False)
    (whole,) = names.look_alikes("рор.pdf")
    assert (whole.word, whole.scripts, whole.whole) == ("рор", ("CYRILLIC",), True)
    assert names.look_alikes("рор") == []  # one script alone is not a mix
    assert names.script_names(("CYRILLIC", "GREEK", "LATIN")) == "Cyrillic, Greek and Latin"


def test_the_command_line_report_shows_misleading_names_escaped_and_says_why() -> None:
    change = Change(
        op=0, action="move", path="projects/C/Bills/invоice.pdf", source="projects/C/scan.pdf"
    )
    line = change_line(change, "projects/C")
    assert line.startswith("→ move      scan.pdf → Bills/inv\\u043eice.pdf")
    assert line.endswith("(!) shown escaped: look-alike letters of another script")
    report = Validation(
        valid=True,
        needs_approval=[],
        errors=[],
        warnings=[Issue(severity="warning", code="x", message="about 'invоice.pdf'", op=0)],
        changes=[change],
        counts={"move": 1},
        bytes_written=0,
        bytes_removed=0,
        preconditions={},
    )
    text = "\n".join(report_lines("p", "projects/C", "", "agent", "d", "validated", report))
    assert "invоice" not in text
    assert "warning: operation 1: about 'inv\\u043eice.pdf'" in text
