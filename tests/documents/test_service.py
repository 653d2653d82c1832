"""Converting documents for real: poppler in worker processes, on the real reactor."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.web.server import NOT_DONE_YET

from meetplatform.documents import (
    DocumentLimits,
    DocumentService,
    FetchLimits,
    State,
    guarded_client,
)
from meetplatform.documents.process import ProcessRunner
from meetplatform.documents.service import TOO_LONG
from meetplatform.documents.sniff import (
    HAS_JAVASCRIPT,
    NOT_ON_THIS_SERVER,
    UNREADABLE,
    UNSUPPORTED,
    ZIP_BOMB,
)
from meetplatform.model import Document
from meetplatform.webhooks.guard import AddressPolicy
from tests.documents.harness import (
    DEADLINE,
    Changes,
    FileServer,
    NamedReactor,
    endless,
    fake_soffice,
    finished,
    first_page,
    reactor,
    redirect,
)
from tests.documents.pdfs import corrupt_pdf, make_docx, make_pdf, make_png, zip_bomb

MEETING = "5a5f0a0c2b9e4d7f8f3c2e1d0b9a8f7e6d5c4b3a-1700000000000"
LOOPBACK = AddressPolicy(["127.0.0.0/8"])


def service(tmp_path: Path, **kwargs: Any) -> DocumentService:
    return DocumentService(reactor(), tmp_path / "data", **kwargs)


async def convert(svc: DocumentService, document: Document) -> Any:
    [doc] = svc.add(MEETING, [document])
    return await finished(svc, doc)


def pdf(data: bytes, **kwargs: Any) -> Document:
    return Document(filename="slides.pdf", content=data, **kwargs)


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[FileServer]:
    files = FileServer()
    yield files
    await files.stop()


@pytest_twisted.ensureDeferred
async def test_a_three_page_pdf_gives_three_page_images(tmp_path: Path) -> None:
    svc = service(tmp_path)
    changes = Changes()
    svc.subscribe(changes)
    doc = await convert(svc, pdf(make_pdf(3), current=True))
    assert (doc.state, doc.error, doc.pages_total, doc.pages_done) == (State.READY, None, 3, 3)
    directory = tmp_path / "data" / "presentations" / MEETING / doc.id
    assert doc.directory == directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "page-1.png", "page-2.png", "page-3.png", "thumb-1.png", "thumb-2.png", "thumb-3.png"]
    for page in (1, 2, 3):
        assert doc.page_path(page).read_bytes().startswith(b"\x89PNG")
        assert doc.thumbnail_path(page).stat().st_size < doc.page_path(page).stat().st_size
    assert changes.of(doc) == [
        (State.QUEUED, 0, 0), (State.CONVERTING, 0, 0), (State.CONVERTING, 0, 3),
        (State.CONVERTING, 1, 3), (State.CONVERTING, 2, 3), (State.CONVERTING, 3, 3),
        (State.READY, 3, 3)]
    assert doc.as_dict() == {
        "id": doc.id, "filename": "slides.pdf", "state": "ready", "pagesDone": 3,
        "pagesTotal": 3, "error": None, "current": True, "downloadable": False,
        "removable": True}
    assert svc.documents(MEETING) == [doc]


@pytest_twisted.ensureDeferred
async def test_pages_may_be_jpeg(tmp_path: Path) -> None:
    doc = await convert(service(tmp_path, limits=DocumentLimits(page_format="jpeg")),
                        pdf(make_pdf(2)))
    assert doc.page_files == ["page-1.jpg", "page-2.jpg"]
    assert doc.page_path(2).read_bytes().startswith(b"\xff\xd8\xff")
    assert doc.thumbnail_files == ["thumb-1.png", "thumb-2.png"]


@pytest_twisted.ensureDeferred
async def test_a_downloadable_document_keeps_its_original(tmp_path: Path) -> None:
    data = make_pdf(1)
    doc = await convert(service(tmp_path), pdf(data, downloadable=True, removable=False))
    assert doc.original_path is not None
    assert doc.original_path.read_bytes() == data
    assert doc.as_dict()["downloadable"] is True
    assert doc.as_dict()["removable"] is False


@pytest_twisted.ensureDeferred
async def test_a_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    doc = await convert(service(tmp_path), pdf(corrupt_pdf(), downloadable=True))
    assert (doc.state, doc.error) == (State.FAILED, UNREADABLE)
    assert not doc.directory.exists()
    assert doc.page_files == []


@pytest_twisted.ensureDeferred
async def test_a_pdf_over_the_page_limit_is_refused_before_any_page_is_drawn(
        tmp_path: Path) -> None:
    svc = service(tmp_path)
    changes = Changes()
    svc.subscribe(changes)
    doc = await convert(svc, pdf(make_pdf(5000)))
    assert (doc.state, doc.error) == (
        State.FAILED, "The document has 5000 pages; at most 200 are allowed")
    assert all(done == 0 for _, done, _ in changes.of(doc))
    small = await convert(service(tmp_path, limits=DocumentLimits(max_pages=2)),
                          pdf(make_pdf(3)))
    assert small.error == "The document has 3 pages; at most 2 are allowed"


@pytest_twisted.ensureDeferred
async def test_a_pdf_with_javascript_is_refused(tmp_path: Path) -> None:
    doc = await convert(service(tmp_path), pdf(make_pdf(2, javascript=True)))
    assert (doc.state, doc.error) == (State.FAILED, HAS_JAVASCRIPT)


@pytest_twisted.ensureDeferred
async def test_unsupported_types_are_refused(tmp_path: Path) -> None:
    svc = service(tmp_path)
    for data in (b"just some text", b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        doc = await convert(svc, Document(filename="slides.pdf", content=data))
        assert (doc.state, doc.error) == (State.FAILED, UNSUPPORTED)


@pytest_twisted.ensureDeferred
async def test_an_image_is_a_one_page_document(tmp_path: Path) -> None:
    image = make_png(8, 6)
    doc = await convert(service(tmp_path), Document(filename="photo.bin", content=image))
    assert (doc.state, doc.pages_total, doc.page_files) == (State.READY, 1, ["page-1.png"])
    assert doc.page_path(1).read_bytes() == image


@pytest_twisted.ensureDeferred
async def test_office_documents_need_libreoffice(tmp_path: Path) -> None:
    doc = await convert(service(tmp_path, soffice=""),
                        Document(filename="a.docx", content=make_docx()))
    assert (doc.state, doc.error) == (State.FAILED, NOT_ON_THIS_SERVER)


@pytest_twisted.ensureDeferred
async def test_office_documents_are_converted_by_libreoffice(tmp_path: Path) -> None:
    program, marker = fake_soffice(tmp_path, make_pdf(2))
    doc = await convert(service(tmp_path, soffice=str(program)),
                        Document(filename="a.docx", content=make_docx(), downloadable=True))
    assert marker.exists()
    assert (doc.state, doc.error, doc.pages_total) == (State.READY, None, 2)
    assert doc.original_file == "original.docx"
    assert sorted(p.name for p in doc.directory.iterdir()) == [
        "original.docx", "page-1.png", "page-2.png", "thumb-1.png", "thumb-2.png"]


@pytest_twisted.ensureDeferred
async def test_a_zip_bomb_is_refused_before_libreoffice_sees_it(tmp_path: Path) -> None:
    program, marker = fake_soffice(tmp_path, make_pdf(1))
    doc = await convert(service(tmp_path, soffice=str(program)),
                        Document(filename="a.docx", content=zip_bomb(400)))
    assert (doc.state, doc.error) == (State.FAILED, ZIP_BOMB)
    assert not marker.exists()


@pytest_twisted.ensureDeferred
async def test_inline_content_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    svc = service(tmp_path, limits=DocumentLimits(max_bytes=1024 * 1024))
    doc = await convert(svc, pdf(make_pdf(1) + bytes(2 * 1024 * 1024)))
    assert doc.error == "The document is larger than 1 MB"


@pytest_twisted.ensureDeferred
async def test_a_bad_document_disturbs_nothing_else(tmp_path: Path) -> None:
    svc = service(tmp_path)
    bad, good = svc.add(MEETING, [pdf(corrupt_pdf()), pdf(make_pdf(2))])
    await finished(svc, good)
    assert (bad.state, good.state, good.pages_done) == (State.FAILED, State.READY, 2)


@pytest_twisted.ensureDeferred
async def test_conversions_wait_for_a_free_slot(tmp_path: Path) -> None:
    svc = service(tmp_path, limits=DocumentLimits(max_concurrent=1))
    converting: set[str] = set()
    most = [0]

    def watch(doc: Any) -> None:
        (converting.add if doc.state is State.CONVERTING else converting.discard)(doc.id)
        most[0] = max(most[0], len(converting))

    svc.subscribe(watch)
    docs = svc.add(MEETING, [pdf(make_pdf(2)) for _ in range(3)])
    assert [d.state for d in docs] == [State.CONVERTING, State.QUEUED, State.QUEUED]
    for doc in docs:
        await finished(svc, doc)
    assert most[0] == 1
    assert all(d.state is State.READY for d in docs)


# --- URLs ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_url_to_a_loopback_address_is_refused_by_default(
        tmp_path: Path, server: FileServer) -> None:
    server.files.paths["/slides.pdf"] = make_pdf(1)
    svc = service(tmp_path)
    doc = await convert(svc, Document(filename="s.pdf", url=server.url("/slides.pdf")))
    assert doc.state is State.FAILED
    assert doc.error == ("The document URL was refused: 127.0.0.1 is not a public address "
                         "(public addresses only)")
    by_name = await convert(svc, Document(filename="s.pdf",
                                          url=server.url("/slides.pdf").replace(
                                              "127.0.0.1", "localhost")))
    assert by_name.error is not None
    assert by_name.error.startswith("The document URL was refused: localhost")
    assert server.files.requests == []


@pytest_twisted.ensureDeferred
async def test_a_public_name_that_resolves_to_loopback_is_refused_after_the_lookup(
        tmp_path: Path, server: FileServer) -> None:
    server.files.paths["/slides.pdf"] = make_pdf(1)
    url = server.url("/slides.pdf").replace("127.0.0.1", "docs.example.com")
    named = NamedReactor()
    svc = service(tmp_path, http_client=guarded_client(named, AddressPolicy()))
    doc = await convert(svc, Document(filename="s.pdf", url=url))
    # What the name resolves to stays in the operator's log (issue 13: no DNS probing).
    assert doc.error == ("The document URL was refused: delivery to the address of "
                         "docs.example.com is not allowed")
    assert server.files.requests == []
    allowed = service(tmp_path, policy=LOOPBACK,
                      http_client=guarded_client(named, LOOPBACK))
    doc = await convert(allowed, Document(filename="s.pdf", url=url))
    assert (doc.state, doc.pages_total) == (State.READY, 1)
    assert server.files.requests == ["/slides.pdf"]


@pytest_twisted.ensureDeferred
async def test_an_allowed_receiver_serves_a_pdf_that_converts(
        tmp_path: Path, server: FileServer) -> None:
    server.files.paths["/slides.pdf"] = make_pdf(3)
    server.files.paths["/moved"] = redirect("/slides.pdf")
    svc = service(tmp_path, policy=LOOPBACK)
    doc = await convert(svc, Document(filename="s.pdf", url=server.url("/moved")))
    assert (doc.state, doc.error, doc.pages_total) == (State.READY, None, 3)
    assert server.files.requests == ["/moved", "/slides.pdf"]


@pytest_twisted.ensureDeferred
async def test_a_download_that_never_ends_times_out(tmp_path: Path, server: FileServer) -> None:
    held: list[Any] = []

    def hold(request: Any) -> Any:
        held.append(request)
        return NOT_DONE_YET

    server.files.paths["/slow"] = hold
    svc = service(tmp_path, policy=LOOPBACK, fetch_limits=FetchLimits(timeout=0.2))
    doc = await convert(svc, Document(filename="s.pdf", url=server.url("/slow")))
    assert doc.error == "The document could not be downloaded within 0.2 seconds"
    assert len(held) == 1
    for request in held:
        if not request.finished and not request._disconnected:
            request.finish()


@pytest_twisted.ensureDeferred
async def test_purge_stops_a_download(tmp_path: Path, server: FileServer) -> None:
    arrived: Deferred[Any] = Deferred()

    def hold(request: Any) -> Any:
        arrived.callback(request)
        return NOT_DONE_YET

    server.files.paths["/slow"] = hold
    svc = service(tmp_path, policy=LOOPBACK)
    [doc] = svc.add(MEETING, [Document(filename="s.pdf", url=server.url("/slow"))])
    request = await arrived.addTimeout(DEADLINE, reactor())
    await svc.purge(MEETING)
    assert (doc.state, doc.error) == (State.FAILED, "The conversion was stopped")
    await request.notifyFinish().addErrback(lambda _: None)  # the client went away


@pytest_twisted.ensureDeferred
async def test_every_redirect_is_checked_again(tmp_path: Path, server: FileServer) -> None:
    """Only 127.0.0.2 is allowed: a redirect from there to 127.0.0.1 is refused."""
    server.files.paths["/slides.pdf"] = make_pdf(1)
    allowed = FileServer(interface="127.0.0.2")
    try:
        allowed.files.paths["/moved"] = redirect(server.url("/slides.pdf"))
        allowed.files.paths["/here"] = make_pdf(1)
        policy = AddressPolicy(["127.0.0.2/32"])
        svc = service(tmp_path, policy=policy)
        here = await convert(svc, Document(filename="s.pdf", url=allowed.url("/here")))
        assert here.state is State.READY
        moved = await convert(svc, Document(filename="s.pdf", url=allowed.url("/moved")))
        assert moved.error == ("The document URL was refused: 127.0.0.1 is not a public "
                               "address (public addresses and 127.0.0.2/32)")
        assert server.files.requests == []
    finally:
        await allowed.stop()


@pytest_twisted.ensureDeferred
async def test_the_python_limits_wrapper_converts_too(tmp_path: Path) -> None:
    """Without prlimit, the limits are set by a few lines of Python before exec."""
    svc = service(tmp_path, runner=ProcessRunner(reactor(), prlimit=""))
    doc = await convert(svc, pdf(make_pdf(2)))
    assert (doc.state, doc.pages_done) == (State.READY, 2)


@pytest_twisted.ensureDeferred
async def test_download_failures_have_their_messages(
        tmp_path: Path, server: FileServer) -> None:
    server.files.paths["/loop"] = redirect("/loop")
    server.files.paths["/big"] = make_pdf(1) + bytes(2 * 1024 * 1024)
    server.files.paths["/endless"] = endless()
    svc = service(tmp_path, policy=LOOPBACK, limits=DocumentLimits(max_bytes=1024 * 1024))
    errors = {}
    for path in ("/missing", "/loop", "/big", "/endless"):
        doc = await convert(svc, Document(filename="s.pdf", url=server.url(path)))
        errors[path] = doc.error
    assert errors == {
        "/missing": "The document could not be downloaded (HTTP 404)",
        "/loop": "The document URL redirects more than 5 times",
        "/big": "The document is larger than 1 MB",
        "/endless": "The document is larger than 1 MB",
    }
    assert server.files.requests.count("/loop") == 6


# --- files, processes and the reactor ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_purge_removes_the_files_and_stops_conversions(tmp_path: Path) -> None:
    svc = service(tmp_path)
    ready = await convert(svc, pdf(make_pdf(2), downloadable=True))
    [busy] = svc.add(MEETING, [pdf(make_pdf(100))])
    await first_page(svc, busy)
    assert busy.state is State.CONVERTING
    await svc.purge(MEETING)
    meeting_dir = tmp_path / "data" / "presentations" / MEETING
    assert not meeting_dir.exists()
    assert not ready.directory.exists()
    assert (busy.state, busy.error) == (State.FAILED, "The conversion was stopped")
    assert svc.documents(MEETING) == []
    assert not svc._runner._running  # no converter left behind


@pytest_twisted.ensureDeferred
async def test_the_reactor_keeps_turning_while_a_long_pdf_converts(tmp_path: Path) -> None:
    """Each page is drawn by a separate process: between the first page and the last the
    reactor runs its timers (a LoopingCall ticks), whatever the machine's speed."""
    svc = service(tmp_path, limits=DocumentLimits(page_pixels=400))
    ticks_while_converting = [0]
    pids: set[int] = set()
    docs: list[Any] = []

    def tick() -> None:
        if docs and docs[0].state is State.CONVERTING and 1 <= docs[0].pages_done < 100:
            ticks_while_converting[0] += 1
        for protocol in svc._runner._running:
            transport: Any = protocol.transport
            pids.add(transport.pid)

    loop = LoopingCall(tick)
    loop.clock = reactor()
    loop.start(0.005)
    try:
        docs.extend(svc.add(MEETING, [pdf(make_pdf(100))]))
        doc = await finished(svc, docs[0])
    finally:
        loop.stop()
    assert (doc.state, doc.pages_done) == (State.READY, 100)
    assert ticks_while_converting[0] > 0
    assert pids and os.getpid() not in pids


