"""``documents``: the presentations of a room's live meeting, for client apps.

A client adds a document (by ``url``, fetched through the same SSRF guard as webhooks, or
inline as base64 ``content``), follows its conversion (``state``, ``pagesDone`` of
``pagesTotal``, ``error`` in words for people) and chooses what everyone sees
(``PATCH`` with ``current: true`` and an optional ``page``). It is the same path as
``insertDocument``: the meeting records the document and the document service converts
it in worker processes; the conference page shows it when it is ready.

Request bodies are the JSON:API's (64 KiB), so inline ``content`` suits small files;
larger ones go by ``url`` (or through the conference page's upload, or ``insertDocument``,
both bounded by the site's ``max_body_bytes``). Scopes: ``documents:read`` and
``documents:write``. A room without a live meeting has no
documents (and adding one answers 409).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from meetplatform.documents.meetings import MeetingDocuments, document_json
from meetplatform.model import ClassroomError, Document, Meeting, SlideDocument
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.schema import Attr, Bool, Int, ResourceType, Str
from meetplatform.store import RoomRecord

DOCUMENT = ResourceType(
    "documents",
    "A presentation of a room's live meeting and how far its conversion got.",
    {
        "filename": Attr(Str(min_length=1, max_length=255, example="lesson-3.pdf"),
                         required=True, create_only=True),
        "url": Attr(Str(min_length=1, max_length=2048, format="uri",
                        description="where to fetch the document (public addresses only, "
                                    "unless the operator allows more)"),
                    create_only=True, write_only=True),
        "content": Attr(Str(description="the file, base64 (instead of url)"),
                        create_only=True, write_only=True),
        "downloadable": Attr(Bool(description="participants may download the original"),
                             create_only=True),
        "removable": Attr(Bool(), create_only=True),
        "current": Attr(Bool(description="true: everyone sees this document (at `page`, "
                                         "default 1) once it is ready")),
        "page": Attr(Int(minimum=1, nullable=True,
                         description="the page shown when this document is "
                                                "the current one")),
        "state": Attr(Str(enum=("queued", "converting", "ready", "failed")), read_only=True),
        "pagesDone": Attr(Int(), read_only=True),
        "pagesTotal": Attr(Int(), read_only=True),
        "error": Attr(Str(nullable=True, description="why it failed, for people"),
                      read_only=True),
        "pageUrl": Attr(Str(description="a page's image: replace {page} by its number"),
                        read_only=True),
    },
    relationships={"room": "rooms"},
    id_example="3f9a0c1b2d4e5f60718293a4b5c6d7e8f9a0b1c2-1700000000000",
)


def document_resource(meeting: Meeting, doc: SlideDocument, room_id: str,
                      base: str, public_base: str) -> dict[str, Any]:
    shown = document_json(meeting, doc, base=public_base + "/presentations")
    p = meeting.presentation
    current = p.current_document == doc.id
    return jsonapi.resource(
        "documents", doc.id,
        {"filename": doc.filename, "downloadable": shown["downloadable"],
         "removable": doc.removable, "current": current,
         "page": p.current_page if current else None, "state": doc.state,
         "pagesDone": doc.pages_done, "pagesTotal": doc.pages_total, "error": doc.error,
         "pageUrl": shown["pageUrl"]},
        relationships={"room": jsonapi.to_one("rooms", room_id, f"{base}/rooms/{room_id}")},
        links={"self": f"{base}/rooms/{room_id}/documents/{doc.id}"})


class DocumentRoutes(ApiBase):
    #: Set by :class:`~meetplatform.restapi.api.RestApi` (``None``: documents are not
    #: converted on this build, the routes answer 503).
    meeting_documents: MeetingDocuments | None

    def _documents(self) -> MeetingDocuments:
        if self.meeting_documents is None:
            raise ApiError(503, "documents.unavailable",
                           "documents are not converted on this server")
        return self.meeting_documents

    def _document_resource(self, meeting: Meeting, doc: SlideDocument, room: RoomRecord
                  ) -> dict[str, Any]:
        return document_resource(meeting, doc, room.id, self.base_url,
                                 self._settings.public_url.rstrip("/"))

    async def _meeting(self, ctx: Ctx, room_id: str) -> tuple[RoomRecord, Meeting | None]:
        room = await self.room_for(ctx, room_id)
        return room, self.invitations.live_meeting(room)

    async def _document(self, ctx: Ctx, room_id: str, document_id: str
                        ) -> tuple[RoomRecord, Meeting, SlideDocument]:
        room, meeting = await self._meeting(ctx, room_id)
        doc = meeting.presentation.documents.get(document_id) if meeting else None
        if meeting is None or doc is None:
            raise ApiError(404, "document.notFound",
                           "no such document in the room's live meeting",
                           parameter="documentId")
        return room, meeting, doc

    @api_route("GET", "/rooms/{roomId}/documents",
               summary="List the documents of a room's live meeting", tag="Documents",
               auth="any", scope="documents:read", output=Output("collection", DOCUMENT))
    async def list_documents(self, ctx: Ctx, roomId: str) -> Reply:
        """In the order they were added (at most a few hundred: no pages); empty when no
        meeting runs."""
        room, meeting = await self._meeting(ctx, roomId)
        docs = list(meeting.presentation.documents.values()) if meeting else []
        return Reply(200, jsonapi.collection(
            [self._document_resource(meeting, d, room) for d in docs] if meeting else [],
            self_link=self.url(f"/rooms/{room.id}/documents"), next_link=None))

    @api_route("GET", "/rooms/{roomId}/documents/{documentId}", summary="Read a document",
               tag="Documents", auth="any", scope="documents:read",
               output=Output("resource", DOCUMENT))
    async def get_document(self, ctx: Ctx, roomId: str, documentId: str) -> Reply:
        room, meeting, doc = await self._document(ctx, roomId, documentId)
        return Reply(200, jsonapi.single(self._document_resource(meeting, doc, room)))

    @api_route("POST", "/rooms/{roomId}/documents", summary="Add a document",
               tag="Documents", auth="any", scope="documents:write",
               body=Body(DOCUMENT, "create"), success=202,
               output=Output("resource", DOCUMENT), errors=(409, 503))
    async def create_document(self, ctx: Ctx, roomId: str) -> Reply:
        """By ``url`` or base64 ``content`` (one of them; the request body, like every
        JSON:API body, is at most 64 KiB: larger files go by URL). Answers at once (``queued``);
        the conversion goes on in the background: read the document (or watch the
        conference page) for its ``state``. A refused document ends ``failed`` with its
        ``error``."""
        documents = self._documents()
        room, meeting = await self._meeting(ctx, roomId)
        if meeting is None:
            raise ApiError(409, "room.notLive", "the room has no live meeting")
        attrs = ctx.attrs
        url, content = attrs.get("url"), attrs.get("content")
        if (url is None) == (content is None):
            raise ApiError(422, "document.source", "give either url or content",
                           pointer="/data/attributes")
        data = None
        if content is not None:
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(422, "document.content", "content is not valid base64",
                               pointer="/data/attributes/content") from None
        converted = documents.insert(meeting, Document(
            filename=attrs["filename"], url=url, content=data,
            current=bool(attrs.get("current")),
            downloadable=bool(attrs.get("downloadable")),
            removable=attrs.get("removable") is not False))
        doc = meeting.presentation.documents.get(converted.id) or SlideDocument(
            id=converted.id, filename=converted.filename, state=converted.state.value,
            error=converted.error, downloadable=converted.downloadable,
            removable=converted.removable, current=converted.current)
        return Reply(202, jsonapi.single(self._document_resource(meeting, doc, room)),
                     headers={"Location": self.url(f"/rooms/{room.id}/documents/{doc.id}")})

    @api_route("PATCH", "/rooms/{roomId}/documents/{documentId}",
               summary="Show a document (set the current one and its page)",
               tag="Documents", auth="any", scope="documents:write",
               body=Body(DOCUMENT, "update"), output=Output("resource", DOCUMENT),
               errors=(409,))
    async def update_document(self, ctx: Ctx, roomId: str, documentId: str) -> Reply:
        """``current: true`` (with an optional ``page``, default 1) shows the document to
        everyone, as the presenter's page switcher does; ``page`` alone turns the page of
        the current document. 409 while it is not converted, 422 for a page it does not
        have."""
        room, meeting, doc = await self._document(ctx, roomId, documentId)
        attrs = ctx.attrs
        shown = meeting.presentation.current_document == doc.id
        if attrs.get("current") is False:
            raise ApiError(422, "document.current", "choose another document to show instead",
                           pointer="/data/attributes/current")
        if attrs.get("current") or ("page" in attrs and shown):
            page = attrs.get("page") or (meeting.presentation.current_page if shown else 1)
            try:
                self._registry.set_page(meeting, doc.id, page)
            except ClassroomError as e:
                if e.code == "notReady":
                    raise ApiError(409, "document.notReady", e.message) from None
                raise ApiError(422, "document.page", e.message,
                               pointer="/data/attributes/page") from None
        elif "page" in attrs:
            raise ApiError(422, "document.notCurrent",
                           "set current: true to show a page of this document",
                           pointer="/data/attributes/page")
        return Reply(200, jsonapi.single(self._document_resource(meeting, doc, room)))

    @api_route("DELETE", "/rooms/{roomId}/documents/{documentId}",
               summary="Remove a document", tag="Documents", auth="any",
               scope="documents:write", success=204)
    async def delete_document(self, ctx: Ctx, roomId: str, documentId: str) -> Reply:
        """It disappears from the conference page (the whiteboard page is shown if it was
        current) and its files are deleted. The API may remove any document; on the page
        the presenter may remove only ``removable`` ones, as in BigBlueButton."""
        _, meeting, doc = await self._document(ctx, roomId, documentId)
        self._registry.remove_document(meeting, doc.id)
        return Reply(204)
