"""``rooms``: the rooms of a space, and joining one (a seat and its conference URL)."""

from __future__ import annotations

import secrets
from typing import Any

from meetplatform.invitations import InvitationError, RoomEntry
from meetplatform.model import EndReason, RegistryError
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx, domain_error
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.model import ROOM, SEAT, room_resource, seat_resource
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.store import AliasTaken, RoomRecord
from meetplatform.store.records import PERMISSIONS

_ALIAS_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"

#: API attribute -> store column, for the plain ones.
_PLAIN = {"name": "name", "alias": "alias", "type": "type", "visibility": "visibility",
          "lobby": "lobby", "maxParticipants": "max_participants", "notBefore": "not_before",
          "expiresAt": "expires_at", "metadata": "metadata"}


def new_alias() -> str:
    """Short and unguessable (60 bits): enough for links of public and private rooms."""
    return "".join(secrets.choice(_ALIAS_ALPHABET) for _ in range(12))


def _check_times(not_before: int | None, expires_at: int | None, now: int,
                 changed: set[str]) -> None:
    if expires_at is not None and not_before is not None and expires_at <= not_before:
        raise ApiError(422, "validation.invalidAttribute", "expiresAt must be after notBefore",
                       pointer="/data/attributes/expiresAt")
    if expires_at is not None and "expires_at" in changed and expires_at <= now:
        raise ApiError(422, "validation.invalidAttribute", "expiresAt must be in the future",
                       pointer="/data/attributes/expiresAt")


#: Rooms whose encoded resource object is kept (see :meth:`RoomRoutes.room_object`).
ROOM_OBJECTS_CACHED = 5_000


