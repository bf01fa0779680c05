"""The review page's pure helpers: the trees before and after a plan (src/airlock/before_after.py),
and previews, tabs and ages (src/airlock/service/review.py)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airlock import before_after
from airlock.before_after import Listed, Node
from airlock.demo.sample import DEMO_CASE, build_sample_workspace, sample_reorganisation
from airlock.plan import parse_plan
from airlock.policy import Policy
from airlock.service import review
from airlock.storage.memory import MemoryStorage
from airlock.validate import Change, validate
from airlock.workspace import Workspace
from support import person

SCOPE = "projects/Case-A"


def storage_with(files: dict[str, bytes], folders: tuple[str, ...] = ()) -> MemoryStorage:
    storage = MemoryStorage()
    made: set[str] = set()

    def mkdirs(path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in made:
                storage.mkdir(tuple(parts[:depth]))
                made.add(folder)

    mkdirs(SCOPE)
    for folder in folders:
        mkdirs(f"{SCOPE}/{folder}")
    for path, data in files.items():
        full = f"{SCOPE}/{path}"
        mkdirs(full.rsplit("/", 1)[0])
        storage.create(tuple(full.split("/")), [data])
    return storage


def changes_of(storage: MemoryStorage, *operations: dict[str, Any]) -> list[Change]:
    plan = parse_plan(
        {"scope": SCOPE, "description": "t", "author": "agent", "operations": list(operations)}
    )
    report = validate(plan, storage, Policy())
    assert report.valid, report.errors
    return report.changes


def flat(node: Node) -> dict[str, tuple[str, str]]:
    """Every entry below ``node``: path -> (mark, note)."""
    out: dict[str, tuple[str, str]] = {}
    for child in node.children:
        out[child.path] = (child.mark, child.note)
        out.update(flat(child))
    return out


def test_list_scope_lists_entries_relative_to_the_scope_parents_first() -> None:
    storage = storage_with({"a.txt": b"a", "inbox/b.pdf": b"bb"}, folders=("empty",))
    listing, truncated = before_after.list_scope(storage, SCOPE)
    assert not truncated
    assert [item.path for item in listing] == ["a.txt", "empty", "inbox", "inbox/b.pdf"]
    assert listing[0] == Listed("a.txt", "file", 1)
    assert listing[1] == Listed("empty", "dir", None)


def test_list_scope_stops_at_the_limit_and_says_so() -> None:
    storage = storage_with({f"f{n}.txt": b"x" for n in range(10)})
    listing, truncated = before_after.list_scope(storage, SCOPE, limit=4)
    assert truncated
    assert len(listing) == 4


def test_list_scope_of_a_missing_scope_is_empty() -> None:
    assert before_after.list_scope(MemoryStorage(), "projects/Nope") == ([], False)


def test_moves_deletes_and_new_entries_are_marked_on_both_sides() -> None:
    storage = storage_with({"scan1.pdf": b"1", "Thumbs.db": b"junk", "notes.txt": b"n"})
    changes = changes_of(
        storage,
        {"op": "mkdir", "path": "Medical"},
        {"op": "move", "source": "scan1.pdf", "destination": "Medical/2024-07-13 ER visit.pdf"},
        {"op": "delete", "path": "Thumbs.db"},
        {"op": "write", "path": "INDEX.md", "text": "# index\n"},
    )
    listing, _ = before_after.list_scope(storage, SCOPE)
    trees = before_after.build_trees(SCOPE, listing, changes)
    before, after = flat(trees.before), flat(trees.after)
    assert before == {
        "notes.txt": ("same", ""),
        "scan1.pdf": ("moved", "Medical/2024-07-13 ER visit.pdf"),
        "Thumbs.db": ("deleted", ""),
    }
    assert after == {
        "INDEX.md": ("new", ""),
        "Medical": ("new", ""),
        "Medical/2024-07-13 ER visit.pdf": ("moved", "scan1.pdf"),
        "notes.txt": ("same", ""),
    }
    assert trees.before.name == trees.after.name == "Case-A"
    # Folders first, then files, case-insensitively; sizes come along.
    assert [child.name for child in trees.after.children] == ["Medical", "INDEX.md", "notes.txt"]
    assert trees.after.children[1].size == len(b"# index\n")
    assert trees.before.changed and trees.after.changed
    assert not trees.after.children[2].changed


def test_a_moved_folder_carries_its_contents_and_a_chain_of_moves_shows_the_origin() -> None:
    storage = storage_with({"inbox/a.pdf": b"a", "inbox/b.pdf": b"b", "x.txt": b"x"})
    changes = changes_of(
        storage,
        {"op": "move", "source": "inbox", "destination": "Archive"},
        {"op": "move", "source": "x.txt", "destination": "y.txt"},
        {"op": "move", "source": "y.txt", "destination": "Archive/z.txt"},
    )
    listing, _ = before_after.list_scope(storage, SCOPE)
    trees = before_after.build_trees(SCOPE, listing, changes)
    before, after = flat(trees.before), flat(trees.after)
    assert before["inbox"] == ("moved", "Archive")
    assert before["inbox/a.pdf"] == ("carried", "Archive/a.pdf")
    assert before["x.txt"] == ("moved", "Archive/z.txt")
    assert after["Archive"] == ("moved", "inbox")
    assert after["Archive/a.pdf"][0] == "carried"
    assert after["Archive/z.txt"] == ("moved", "x.txt")
    assert "y.txt" not in after


def test_a_deleted_folder_marks_everything_inside_it() -> None:
    storage = storage_with({"old/a.txt": b"a", "old/deep/b.txt": b"b", "keep.txt": b"k"})
    changes = changes_of(storage, {"op": "delete", "path": "old"})
    listing, _ = before_after.list_scope(storage, SCOPE)
    before = flat(before_after.build_trees(SCOPE, listing, changes).before)
    assert {path for path, (mark, _) in before.items() if mark == "deleted"} == {
        "old",
        "old/a.txt",
        "old/deep",
        "old/deep/b.txt",
    }
    assert before["keep.txt"] == ("same", "")


def test_overwrites_and_copies_say_what_they_replace() -> None:
    storage = storage_with({"a.txt": b"old", "b.txt": b"bee", "c.txt": b"see"})
    changes = changes_of(
        storage,
        {"op": "write", "path": "a.txt", "text": "new content", "overwrite": True},
        {"op": "copy", "source": "b.txt", "destination": "c.txt", "overwrite": True},
        {"op": "copy", "source": "b.txt", "destination": "b copy.txt"},
    )
    listing, _ = before_after.list_scope(storage, SCOPE)
    trees = before_after.build_trees(SCOPE, listing, changes)
    before, after = flat(trees.before), flat(trees.after)
    assert before["a.txt"] == ("replaced", "")
    assert before["c.txt"] == ("replaced", "")
    assert before["b.txt"] == ("same", "")
    assert after["a.txt"] == ("overwritten", "")
    assert after["c.txt"] == ("copied", "b.txt")
    assert after["b copy.txt"] == ("copied", "b.txt")
    replaced = {child.path: child.replaces for child in trees.after.children}
    assert replaced == {"a.txt": True, "b copy.txt": False, "b.txt": False, "c.txt": True}


def test_a_truncated_listing_still_shows_every_changed_entry() -> None:
    storage = storage_with({"a.txt": b"a", "z/deep.txt": b"d"})
    changes = changes_of(storage, {"op": "move", "source": "z/deep.txt", "destination": "d.txt"})
    trees = before_after.build_trees(SCOPE, [Listed("a.txt", "file", 1)], changes, truncated=True)
    assert trees.truncated
    assert flat(trees.before)["z/deep.txt"] == ("moved", "d.txt")
    assert flat(trees.after)["d.txt"] == ("moved", "z/deep.txt")


def test_after_apply_the_before_tree_is_rebuilt_to_match_the_review(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    build_sample_workspace(root)
    with Workspace.init(root) as ws:
        record = ws.validate(ws.submit(sample_reorganisation(), plan_id="p").id)
        assert record.validation is not None
        changes = record.validation.changes
        scope = f"projects/{DEMO_CASE}"
        listing, _ = before_after.list_scope(ws.storage, scope)
        reviewed = before_after.build_trees(scope, listing, changes)
        ws.approve("p", by=person("jane"))
        assert ws.apply("p", by=person("jane")).success
        listing_after, _ = before_after.list_scope(ws.storage, scope)
        rebuilt = before_after.build_trees(scope, listing_after, changes, applied=True)
    assert rebuilt.reconstructed and not reviewed.reconstructed
    assert rebuilt.before == reviewed.before
    assert rebuilt.after == reviewed.after
    marks = [mark for mark, _ in flat(reviewed.before).values()]
    assert marks.count("deleted") == 4
    assert marks.count("moved") == 24


def test_after_apply_what_an_overwrite_replaced_is_shown_without_its_old_size() -> None:
    storage = storage_with({"a.txt": b"the new text"})  # as it is after the apply
    change = Change(
        op=0, action="overwrite", path=f"{SCOPE}/a.txt", size=12, replaces=True, sha256_before="x"
    )
    trees = before_after.build_trees(
        SCOPE, before_after.list_scope(storage, SCOPE)[0], [change], applied=True
    )
    assert trees.before.children[0].mark == "replaced"
    assert trees.before.children[0].size is None
    assert trees.after.children[0].mark == "overwritten"
    assert trees.after.children[0].size == 12


def test_previews_show_the_first_lines_of_text_and_say_when_content_is_binary() -> None:
    storage = storage_with({})
    text = "".join(f"line {n}\n" for n in range(100))
    operations: list[dict[str, Any]] = [
        {"op": "write", "path": "long.md", "text": text},
        {"op": "write", "path": "small.txt", "text": "<script>x</script>"},
        {"op": "write", "path": "img.bin", "base64": base64.b64encode(b"\x00\x01\xff").decode()},
        {"op": "mkdir", "path": "folder"},
    ]
    plan = parse_plan(
        {"scope": SCOPE, "description": "", "author": "agent", "operations": operations}
    )
    changes = changes_of(storage, *operations)
    shown = review.previews(plan, changes)
    assert [p.path for p in shown] == ["long.md", "small.txt", "img.bin"]
    long, small, binary = shown
    assert long.lines == [f"line {n}" for n in range(40)]
    assert long.more_lines == 60
    assert small.lines == ["<script>x</script>"]  # escaping is the template's job
    assert small.more_lines == 0
    assert binary.binary and binary.lines == []


@pytest.mark.parametrize(
    ("status", "needs_approval", "tab"),
    [
        ("submitted", False, "review"),
        ("validated", True, "review"),
        ("validated", False, "ready"),
        ("approved", True, "ready"),
        ("applying", True, "applied"),
        ("applied", True, "applied"),
        ("rolling_back", True, "applied"),
        ("failed", False, "failed"),
        ("invalid", False, "failed"),
        ("rolled_back", True, "rolled_back"),
        ("rejected", True, "rejected"),
    ],
)
def test_each_status_has_one_tab(status: str, needs_approval: bool, tab: str) -> None:
    assert review.tab_of(status, needs_approval) == tab
    assert tab in dict(review.TABS)


def test_ages_are_said_briefly() -> None:
    now = dt.datetime(2024, 7, 13, 12, 0, tzinfo=dt.UTC)
    assert review.age(now - dt.timedelta(seconds=5), now) == "just now"
    assert review.age(now - dt.timedelta(minutes=5), now) == "5 min ago"
    assert review.age(now - dt.timedelta(hours=3), now) == "3 h ago"
    assert review.age(now - dt.timedelta(days=1, hours=2), now) == "1 day ago"
    assert review.age((now - dt.timedelta(days=9)).replace(tzinfo=None), now) == "9 days ago"
    assert review.age(now + dt.timedelta(minutes=1), now) == "just now"


def test_counts_become_badges_with_deletions_first() -> None:
    assert review.change_badges({"mkdir": 9, "move": 24, "delete": 1, "write": 1}) == [
        ("1 deletion", "delete"),
        ("24 moves", "move"),
        ("10 new", "new"),
    ]
    assert review.change_badges({}) == []


def test_audit_events_are_summarised_in_words() -> None:
    assert review.event_summary("approved", {"comment": "ok"}) == "“ok”"
    assert review.event_summary("rejected", {"comment": ""}) == "no comment"
    assert (
        review.event_summary("validated", {"valid": True, "needs_approval": ["4 delete(s)"]})
        == "valid; needs approval (4 delete(s))"
    )
    assert review.event_summary("validated", {"valid": False, "errors": ["a", "b"]}) == (
        "invalid: 2 error(s)"
    )
    assert review.event_summary("applied", {"operations": [{}, {}]}) == "2 change(s)"
    forced = review.event_summary("rolled_back", {"operations": [{}], "set_aside": ["x"]})
    assert "forced" in forced
    assert review.event_summary("failed", {"error": "disk full"}) == "disk full"
    assert review.when("2024-07-13T17:05:00+00:00") == "2024-07-13 17:05:00 UTC"
    assert review.when("not a time") == "not a time"
