"""An overwrite shows what changes inside its file: through `airlock plan diff` and
`plan show --diff` (real processes), on the plan's review page (the real service), and from the
library before and after apply."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from airlock import plan_diff
from airlock.workspace import Workspace
from servicekit import running_service, signed_in
from support import CASE, make_plan, person
from test_cli import airlock, ok_json
from test_review_page import SCOPE, submitted

OLD = "Dear Sir,\nthe quick brown fox\njumps over the lazy dog.\n"
NEW = "Dear Sir,\nthe quick red fox\njumps over the lazy dog.\nA line the agent added.\n"
EDIT = {"op": "write", "path": "letter.txt", "overwrite": True, "text": NEW}


def test_plan_diff_and_plan_show_diff_mark_the_changed_word_and_the_added_line(
    root: Path, tmp_path: Path
) -> None:
    (root / CASE / "letter.txt").write_text(OLD)
    ok_json("init", "--workspace", str(root))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan(EDIT)))
    env = {"AIRLOCK_WORKSPACE": str(root)}
    assert ok_json("plan", "submit", str(plan_file), "--id", "edit-1", env=env)["status"] == (
        "validated"
    )

    done = airlock("plan", "diff", "edit-1", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("~ overwrite letter.txt  operation 1 (-1 +2 lines)")
    changed = [line for line in lines if line.startswith(("  - ", "  + "))]
    assert changed == [
        "  - the quick [-brown-] fox",
        "  + the quick {+red+} fox",
        "  + A line the agent added.",
    ]
    assert "    jumps over the lazy dog." in lines

    shown = airlock("plan", "show", "edit-1", "--diff", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "~ overwrite letter.txt" in shown.stdout  # the report's line, then the diff
    assert [line for line in shown.stdout.splitlines() if line.startswith(("  - ", "  + "))] == (
        changed
    )
    assert "[-" not in airlock("plan", "show", "edit-1", env=env).stdout

    as_json = ok_json("plan", "diff", "edit-1", env=env)
    assert [(d["operation"], d["path"]) for d in as_json] == [(1, f"{CASE}/letter.txt")]
    marks = [line["mark"] for hunk in as_json[0]["diff"]["hunks"] for line in hunk["lines"]]
    assert marks == ["same", "removed", "added", "same", "added"]
    with_diffs = ok_json("plan", "show", "edit-1", "--diff", env=env)
    assert with_diffs["diffs"] == as_json

    # Changed since the plan was checked: said, not diffed against the wrong old text.
    (root / CASE / "letter.txt").write_text(OLD + "typed by a person\n")
    changed_since = airlock("plan", "diff", "edit-1", env=env).stdout
    assert plan_diff.CHANGED_SINCE in changed_since and "[-" not in changed_since


def test_the_plan_page_shows_the_removed_and_added_words_marked(tmp_path: Path) -> None:
    with running_service(tmp_path / "ws") as service:
        (service.root / SCOPE / "letter.txt").write_text(OLD)
        big = "".join(f"line {n}\n" for n in range(1000))
        (service.root / SCOPE / "long.txt").write_text(big)
        submitted(
            service,
            "page-edit",
            [
                EDIT,
                {
                    "op": "write",
                    "path": "long.txt",
                    "overwrite": True,
                    "text": big + "more\n" * 1000,
                },
                {"op": "write", "path": "blob.bin", "text": "new"},
            ],
        )
        response = signed_in(service).get("/ui/plans/page-edit")
        assert response.status_code == 200, response.text
        body = response.text
        section = body[body.index('data-testid="diffs"') :]
        section = section[: section.index("</section>")]
        assert "<del>brown</del>" in section and "<ins>red</ins>" in section
        assert re.findall(r"<(del|ins)>", section.split("long.txt")[0]) == ["del", "ins", "ins"]
        text = html.unescape(section)
        assert "A line the agent added." in text and "letter.txt" in text
        # Bounded: the long file's 1,000 added lines are cut, and the rest counted.
        assert section.count('class="dl dl-added"') < 400
        assert re.search(r"… [\d,]+ more lines", text)
        assert "blob.bin" not in text  # a new file has no old text: it is in the previews


def test_the_diff_of_an_applied_plan_comes_from_the_kept_aside_copy(ws: Workspace) -> None:
    (ws.root / CASE / "letter.txt").write_text(OLD)
    second = {"op": "write", "path": "letter.txt", "overwrite": True, "text": NEW + "again\n"}
    ws.submit(make_plan(EDIT, second), plan_id="applied")
    record = ws.validate("applied")
    before = plan_diff.record_diffs(ws, record)
    # The second write replaces the plan's own first one: diffed against that write's body.
    assert [(d.op, d.diff.removed, d.diff.added) for d in before] == [(0, 1, 2), (1, 0, 1)]
    ws.approve("applied", by=person("jane"))
    assert ws.apply("applied").success
    after = plan_diff.record_diffs(ws, ws.get("applied"))
    assert [d.diff for d in after] == [d.diff for d in before]

    ws.gc(older_than_days=0)
    purged = plan_diff.record_diffs(ws, ws.get("applied"))
    assert purged and all("purged" in (d.diff.unavailable or "") for d in purged)


def test_binary_and_big_overwrites_say_why_there_is_no_diff(ws: Workspace) -> None:
    (ws.root / CASE / "scan.pdf").write_bytes(b"%PDF-1.4\x00binary")
    (ws.root / CASE / "big.txt").write_text("x" * (1 << 20) + "!")
    ws.submit(
        make_plan(
            {"op": "write", "path": "scan.pdf", "overwrite": True, "text": "now text"},
            {"op": "write", "path": "big.txt", "overwrite": True, "text": "small"},
        ),
        plan_id="odd",
    )
    diffs = plan_diff.record_diffs(ws, ws.validate("odd"))
    assert [d.diff.unavailable for d in diffs] == [
        "the old file is binary (it holds a NUL byte): no text diff",
        "the old file is larger than 1 MiB: no text diff",
    ]
