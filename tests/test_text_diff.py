"""The text diff core: lines marked same, removed or added, words marked inside changed lines;
binary, non-UTF-8 and oversized content give no text diff and say why."""

from __future__ import annotations

from airlock import text_diff
from airlock.text_diff import Line, Segment, TextDiff, diff_bytes, render


def changed_lines(diff: TextDiff) -> list[Line]:
    return [line for hunk in diff.hunks for line in hunk.lines if line.mark != "same"]


def marked(line: Line) -> list[str]:
    return [s.text for s in line.segments if s.changed]


def test_one_changed_word_and_one_added_line_are_marked_exactly() -> None:
    old = b"Dear Sir,\nthe quick brown fox\njumps.\n"
    new = b"Dear Sir,\nthe quick red fox\njumps.\nA new line.\n"
    diff = diff_bytes(old, new)
    assert diff.unavailable is None and (diff.removed, diff.added) == (1, 2)
    removed, added, added_line = changed_lines(diff)
    assert (removed.mark, removed.old, removed.new) == ("removed", 2, None)
    assert removed.segments == (Segment("the quick "), Segment("brown", True), Segment(" fox"))
    assert (added.mark, added.new) == ("added", 2)
    assert marked(added) == ["red"] and added.text == "the quick red fox"
    assert (added_line.mark, added_line.new, added_line.text) == ("added", 4, "A new line.")
    assert added_line.segments == (Segment("A new line.", True),)
    assert [line.mark for line in diff.hunks[0].lines] == [
        "same",
        "removed",
        "added",
        "same",
        "added",
    ]
    assert render(diff) == [
        "@@ -1,3 +1,4 @@",
        "  Dear Sir,",
        "- the quick [-brown-] fox",
        "+ the quick {+red+} fox",
        "  jumps.",
        "+ A new line.",
    ]


def test_context_is_bounded_and_far_apart_changes_make_separate_hunks() -> None:
    old = "".join(f"line {n}\n" for n in range(1, 41))
    new = old.replace("line 5\n", "line five\n").replace("line 35\n", "line thirty-five\n")
    diff = text_diff.diff_text(old, new)
    assert [h.header for h in diff.hunks] == ["@@ -2,7 +2,7 @@", "@@ -32,7 +32,7 @@"]
    assert [marked(line) for line in changed_lines(diff)] == [
        ["5"],
        ["five"],
        ["35"],
        ["thirty-five"],
    ]


def test_unlike_lines_are_marked_whole_and_unequal_blocks_pair_in_order() -> None:
    diff = text_diff.diff_text("keep\nalpha beta gamma\nx\n", "keep\n12345 67890\ny\nz\n")
    lines = changed_lines(diff)
    assert [(line.mark, line.text) for line in lines] == [
        ("removed", "alpha beta gamma"),
        ("removed", "x"),
        ("added", "12345 67890"),
        ("added", "y"),
        ("added", "z"),
    ]
    assert all(len(line.segments) == 1 and line.segments[0].changed for line in lines)


def test_unicode_words_are_compared_as_words() -> None:
    old = "Договор подписан 13 июля\nnaïve café ☕\n".encode()
    new = "Договор расторгнут 13 июля\nnaïve café ☕ 🙂\n".encode()
    diff = diff_bytes(old, new)
    removed, removed2, added, added2 = changed_lines(diff)
    assert marked(removed) == ["подписан"] and marked(added) == ["расторгнут"]
    assert marked(removed2) == [] and marked(added2) == [" 🙂"]
    assert "- Договор [-подписан-] 13 июля" in render(diff)


def test_identical_texts_have_no_hunks() -> None:
    diff = diff_bytes(b"same\n", b"same\n")
    assert diff.identical and render(diff) == ["no change in the text"]


def test_a_changed_line_ending_alone_is_marked_as_a_line_change() -> None:
    diff = diff_bytes(b"a\nb\n", b"a\r\nb\n")
    assert [(line.mark, line.text) for line in changed_lines(diff)] == [
        ("removed", "a"),
        ("added", "a"),
    ]


def test_binary_and_non_utf8_content_give_no_text_diff_and_say_why() -> None:
    assert diff_bytes(b"%PDF\x00\x01", b"text\n").unavailable == (
        "the old file is binary (it holds a NUL byte): no text diff"
    )
    latin1 = "café\n".encode("latin-1")
    diff = diff_bytes(b"cafe\n", latin1)
    assert diff.unavailable == "the new file is not UTF-8 text: no text diff"
    assert diff.hunks == () and render(diff) == [diff.unavailable]


def test_content_over_the_size_bound_gives_no_text_diff() -> None:
    big = b"x" * (text_diff.MAX_BYTES + 1)
    assert diff_bytes(big, b"x").unavailable == "the old file is larger than 1 MiB: no text diff"
    assert diff_bytes(b"x", big).unavailable == "the new file is larger than 1 MiB: no text diff"
    many = "\n".join(str(n) for n in range(text_diff.MAX_LINES + 1))
    assert text_diff.diff_text("", many).unavailable is not None


def test_a_long_diff_is_clipped_with_a_count_of_the_rest() -> None:
    diff = text_diff.diff_text("", "".join(f"{n}\n" for n in range(500)))
    hunks, more = text_diff.clipped(diff, 100)
    assert sum(len(h.lines) for h in hunks) == 100 and more == 400
    lines = render(diff, max_lines=100)
    assert lines[-1] == "… 400 more lines" and len(lines) == 102


def test_characters_that_do_not_print_are_shown_as_code_points() -> None:
    diff = text_diff.diff_text("a\n", "a\x1b[31m\u202eb\tc\n")
    assert render(diff)[-1] == "+ a\\u001b[31m\\u202eb\tc"
    diff = text_diff.diff_text("the old text\n", "the old\u200b text\n")
    assert render(diff)[-1] == "+ the old{+\\u200b+} text"
    assert text_diff.visible("tab\tok") == "tab\tok"
