"""``GET /rooms/{roomId}/embed``: how a website embeds a room (iframe snippet, embed.js)."""

from __future__ import annotations

from typing import Any

from meetplatform.embedding import embed_snippet, frame_ancestors
from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.routes import Output, Reply, api_route

_STR = {"type": "string"}

#: The response document (a JSON:API resource of type ``roomEmbeds``), for OpenAPI.
EMBED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "How to embed the room: paste `html` (append `#t=<credential>` to its "
                   "src for a private room) or use embed.js as in `script`.",
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "type": {"const": "roomEmbeds"},
                "id": {"type": "string", "examples": ["rm_k3x9m2p7q4r8s6t5"]},
                "attributes": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string", "format": "uri",
                                "description": "the room's embed page"},
                        "allow": {"type": "string", "description": "the iframe's allow "
                                  "attribute (camera, microphone, display capture...)"},
                        "html": {"type": "string", "description": "the iframe element"},
                        "scriptUrl": {"type": "string", "format": "uri",
                                      "description": "embed.js, for the parent page"},
                        "script": {"type": "string",
                                   "description": "the same embedding with embed.js"},
                        "frameAncestors": {"type": "string", "description": "the page's "
                                           "Content-Security-Policy frame-ancestors"},
                        "embedOrigins": {"type": "array", "items": _STR,
                                         "description": "the space's origins allowed to "
                                                        "embed (empty: none besides this "
                                                        "service)"},
                        "credentialRequired": {"type": "boolean", "description": "only "
                                               "holders of an invitation or session token "
                                               "can join (private room or space)"},
                    },
                    "required": ["url", "allow", "html", "scriptUrl", "script",
                                 "frameAncestors", "embedOrigins", "credentialRequired"],
                    "additionalProperties": False,
                },
                "relationships": {"type": "object"},
                "links": {"type": "object"},
            },
            "required": ["type", "id", "attributes"],
        },
        "links": {"type": "object"},
        "jsonapi": {"type": "object"},
    },
    "required": ["data"],
}


class EmbedRoutes(ApiBase):
    @api_route("GET", "/rooms/{roomId}/embed", summary="How to embed a room in a website",
               tag="Rooms", auth="any", scope="rooms:read",
               output=Output("json", schema=EMBED_SCHEMA))
    async def room_embed(self, ctx: Ctx, roomId: str) -> Reply:
        """The iframe snippet with its ``allow`` attribute, and the same with embed.js.
        Only the space's ``embedOrigins`` may frame the page (see docs/embedding.md)."""
        room = await self.room_for(ctx, roomId)
        space = await self.space_for(ctx, room.space_id)
        snippet = embed_snippet(self._settings.public_url, room)
        ancestors = frame_ancestors(space)
        resource = jsonapi.resource(
            "roomEmbeds", room.id,
            {
                "url": snippet.url,
                "allow": snippet.allow,
                "html": snippet.html,
                "scriptUrl": snippet.script_url,
                "script": snippet.script,
                "frameAncestors": ancestors,
                "embedOrigins": ancestors.split(" ")[1:],
                "credentialRequired": not (room.visibility == "public"
                                           and space.visibility == "public"),
            },
            relationships={"room": jsonapi.to_one("rooms", room.id,
                                                  self.url(f"/rooms/{room.id}"))},
            links={"self": self.url(f"/rooms/{room.id}/embed")},
        )
        return Reply(200, jsonapi.single(resource))
