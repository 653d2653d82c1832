"""``sessions`` and ``attendances``: the meeting history of a client app's own space.

A *session* is one meeting that ran in the space: in one of its rooms, or created with
``POST /meetings``. Its id is the meeting's internal id (BigBlueButton's
``internalMeetingID``), so two meetings with the same meetingID, one after the other, are
two sessions. Sessions list newest first; a session's attendances (each stretch of one
participant's presence) in join order. Only the caller's own space is visible
(another space's session is a 404). Scope ``meetings:read``.
"""

from __future__ import annotations

from typing import Any

from meetplatform.history import HistoryReader
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.routes import Output, QueryParam, Reply, api_route
from meetplatform.restapi.schema import (
    Attr,
    Bool,
    DateTime,
    Int,
    Obj,
    ResourceType,
    Str,
    format_time,
)
from meetplatform.restapi.spaces import PAGE_QUERY, PAGE_SIZE
from meetplatform.store.history_db import AttendanceRecord, MeetingRecord

SESSION = ResourceType(
    "sessions",
    "One meeting that ran in the space (in a room, or created with POST /meetings), from "
    "the durable history.",
    {
        "meetingId": Attr(Str(description="the meeting's id in the space (a room's id for "
                                          "rooms' meetings)"), read_only=True),
        "name": Attr(Str(), read_only=True),
        "roomId": Attr(Str(nullable=True), read_only=True),
        "createdAt": Attr(DateTime(), read_only=True),
        "startedAt": Attr(DateTime(nullable=True, description="the first participant "
                                   "connected"), read_only=True),
        "endedAt": Attr(DateTime(nullable=True, description="null while it runs"),
                        read_only=True),
        "endReason": Attr(Str(nullable=True, description="ENDED_FROM_API, "
                              "ENDED_WHEN_LAST_USER_LEFT, ..."), read_only=True),
        "running": Attr(Bool(), read_only=True),
        "participantCount": Attr(Int(description="distinct participants"), read_only=True),
        "joinCount": Attr(Int(description="attendances (a participant joining twice "
                              "counts twice)"), read_only=True),
        "node": Attr(Obj(properties={"name": Str(), "url": Str(max_length=2048)},
                         required=("name", "url"), description="the server it ran on"),
                     read_only=True),
        "metadata": Attr(Obj(values=Str(max_length=65536), max_properties=1000),
                         read_only=True),
    },
    relationships={"space": "spaces", "room": "rooms", "attendances": "attendances"},
    id_example="183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1411067830029",
)

ATTENDANCE = ResourceType(
    "attendances",
    "One participant's stretch of presence in a session: from connecting to leaving.",
    {
        "participantId": Attr(Str(), read_only=True),
        "displayName": Attr(Str(), read_only=True),
        "externalUserId": Attr(Str(), read_only=True),
        "role": Attr(Str(enum=("moderator", "viewer")), read_only=True),
        "guest": Attr(Bool(), read_only=True),
        "joinedAt": Attr(DateTime(), read_only=True),
        "leftAt": Attr(DateTime(nullable=True, description="null while connected"),
                       read_only=True),
        "leftReason": Attr(Str(nullable=True, description="left, disconnected (did not come "
                               "back in time), removed (by a moderator) or ended (the "
                               "meeting ended)"), read_only=True),
    },
    relationships={"session": "sessions"},
    id_example="42",
)

#: Attendance ids are numbers: so is the id part of their cursors.
ATTENDANCE_PAGE_QUERY = (
    PAGE_SIZE,
    QueryParam("page[after]", Str(max_length=300, pattern=jsonapi.NUMERIC_CURSOR_PATTERN),
               "the cursor from the previous page's links.next",
               error_code="page.invalidCursor"),
)


def _local_id(meeting: MeetingRecord) -> str:
    prefix = f"{meeting.space_id}/"
    mid = meeting.meeting_id
    return mid.removeprefix(prefix)


def session_resource(meeting: MeetingRecord, base: str) -> dict[str, Any]:
    relationships: dict[str, Any] = {
        "space": jsonapi.to_one("spaces", meeting.space_id, f"{base}/spaces/{meeting.space_id}"),
        "room": jsonapi.to_one("rooms", meeting.room_id,
                               f"{base}/rooms/{meeting.room_id}" if meeting.room_id else None),
        "attendances": {"links": {
            "related": f"{base}/sessions/{meeting.internal_id}/attendances"}},
    }
    return jsonapi.resource(
        "sessions", meeting.internal_id,
        {
            "meetingId": _local_id(meeting),
            "name": meeting.name,
            "roomId": meeting.room_id,
            "createdAt": format_time(meeting.create_time),
            "startedAt": format_time(meeting.start_time),
            "endedAt": format_time(meeting.end_time),
            "endReason": meeting.end_reason,
            "running": meeting.running,
            "participantCount": meeting.users,
            "joinCount": meeting.joins,
            "node": {"name": meeting.node_name, "url": meeting.node_url},
            "metadata": dict(meeting.metadata),
        },
        relationships=relationships,
        links={"self": f"{base}/sessions/{meeting.internal_id}"})