class RoomRoutes(ApiBase):
    def room_object(self, room: RoomRecord) -> jsonapi.Encoded:
        """The room's resource object, encoded once while the room (the store hands out
        the same frozen record until it changes) and its meeting's running state and
        participant count stay the same: dashboards poll rooms far more often than rooms
        change, and encoding was a fifth of a read's CPU."""
        meeting = self.invitations.live_meeting(room)
        running = meeting is not None and meeting.running
        count = meeting.participant_count if meeting is not None else 0
        kept = self._room_objects.get(room.id)
        if kept is not None and kept[0] is room and kept[1] == running and kept[2] == count:
            return kept[3]
        made = jsonapi.Encoded(room_resource(room, self.base_url, self._settings.public_url,
                                             meeting))
        if kept is None and len(self._room_objects) >= ROOM_OBJECTS_CACHED:
            del self._room_objects[next(iter(self._room_objects))]
        self._room_objects[room.id] = (room, running, count, made)
        return made

    def room_document(self, room: RoomRecord) -> dict[str, Any]:
        return jsonapi.single(self.room_object(room), self_link=self.url(f"/rooms/{room.id}"))

    @api_route("GET", "/spaces/{spaceId}/rooms", summary="List the rooms of your space",
               tag="Rooms", auth="any", scope="rooms:read", output=Output("collection", ROOM),
               query=PAGE_QUERY)
    async def list_rooms(self, ctx: Ctx, spaceId: str) -> Reply:
        """Oldest first. An invited user's token scoped to one room sees only that room."""
        space = await self.space_for(ctx, spaceId)
        size, after = self.page(ctx)
        rooms = await self._store.list_rooms(space.id, after, size + 1)
        assert ctx.caller is not None
        if ctx.caller.room_id is not None:
            rooms = [r for r in rooms if r.id == ctx.caller.room_id]
        more = len(rooms) > size
        rooms = rooms[:size]
        last = (rooms[-1].created_at, rooms[-1].id) if rooms else None
        self_link, next_link = self.page_links(ctx, f"/spaces/{space.id}/rooms", last, more)
        return Reply(200, jsonapi.collection([self.room_object(r) for r in rooms],
                                             self_link=self_link, next_link=next_link))

    @api_route("POST", "/spaces/{spaceId}/rooms", summary="Create a room", tag="Rooms",
               auth="client", scope="rooms:write", body=Body(ROOM, "create"), success=201,
               output=Output("resource", ROOM))
    async def create_room(self, ctx: Ctx, spaceId: str) -> Reply:
        """Only the name is required. A webinar's participants publish nothing by default."""
        space = await self.space_for(ctx, spaceId)
        attrs = ctx.attrs
        kind = attrs.get("type", "conference")
        default = kind == "conference"
        permissions = {name: default for name in PERMISSIONS}
        permissions.update(attrs.get("defaultPermissions", {}))
        fields: dict[str, Any] = {
            "name": attrs["name"], "alias": attrs.get("alias") or new_alias(), "type": kind,
            "visibility": attrs.get("visibility", "private"), "lobby": attrs.get("lobby", False),
            "max_participants": attrs.get("maxParticipants", 0),
            "not_before": attrs.get("notBefore"), "expires_at": attrs.get("expiresAt"),
            "metadata": attrs.get("metadata", {}), **permissions,
        }
        _check_times(fields["not_before"], fields["expires_at"], ctx.now, {"expires_at"})
        try:
            room = await self._store.create_room(space.id, fields, ctx.now)
        except AliasTaken:
            raise ApiError(409, "room.aliasTaken", "another room uses this alias",
                           pointer="/data/attributes/alias") from None
        return Reply(201, self.room_document(room),
                     headers={"Location": self.url(f"/rooms/{room.id}")})

    @api_route("GET", "/rooms/{roomId}", summary="Read a room", tag="Rooms", auth="any",
               scope="rooms:read", output=Output("resource", ROOM))
    async def get_room(self, ctx: Ctx, roomId: str) -> Reply:
        room = await self.room_for(ctx, roomId)
        return Reply(200, self.room_document(room))

    @api_route("PATCH", "/rooms/{roomId}", summary="Change a room", tag="Rooms",
               auth="client", scope="rooms:write", body=Body(ROOM, "update"),
               output=Output("resource", ROOM))
    async def update_room(self, ctx: Ctx, roomId: str) -> Reply:
        """Only the attributes sent change. A meeting running in the room keeps the
        settings it started with; the next one uses the new ones."""
        room = await self.room_for(ctx, roomId)
        changes: dict[str, Any] = {}
        for attribute, column in _PLAIN.items():
            if attribute in ctx.attrs:
                changes[column] = ctx.attrs[attribute]
        for name, value in ctx.attrs.get("defaultPermissions", {}).items():
            changes[name] = value
        _check_times(changes.get("not_before", room.not_before),
                     changes.get("expires_at", room.expires_at), ctx.now, set(changes))
        try:
            updated = await self._store.update_room(room.id, changes, ctx.now)
        except AliasTaken:
            raise ApiError(409, "room.aliasTaken", "another room uses this alias",
                           pointer="/data/attributes/alias") from None
        if updated is None:
            raise ApiError(404, "room.notFound", "no such room")
        return Reply(200, self.room_document(updated))

    @api_route("DELETE", "/rooms/{roomId}", summary="Delete a room", tag="Rooms",
               auth="client", scope="rooms:write", success=204)
    async def delete_room(self, ctx: Ctx, roomId: str) -> Reply:
        """Ends its live meeting and deletes its invitations."""
        room = await self.room_for(ctx, roomId)
        meeting = self.invitations.live_meeting(room)
        if meeting is not None:
            self._registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        await self._store.delete_room(room.id)
        return Reply(204)

    @api_route("POST", "/rooms/{roomId}/join", summary="Get a seat in a room", tag="Rooms",
               auth="any", scope="rooms:join", body=Body(SEAT, "create", required=False),
               output=Output("resource", SEAT), secret=True, errors=(409, 410))
    async def join_room(self, ctx: Ctx, roomId: str) -> Reply:
        """Returns the conference URL to open (never a redirect). A client chooses the
        role and name; an invited user's token brings its own role (and, if the invitation
        fixed one, its name)."""
        room = await self.room_for(ctx, roomId)
        caller = ctx.caller
        assert caller is not None
        attrs = ctx.attrs
        narrowing = None
        external = attrs.get("externalUserId") or None
        if caller.kind == "user":
            role = caller.role or "viewer"
            if "role" in attrs and attrs["role"] != role:
                raise ApiError(403, "auth.roleNotGranted",
                               f"your invitation grants the role {role}",
                               pointer="/data/attributes/role")
            name = attrs.get("displayName", "")
            if caller.user_token_id is not None:
                invitation = await self._store.get_user_token(caller.user_token_id)
                if invitation is not None:
                    name = invitation.display_name or name
                    narrowing = invitation.permissions
                    external = invitation.external_user_id or external
        else:
            role = attrs.get("role", "participant")
            name = attrs.get("displayName", "")
        if not name.strip():
            raise ApiError(422, "validation.invalidAttribute", "displayName is required",
                           pointer="/data/attributes/displayName")
        try:
            entry = self.invitations.enter_room(room, role=role, display_name=name.strip(),
                                                external_user_id=external, narrowing=narrowing)
        except (RegistryError, InvitationError) as e:
            raise domain_error(e) from None
        return Reply(200, jsonapi.single(self.seat_of(entry)))

    def seat_of(self, entry: RoomEntry) -> dict[str, Any]:
        return seat_resource(entry.seat, self.base_url, role=entry.role,
                             permissions=dict(entry.permissions),
                             conference_url=entry.conference_url,
                             meeting_local_id=entry.room.id, room_id=entry.room.id)
