"""``recordings``: a room's recordings, for client apps (issue 12).

The same recordings as getRecordings, from the same catalogue (the store): a room's
recordings are those of the meetings that ran in it. A client app lists them, reads one
(its state, with the reason when processing failed; its playback and preview URLs, signed
under protected playback), publishes or unpublishes it (``PATCH`` ``published``) and
deletes it (the files go after the answer, through the durable job queue). Scopes
``meetings:read`` and ``meetings:write``.
"""

from __future__ import annotations

from typing import Any

from meetplatform.recording.catalogue import StoreRecordings
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.schema import (
    Array,
    Attr,
    Bool,
    DateTime,
    Int,
    Obj,
    ResourceType,
    Str,
    format_time,
)
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.store import recordings_db as rdb
from meetplatform.tenancy import room_meeting_id, tenant_of

RECORDING = ResourceType(
    "recordings",
    "A recording of a meeting of a room: its state, and once processed its video.",
    {
        "name": Attr(Str(), read_only=True),
        "state": Attr(Str(enum=rdb.STATES, description="processing, then published (or "
                          "unpublished); failed with failure when processing gave up; "
                          "deleted"), read_only=True),
        "published": Attr(Bool(description="whether it plays (also set while it is still "
                               "processing: it is published, or not, when ready)")),
        "failure": Attr(Str(nullable=True, description="why processing failed"),
                        read_only=True),
        "startedAt": Attr(DateTime(), read_only=True),
        "endedAt": Attr(DateTime(), read_only=True),
        "segments": Attr(Array(items=Obj(properties={"startedAt": DateTime(),
                                                     "endedAt": DateTime()},
                                         required=("startedAt", "endedAt")),
                               max_items=10_000,
                               description="each stretch between a start and a stop"),
                         read_only=True),
        "participants": Attr(Int(), read_only=True),
        "lengthMs": Attr(Int(nullable=True, description="of the composed video"),
                         read_only=True),
        "size": Attr(Int(nullable=True, description="bytes of the video"), read_only=True),
        "playbackUrl": Attr(Str(nullable=True, max_length=4096, description="the playback "
                                "page (signed and short-lived under protected playback)"),
                            read_only=True),
        "previewUrl": Attr(Str(nullable=True, max_length=4096), read_only=True),
        "metadata": Attr(Obj(values=Str(max_length=65536), max_properties=1000),
                         read_only=True),
    },
    relationships={"room": "rooms"},
    id_example="183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1411067830029",
)


def recording_resource(row: rdb.RecordingRow, catalogue: StoreRecordings,
                       base: str) -> dict[str, Any]:
    _, _, room_id = tenant_of(row.meeting_id)
    ready = row.state in ("published", "unpublished") and row.length_ms is not None
    return jsonapi.resource(
        "recordings", row.record_id,
        {
            "name": row.name,
            "state": row.state,
            "published": row.publish,
            "failure": row.failure if row.state == "failed" else None,
            "startedAt": format_time(row.start_time),
            "endedAt": format_time(row.end_time),
            "segments": [{"startedAt": format_time(a), "endedAt": format_time(b)}
                         for a, b in row.segments],
            "participants": row.participants,
            "lengthMs": row.length_ms,
            "size": row.size,
            "playbackUrl": catalogue.links.page(row.record_id) if ready else None,
            "previewUrl": catalogue.links.preview(row.record_id) if ready else None,
            "metadata": dict(row.metadata),
        },
        relationships={"room": jsonapi.to_one("rooms", room_id,
                                              f"{base}/rooms/{room_id}" if room_id else None)},
        links={"self": f"{base}/recordings/{row.record_id}"})


