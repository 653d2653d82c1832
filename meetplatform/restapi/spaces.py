"""``spaces``: the one space of each client (read, update)."""

from __future__ import annotations

from typing import Any

from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.model import SPACE, space_resource
from meetplatform.restapi.routes import Body, Output, QueryParam, Reply, api_route
from meetplatform.restapi.schema import Str

PAGE_SIZE = QueryParam(
    "page[size]", Str(max_length=3, pattern=r"[1-9][0-9]?|100"),
    f"items per page, 1 to {jsonapi.MAX_PAGE_SIZE} (default {jsonapi.DEFAULT_PAGE_SIZE})",
    error_code="page.invalidSize")
PAGE_QUERY = (
    PAGE_SIZE,
    QueryParam("page[after]", Str(max_length=300, pattern=jsonapi.CURSOR_PATTERN),
               "the cursor from the previous page's links.next",
               error_code="page.invalidCursor"),
)


def normalize_origin(origin: str) -> str:
    """Scheme and host in lower case, default ports dropped."""
    scheme, _, rest = origin.partition("://")
    scheme = scheme.lower()
    rest = rest.lower()
    if (scheme == "https" and rest.endswith(":443")) or (scheme == "http"
                                                         and rest.endswith(":80")):
        rest = rest.rsplit(":", 1)[0]
    return f"{scheme}://{rest}"


class SpaceRoutes(ApiBase):
    @api_route("GET", "/spaces", summary="List your spaces (exactly one)", tag="Spaces",
               auth="any", scope="spaces:read", output=Output("collection", SPACE),
               query=PAGE_QUERY)
    async def list_spaces(self, ctx: Ctx) -> Reply:
        """A client has one space, made together with the client."""
        assert ctx.caller is not None
        size, after = self.page(ctx)
        space = await self._store.get_space(ctx.caller.space_id)
        items = []
        if space is not None and (after is None or (space.created_at, space.id) > after):
            items = [space]
        self_link, next_link = self.page_links(ctx, "/spaces", None, False)
        return Reply(200, jsonapi.collection(
            [space_resource(s, self.base_url) for s in items[:size]],
            self_link=self_link, next_link=next_link))

    @api_route("GET", "/spaces/{spaceId}", summary="Read your space", tag="Spaces",
               auth="any", scope="spaces:read", output=Output("resource", SPACE))
    async def get_space(self, ctx: Ctx, spaceId: str) -> Reply:
        space = await self.space_for(ctx, spaceId)
        return Reply(200, jsonapi.single(space_resource(space, self.base_url),
                                         self_link=self.url(f"/spaces/{space.id}")))

    @api_route("PATCH", "/spaces/{spaceId}", summary="Change your space", tag="Spaces",
               auth="client", scope="spaces:write", body=Body(SPACE, "update"),
               output=Output("resource", SPACE))
    async def update_space(self, ctx: Ctx, spaceId: str) -> Reply:
        """Name, description, visibility and the origins allowed to embed its rooms."""
        space = await self.space_for(ctx, spaceId)
        changes: dict[str, Any] = {}
        for attribute, column in (("name", "name"), ("description", "description"),
                                  ("visibility", "visibility")):
            if attribute in ctx.attrs:
                changes[column] = ctx.attrs[attribute]
        if "embedOrigins" in ctx.attrs:
            origins: list[str] = []
            for origin in ctx.attrs["embedOrigins"]:
                normalized = normalize_origin(origin)
                if normalized not in origins:
                    origins.append(normalized)
            changes["embed_origins"] = origins
        updated = await self._store.update_space(space.id, changes, ctx.now)
        if updated is None:
            raise ApiError(404, "space.notFound", "no such space")
        return Reply(200, jsonapi.single(space_resource(updated, self.base_url),
                                         self_link=self.url(f"/spaces/{space.id}")))
