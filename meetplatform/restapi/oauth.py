"""OAuth 2.0 endpoints: token (client credentials), revocation (RFC 7009), introspection
(RFC 7662). They speak ``application/json`` as OAuth clients expect; their errors carry
both the RFC 6749 ``error``/``error_description`` members and a JSON:API ``errors`` array.
"""

from __future__ import annotations

from typing import Any

from meetplatform.restapi.auth import CLIENT_SCOPES
from meetplatform.restapi.base import ApiBase, Ctx, header_text
from meetplatform.restapi.jsonapi import JSON_TYPE, ApiError
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.schema import Obj, Str
from meetplatform.store.database import (
    ACCESS_TOKEN_PREFIX,
    USER_ACCESS_TOKEN_PREFIX,
    USER_TOKEN_PREFIX,
)

_CREDENTIALS = {
    "client_id": Str(max_length=100, description="with client_secret, instead of HTTP Basic"),
    "client_secret": Str(max_length=200),
}
# RFC 6749 §3.2: unknown parameters are ignored, hence ``values``.
TOKEN_FORM = Obj(properties={
    "grant_type": Str(max_length=100, description="client_credentials"),
    "scope": Str(max_length=1000, description="space-separated; default: every scope"),
    **_CREDENTIALS,
}, required=("grant_type",), values=Str(max_length=1000), max_properties=50)
TOKEN_QUERY_FORM = Obj(properties={
    "token": Str(min_length=1, max_length=400),
    "token_type_hint": Str(max_length=50),
    **_CREDENTIALS,
}, required=("token",), values=Str(max_length=1000), max_properties=50)

