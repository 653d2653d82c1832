"""``userTokens``: invitations to a room or a space, and their activation."""

from __future__ import annotations

from typing import Any

from meetplatform.invitations import (
    DEFAULT_TTL_MS,
    MAX_TTL_MS,
    Activation,
    InvitationError,
)
from meetplatform.model import RegistryError
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx, domain_error
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.model import ACTIVATION, USER_TOKEN, user_token_resource
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.schema import format_time
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.store import RoomRecord, SpaceRecord, UserTokenRecord


class UserTokenRoutes(ApiBase):
    async def _create_invitation(self, ctx: Ctx, space: SpaceRecord,
                                 room: RoomRecord | None) -> Reply:
        attrs = ctx.attrs
        expires_at = attrs.get("expiresAt")
        if expires_at is not None:
            if expires_at <= ctx.now:
                raise ApiError(422, "validation.invalidAttribute",
                               "expiresAt must be in the future",
                               pointer="/data/attributes/expiresAt")
            if expires_at > ctx.now + MAX_TTL_MS:
                raise ApiError(422, "validation.invalidAttribute",
                               "expiresAt must be at most 30 days away",
                               pointer="/data/attributes/expiresAt")
        else:
            expires_at = ctx.now + DEFAULT_TTL_MS
        not_before = attrs.get("notBefore")
        if not_before is not None and not_before >= expires_at:
            raise ApiError(422, "validation.invalidAttribute",
                           "notBefore must be before expiresAt (default: 24 hours from now)",
                           pointer="/data/attributes/notBefore")
        created = await self.invitations.create(
            space, room, role=attrs.get("role", "participant"),
            display_name=attrs.get("displayName", ""),
            external_user_id=attrs.get("externalUserId", ""),
            permissions=attrs.get("permissions"), max_uses=attrs.get("maxUses", 1),
            not_before=not_before, expires_at=expires_at)
        resource = user_token_resource(created.token, self.base_url, ctx.now,
                                       secret=created.secret, invite_url=created.invite_url)
        return Reply(201, jsonapi.single(resource), headers={
            "Location": self.url(f"/userTokens/{created.token.id}")})

    def _list_reply(self, ctx: Ctx, path: str, tokens: list[UserTokenRecord],
                    size: int) -> Reply:
        more = len(tokens) > size
        tokens = tokens[:size]
        last = (tokens[-1].created_at, tokens[-1].id) if tokens else None
        self_link, next_link = self.page_links(ctx, path, last, more)
        return Reply(200, jsonapi.collection(
            [user_token_resource(t, self.base_url, ctx.now) for t in tokens],
            self_link=self_link, next_link=next_link))

    @api_route("POST", "/rooms/{roomId}/userTokens", summary="Invite someone to a room",
               tag="User tokens", auth="client", scope="userTokens:write",
               body=Body(USER_TOKEN, "create", required=False), success=201,
               output=Output("resource", USER_TOKEN, include_once=True), secret=True)
    async def create_room_token(self, ctx: Ctx, roomId: str) -> Reply:
        """Returns the secret ``token`` and the ``inviteUrl`` ONCE: only a hash is kept."""
        room = await self.room_for(ctx, roomId)
        space = await self.space_for(ctx, room.space_id)
        return await self._create_invitation(ctx, space, room)

    @api_route("POST", "/spaces/{spaceId}/userTokens", summary="Invite someone to the space",
               tag="User tokens", auth="client", scope="userTokens:write",
               body=Body(USER_TOKEN, "create", required=False), success=201,
               output=Output("resource", USER_TOKEN, include_once=True), secret=True)
    async def create_space_token(self, ctx: Ctx, spaceId: str) -> Reply:
        """A space invitation gives no seat by itself: its activation returns a user access
        token with which the user joins any room of the space (``POST /rooms/{id}/join``)."""
        space = await self.space_for(ctx, spaceId)
        return await self._create_invitation(ctx, space, None)

    @api_route("GET", "/rooms/{roomId}/userTokens", summary="List a room's invitations",
               tag="User tokens", auth="client", scope="userTokens:read",
               output=Output("collection", USER_TOKEN), query=PAGE_QUERY)
    async def list_room_tokens(self, ctx: Ctx, roomId: str) -> Reply:
        """Oldest first; secrets are never shown again."""
        room = await self.room_for(ctx, roomId)
        size, after = self.page(ctx)
        tokens = await self._store.list_user_tokens(room.space_id, room.id, after, size + 1)
        return self._list_reply(ctx, f"/rooms/{room.id}/userTokens", tokens, size)

    @api_route("GET", "/spaces/{spaceId}/userTokens",
               summary="List every invitation of the space", tag="User tokens",
               auth="client", scope="userTokens:read",
               output=Output("collection", USER_TOKEN), query=PAGE_QUERY)
    async def list_space_tokens(self, ctx: Ctx, spaceId: str) -> Reply:
        space = await self.space_for(ctx, spaceId)
        size, after = self.page(ctx)
        tokens = await self._store.list_user_tokens(space.id, None, after, size + 1)
        return self._list_reply(ctx, f"/spaces/{space.id}/userTokens", tokens, size)

    async def _token_for(self, ctx: Ctx, token_id: str) -> UserTokenRecord:
        assert ctx.caller is not None
        token = await self._store.get_user_token(token_id) if len(token_id) <= 64 else None
        if token is None or token.space_id != ctx.caller.space_id:
            raise ApiError(404, "userToken.notFound", "no such invitation",
                           parameter="tokenId")
        return token

    @api_route("GET", "/userTokens/{tokenId}", summary="Read an invitation",
               tag="User tokens", auth="client", scope="userTokens:read",
               output=Output("resource", USER_TOKEN))
    async def get_user_token(self, ctx: Ctx, tokenId: str) -> Reply:
        token = await self._token_for(ctx, tokenId)
        return Reply(200, jsonapi.single(user_token_resource(token, self.base_url, ctx.now)))

    @api_route("DELETE", "/userTokens/{tokenId}", summary="Revoke an invitation",
               tag="User tokens", auth="client", scope="userTokens:write", success=204)
    async def revoke_user_token(self, ctx: Ctx, tokenId: str) -> Reply:
        """The link stops working, and so do the access tokens its activations handed out
        (seats already issued are not taken back). The invitation stays listed as
        ``revoked``."""
        token = await self._token_for(ctx, tokenId)
        await self._store.revoke_user_token(token.id, ctx.now)
        return Reply(204)

    @api_route("POST", "/userTokens/activate", summary="Use an invitation", tag="User tokens",
               auth="public", body=Body(ACTIVATION, "create"),
               output=Output("resource", ACTIVATION), secret=True,
               errors=(403, 404, 409, 410, 422))
    async def activate_user_token(self, ctx: Ctx) -> Reply:
        """Consumes one use of the invitation, atomically: of simultaneous activations of a
        single-use invitation exactly one succeeds; the others get 409
        ``userToken.alreadyActivated``. Room invitations return the ``conferenceUrl`` to open;
        every activation returns a user-level ``accessToken``."""
        try:
            activation = await self.invitations.activate(
                ctx.attrs["token"], display_name=ctx.attrs.get("displayName"))
        except (InvitationError, RegistryError) as e:
            raise domain_error(e) from None
        return Reply(200, jsonapi.single(self._activation_resource(activation)))

    def _activation_resource(self, activation: Activation) -> dict[str, Any]:
        entry = activation.entry
        token = activation.token
        room_id = activation.room.id if activation.room else None
        permissions = (dict(entry.permissions) if entry is not None
                       else {"camera": False, "microphone": False, "screenshare": False})
        return jsonapi.resource(
            "userTokenActivations", activation.access.id,
            {
                "displayName": entry.seat.full_name if entry else token.display_name,
                "role": token.role,
                "conferenceUrl": entry.conference_url if entry else None,
                "sessionToken": entry.session_token if entry else None,
                "waitingForModerator": bool(entry and entry.seat.guest_status.value == "WAIT"),
                "permissions": permissions,
                "accessToken": activation.access_token,
                "accessTokenExpiresAt": format_time(activation.access.expires_at),
                "scope": " ".join(activation.access.scope),
            },
            relationships={
                "space": jsonapi.to_one("spaces", token.space_id),
                "room": jsonapi.to_one("rooms", room_id),
                "userToken": jsonapi.to_one("userTokens", token.id),
            },
        )
