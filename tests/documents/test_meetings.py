"""Meetings' documents end to end: the registry hands them to the service, the classroom
follows the conversion, ``/presentations`` serves the pages, the end of a meeting purges
them. Real poppler processes on the real reactor; HTTP through the real resource."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from meetplatform.documents import DocumentLimits, DocumentService, State
from meetplatform.documents.meetings import MeetingDocuments
from meetplatform.documents.process import ProcessRunner
from meetplatform.model import Document, Meeting, MeetingSpec, Role
from meetplatform.registry import Registry
from meetplatform.site import HealthResource
from meetplatform.web.presentations import PresentationFiles
from tests.documents.harness import DEADLINE, FileServer, reactor
from tests.documents.pdfs import make_pdf, make_png


class World:
    def __init__(self, tmp_path: Path, **kwargs: Any) -> None:
        self.registry = Registry(reactor())
        self.service = DocumentService(reactor(), tmp_path / "data", **kwargs)
        self.documents = MeetingDocuments(reactor(), self.registry, self.service)
        self.files = PresentationFiles(self.registry, self.documents)

    def create(self, *documents: Document) -> Meeting:
        meeting, _ = self.registry.create_meeting(MeetingSpec(
            "m1", "Class", documents=list(documents)))
        return meeting

    def until(self, condition: Callable[[], bool]) -> Deferred[None]:
        """Fires once ``condition()`` holds (checked at every document change and every
        registry event)."""
        d: Deferred[None] = Deferred()
        met: list[bool] = []

        def check(_: Any = None) -> None:
            if not met and condition():
                met.append(True)
                unsubscribe()
                unsubscribe_registry()
                reactor().callLater(0, d.callback, None)  # after the registry heard it

        unsubscribe = self.service.subscribe(check)
        unsubscribe_registry = self.registry.subscribe(check)
        check()
        return d.addTimeout(DEADLINE, reactor())


def get(resource: Resource, path: str, headers: dict[bytes, bytes] | None = None,
        method: bytes = b"GET", body: bytes = b"") -> DummyRequest:
    parts = [p.encode() for p in path.strip("/").split("/")]
    request = DummyRequest(parts)
    request.method = method
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name, [value])
    if body:
        request.content = io.BytesIO(body)  # type: ignore[attr-defined]
    output = resource.render(request)
    if output:
        request.write(output)
    return request


def body(request: DummyRequest) -> bytes:
    return b"".join(request.written)


def header(request: DummyRequest, name: bytes) -> str | None:
    values = request.responseHeaders.getRawHeaders(name)
    return values[0].decode() if values else None


@pytest_twisted.ensureDeferred
async def test_a_pdf_of_create_becomes_the_current_document(tmp_path: Path) -> None:
    world = World(tmp_path)
    meeting = world.create(Document("slides.pdf", content=make_pdf(3), downloadable=True))
    await world.until(lambda: bool(world.service.documents(meeting.internal_id))
                      and world.service.documents(meeting.internal_id)[0].done)
    [doc] = world.service.documents(meeting.internal_id)
    p = meeting.presentation
    assert (p.current_document, p.current_page) == (doc.id, 1)
    slide = p.documents[doc.id]
    assert (slide.state, slide.pages_total, slide.downloadable) == ("ready", 3, True)

    base = f"{meeting.internal_id}/{doc.id}"
    page = get(world.files, f"{base}/page-2.png")
    assert body(page).startswith(b"\x89PNG")
    assert header(page, b"cache-control") == "public, max-age=31536000, immutable"
    assert header(page, b"content-type") == "image/png"
    etag = header(page, b"etag")
    assert etag
    again = get(world.files, f"{base}/page-2.png", {b"if-none-match": etag.encode()})
    assert again.responseCode == 304 and body(again) == b""
    assert body(get(world.files, f"{base}/thumb-3.png")).startswith(b"\x89PNG")
    for bad in (f"{base}/page-4.png", f"{base}/page-1.jpg", f"{base}/original.pdf",
                f"{base}/../{doc.id}/page-1.png", f"{meeting.internal_id}/nope/page-1.png",
                f"other/{doc.id}/page-1.png", f"{base}/page-0.png", base):
        assert get(world.files, bad).responseCode == 404, bad
    original = get(world.files, f"{base}/original")
    assert body(original).startswith(b"%PDF")
    assert header(original, b"content-disposition") == (
        "attachment; filename=\"slides.pdf\"; filename*=UTF-8''slides.pdf")

    directory = world.service.root / meeting.internal_id
    assert directory.is_dir()
    world.registry.end_meeting(meeting, "ENDED_FROM_API")
    await world.until(lambda: not directory.exists())
    assert world.service.documents(meeting.internal_id) == []


@pytest_twisted.ensureDeferred
async def test_a_url_to_a_loopback_address_is_refused_with_its_message(
        tmp_path: Path) -> None:
    server = FileServer()
    try:
        server.files.paths["/slides.pdf"] = make_pdf(1)
        world = World(tmp_path)
        meeting = world.create(Document("s.pdf", url=server.url("/slides.pdf")))
        await world.until(lambda: any(
            d.state == "failed" for d in meeting.presentation.documents.values()))
        [slide] = meeting.presentation.documents.values()
        assert slide.error == ("The document URL was refused: 127.0.0.1 is not a public "
                               "address (public addresses only)")
        assert meeting.presentation.current_document == "default"
        assert server.files.requests == []
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_the_presenter_uploads_from_the_page(tmp_path: Path) -> None:
    world = World(tmp_path)
    meeting = world.create()
    mod_seat = world.registry.issue_seat(meeting, full_name="Mod", role=Role.MODERATOR)
    viewer_seat = world.registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
    world.registry.connect(mod_seat)
    world.registry.connect(viewer_seat)
    refused = get(world.files, "upload", {b"x-session-token": viewer_seat.token.encode()},
                  method=b"POST", body=make_pdf(1))
    assert refused.responseCode == 403
    assert get(world.files, "upload", {b"x-session-token": b"nope"}, method=b"POST",
               body=make_pdf(1)).responseCode == 403
    accepted = get(world.files, "upload", {b"x-session-token": mod_seat.token.encode()},
                   method=b"POST", body=make_pdf(2))
    assert accepted.responseCode == 202
    answer = json.loads(body(accepted))["document"]
    assert answer["state"] in ("queued", "converting")
    await world.until(lambda: meeting.presentation.current_document == answer["id"])
    assert meeting.presentation.documents[answer["id"]].pages_total == 2
    assert [d.filename for d in meeting.documents] == ["document"]


class GatedRunner(ProcessRunner):
    """Holds the result of every converter after the first page until ``gate`` fires:
    the conversion is certainly still going when the test looks."""

    def __init__(self) -> None:
        super().__init__(reactor())
        self.gate: Deferred[None] = Deferred()
        self.calls = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        result = super().run(*args, **kwargs)
        if self.calls <= 3 or self.gate.called:  # pdfinfo, page 1, thumbnail 1
            return result
        gate = self.gate

        async def later() -> Any:
            value = await result
            if not gate.called:
                await _wait(gate)
            return value

        return Deferred.fromCoroutine(later())


def _wait(d: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires after ``d`` without taking its result from others."""
    waiter: Deferred[None] = Deferred()

    def fire(result: Any) -> Any:
        waiter.callback(None)
        return result

    d.addBoth(fire)
    return waiter


