"""What changes inside a text file: a line diff of old and new, word by word inside changed lines.

Pure functions from two byte strings to a :class:`TextDiff` (hunks of lines marked same, removed
or added, with each line cut into segments, the changed ones marked), and a plain-text rendering
for the command line (:func:`render`). Built on :mod:`difflib`.

Only text is diffed: content that is not UTF-8, holds a NUL byte, or is larger than
:data:`MAX_BYTES` (or :data:`MAX_LINES` lines) on either side gives a diff with no hunks and
``unavailable`` saying why. A changed line is compared word by word only with the line it
replaces (the n-th removed line of a block with its n-th added line), and only when the two are
alike enough and short enough (:data:`WORD_DIFF_CHARS`); otherwise the whole line is marked.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAX_BYTES = 1 << 20
"""Most bytes either side may hold for a text diff (1 MiB)."""
MAX_LINES = 20_000
"""Most lines either side may hold for a text diff."""
WORD_DIFF_CHARS = 2_000
"""Longest line compared word by word (a longer one is marked whole)."""
CONTEXT = 3
"""Unchanged lines shown around each change."""
ALIKE = 0.4
"""How alike (difflib's ratio over words) a removed and an added line must be to be compared
word by word rather than marked whole."""

Mark = Literal["same", "removed", "added"]

_WORDS = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Segment:
    """A piece of a line; ``changed``: removed from (or added to) the line it pairs with."""

    text: str
    changed: bool = False


@dataclass(frozen=True)
class Line:
    """One line of a hunk, without its line ending; numbered from 1 on its side(s)."""

    mark: Mark
    old: int | None
    new: int | None
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[Line, ...]

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_count} +{self.new_start},{self.new_count} @@"


@dataclass(frozen=True)
class TextDiff:
    hunks: tuple[Hunk, ...] = ()
    removed: int = 0
    """Lines removed (a changed line counts once removed and once added)."""
    added: int = 0
    unavailable: str | None = None
    """Why there is no text diff (binary, not UTF-8, too big); None when there is one."""

    @property
    def identical(self) -> bool:
        return self.unavailable is None and not self.hunks


def not_text(data: bytes) -> str | None:
    """Why ``data`` is not diffable text, or None if it is."""
    if len(data) > MAX_BYTES:
        return f"larger than {MAX_BYTES // (1 << 20)} MiB"
    if b"\x00" in data:
        return "binary (it holds a NUL byte)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def diff_bytes(old: bytes, new: bytes, *, context: int = CONTEXT) -> TextDiff:
    """The diff of ``old`` and ``new``, or one that says why there is none."""
    for side, data in (("old", old), ("new", new)):
        why = not_text(data)
        if why is not None:
            return TextDiff(unavailable=f"the {side} file is {why}: no text diff")
    return diff_text(old.decode("utf-8"), new.decode("utf-8"), context=context)


def diff_text(old: str, new: str, *, context: int = CONTEXT) -> TextDiff:
    """The line diff of two texts (line endings count: a line whose ending alone changed is
    marked, with no word marked)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if max(len(a), len(b)) > MAX_LINES:
        return TextDiff(unavailable=f"more than {MAX_LINES:,} lines: no text diff")
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    hunks: list[Hunk] = []
    removed = added = 0
    for group in matcher.get_grouped_opcodes(context):
        lines: list[Line] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(
                    Line("same", i + 1, j + 1, (Segment(_bare(a[i])),))
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            removed += i2 - i1
            added += j2 - j1
            olds, news = a[i1:i2], b[j1:j2]
            pairs = [_pair(x, y) for x, y in zip(olds, news, strict=False)]
            lines.extend(
                Line("removed", i1 + n + 1, None, pairs[n][0] if n < len(pairs) else _whole(x))
                for n, x in enumerate(olds)
            )
            lines.extend(
                Line("added", None, j1 + n + 1, pairs[n][1] if n < len(pairs) else _whole(y))
                for n, y in enumerate(news)
            )
        first, last = group[0], group[-1]
        old_count, new_count = last[2] - first[1], last[4] - first[3]
        hunks.append(
            Hunk(
                old_start=first[1] + 1 if old_count else first[1],
                old_count=old_count,
                new_start=first[3] + 1 if new_count else first[3],
                new_count=new_count,
                lines=tuple(lines),
            )
        )
    return TextDiff(tuple(hunks), removed, added)


def _bare(line: str) -> str:
    return line.rstrip("\r\n")


def _whole(line: str) -> tuple[Segment, ...]:
    text = _bare(line)
    return (Segment(text, changed=True),) if text else ()


def _pair(old: str, new: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """The segments of a removed line and of the added line that replaces it, word by word."""
    x, y = _bare(old), _bare(new)
    if max(len(x), len(y)) > WORD_DIFF_CHARS:
        return _whole(old), _whole(new)
    xs, ys = _WORDS.findall(x), _WORDS.findall(y)
    matcher = difflib.SequenceMatcher(None, xs, ys, autojunk=False)
    if matcher.ratio() < ALIKE:
        return _whole(old), _whole(new)
    left: list[Segment] = []
    right: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        _append(left, "".join(xs[i1:i2]), tag != "equal")
        _append(right, "".join(ys[j1:j2]), tag != "equal")
    return tuple(left), tuple(right)


def _append(segments: list[Segment], text: str, changed: bool) -> None:
    if not text:
        return
    if segments and segments[-1].changed == changed:
        segments[-1] = Segment(segments[-1].text + text, changed)
    else:
        segments.append(Segment(text, changed))


def clipped(diff: TextDiff, max_lines: int) -> tuple[list[Hunk], int]:
    """The hunks of ``diff`` cut to at most ``max_lines`` lines in all, and how many lines were
    left out (for a page that shows "… N more lines")."""
    shown: list[Hunk] = []
    left = max_lines
    total = 0
    for hunk in diff.hunks:
        total += len(hunk.lines)
        if left <= 0:
            continue
        if len(hunk.lines) > left:
            hunk = Hunk(
                hunk.old_start, hunk.old_count, hunk.new_start, hunk.new_count, hunk.lines[:left]
            )
        shown.append(hunk)
        left -= len(hunk.lines)
    return shown, total - sum(len(h.lines) for h in shown)


PREFIX: dict[Mark, str] = {"same": " ", "removed": "-", "added": "+"}


def visible(text: str) -> str:
    """``text`` with every character that does not print (a control character, a bidi override,
    a zero-width space) but the tab written as its code point, so nothing in a diff hides."""
    if text.isprintable() or all(c.isprintable() or c == "\t" for c in text):
        return text
    return "".join(
        c
        if c.isprintable() or c == "\t"
        else f"\\u{ord(c):04x}"
        if ord(c) <= 0xFFFF
        else f"\\U{ord(c):08x}"
        for c in text
    )


def line_text(line: Line) -> str:
    """A line as :func:`render` prints it: its mark, then its text with removed words in
    ``[-…-]`` and added words in ``{+…+}`` (like ``git diff --word-diff``)."""
    opening, closing = ("[-", "-]") if line.mark == "removed" else ("{+", "+}")
    whole = len(line.segments) == 1 and line.segments[0].changed
    parts = [
        f"{opening}{visible(s.text)}{closing}" if s.changed and not whole else visible(s.text)
        for s in line.segments
    ]
    return PREFIX[line.mark] + " " + "".join(parts)


def render(diff: TextDiff, *, max_lines: int | None = None) -> list[str]:
    """The diff as plain text lines: a header per hunk, then one line per line (see
    :func:`line_text`); a diff that is unavailable or empty says so in one line."""
    if diff.unavailable is not None:
        return [diff.unavailable]
    if not diff.hunks:
        return ["no change in the text"]
    hunks: Sequence[Hunk] = diff.hunks
    more = 0
    if max_lines is not None:
        hunks, more = clipped(diff, max_lines)
    out: list[str] = []
    for hunk in hunks:
        out.append(hunk.header)
        out.extend(line_text(line) for line in hunk.lines)
    if more:
        out.append(f"… {more:,} more lines")
    return out
