"""``/presentations``: converted pages, thumbnails and downloadable originals; uploads.

- ``GET /presentations/<meeting internal id>/<document id>/page-<n>.<png|jpg>``,
  ``.../thumb-<n>.png``: a page image of a ready document. The ids are unguessable
  (the document id holds 160 random bits) and name a file only through the document
  service's own list of pages, never through the file system, so nothing outside a
  document's directory can be reached. Answers carry ``Cache-Control: public,
  max-age=31536000, immutable`` and an ``ETag`` (a page never changes once converted);
  ``If-None-Match`` answers 304.
- ``GET .../<document id>/original``: the original of a ``downloadable`` document, as
  an attachment with its file name (404 for the others).
- ``POST /presentations/upload?filename=<name>`` with the header
  ``X-Session-Token: <seat token>``: the presenter (or a moderator) of a live meeting
  uploads a document; the body is the file (at most the site's ``max_body_bytes`` and
  the document limits). ``202`` with the document's JSON; it converts like any other.

Page files are read whole: they are at most a couple of megabytes (1600 pixels) and
come from the page cache.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from twisted.web.resource import Resource
from twisted.web.server import Request

from meetplatform.documents.meetings import MeetingDocuments, document_json, slide
from meetplatform.documents.service import ConvertedDocument, State, safe_filename
from meetplatform.registry import Registry

_PAGE = re.compile(r"(page|thumb)-([1-9][0-9]{0,5})\.(png|jpg)\Z")
_TYPES = {"png": b"image/png", "jpg": b"image/jpeg", "jpeg": b"image/jpeg",
          "pdf": b"application/pdf"}
IMMUTABLE = b"public, max-age=31536000, immutable"


def _answer(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return json.dumps(body).encode() + b"\n"


class PresentationFiles(Resource):
    """The resource mounted at ``/presentations`` (see the module)."""

    isLeaf = True

    def __init__(self, registry: Registry, documents: MeetingDocuments, *,
                 base_path: str = "") -> None:
        super().__init__()
        self._registry = registry
        self._documents = documents
        self._base = base_path.rstrip("/") + "/presentations"

    def render_GET(self, request: Request) -> bytes:
        return self._serve(request, head=False)

    def render_HEAD(self, request: Request) -> bytes:
        return self._serve(request, head=True)

    def _not_found(self, request: Request) -> bytes:
        return _answer(request, 404, {"error": "no such file"})

    def _serve(self, request: Request, *, head: bool) -> bytes:
        path = [p.decode("ascii", "replace") for p in request.postpath or []]
        if len(path) != 3:
            return self._not_found(request)
        meeting_id, doc_id, name = path
        doc = self._documents.service.get(meeting_id, doc_id)
        if doc is None or doc.state is not State.READY:
            return self._not_found(request)
        if name == "original":
            return self._original(request, doc, head)
        match = _PAGE.match(name)
        if match is None:
            return self._not_found(request)
        kind, number = match.group(1), int(match.group(2))
        files = doc.page_files if kind == "page" else doc.thumbnail_files
        if number > len(files) or files[number - 1] != name:
            return self._not_found(request)
        etag = f'"{doc.id}-{name}"'.encode()
        request.setHeader(b"etag", etag)
        request.setHeader(b"cache-control", IMMUTABLE)
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.getHeader(b"if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        try:
            body = (doc.directory / name).read_bytes()
        except OSError:
            return self._not_found(request)
        request.setHeader(b"content-type", _TYPES[match.group(3)])
        request.setHeader(b"content-length", str(len(body)).encode())
        return b"" if head else body

    def _original(self, request: Request, doc: ConvertedDocument, head: bool) -> bytes:
        path = doc.original_path
        if not doc.downloadable or path is None:
            return self._not_found(request)
        try:
            body = path.read_bytes()
        except OSError:
            return self._not_found(request)
        extension = path.suffix.lstrip(".").lower()
        request.setHeader(b"content-type", _TYPES.get(extension, b"application/octet-stream"))
        ascii_name = doc.filename.encode("ascii", "replace").decode().replace('"', "_")
        request.setHeader(b"content-disposition", (
            f"attachment; filename=\"{ascii_name}\"; "
            f"filename*=UTF-8''{quote(doc.filename, safe='')}").encode())
        request.setHeader(b"cache-control", b"private, max-age=3600")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-length", str(len(body)).encode())
        return b"" if head else body

    def render_POST(self, request: Request) -> bytes:
        if request.postpath != [b"upload"]:
            return self._not_found(request)
        raw = request.getHeader(b"x-session-token") or b""
        token = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw).strip()
        seat = self._registry.lookup_seat(token) if token else None
        participant = seat.participant if seat is not None else None
        if (participant is None or participant.meeting.ended
                or participant.meeting.participants.get(participant.user_id) is not participant):
            return _answer(request, 403, {"error": "only a connected participant may upload"})
        if not (participant.presenter or participant.is_moderator):
            return _answer(request, 403, {"error": "only the presenter may upload documents"})
        names = request.args.get(b"filename") or [b"document"]
        filename = safe_filename(names[0].decode("utf-8", "replace"))
        assert request.content is not None
        content = request.content.read()
        if not content:
            return _answer(request, 400, {"error": "the request body (the file) is empty"})
        doc = self._documents.upload(participant.meeting, filename, content)
        return _answer(request, 202, {"document": document_json(
            participant.meeting, slide(doc), base=self._base)})