@pytest_twisted.ensureDeferred
async def test_healthz_answers_while_a_hundred_page_pdf_converts(tmp_path: Path) -> None:
    """Structural: /healthz is answered over real HTTP while the conversion has pages to
    go and a converter's result is pending (conversions never run on the reactor)."""
    runner = GatedRunner()
    world = World(tmp_path, runner=runner, limits=DocumentLimits(page_pixels=200))
    root = Resource()
    root.putChild(b"healthz", HealthResource(reactor(), world.registry))
    port = reactor().listenTCP(0, Site(root), interface="127.0.0.1")
    try:
        meeting = world.create(Document("long.pdf", content=make_pdf(100)))
        await world.until(lambda: any(d.pages_done >= 1 for d in
                                      world.service.documents(meeting.internal_id)))
        [doc] = world.service.documents(meeting.internal_id)
        response = await treq.get(f"http://127.0.0.1:{port.getHost().port}/healthz")
        assert response.code == 200
        assert json.loads(await response.content())["status"] == "ok"
        assert doc.state is State.CONVERTING and doc.pages_done < 100
        runner.gate.callback(None)
        await world.until(lambda: doc.done)
        assert (doc.state, doc.pages_done) == (State.READY, 100)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_removed_document_loses_its_files(tmp_path: Path) -> None:
    world = World(tmp_path)
    meeting = world.create(Document("board.png", content=make_png(8, 6)))
    await world.until(lambda: meeting.presentation.current_document != "default")
    [doc] = world.service.documents(meeting.internal_id)
    assert doc.directory.is_dir()
    world.registry.remove_document(meeting, doc.id)
    await world.until(lambda: not doc.directory.exists())
    assert world.service.documents(meeting.internal_id) == []
    assert meeting.presentation.current_document == "default"
