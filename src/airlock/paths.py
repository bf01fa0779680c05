"""Workspace-relative paths: parsing untrusted text into safe component tuples.

This is the string half of invariant 4 ("no path ever leaves its scope"). The other half lives
where bytes are touched: :mod:`airlock.storage.local` resolves every component without following
symlinks. A :data:`RelPath` is a tuple of names, each checked here, relative to the workspace root.
"""

from __future__ import annotations

import unicodedata

from airlock.errors import UnsafePathError

RelPath = tuple[str, ...]

STATE_DIR = ".airlock"
"""Airlock's own state inside the workspace root. No plan may name it."""

NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def parse(text: str, what: str = "path") -> RelPath:
    """Parse ``text`` ("a/b/c") into components, refusing anything that could escape.

    Refused: empty paths, absolute paths, ``.`` and ``..``, empty components (``a//b``),
    backslashes, NUL and other control characters, names over 255 bytes, paths over 4096 bytes.
    """
    if not isinstance(text, str) or text == "":
        raise UnsafePathError(f"{what} is empty", hint="give a path relative to the scope, like 'a/b'")
    shown = text.encode("unicode_escape").decode("ascii")
    if text.startswith("/"):
        raise UnsafePathError(
            f"{what} {shown!r} is absolute",
            hint="paths are relative to the plan's scope; drop the leading '/'",
        )
    if "\\" in text:
        raise UnsafePathError(
            f"{what} {shown!r} contains a backslash", hint="separate folders with '/'"
        )
    bad = next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise UnsafePathError(
            f"{what} {shown!r} contains the control character U+{ord(bad):04X}",
            hint="remove NUL, newline, tab and other control characters from names",
        )
    if len(text.encode("utf-8", "surrogatepass")) > PATH_MAX_BYTES:
        raise UnsafePathError(f"{what} is longer than {PATH_MAX_BYTES} bytes", hint="shorten it")
    parts = tuple(text.split("/"))
    for part in parts:
        check_name(part, what, shown)
    return parts


def check_name(part: str, what: str = "path", shown: str | None = None) -> None:
    shown = shown if shown is not None else part
    if part == "":
        raise UnsafePathError(
            f"{what} {shown!r} has an empty component",
            hint="remove doubled or trailing '/' characters",
        )
    if part in (".", ".."):
        raise UnsafePathError(
            f"{what} {shown!r} contains {part!r}",
            hint="name each folder explicitly; '.' and '..' are never allowed",
        )
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafePathError(
            f"{what} {shown!r} is not valid Unicode", hint="use UTF-8 names"
        ) from None
    if size > NAME_MAX_BYTES:
        raise UnsafePathError(
            f"{what} has a name of {size} bytes; the limit is {NAME_MAX_BYTES}",
            hint="shorten the name",
        )


def render(path: RelPath) -> str:
    return "/".join(path)


def parent(path: RelPath) -> RelPath:
    return path[:-1]


def is_within(path: RelPath, base: RelPath) -> bool:
    """True if ``path`` is ``base`` or below it (component-wise: 'Case-A-old' is not in 'Case-A')."""
    return path[: len(base)] == base


def fold(name: str) -> str:
    """The key two names collide on: same after Unicode compatibility normalisation and casefold."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