@pytest_twisted.ensureDeferred
async def test_remove_deletes_one_document(tmp_path: Path) -> None:
    svc = service(tmp_path)
    one, two = svc.add(MEETING, [pdf(make_pdf(1)), pdf(make_pdf(1))])
    await finished(svc, two)
    assert await svc.remove(MEETING, one.id) is True
    assert not one.directory.exists() and two.directory.exists()
    assert svc.documents(MEETING) == [two]
    assert await svc.remove(MEETING, one.id) is False


@pytest_twisted.ensureDeferred
async def test_stopping_the_service_kills_its_converters(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.startService()
    [doc] = svc.add(MEETING, [pdf(make_pdf(100))])
    await first_page(svc, doc)
    # (first_page fires inside a notification: purge's test stops from there; this one
    # from a later turn of the reactor, while a converter runs)
    await deferLater(reactor(), 0, lambda: None)
    assert doc.state is State.CONVERTING and svc._runner._running
    await svc.stopService()
    assert doc.state is State.FAILED
    assert not svc._runner._running


def test_identifiers_that_would_escape_the_directory_are_refused(tmp_path: Path) -> None:
    svc = service(tmp_path)
    for bad in ("../etc", "a/b", "", ".."):
        with pytest.raises(ValueError):
            svc.add(bad, [])


@pytest_twisted.ensureDeferred
async def test_a_conversion_over_its_time_budget_stops(tmp_path: Path) -> None:
    svc = service(tmp_path, limits=DocumentLimits(conversion_timeout=0.0))
    doc = await convert(svc, pdf(make_pdf(3)))
    assert (doc.state, doc.error) == (State.FAILED, TOO_LONG)
    assert not doc.directory.exists()


@pytest_twisted.ensureDeferred
async def test_a_converter_killed_by_its_limits_is_reported(tmp_path: Path) -> None:
    from meetplatform.documents.process import ProcessLimits

    tiny = DocumentLimits(process=ProcessLimits(memory_bytes=8 * 1024 * 1024))
    doc = await convert(service(tmp_path, limits=tiny), pdf(make_pdf(1)))
    assert doc.state is State.FAILED
    assert doc.error in (TOO_LONG, UNREADABLE)


def test_the_service_from_settings_uses_the_data_dir_and_allowed_networks(
        tmp_path: Path) -> None:
    from meetplatform.config import Settings

    settings = Settings(secret="s" * 32, data_dir=tmp_path,
                        allow_webhook_networks=("127.0.0.0/8",))
    svc = DocumentService.from_settings(reactor(), settings)
    assert svc.root == tmp_path / "presentations"
    assert svc.policy.allows("127.0.0.1") and not svc.policy.allows("10.0.0.1")
    assert not DocumentService.from_settings(
        reactor(), Settings(secret="s" * 32, data_dir=tmp_path)).policy.allows("127.0.0.1")