TOKEN_RESPONSE = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "additionalProperties": False,
}
REVOKE_RESPONSE = {"type": "object", "additionalProperties": False}
INTROSPECTION_RESPONSE = {
    "type": "object",
    "properties": {
        "active": {"type": "boolean"},
        "token_type": {"type": "string"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "sub": {"type": "string"},
        "jti": {"type": "string"},
        "iat": {"type": "integer"},
        "exp": {"type": "integer"},
        "nbf": {"type": "integer"},
        "space_id": {"type": "string"},
        "room_id": {"type": "string"},
        "role": {"type": "string"},
        "uses": {"type": "integer"},
        "max_uses": {"type": "integer"},
    },
    "required": ["active"],
    "additionalProperties": False,
}


class OAuthRoutes(ApiBase):
    async def _oauth_client(self, ctx: Ctx, *, allow_tokens: bool) -> tuple[str, str]:
        """The calling client's id and space, from its credentials (or, where allowed,
        from a client access token or a signature)."""
        authorization = header_text(ctx.request, "Authorization")
        uses_credentials = (authorization or "").strip().lower().startswith("basic ") or (
            "client_id" in ctx.data or "client_secret" in ctx.data)
        if uses_credentials or not allow_tokens or not authorization:
            client = await self.auth.client_credentials(authorization, ctx.data)
            space = await self._store.space_of_client(client.id)
            assert space is not None
            client_id, space_id = client.id, space.id
        else:
            caller = await self._authenticate(ctx, allow_user=False)
            client_id, space_id = caller.client_id, caller.space_id
        self.limit("client", "client:" + client_id)
        return client_id, space_id

    @api_route(
        "POST", "/oauth/token", summary="Get an access token (client credentials grant)",
        tag="OAuth", auth="oauthClient", body=Body(form=TOKEN_FORM),
        output=Output("json", schema=TOKEN_RESPONSE), secret=True, media_type=JSON_TYPE,
        description="RFC 6749 §4.4. Authenticate with HTTP Basic (client id and secret), or "
                    "send client_id and client_secret in the body. The body is "
                    "application/x-www-form-urlencoded or a JSON object. No refresh token "
                    "is issued: ask for a new access token when it expires.")
    async def issue_token(self, ctx: Ctx) -> Reply:
        grant = ctx.data["grant_type"]
        if grant != "client_credentials":
            raise ApiError(400, "auth.unsupportedGrantType",
                           "only grant_type=client_credentials is supported",
                           parameter="grant_type", oauth_error="unsupported_grant_type")
        client_id, _ = await self._oauth_client(ctx, allow_tokens=False)
        requested = ctx.data.get("scope")
        scopes = list(CLIENT_SCOPES)
        if requested is not None and requested.strip():
            scopes = []
            for scope in requested.split():
                if scope not in CLIENT_SCOPES:
                    raise ApiError(400, "auth.invalidScope", f"unknown scope {scope}",
                                   parameter="scope", oauth_error="invalid_scope")
                if scope not in scopes:
                    scopes.append(scope)
        issued = await self._store.issue_access_token(client_id, scopes, ctx.now,
                                                      self._token_ttl_s * 1000)
        if issued is None:  # revoked between the check and now
            raise ApiError(401, "auth.invalidClient", "the client was revoked",
                           oauth_error="invalid_client")
        record, token = issued
        return Reply(200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self._token_ttl_s,
            "scope": " ".join(record.scope),
        }, headers={"Pragma": "no-cache"})

    @api_route(
        "POST", "/oauth/revoke", summary="Revoke a token (RFC 7009)", tag="OAuth",
        auth="oauthClient", body=Body(form=TOKEN_QUERY_FORM),
        output=Output("json", schema=REVOKE_RESPONSE), media_type=JSON_TYPE,
        description="Revokes one of your access tokens, a token you handed to an invited "
                    "user, or an invitation secret. Answers 200 even for unknown tokens. "
                    "Authenticate like the token endpoint, or with a client access token "
                    "or a signature.")
    async def revoke_token(self, ctx: Ctx) -> Reply:
        client_id, space_id = await self._oauth_client(ctx, allow_tokens=True)
        token: str = ctx.data["token"]
        if token.startswith(USER_TOKEN_PREFIX):
            invitation = await self._store.find_user_token(token)
            if invitation is not None and invitation.space_id == space_id:
                await self._store.revoke_user_token(invitation.id, ctx.now)
        elif token.startswith((ACCESS_TOKEN_PREFIX, USER_ACCESS_TOKEN_PREFIX)):
            await self._store.revoke_access_token(token, client_id, ctx.now)
        return Reply(200, {})

    @api_route(
        "POST", "/oauth/introspect", summary="Introspect a token (RFC 7662)", tag="OAuth",
        auth="oauthClient", body=Body(form=TOKEN_QUERY_FORM),
        output=Output("json", schema=INTROSPECTION_RESPONSE), media_type=JSON_TYPE,
        description="Tells whether one of your tokens (an access token, a user's access "
                    "token or an invitation secret) is active, and what it grants. Tokens "
                    "of other clients are reported inactive.")
    async def introspect_token(self, ctx: Ctx) -> Reply:
        client_id, space_id = await self._oauth_client(ctx, allow_tokens=True)
        token: str = ctx.data["token"]
        answer: dict[str, Any] = {"active": False}
        if token.startswith((ACCESS_TOKEN_PREFIX, USER_ACCESS_TOKEN_PREFIX)):
            record = await self._store.find_access_token(token)
            if record is not None and record.client_id == client_id and record.active(ctx.now):
                answer = {
                    "active": True, "token_type": "Bearer", "scope": " ".join(record.scope),
                    "client_id": record.client_id,
                    "sub": record.client_id if record.kind == "client"
                    else (record.user_token_id or record.id),
                    "jti": record.id, "iat": record.issued_at // 1000,
                    "exp": record.expires_at // 1000, "space_id": record.space_id,
                }
                if record.room_id:
                    answer["room_id"] = record.room_id
                if record.role:
                    answer["role"] = record.role
        elif token.startswith(USER_TOKEN_PREFIX):
            invitation = await self._store.find_user_token(token)
            if (invitation is not None and invitation.space_id == space_id
                    and invitation.status(ctx.now) == "pending"):
                answer = {
                    "active": True, "token_type": "user_token", "client_id": client_id,
                    "sub": invitation.id, "jti": invitation.id,
                    "iat": invitation.created_at // 1000, "exp": invitation.expires_at // 1000,
                    "space_id": invitation.space_id, "role": invitation.role,
                    "uses": invitation.uses, "max_uses": invitation.max_uses,
                }
                if invitation.not_before is not None:
                    answer["nbf"] = invitation.not_before // 1000
                if invitation.room_id:
                    answer["room_id"] = invitation.room_id
        return Reply(200, answer)
