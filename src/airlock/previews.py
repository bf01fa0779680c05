"""Looking inside a file for a reviewer: what it is, its text, its PDF pages and its pictures.

:func:`inspect` says what some bytes are, from their first bytes (never from the name alone: a
``.pdf`` that is an executable is "other") and :func:`render` draws one PDF page or a picture as a
PNG or JPEG a browser shows:

* text (UTF-8 without NUL bytes) and Markdown are shown as text, at most :data:`TEXT_CHARS`;
* ``.docx`` is shown as the text of its paragraphs and tables (python-docx);
* PDF pages are rendered by PDFium (pypdfium2, which bundles it), :data:`PAGE_WIDTH` pixels wide;
  no form or JavaScript support is loaded, so nothing in the file runs;
* JPEG, PNG, GIF, WebP, TIFF, BMP and HEIC pictures are decoded by Pillow (HEIC by pillow-heif)
  and drawn again at most :data:`IMAGE_SIDE` pixels on a side: the browser never gets the file's
  own bytes as an image, so a crafted file cannot be sniffed into something else;
* anything else is its type and size.

Decoding a file made by someone else is where a parser's bug is reached, so every decoder (PDF,
picture, docx) runs in a child process of its own (``python -m airlock.previews``) with a CPU
limit, a memory limit, no file it may write, a wall-clock deadline (:data:`TIME_LIMIT`), as the
unprivileged ``nobody`` when the service runs as root (and ``nobody`` can reach its Python). A child that fails, hangs or is killed is a
:class:`~airlock.errors.PreviewError` ("download it instead"), never a failure of the page.
At most :data:`MAX_BYTES` of a file are read for a preview. Results are kept in a small cache
keyed by the bytes' SHA-256, so a page's images are decoded once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from airlock.errors import PreviewError

MAX_BYTES = 64 * 1024 * 1024
"""The most of a file read to preview it (larger files: type, size and a download link)."""
TEXT_CHARS = 200_000
PAGE_WIDTH = 1000
"""Pixels across a rendered PDF page."""
MAX_PIXELS = 12_000_000
"""The most pixels a rendered page may have (a page of absurd size is drawn smaller)."""
IMAGE_SIDE = 1600
IMAGE_MAX_PIXELS = 60_000_000
"""Pictures with more pixels than this are refused before they are decoded (a decompression bomb)."""
PAGES_AT_ONCE = 3
"""PDF pages a preview shows at once; the rest one link away."""
TIME_LIMIT = 20.0
"""Seconds a decoder may take (wall clock; its CPU limit is the same)."""
MEMORY_LIMIT = 1536 * 1024 * 1024
CACHE_BYTES = 48 * 1024 * 1024

Kind = Literal["pdf", "image", "docx", "text", "other"]

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
"""Control characters no text file holds (tab, newlines, form feed and escape are allowed)."""
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


@dataclass
class Preview:
    """What a file is and what of it can be shown."""

    kind: Kind
    mime: str
    """The type its first bytes show (``application/octet-stream`` when unknown)."""
    size: int
    sha256: str | None = None
    """Of the whole file, when it was read whole."""
    text: str | None = None
    """Text, Markdown, or a .docx's paragraphs."""
    more_text: bool = False
    pages: int | None = None
    """A PDF's number of pages."""
    width: int | None = None
    height: int | None = None
    problem: str = ""
    """Why it cannot be shown (damaged, too large, too slow to decode), when it cannot."""


def sniff(name: str, head: bytes) -> tuple[Kind, str]:
    """The kind and type of a file from its first bytes (and, for a ZIP, its name)."""
    if head.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            return "image", mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "image", "image/avif" if head[8:12] == b"avif" else "image/heic"
    if head.startswith(b"PK\x03\x04") and name.lower().endswith((".docx", ".docm")):
        return "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if _text(head, cut=True) is not None:
        markdown = name.lower().endswith((".md", ".markdown"))
        return "text", "text/markdown" if markdown else "text/plain"
    return "other", "application/octet-stream"