class RecordingRoutes(ApiBase):
    #: The recordings catalogue (set by :class:`~meetplatform.restapi.api.RestApi`).
    recordings: StoreRecordings | None

    def _catalogue(self) -> StoreRecordings:
        if self.recordings is None:
            raise ApiError(404, "recording.notFound", "no such recording")
        return self.recordings

    async def _recording_for(self, ctx: Ctx, recording_id: str) -> rdb.RecordingRow:
        assert ctx.caller is not None
        row = None
        if len(recording_id) <= 100:
            row = await self._catalogue().get(recording_id)
        if row is None or row.state == "deleted" or (
                tenant_of(row.meeting_id)[0] != ctx.caller.space_id):
            raise ApiError(404, "recording.notFound", "no such recording",
                           parameter="recordingId")
        return row

    async def _list(self, ctx: Ctx, path: str, *, meeting_id: str | None = None,
                    prefix: str | None = None) -> Reply:
        catalogue = self._catalogue()
        size, after = self.page(ctx)
        rows, _ = await self._store.run(lambda db: rdb.search(
            db, meeting_ids=[meeting_id] if meeting_id is not None else (),
            meeting_prefix=prefix, states=[s for s in rdb.STATES if s != "deleted"],
            limit=size + 1, after=after))
        more = len(rows) > size
        rows = rows[:size]
        last = (rows[-1].start_time, rows[-1].record_id) if rows else None
        self_link, next_link = self.page_links(ctx, path, last, more)
        return Reply(200, jsonapi.collection(
            [recording_resource(r, catalogue, self.base_url) for r in rows],
            self_link=self_link, next_link=next_link))

    @api_route("GET", "/rooms/{roomId}/recordings", summary="List a room's recordings",
               tag="Recordings", auth="client", scope="meetings:read",
               output=Output("collection", RECORDING), query=PAGE_QUERY)
    async def list_room_recordings(self, ctx: Ctx, roomId: str) -> Reply:
        """Oldest first; every state but deleted (processing and failed ones too)."""
        room = await self.room_for(ctx, roomId)
        return await self._list(ctx, f"/rooms/{room.id}/recordings",
                                meeting_id=room_meeting_id(room))

    @api_route("GET", "/spaces/{spaceId}/recordings", summary="List the space's recordings",
               tag="Recordings", auth="client", scope="meetings:read",
               output=Output("collection", RECORDING), query=PAGE_QUERY)
    async def list_space_recordings(self, ctx: Ctx, spaceId: str) -> Reply:
        """Oldest first: its rooms' and its ``POST /meetings`` meetings' recordings."""
        space = await self.space_for(ctx, spaceId)
        return await self._list(ctx, f"/spaces/{space.id}/recordings",
                                prefix=f"{space.id}/")

    @api_route("GET", "/recordings/{recordingId}", summary="Read a recording",
               tag="Recordings", auth="client", scope="meetings:read",
               output=Output("resource", RECORDING))
    async def get_recording(self, ctx: Ctx, recordingId: str) -> Reply:
        row = await self._recording_for(ctx, recordingId)
        return Reply(200, jsonapi.single(
            recording_resource(row, self._catalogue(), self.base_url)))

    @api_route("PATCH", "/recordings/{recordingId}", summary="Publish or unpublish a "
               "recording", tag="Recordings", auth="client", scope="meetings:write",
               body=Body(RECORDING, "update"), output=Output("resource", RECORDING))
    async def update_recording(self, ctx: Ctx, recordingId: str) -> Reply:
        """``published``: an unpublished recording's playback answers 404."""
        row = await self._recording_for(ctx, recordingId)
        catalogue = self._catalogue()
        if "published" in ctx.attrs:
            await catalogue.set_published([row.record_id], bool(ctx.attrs["published"]))
        row = await self._recording_for(ctx, recordingId)
        return Reply(200, jsonapi.single(recording_resource(row, catalogue, self.base_url)))

    @api_route("DELETE", "/recordings/{recordingId}", summary="Delete a recording",
               tag="Recordings", auth="client", scope="meetings:write", success=204)
    async def delete_recording(self, ctx: Ctx, recordingId: str) -> Reply:
        """Gone from every list at once; its files are removed right after."""
        row = await self._recording_for(ctx, recordingId)
        await self._catalogue().delete([row.record_id])
        return Reply(204)
