"""``participants``: who is connected to a room's live meeting; mute and remove them."""

from __future__ import annotations

from meetplatform.model import NotAllowed, Participant
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.model import PARTICIPANT, participant_resource
from meetplatform.restapi.routes import Output, Reply, api_route
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.store import RoomRecord


class ParticipantRoutes(ApiBase):
    def _participants(self, room: RoomRecord) -> list[Participant]:
        meeting = self.invitations.live_meeting(room)
        if meeting is None:
            return []
        return sorted(meeting.participants.values(), key=lambda p: (p.joined_at, p.user_id))

    async def _participant(self, ctx: Ctx, room_id: str,
                           participant_id: str) -> tuple[RoomRecord, Participant]:
        room = await self.room_for(ctx, room_id)
        meeting = self.invitations.live_meeting(room)
        participant = meeting.participants.get(participant_id) if meeting else None
        if participant is None:
            raise ApiError(404, "participant.notFound",
                           "no such participant in the room's live meeting",
                           parameter="participantId")
        return room, participant

    @api_route("GET", "/rooms/{roomId}/participants",
               summary="List the participants of a room's live meeting", tag="Participants",
               auth="any", scope="participants:read",
               output=Output("collection", PARTICIPANT), query=PAGE_QUERY)
    async def list_participants(self, ctx: Ctx, roomId: str) -> Reply:
        """In the order they joined; empty when no meeting runs."""
        room = await self.room_for(ctx, roomId)
        size, after = self.page(ctx)
        people = self._participants(room)
        if after is not None:
            people = [p for p in people if (p.joined_at, p.user_id) > after]
        more = len(people) > size
        people = people[:size]
        last = (people[-1].joined_at, people[-1].user_id) if people else None
        self_link, next_link = self.page_links(ctx, f"/rooms/{room.id}/participants", last,
                                               more)
        return Reply(200, jsonapi.collection(
            [participant_resource(p, room.id, self.base_url) for p in people],
            self_link=self_link, next_link=next_link))

    @api_route("GET", "/rooms/{roomId}/participants/{participantId}",
               summary="Read a participant", tag="Participants", auth="any",
               scope="participants:read", output=Output("resource", PARTICIPANT))
    async def get_participant(self, ctx: Ctx, roomId: str, participantId: str) -> Reply:
        room, participant = await self._participant(ctx, roomId, participantId)
        return Reply(200, jsonapi.single(participant_resource(participant, room.id,
                                                              self.base_url)))

    @api_route("POST", "/rooms/{roomId}/participants/{participantId}/mute",
               summary="Ask a participant to mute", tag="Participants", auth="any",
               scope="participants:moderate", output=Output("resource", PARTICIPANT))
    async def mute_participant(self, ctx: Ctx, roomId: str, participantId: str) -> Reply:
        """The participant's browser is asked to mute its microphone (nobody can be
        unmuted remotely)."""
        room, participant = await self._participant(ctx, roomId, participantId)
        try:
            self._registry.request_mute(participant.meeting, participant.user_id)
        except NotAllowed as e:
            raise ApiError(404, "participant.notFound", str(e)) from None
        return Reply(200, jsonapi.single(
            participant_resource(participant, room.id, self.base_url),
            meta={"muteRequested": True}))

    @api_route("DELETE", "/rooms/{roomId}/participants/{participantId}",
               summary="Remove a participant", tag="Participants", auth="any",
               scope="participants:moderate", success=204)
    async def remove_participant(self, ctx: Ctx, roomId: str, participantId: str) -> Reply:
        """The participant is disconnected and its seat can't be used again."""
        _, participant = await self._participant(ctx, roomId, participantId)
        try:
            self._registry.remove(participant.meeting, participant.user_id)
        except NotAllowed as e:
            raise ApiError(404, "participant.notFound", str(e)) from None
        return Reply(204)
