"""What a document is, judged from its bytes, and the checks made before any converter.

The file name and the ``Content-Type`` a server sends are chosen by whoever made the
document, so neither decides anything: :func:`sniff` looks at the first bytes (and, for a
zip, at its list of entries). What it recognises:

- PDF (``%PDF-`` within the first KiB, as readers accept a little junk before it);
- PNG and JPEG images, which become a one-page document as they are (their size in
  pixels is read from the header and bounded: a 50,000 x 50,000 PNG of a few KiB would
  otherwise exhaust every browser that shows it);
- office documents for LibreOffice: OOXML (a zip with ``[Content_Types].xml``), ODF (a zip
  whose ``mimetype`` entry names an OpenDocument type) and the legacy OLE compound files
  (``.doc``, ``.ppt``, ``.xls``).

Everything else (SVG included: a script-capable format served from our origin) is
refused. The checks for hostile files that are cheap on the bytes are made here too: a
PDF that carries JavaScript (:func:`pdf_has_javascript`) and a zip bomb
(:func:`check_zip`); both run before any converter sees the file.
"""

from __future__ import annotations

import enum
import io
import re
import struct
import zipfile
from dataclasses import dataclass


class DocumentRefused(Exception):
    """A document that is not converted; the message is shown to people as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


UNSUPPORTED = "Unsupported document type"
NOT_ON_THIS_SERVER = "This format is not supported on this server"
UNREADABLE = "The document could not be read"
HAS_JAVASCRIPT = "The document contains JavaScript, which is not allowed in presentations"
ZIP_BOMB = "The document is too large once uncompressed"


class Kind(enum.Enum):
    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    OFFICE = "office"

    @property
    def is_image(self) -> bool:
        return self in (Kind.PNG, Kind.JPEG)


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    #: The extension the original is stored (and offered for download) with.
    extension: str
    #: Images only: width and height in pixels.
    size: tuple[int, int] | None = None


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.presentation": "odp",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.graphics": "odg",
}
OOXML_MAIN_PARTS = (("ppt/", "pptx"), ("word/", "docx"), ("xl/", "xlsx"))


def sniff(data: bytes, *, max_image_pixels: int = 40_000_000,
          max_zip_entries: int = 10_000) -> Sniffed:
    """The document's kind, from its bytes; raises :class:`DocumentRefused` otherwise.

    A zip's directory is read to tell an office document from any other zip, unless its
    end record already says it has more than ``max_zip_entries`` entries (parsing a
    directory of a million entries would hold the reactor for seconds).
    """
    if not data:
        raise DocumentRefused("The document is empty")
    if b"%PDF-" in data[:1024]:
        return Sniffed(Kind.PDF, "pdf")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Kind.PNG, "png", _bounded(_png_size(data), max_image_pixels))
    if data.startswith(b"\xff\xd8\xff"):
        return Sniffed(Kind.JPEG, "jpg", _bounded(_jpeg_size(data), max_image_pixels))
    if data.startswith(OLE_MAGIC):
        return Sniffed(Kind.OFFICE, "doc")
    if data.startswith(b"PK\x03\x04"):
        entries = zip_entry_count(data)
        if entries is not None and entries > max_zip_entries:
            raise DocumentRefused(f"{ZIP_BOMB} ({entries} parts)")
        extension = _office_zip(data)
        if extension is not None:
            return Sniffed(Kind.OFFICE, extension)
    raise DocumentRefused(UNSUPPORTED)


def _bounded(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    width, height = size
    if width <= 0 or height <= 0:
        raise DocumentRefused(UNREADABLE)
    if width * height > max_pixels:
        raise DocumentRefused(f"The image is too large ({width} x {height} pixels)")
    return size


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise DocumentRefused(UNREADABLE)
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


#: JPEG start-of-frame markers (all but DHT C4, JPG C8 and DAC CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise DocumentRefused(UNREADABLE)
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return int(width), int(height)
        if length < 2:
            break
        at += 2 + length
    raise DocumentRefused(UNREADABLE)


def _office_zip(data: bytes) -> str | None:
    """The extension of an OOXML or ODF document, or None for any other zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "mimetype" in names:
                info = archive.getinfo("mimetype")
                if info.file_size <= 200:
                    mimetype = archive.read("mimetype").strip()
                    if mimetype in ODF_MIMETYPES:
                        return ODF_MIMETYPES[mimetype]
            if "[Content_Types].xml" in names:
                for prefix, extension in OOXML_MAIN_PARTS:
                    if any(name.startswith(prefix) for name in names):
                        return extension
                return "docx"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError):
        raise DocumentRefused(UNREADABLE) from None
    return None


def zip_entry_count(data: bytes) -> int | None:
    """The number of entries a zip's end-of-central-directory record declares, found
    without reading the directory (None: no record, or a ZIP64 one)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 12 > len(data):
        return None
    (count,) = struct.unpack("<H", data[end + 10:end + 12])
    return None if count == 0xFFFF else int(count)


def check_zip(data: bytes, *, max_entries: int = 10_000,
              max_uncompressed: int = 300 * 1024 * 1024, max_ratio: int = 200) -> None:
    """Refuse a zip bomb before LibreOffice opens it.

    The limits are on what the zip's directory declares: the number of entries, their total
    uncompressed size and the compression ratio of any large entry. A zip that lies about
    its sizes is stopped later by the converter's memory, file-size and CPU limits (the
    worker process runs under them), not here.
    """
    declared = zip_entry_count(data)
    if declared is not None and declared > max_entries:
        raise DocumentRefused(f"{ZIP_BOMB} ({declared} parts)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise DocumentRefused(UNREADABLE) from None
    if len(entries) > max_entries:
        raise DocumentRefused(f"{ZIP_BOMB} ({len(entries)} parts)")
    total = 0
    for entry in entries:
        total += entry.file_size
        if total > max_uncompressed:
            raise DocumentRefused(ZIP_BOMB)
        if entry.file_size > 1024 * 1024 and entry.file_size > max_ratio * max(
                entry.compress_size, 1):
            raise DocumentRefused(ZIP_BOMB)


#: A PDF name that may spell ``JS`` or ``JavaScript`` (names may escape any character as
#: ``#xx``); the matches are decoded and compared by :func:`pdf_has_javascript`.
_JS_NAME = re.compile(rb"/(?:J|#4[aA])(?:S|#53|a|#61)[^\x00\t\n\x0c\r /<>\[\]()%{}]*")
_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")


def pdf_has_javascript(data: bytes) -> bool:
    """True if the PDF's bytes name a JavaScript action (``/JS`` or ``/JavaScript``).

    Poppler never runs JavaScript, but the issue counts such PDFs among the hostile inputs
    and a downloadable original would reach readers that do run it: such documents are
    refused. This looks at the bytes as stored; names hidden in compressed object streams
    are caught by ``pdfinfo``'s own ``JavaScript:`` line after parsing (see the service).
    """
    for match in _JS_NAME.finditer(data):
        name = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), match.group(0)[1:])
        if name in (b"JS", b"JavaScript"):
            return True
    return False