def attendance_resource(a: AttendanceRecord, session_id: str,
                        base: str) -> dict[str, Any]:
    return jsonapi.resource(
        "attendances", str(a.id),
        {
            "participantId": a.user_id,
            "displayName": a.full_name,
            "externalUserId": a.external_user_id,
            "role": "moderator" if a.role == "MODERATOR" else "viewer",
            "guest": a.guest,
            "joinedAt": format_time(a.join_time),
            "leftAt": format_time(a.left_time),
            "leftReason": a.left_reason,
        },
        relationships={"session": jsonapi.to_one("sessions", session_id,
                                                 f"{base}/sessions/{session_id}")})


class SessionRoutes(ApiBase):
    #: The history service's reader (set by :class:`~meetplatform.restapi.api.RestApi`):
    #: it reads after the history's buffered writes, so a session is listed as soon as
    #: its events happened.
    history_reader: HistoryReader

    async def _session_for(self, ctx: Ctx, session_id: str) -> MeetingRecord:
        assert ctx.caller is not None
        meeting = None
        if len(session_id) <= 100:
            meeting = await self.history_reader.session(session_id)
        if meeting is None or meeting.space_id != ctx.caller.space_id:
            raise ApiError(404, "session.notFound", "no such session", parameter="sessionId")
        return meeting

    def _sessions_reply(self, ctx: Ctx, path: str, meetings: list[MeetingRecord],
                        size: int) -> Reply:
        more = len(meetings) > size
        meetings = meetings[:size]
        last = (meetings[-1].create_time, meetings[-1].internal_id) if meetings else None
        self_link, next_link = self.page_links(ctx, path, last, more)
        return Reply(200, jsonapi.collection(
            [session_resource(m, self.base_url) for m in meetings],
            self_link=self_link, next_link=next_link))

    @api_route("GET", "/spaces/{spaceId}/sessions", summary="List the space's past and "
               "running sessions", tag="History", auth="client", scope="meetings:read",
               output=Output("collection", SESSION), query=PAGE_QUERY)
    async def list_space_sessions(self, ctx: Ctx, spaceId: str) -> Reply:
        """Newest first: every meeting of the space's rooms and of ``POST /meetings``."""
        space = await self.space_for(ctx, spaceId)
        size, before = self.page(ctx)
        meetings = await self.history_reader.sessions(space.id, before=before,
                                                      limit=size + 1)
        return self._sessions_reply(ctx, f"/spaces/{space.id}/sessions", meetings, size)

    @api_route("GET", "/rooms/{roomId}/sessions", summary="List a room's sessions",
               tag="History", auth="client", scope="meetings:read",
               output=Output("collection", SESSION), query=PAGE_QUERY)
    async def list_room_sessions(self, ctx: Ctx, roomId: str) -> Reply:
        """Newest first."""
        room = await self.room_for(ctx, roomId)
        size, before = self.page(ctx)
        meetings = await self.history_reader.sessions(room.space_id, room_id=room.id,
                                                      before=before, limit=size + 1)
        return self._sessions_reply(ctx, f"/rooms/{room.id}/sessions", meetings, size)

    @api_route("GET", "/sessions/{sessionId}", summary="Read a session", tag="History",
               auth="client", scope="meetings:read", output=Output("resource", SESSION))
    async def get_session(self, ctx: Ctx, sessionId: str) -> Reply:
        meeting = await self._session_for(ctx, sessionId)
        return Reply(200, jsonapi.single(session_resource(meeting, self.base_url)))

    @api_route("GET", "/sessions/{sessionId}/attendances",
               summary="List who was in a session, and when", tag="History", auth="client",
               scope="meetings:read", output=Output("collection", ATTENDANCE),
               query=ATTENDANCE_PAGE_QUERY)
    async def list_attendances(self, ctx: Ctx, sessionId: str) -> Reply:
        """In join order. A participant who left and came back has two attendances."""
        meeting = await self._session_for(ctx, sessionId)
        size, cursor = self.page(ctx)
        after: tuple[int, int] | None = None
        if cursor is not None:
            if not cursor[1].isdigit() or len(cursor[1]) > 18:
                raise ApiError(400, "page.invalidCursor",
                               "page[after] is not a cursor this API gave out",
                               parameter="page[after]")
            after = (cursor[0], int(cursor[1]))
        rows = await self.history_reader.attendances(meeting.internal_id, after=after,
                                                     limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        last = (rows[-1].join_time, str(rows[-1].id)) if rows else None
        path = f"/sessions/{meeting.internal_id}/attendances"
        self_link, next_link = self.page_links(ctx, path, last, more)
        return Reply(200, jsonapi.collection(
            [attendance_resource(a, meeting.internal_id, self.base_url) for a in rows],
            self_link=self_link, next_link=next_link))
