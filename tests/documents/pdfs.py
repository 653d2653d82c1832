"""Test documents made here, without network or libraries: PDFs, images, zips.

:func:`make_pdf` writes a valid PDF by hand (catalog, page tree, one text page per page,
Helvetica, a cross-reference table with the real byte offsets), which poppler reads like
any other; ``javascript=True`` adds an ``/OpenAction`` running JavaScript.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def make_pdf(pages: int, *, javascript: bool = False) -> bytes:
    objects: list[bytes] = []
    font = 3 + 2 * pages
    action = f" /OpenAction {font + 1} 0 R" if javascript else ""
    objects.append(f"<< /Type /Catalog /Pages 2 0 R{action} >>".encode())
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for i in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>"
            .encode())
        text = f"BT /F1 48 Tf 72 700 Td (Page {i + 1}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if javascript:
        objects.append(b"<< /S /JavaScript /JS (app.alert\\('hello'\\);) >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def corrupt_pdf() -> bytes:
    """Starts like a PDF; nothing after is one."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 40


def make_png(width: int = 4, height: int = 3) -> bytes:
    """A valid grey PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_header(width: int, height: int) -> bytes:
    """Only the signature and header of a PNG claiming that size (enough to sniff)."""
    data = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(data)) + b"IHDR" + data
            + struct.pack(">I", zlib.crc32(b"IHDR" + data) & 0xFFFFFFFF))


def make_docx(extra: dict[str, bytes] | None = None) -> bytes:
    """A zip that sniffs as an OOXML (Word) document."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_bomb(megabytes: int = 400) -> bytes:
    """An OOXML document with a part of ``megabytes`` MB of zeros (about a thousandth of
    that zipped)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        with archive.open("word/media/zeros.bin", "w", force_zip64=True) as part:
            block = bytes(4 * 1024 * 1024)
            for _ in range(megabytes // 4):
                part.write(block)
    return buffer.getvalue()


def many_parts(count: int) -> bytes:
    """An OOXML document made of ``count`` empty parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        for n in range(count):
            archive.writestr(f"word/p{n}.xml", b"")
    return buffer.getvalue()
