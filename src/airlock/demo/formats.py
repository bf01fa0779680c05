"""Small, valid, reproducible files of the kinds a law firm's share is full of.

PDFs whose text is greppable, Word documents, JPEG-looking photos, and the leftovers Windows
and Word scatter about (``Thumbs.db``, ``desktop.ini``, ``~$`` lock files). Every function
gives the same bytes for the same arguments; only the standard library is used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import zipfile
from collections.abc import Sequence

__all__ = ["DESKTOP_INI", "PDF_PRODUCER", "docx", "jpeg", "pdf", "thumbs_db", "word_lock_file"]

PDF_PRODUCER = "ScanSnap Manager #S1300i"
"""The scanner a PDF names as its producer unless told otherwise."""


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(title: str, lines: Sequence[str], producer: str = PDF_PRODUCER) -> bytes:
    """A small, valid one-page PDF 1.4 whose text is stored uncompressed (greppable)."""
    ops = ["BT", "/F1 10 Tf", "14 TL", "56 750 Td"]
    ops += [f"({_pdf_escape(line)}) Tj T*" for line in lines]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    info = f"<< /Title ({_pdf_escape(title)}) /Producer ({_pdf_escape(producer)}) >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        info.encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


_DOCX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)


def docx(paragraphs: Sequence[str], saved: dt.date) -> bytes:
    """A minimal but valid Word document (zip) with a fixed timestamp, so it is reproducible."""
    body = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{html.escape(p, quote=False)}</w:t></w:r></w:p>'
        for p in paragraphs
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    buffer = io.BytesIO()
    stamp = (saved.year, saved.month, saved.day, 9, 0, 0)
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", _DOCX_CONTENT_TYPES),
            ("_rels/.rels", _DOCX_RELS),
            ("word/document.xml", document),
        ):
            member = zipfile.ZipInfo(name, date_time=stamp)
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, text.encode("utf-8"))
    return buffer.getvalue()


def _filler(label: str, size: int) -> bytes:
    """Deterministic high-entropy bytes, standing in for compressed image data."""
    out = bytearray()
    block = hashlib.sha256(label.encode("utf-8")).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def jpeg(caption: str, size: int) -> bytes:
    """JPEG-looking bytes: SOI, a JFIF header, a comment segment, ``size`` bytes of filler, EOI."""
    comment = caption.encode("utf-8")
    header = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
        + b"\xff\xfe"
        + (len(comment) + 2).to_bytes(2, "big")
        + comment
    )
    return header + _filler(caption, size) + b"\xff\xd9"


def thumbs_db() -> bytes:
    """An OLE2 compound-file header (what Windows' thumbnail cache is) plus filler."""
    header = b"".join(
        [
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE2 signature
            bytes(16),  # CLSID
            (0x3E).to_bytes(2, "little") + (3).to_bytes(2, "little"),  # version 3.62
            b"\xfe\xff",  # byte order
            (9).to_bytes(2, "little") + (6).to_bytes(2, "little"),  # 512 / 64-byte sectors
            bytes(6),
            (0).to_bytes(4, "little") + (1).to_bytes(4, "little"),  # dir / FAT sector counts
            (1).to_bytes(4, "little") + bytes(4),  # first directory sector, transaction
            (4096).to_bytes(4, "little"),  # mini stream cutoff
            b"\xfe\xff\xff\xff" + bytes(4) + b"\xfe\xff\xff\xff" + bytes(4),
        ]
    )
    return header.ljust(512, b"\xff") + _filler("Thumbs.db", 2560)


DESKTOP_INI = (
    b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\imageres.dll,-3\r\n"
    b"[ViewState]\r\nMode=\r\nVid=\r\nFolderType=Documents\r\n"
)
"""The folder settings Windows Explorer leaves in a folder (CRLF line ends)."""


def word_lock_file(user: str) -> bytes:
    """The hidden ``~$...`` lock file Word leaves behind while ``user`` edits (162 bytes)."""
    name = user.encode("ascii")
    return (bytes([len(name)]) + name.ljust(53, b" ") + user.encode("utf-16-le")).ljust(162, b"\0")
