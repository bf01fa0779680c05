"""Workspace-relative paths: parsing untrusted text into safe component tuples.

This is the string half of invariant 4 ("no path ever leaves its scope"). The other half lives
where bytes are touched: :mod:`airlock.storage.local` resolves every component without following
symlinks. A :data:`RelPath` is a tuple of names, each checked here, relative to the workspace root.
"""

from __future__ import annotations

import re
import unicodedata

from airlock.errors import UnsafePathError

RelPath = tuple[str, ...]

STATE_DIR = ".airlock"
"""Airlock's own state inside the workspace root. No plan may name it."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # exactly Unicode category Cc

NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def parse(text: str, what: str = "path", *, stored: bool = False) -> RelPath:
    """Parse ``text`` ("a/b/c") into components, refusing anything that could escape.

    Refused: empty paths, absolute paths, ``.`` and ``..``, empty components (``a//b``),
    backslashes, NUL and other control characters, names over 255 bytes, paths over 4096 bytes.
    """
    if not isinstance(text, str) or text == "":
        raise UnsafePathError(
            f"{what} is empty", hint="give a path relative to the scope, like 'a/b'"
        )
    if text.startswith("/"):
        raise UnsafePathError(
            f"{what} '{_show(text)}' is absolute",
            hint="paths are relative to the plan's scope; drop the leading '/'",
        )
    if "\\" in text:
        raise UnsafePathError(
            f"{what} '{_show(text)}' contains a backslash", hint="separate folders with '/'"
        )
    bad = _CONTROL.search(text)
    if bad is not None:
        raise UnsafePathError(
            f"{what} '{_show(text)}' contains the control character U+{ord(bad.group()):04X}",
            hint="remove NUL, newline, tab and other control characters from names",
        )
    if len(text.encode("utf-8", "surrogatepass")) > PATH_MAX_BYTES:
        raise UnsafePathError(f"{what} is longer than {PATH_MAX_BYTES} bytes", hint="shorten it")
    parts = tuple(text.split("/"))
    for part in parts:
        check_name(part, what, text, stored=stored)
    return parts


def _show(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def check_name(
    part: str, what: str = "path", whole: str | None = None, *, stored: bool = False
) -> None:
    """Refuse a name that could escape or mislead. ``stored``: a plan recorded before the
    state folder's name was refused at every depth is still read (validation refuses it)."""
    if part == "":
        raise UnsafePathError(
            f"{what} '{_show(whole if whole is not None else part)}' has an empty component",
            hint="remove doubled or trailing '/' characters",
        )
    if not stored and (
        (part.lower() == STATE_DIR) if part.isascii() else fold(part) == _STATE_FOLD
    ):
        raise UnsafePathError(
            f"{what} '{_show(whole if whole is not None else part)}' names {STATE_DIR!r}, "
            "Airlock's own state folder; no path may use that name, at any depth",
            hint="choose another folder name",
        )
    if part in (".", ".."):
        raise UnsafePathError(
            f"{what} '{_show(whole if whole is not None else part)}' contains {part!r}",
            hint="name each folder explicitly; '.' and '..' are never allowed",
        )
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafePathError(
            f"{what} '{_show(whole if whole is not None else part)}' is not valid Unicode",
            hint="use UTF-8 names",
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
    if name.isascii():  # the same result, sooner: NFKC leaves ASCII as it is, casefold lowers it
        return name.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


_STATE_FOLD = fold(STATE_DIR)
