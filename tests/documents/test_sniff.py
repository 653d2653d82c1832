"""What a document is, from its bytes, and the checks made before any converter runs."""

from __future__ import annotations

import pytest

from meetplatform.documents.sniff import (
    UNREADABLE,
    UNSUPPORTED,
    ZIP_BOMB,
    DocumentRefused,
    Kind,
    check_zip,
    pdf_has_javascript,
    sniff,
)
from tests.documents.pdfs import (
    make_docx,
    make_pdf,
    make_png,
    many_parts,
    png_header,
    zip_bomb,
)


def test_a_pdf_is_a_pdf_whatever_junk_comes_first() -> None:
    assert sniff(make_pdf(1)).kind is Kind.PDF
    assert sniff(b"\r\n" + make_pdf(1)).kind is Kind.PDF


def test_images_are_sniffed_with_their_size() -> None:
    sniffed = sniff(make_png(5, 7))
    assert (sniffed.kind, sniffed.extension, sniffed.size) == (Kind.PNG, "png", (5, 7))
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xc0\x00\x11\x08\x00\x20\x00\x40\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
            b"\xff\xd9")
    sniffed = sniff(jpeg)
    assert (sniffed.kind, sniffed.extension, sniffed.size) == (Kind.JPEG, "jpg", (64, 32))


def test_a_huge_image_is_refused_from_its_header() -> None:
    with pytest.raises(DocumentRefused, match="too large"):
        sniff(png_header(50_000, 50_000))


def test_office_formats() -> None:
    assert sniff(make_docx()).extension == "docx"
    assert sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)).kind is Kind.OFFICE


@pytest.mark.parametrize("data", [
    b"hello, this is text",
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    b"GIF89a....",
    b"<html><body>PDF</body></html>",
])
def test_anything_else_is_unsupported(data: bytes) -> None:
    with pytest.raises(DocumentRefused) as refused:
        sniff(data)
    assert refused.value.message == UNSUPPORTED


def test_a_zip_that_is_no_office_document_is_unsupported() -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(DocumentRefused, match=UNSUPPORTED):
        sniff(buffer.getvalue())


def test_a_broken_zip_is_unreadable() -> None:
    with pytest.raises(DocumentRefused, match=UNREADABLE):
        sniff(b"PK\x03\x04" + bytes(100))


def test_zip_bombs_are_refused() -> None:
    check_zip(make_docx())
    with pytest.raises(DocumentRefused, match=ZIP_BOMB):
        check_zip(zip_bomb(400))
    with pytest.raises(DocumentRefused, match=ZIP_BOMB):  # by its compression ratio
        check_zip(zip_bomb(8), max_uncompressed=10**12)
    with pytest.raises(DocumentRefused, match=ZIP_BOMB):
        check_zip(many_parts(10), max_entries=5)


def test_a_zip_of_too_many_parts_is_refused_from_its_end_record() -> None:
    with pytest.raises(DocumentRefused, match=ZIP_BOMB):
        sniff(many_parts(20_000))


@pytest.mark.parametrize("name", [b"/JS", b"/JavaScript", b"/J#53", b"/#4aavaScript",
                                  b"/J#61vaScript"])
def test_javascript_names_are_found_however_spelled(name: bytes) -> None:
    data = b"%PDF-1.4\n1 0 obj << /S /JavaScript " + name + b" (x) >> endobj"
    assert pdf_has_javascript(data.replace(b"/S /JavaScript ", b""))


def test_pdfs_without_javascript_pass() -> None:
    assert not pdf_has_javascript(make_pdf(3))
    assert not pdf_has_javascript(b"%PDF-1.4 << /JSON 1 /Jam 2 /JS_x 3 >>")
    assert pdf_has_javascript(make_pdf(1, javascript=True))
