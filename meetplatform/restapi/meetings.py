"""``meetings``: what the BigBlueButton API does (create, join, end, info), in JSON:API.

Meetings are live state: they are not stored and end with the process, as in
BigBlueButton. A client's meetings live in the registry under ``<spaceId>/<meetingId>``,
so clients never see or collide with each other's; the live meetings of the space's rooms
are listed too (their id is the room's id).
"""

from __future__ import annotations

from meetplatform.invitations import InvitationError
from meetplatform.model import EndReason, GuestPolicy, Meeting, MeetingSpec, RegistryError, Role
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx, domain_error
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.model import MEETING, SEAT, meeting_resource, seat_resource
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.store.records import PERMISSIONS
from meetplatform.tenancy import space_meeting_id

ROOM_PREFIX = "rm_"


class MeetingRoutes(ApiBase):
    def _local_id(self, space_id: str, meeting: Meeting) -> str:
        return meeting.meeting_id[len(space_id) + 1:]

    def _meetings(self, space_id: str) -> list[Meeting]:
        prefix = space_id + "/"
        found = [m for m in self._registry.meetings()
                 if m.meeting_id.startswith(prefix) and not m.ended]
        return sorted(found, key=lambda m: (m.create_time, m.meeting_id))

    def _resource(self, space_id: str, meeting: Meeting) -> dict[str, object]:
        local = self._local_id(space_id, meeting)
        room_id = local if local.startswith(ROOM_PREFIX) else None
        return meeting_resource(meeting, local, self.base_url, room_id)

    def _meeting_for(self, ctx: Ctx, meeting_id: str) -> Meeting:
        assert ctx.caller is not None
        registry_id = space_meeting_id(ctx.caller.space_id, meeting_id)
        meeting = self._registry.get_meeting(registry_id)
        if meeting is None or meeting.ended:
            ended = self._registry.recently_ended(registry_id)
            if ended is not None:
                raise ApiError(410, "meeting.ended", "the meeting has ended",
                               parameter="meetingId", meta={"reason": ended.end_reason})
            raise ApiError(404, "meeting.notFound", "no such live meeting",
                           parameter="meetingId")
        return meeting

    @api_route("GET", "/meetings", summary="List the live meetings of your space",
               tag="Meetings", auth="client", scope="meetings:read",
               output=Output("collection", MEETING), query=PAGE_QUERY)
    async def list_meetings(self, ctx: Ctx) -> Reply:
        """Like getMeetings, limited to your space, oldest first."""
        assert ctx.caller is not None
        space_id = ctx.caller.space_id
        size, after = self.page(ctx)
        meetings = self._meetings(space_id)
        if after is not None:
            meetings = [m for m in meetings
                        if (m.create_time, self._local_id(space_id, m)) > after]
        more = len(meetings) > size
        meetings = meetings[:size]
        last = ((meetings[-1].create_time, self._local_id(space_id, meetings[-1]))
                if meetings else None)
        self_link, next_link = self.page_links(ctx, "/meetings", last, more)
        return Reply(200, jsonapi.collection(
            [self._resource(space_id, m) for m in meetings],
            self_link=self_link, next_link=next_link))

    @api_route("POST", "/meetings", summary="Create a meeting", tag="Meetings", auth="client",
               scope="meetings:write", body=Body(MEETING, "create"), success=(201, 200),
               output=Output("resource", MEETING))
    async def create_meeting(self, ctx: Ctx) -> Reply:
        """Like create: you choose the id (``data.id``, BigBlueButton's meetingID). Creating
        an id that runs already returns the running meeting (200, ``meta.duplicate``)."""
        assert ctx.caller is not None and ctx.doc_id is not None
        if ctx.doc_id.startswith(ROOM_PREFIX):
            raise ApiError(422, "validation.invalidId",
                           f"ids starting with {ROOM_PREFIX} are the rooms' meetings",
                           pointer="/data/id")
        a = ctx.attrs
        spec = MeetingSpec(
            meeting_id=space_meeting_id(ctx.caller.space_id, ctx.doc_id),
            name=a["name"],
            max_participants=a.get("maxParticipants", 0),
            duration=a.get("duration", 0),
            record=a.get("record", False),
            welcome=a.get("welcome", ""),
            moderator_only_message=a.get("moderatorOnlyMessage", ""),
            logout_url=a.get("logoutUrl", ""),
            guest_policy=GuestPolicy(a.get("guestPolicy", "ALWAYS_ACCEPT")),
            mute_on_start=a.get("muteOnStart", False),
            webcams_only_for_moderator=a.get("webcamsOnlyForModerator", False),
            end_when_no_moderator=a.get("endWhenNoModerator", False),
            metadata={k.lower(): v for k, v in a.get("metadata", {}).items()},
        )
        try:
            meeting, created = self._registry.create_meeting(spec)
        except RegistryError as e:
            raise domain_error(e) from None
        document = jsonapi.single(self._resource(ctx.caller.space_id, meeting),
                                  meta=None if created else {"duplicate": True})
        location = self.url(f"/meetings/{ctx.doc_id}")
        return Reply(201 if created else 200, document, headers={"Location": location})

    @api_route("GET", "/meetings/{meetingId}", summary="Read a live meeting", tag="Meetings",
               auth="client", scope="meetings:read", output=Output("resource", MEETING),
               errors=(410,))
    async def get_meeting(self, ctx: Ctx, meetingId: str) -> Reply:
        """Like getMeetingInfo, with the attendees."""
        assert ctx.caller is not None
        meeting = self._meeting_for(ctx, meetingId)
        return Reply(200, jsonapi.single(self._resource(ctx.caller.space_id, meeting)))

    @api_route("POST", "/meetings/{meetingId}/join", summary="Get a seat in a meeting",
               tag="Meetings", auth="client", scope="meetings:write", body=Body(SEAT, "create", require=("displayName",)),
               output=Output("resource", SEAT), secret=True, errors=(409, 410))
    async def join_meeting(self, ctx: Ctx, meetingId: str) -> Reply:
        """Like join with redirect=false: returns the conference URL instead of redirecting."""
        assert ctx.caller is not None
        a = ctx.attrs
        name = a.get("displayName", "").strip()
        if not name:
            raise ApiError(422, "validation.invalidAttribute", "displayName is required",
                           pointer="/data/attributes/displayName")
        role = a.get("role", "participant")
        if meetingId.startswith(ROOM_PREFIX):
            room = await self.room_for(ctx, meetingId)
            try:
                entry = self.invitations.enter_room(
                    room, role=role, display_name=name,
                    external_user_id=a.get("externalUserId") or None)
            except (RegistryError, InvitationError) as e:
                raise domain_error(e) from None
            return Reply(200, jsonapi.single(seat_resource(
                entry.seat, self.base_url, role=role, permissions=dict(entry.permissions),
                conference_url=entry.conference_url, meeting_local_id=room.id,
                room_id=room.id)))
        meeting = self._meeting_for(ctx, meetingId)
        if role == "moderator":
            permissions = {name_: True for name_ in PERMISSIONS}
        elif role == "viewer":
            permissions = {name_: False for name_ in PERMISSIONS}
        else:
            permissions = {"camera": not meeting.spec.webcams_only_for_moderator,
                           "microphone": True, "screenshare": True}
        userdata = {"mp_role": role}
        userdata.update({f"mp_{k}": "true" if v else "false" for k, v in permissions.items()})
        try:
            seat = self._registry.issue_seat(
                meeting, full_name=name,
                role=Role.MODERATOR if role == "moderator" else Role.VIEWER,
                external_user_id=a.get("externalUserId") or None,
                guest=bool(a.get("guest", False)) and role != "moderator", userdata=userdata)
        except RegistryError as e:
            raise domain_error(e) from None
        return Reply(200, jsonapi.single(seat_resource(
            seat, self.base_url, role=role, permissions=permissions,
            conference_url=self.invitations.conference_url(seat.token),
            meeting_local_id=meetingId, room_id=None)))

    @api_route("DELETE", "/meetings/{meetingId}", summary="End a meeting", tag="Meetings",
               auth="client", scope="meetings:write", success=204)
    async def end_meeting(self, ctx: Ctx, meetingId: str) -> Reply:
        """Like end: everyone is disconnected. Ending a meeting that has just ended answers
        204 too (DELETE is idempotent); an unknown one is 404."""
        try:
            meeting = self._meeting_for(ctx, meetingId)
        except ApiError as e:
            if e.status == 410:
                return Reply(204)
            raise
        self._registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        return Reply(204)