def _text(data: bytes, *, cut: bool) -> str | None:
    """``data`` as text, or None if it is not UTF-8 text without control characters (``cut``:
    it may end mid-character)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (cut and exc.start >= len(data) - 3):
            return None
        text = data[: exc.start].decode("utf-8")
    return None if _NOT_TEXT.search(text) else text


def inspect(name: str, data: bytes, size: int) -> Preview:
    """What the file of ``size`` bytes whose first bytes are ``data`` is, and its text or page
    count. ``data`` is the whole file when ``len(data) == size``; a PDF, picture or .docx must
    be whole (at most :data:`MAX_BYTES`) to be looked inside."""
    kind, mime = sniff(name, data[:64])
    whole = len(data) == size
    preview = Preview(kind, mime, size, hashlib.sha256(data).hexdigest() if whole else None)
    if kind == "text":
        text = _text(data[: TEXT_CHARS * 4], cut=True) or ""
        preview.text = text[:TEXT_CHARS]
        preview.more_text = len(text) > TEXT_CHARS or not whole or len(data) > TEXT_CHARS * 4
        return preview
    if kind == "other":
        return preview
    if not whole:
        preview.problem = (
            f"it is larger than {MAX_BYTES // (1 << 20)} MiB, too large to preview here"
        )
        return preview
    try:
        found = json.loads(_decoded("inspect", kind, 0, data))
    except PreviewError as exc:
        preview.problem = exc.message
        return preview
    preview.pages = found.get("pages")
    preview.width, preview.height = found.get("width"), found.get("height")
    if kind == "docx":
        preview.text = found.get("text", "")
        preview.more_text = bool(found.get("more"))
    return preview


def of_file(name: str, read: Callable[[int], bytes], size: int) -> tuple[Preview, bytes]:
    """:func:`inspect` of the file named ``name`` of ``size`` bytes, reading it with
    ``read(limit)`` no further than its kind needs: its first bytes, then for text at most
    :data:`TEXT_CHARS`, for anything else it can look inside at most :data:`MAX_BYTES`. Returns
    the bytes read too (the whole file when ``len(data) == size``)."""
    data = read(min(size, 64 * 1024))
    kind, _mime = sniff(name, data[:64])
    if kind == "text":
        data = read(min(size, TEXT_CHARS * 4 + 1))
    elif kind != "other" and size <= MAX_BYTES:
        data = read(size)
    return inspect(name, data, size), data


def render(kind: Kind, data: bytes, page: int = 1) -> tuple[bytes, str]:
    """Page ``page`` (from 1) of a PDF, or a picture, drawn for a browser: (bytes, type)."""
    if kind not in ("pdf", "image"):
        raise PreviewError(f"a {kind} file has no picture to draw", hint="open its preview")
    out = _decoded("render", kind, page, data)
    return out, "image/png" if out.startswith(b"\x89PNG") else "image/jpeg"


# --- the child process ---------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, str, str, int], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _decoded(what: str, kind: str, page: int, data: bytes) -> bytes:
    key = (hashlib.sha256(data).hexdigest(), what, kind, page)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    out = _in_child(what, kind, page, data)
    with _cache_lock:
        _cache[key] = out
        while sum(map(len, _cache.values())) > CACHE_BYTES and len(_cache) > 1:
            _cache.popitem(last=False)
    return out


def _limits() -> None:
    """The child's limits, set by the child on itself before it reads a byte of the file (not in
    a ``preexec_fn``, which is unsafe in a service's threads)."""
    cpu = int(TIME_LIMIT) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _others_may_run(program: str) -> bool:
    """Whether an account of no group may run ``program`` (and so import what it imports: a
    Python under /root, as pyenv installs it, cannot be reached by ``nobody``)."""
    import airlock

    for found in (Path(program).resolve(), Path(airlock.__file__).resolve()):
        if any(not folder.stat().st_mode & 0o001 for folder in found.parents):
            return False
    return True


def _in_child(what: str, kind: str, page: int, data: bytes) -> bytes:
    command = [sys.executable, "-I", "-m", "airlock.previews", what, kind, str(page)]
    as_nobody: dict[str, Any] = {}
    if os.geteuid() == 0 and _others_may_run(sys.executable):  # not someone else's file as root
        as_nobody = {"user": 65534, "group": 65534, "extra_groups": []}
    try:
        done = subprocess.run(
            command,
            input=data,
            capture_output=True,
            timeout=TIME_LIMIT,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            check=False,
            **as_nobody,
        )
    except subprocess.TimeoutExpired:
        raise PreviewError(
            f"decoding it took longer than {TIME_LIMIT:.0f} s and was stopped",
            hint="download the file to look at it",
        ) from None
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        why = last[0] if last[0].startswith("preview: ") else ""
        if done.returncode < 0:
            why = f"its decoder was stopped (signal {-done.returncode}: out of time or memory)"
        raise PreviewError(
            f"it cannot be previewed: {why.removeprefix('preview: ') or 'its decoder failed'}",
            hint="the file may be damaged; download it to look at it",
        )
    out: bytes = done.stdout
    return out


def _child_inspect(kind: str, data: bytes) -> dict[str, Any]:  # pragma: no cover - in the child
    if kind == "pdf":
        import pypdfium2

        document = pypdfium2.PdfDocument(data)
        return {"pages": len(document)}
    if kind == "image":
        image = _open_image(data)
        return {"width": image.width, "height": image.height}
    import docx

    document = docx.Document(io.BytesIO(data))
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    text = "\n".join(parts)
    return {"text": text[:TEXT_CHARS], "more": len(text) > TEXT_CHARS}


def _open_image(data: bytes) -> Any:  # pragma: no cover - in the child
    import warnings

    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = IMAGE_MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    return Image.open(io.BytesIO(data))


def _child_render(kind: str, page: int, data: bytes) -> bytes:  # pragma: no cover - in the child
    out = io.BytesIO()
    if kind == "pdf":
        import pypdfium2

        document = pypdfium2.PdfDocument(data)
        if not 1 <= page <= len(document):
            raise ValueError(f"it has no page {page} (it has {len(document)})")
        one = document[page - 1]
        width, height = one.get_size()
        scale = min(PAGE_WIDTH / max(width, 1), (MAX_PIXELS / max(width * height, 1)) ** 0.5)
        one.render(scale=scale).to_pil().save(out, "PNG", optimize=False)
        return out.getvalue()
    from PIL import ImageOps

    image = _open_image(data)
    image = ImageOps.exif_transpose(image)
    image.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    if image.mode in ("RGB", "L", "CMYK", "YCbCr"):
        image.convert("RGB").save(out, "JPEG", quality=85)
    else:
        image.convert("RGBA").save(out, "PNG")
    return out.getvalue()


def _child_main(argv: list[str]) -> int:  # pragma: no cover - in the child
    what, kind, page = argv[0], argv[1], int(argv[2])
    _limits()
    data = sys.stdin.buffer.read()
    try:
        if what == "inspect":
            out = json.dumps(_child_inspect(kind, data)).encode()
        else:
            out = _child_render(kind, page, data)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        print(f"preview: {reason}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_child_main(sys.argv[1:]))
