"""What a person may misread in a name, and the name written so that nothing is hidden.

Two ways a name can pass for another:

* characters that do not show, or change the direction of what follows (U+200B zero-width
  space, U+202E right-to-left override, a no-break space): ``str.isprintable`` is false for them;
* letters of one script posing as another's: ``invоice.pdf`` with a Cyrillic "о", or ``рор.pdf``
  written in Cyrillic. :func:`look_alikes` finds them.

Validation warns of both (``invisible-characters``, ``mixed-script``); the review page and the
command line show such names through :func:`escaped` (``inv\\u043eice.pdf``), so a reviewer reads
the real code points. Pure functions over text.

Scripts and look-alike letters come from Unicode's own data (the Scripts property and the
confusables of Unicode Technical Standard #39) as packaged by ``confusable_homoglyphs``; its
``is_dangerous`` is not used, because it flags ordinary Japanese (Han with Katakana), combining
accents and any two scripts anywhere in a name. The rules here are per word (a run of letters,
marks and digits), so "Договор contract.pdf" is fine and "invоice" is not:

1. a word whose letters come from two or more scripts, one of whose letters looks like a letter
   of another of them, unless the scripts are one of the mixes UTS #39 calls highly restrictive
   (Han with Hiragana, Katakana, Bopomofo or Hangul, each with Latin);
2. a word of one script other than Latin, every letter of which looks like a Latin letter, in a
   name that has Latin letters too (``рор.pdf``). Latin is the script the review page is read in,
   so that is what a spoof poses as; an all-Latin word that happens to look Cyrillic is not one.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Any

_IGNORED = frozenset({"COMMON", "INHERITED"})
_ALLOWED_MIXES = (
    frozenset({"HAN", "HIRAGANA", "KATAKANA", "LATIN"}),
    frozenset({"HAN", "BOPOMOFO", "LATIN"}),
    frozenset({"HAN", "HANGUL", "LATIN"}),
)
_LATIN = "LATIN"


@dataclass(frozen=True)
class LookAlike:
    """A word of a name that can pass for another word."""

    word: str
    scripts: tuple[str, ...]
    """The scripts its letters are from, as Unicode names them ("CYRILLIC", "LATIN")."""
    whole: bool
    """The whole word is of one script (``scripts``) posing as Latin (rule 2), not a mix."""


@functools.cache
def _unicode_data() -> tuple[Any, Any]:
    # Imported on first use: the package reads 1 MB of JSON, which the command line should not
    # pay for names that are plain ASCII (nearly all of them).
    from confusable_homoglyphs import categories, confusables

    return categories, confusables


@functools.lru_cache(maxsize=8192)
def _script(char: str) -> str:
    return str(_unicode_data()[0].alias(char))


@functools.lru_cache(maxsize=16384)
def _looks_like(char: str, scripts: frozenset[str]) -> bool:
    """Whether ``char`` has a look-alike among the letters of ``scripts`` (UTS #39)."""
    return bool(_unicode_data()[1].is_confusable(char, preferred_aliases=sorted(scripts)))


def _words(text: str) -> list[str]:
    words: list[str] = []
    start = None
    for index, char in enumerate(text):
        if unicodedata.category(char)[0] in "LMN":
            if start is None:
                start = index
        elif start is not None:
            words.append(text[start:index])
            start = None
    if start is not None:
        words.append(text[start:])
    return words


def _letters(word: str) -> list[str]:
    return [char for char in word if unicodedata.category(char)[0] == "L"]


def look_alikes(text: str) -> list[LookAlike]:
    """The words of ``text`` that can pass for other words (see the module docstring)."""
    if text.isascii():
        return []
    words = [(word, {_script(c) for c in _letters(word)} - _IGNORED) for word in _words(text)]
    everywhere = set().union(*(scripts for _word, scripts in words))
    found = []
    for word, scripts in words:
        if len(scripts) > 1:
            if any(scripts <= mix for mix in _ALLOWED_MIXES):
                continue
            if any(_looks_like(c, frozenset(scripts - {_script(c)})) for c in _letters(word)):
                found.append(LookAlike(word, tuple(sorted(scripts)), whole=False))
        elif scripts and scripts != {_LATIN} and _LATIN in everywhere:
            latin = frozenset({_LATIN})
            if all(_looks_like(c, latin) for c in _letters(word)):
                found.append(LookAlike(word, tuple(sorted(scripts)), whole=True))
    return found


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escaped(text: str) -> str:
    """``text`` with every character a reader could misread written as its code point: what does
    not print (as ``repr`` escapes it), and each non-ASCII character of a look-alike word.
    Paths never hold a backslash (they are refused), so a ``\\u`` here is always an escape."""
    if text.isascii() and text.isprintable():
        return text
    suspect = {c for alike in look_alikes(text) for c in alike.word if not c.isascii()}
    return "".join(
        _escape(c) if c in suspect or not c.isprintable() else c
        for c in text  # " " is printable; a no-break or em space is not, and is escaped
    )


def misleading(text: str) -> list[str]:
    """Why ``text`` is shown escaped, in words (empty: it is shown as it is)."""
    if text.isascii() and text.isprintable():
        return []
    reasons = []
    if not text.isprintable():
        reasons.append("invisible or direction-changing characters")
    if look_alikes(text):
        reasons.append("look-alike letters of another script")
    return reasons


def script_names(scripts: tuple[str, ...]) -> str:
    """("CYRILLIC", "LATIN") as "Cyrillic and Latin"."""
    names = [script.title() for script in scripts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
