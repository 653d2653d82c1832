"""The route table: each endpoint declared once, with what OpenAPI needs to describe it.

:func:`api_route` registers a handler on the shared Klein app AND records a
:class:`Route` in :data:`ROUTES`. The OpenAPI document is generated from :data:`ROUTES`
and the resource types of :mod:`meetplatform.restapi.model`; a test compares it with the
Klein URL map, so a route cannot exist without being documented, nor the reverse.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from klein import Klein

from meetplatform.restapi.jsonapi import MEDIA_TYPE
from meetplatform.restapi.schema import Obj, ResourceType, Schema

#: The one Klein app of the JSON:API; ``RestApi.app`` is this object.
app = Klein()


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: Schema
    description: str = ""
    #: The error code of a value the schema refuses (default ``request.invalidParameter``).
    error_code: str = "request.invalidParameter"


@dataclass(frozen=True)
class Body:
    """A request body: a JSON:API document of ``rtype`` (``mode`` create/update), or, for
    the OAuth endpoints, a form or JSON object described by ``form``."""

    rtype: ResourceType | None = None
    mode: str = "create"
    form: Obj | None = None
    required: bool = True
    #: Attributes this call needs although the type does not require them (the handler
    #: checks them; the OpenAPI document says so in this call's own request schema).
    require: tuple[str, ...] = ()


@dataclass(frozen=True)
class Output:
    """What a successful response holds: one resource, a page of them, or a plain schema."""

    kind: str  # "resource" | "collection" | "none" | "json"
    rtype: ResourceType | None = None
    schema: dict[str, Any] | None = None
    #: The resource in this response includes its once-only attributes (secrets).
    include_once: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    document: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    summary: str
    tag: str
    #: ``public``, ``client`` (client credentials only), ``any`` (client or invited
    #: user) or ``oauthClient`` (Basic/body credentials, or a client token/signature).
    auth: str
    scope: str | None
    body: Body | None
    success: tuple[int, ...]
    output: Output
    query: tuple[QueryParam, ...]
    errors: tuple[int, ...]
    #: The response carries a secret: never gzip it (BREACH), never cache it.
    secret: bool
    media_type: str
    description: str


ROUTES: list[Route] = []

Handler = Callable[..., Awaitable[Reply]]


def werkzeug_path(path: str) -> str:
    """``/rooms/{roomId}`` -> ``/rooms/<roomId>``."""
    return re.sub(r"\{([A-Za-z]+)\}", r"<\1>", path)


def path_params(path: str) -> list[str]:
    return re.findall(r"\{([A-Za-z]+)\}", path)


def allowed_methods(path: str) -> list[str]:
    """The methods of the routes that serve ``path`` (a request path under ``/api/v2``).

    Where a literal route and a parameterised one both match (``/userTokens/activate``
    and ``/userTokens/{tokenId}``) the literal one is the resource, so only its methods
    count: werkzeug's ``Allow`` would name the others too."""
    relative = path.split("/api/v2", 1)[-1] or "/"
    matching = [r for r in ROUTES
                if re.fullmatch(re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(r.path)),
                                relative)]
    if not matching:
        return []
    fewest = min(len(path_params(r.path)) for r in matching)
    return sorted({r.method for r in matching if len(path_params(r.path)) == fewest})


def api_route(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    auth: str,
    scope: str | None = None,
    body: Body | None = None,
    success: int | tuple[int, ...] = 200,
    output: Output = Output("none"),
    query: tuple[QueryParam, ...] = (),
    errors: tuple[int, ...] = (),
    secret: bool = False,
    media_type: str = MEDIA_TYPE,
    description: str = "",
) -> Callable[[Handler], Handler]:
    """Declare an endpoint; the decorated ``async def handler(self, ctx, **path_params)``
    returns a :class:`Reply`. Authentication, scope, rate limit, content negotiation and
    body validation happen before it runs (see ``RestApi.handle``)."""
    assert auth in ("public", "client", "any", "oauthClient"), auth

    def decorator(handler: Handler) -> Handler:
        statuses = {400, 406, 429}
        if auth != "public":
            statuses |= {401, 403}
        if path_params(path):
            statuses.add(404)
        if body is not None:
            statuses |= {413, 415, 422}
            if body.rtype is not None:
                statuses |= {403, 409}
        statuses |= set(errors)
        route = Route(
            method=method, path=path, name=handler.__name__, summary=summary, tag=tag,
            auth=auth, scope=scope, body=body,
            success=success if isinstance(success, tuple) else (success,),
            output=output, query=query, errors=tuple(sorted(statuses)), secret=secret,
            media_type=media_type,
            description=description or inspect.cleandoc(handler.__doc__ or ""),
        )
        ROUTES.append(route)

        async def endpoint(self: Any, request: Any, **params: str) -> bytes:
            ctx_handler = handler
            result: bytes = await self.handle(route, ctx_handler, request, params)
            return result

        endpoint.__name__ = handler.__name__
        endpoint.__qualname__ = handler.__qualname__
        app.route(werkzeug_path(path), methods=[method], endpoint=handler.__name__)(endpoint)
        handler.route = route  # type: ignore[attr-defined]
        return handler

    return decorator
