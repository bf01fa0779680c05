"""Files of every kind a reviewer previews, made here (no binary fixtures in the repository):
a PDF with text on each page, JPEG, PNG and HEIC pictures, a .docx, and hostile ones."""

from __future__ import annotations

import io


def pdf_bytes(pages: list[str]) -> bytes:
    """A valid PDF of US Letter pages, each showing its line of text in Helvetica."""
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n, line in enumerate(pages):
        text = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 28 Tf 72 700 Td ({text}) Tj ET 72 650 m 540 650 l S".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            + f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * n} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def picture_bytes(format: str, size: tuple[int, int] = (640, 480)) -> bytes:
    """A picture (JPEG, PNG or HEIF) of a few coloured bands."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "#e8eef7")
    draw = ImageDraw.Draw(image)
    for band, colour in enumerate(("#b42318", "#1849a9", "#067647")):
        draw.rectangle(
            (0, band * size[1] // 3, size[0] // (band + 2), (band + 1) * size[1] // 3), fill=colour
        )
    out = io.BytesIO()
    if format == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(out, format)
    return out.getvalue()


def docx_bytes(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def bomb_png() -> bytes:
    """A PNG of 40,000 x 40,000 pixels (1.6 billion) that compresses to a few hundred KiB."""
    import struct
    import zlib

    width = height = 40_000
    row = b"\x00" + b"\x00" * (width // 8)  # filter byte + 1-bit pixels
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
