"""What every endpoint of the JSON:API goes through, and the helpers resources share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from meetplatform import invitations as inv
from meetplatform import model as reg
from meetplatform.clientaddr import client_address
from meetplatform.config import Settings
from meetplatform.invitations import Invitations
from meetplatform.registry import Registry
from meetplatform.restapi import jsonapi
from meetplatform.restapi.auth import ACCESS_TOKEN_TTL_S, Authenticator, Caller, SignedRequest
from meetplatform.restapi.jsonapi import JSON_TYPE, MEDIA_TYPE, ApiError
from meetplatform.restapi.ratelimit import Limit, RateLimiter
from meetplatform.restapi.routes import Body, Handler, Reply, Route
from meetplatform.restapi.schema import ClientIdRefused, Invalid, TypeConflict, format_time
from meetplatform.store import RoomRecord, SpaceRecord, Store
from meetplatform.text import BadText, parse_form

_log = Logger()

FORM_TYPE = "application/x-www-form-urlencoded"

#: Query parameters every endpoint understands.
COMMON_QUERY = ("pretty", "_method")


CLIENT_LIMIT = Limit(rate=20.0, burst=100)
USER_LIMIT = Limit(rate=5.0, burst=30)
ANONYMOUS_LIMIT = Limit(rate=5.0, burst=30)


@dataclass(frozen=True)
class RateLimits:
    """Requests per second (sustained) and bursts, per kind of caller."""

    client: Limit = CLIENT_LIMIT
    user: Limit = USER_LIMIT
    #: Unauthenticated calls (token endpoint, activation) and failed authentications, per IP.
    anonymous: Limit = ANONYMOUS_LIMIT


@dataclass
class Ctx:
    """One request, checked: who calls, its query and its decoded body."""

    request: IRequest
    route: Route
    now: int
    query: dict[str, str]
    raw_body: bytes
    caller: Caller | None = None
    #: The decoded body (a JSON value, or a form as a dict).
    data: Any = None
    #: From a JSON:API request document: its id (client-generated ids) and attributes.
    doc_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def header_text(request: IRequest, name: str) -> str | None:
    raw = request.requestHeaders.getRawHeaders(name)
    if not raw:
        return None
    if len(raw) > 1:
        raise ApiError(400, "request.duplicateHeader", f"send the {name} header once",
                       header=name)
    value = raw[0]
    return value if isinstance(value, str) else value.decode("latin-1")


def query_args(request: IRequest) -> dict[str, list[str]]:
    """The URL's query parameters only (Twisted's ``request.args`` mixes in form bodies).

    Bytes that are not UTF-8 would come back as surrogates, but the URL guard in front of
    the routes (:class:`meetplatform.httpkit.UrlGuard`) refuses such queries."""
    _, _, query = request.uri.partition(b"?")
    return parse_qs(query.decode("utf-8", "surrogateescape"), keep_blank_values=True,
                    encoding="utf-8", errors="surrogateescape")


def broken_parameter(request: IRequest) -> str | None:
    """The name of the first query parameter whose value is not valid Unicode once
    percent-decoded (what the URL guard refused the query for), if a name can be given."""
    _, _, query = request.uri.partition(b"?")
    try:
        parse_form(query)
    except BadText as e:
        return e.where
    except ValueError:
        return None
    return None


def wants_pretty(request: IRequest) -> bool:
    values = query_args(request).get("pretty")
    return not (values and values[-1] in ("false", "0", "no"))


class ApiBase:
    """State and request handling of :class:`meetplatform.restapi.RestApi`."""

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, invitations: Invitations | None = None,
                 rate_limits: RateLimits | None = None, max_body_bytes: int = 64 * 1024,
                 access_token_ttl_s: int | None = None) -> None:
        self._clock = clock
        self._settings = settings
        self._registry = registry
        self._store = store
        self.invitations = invitations or Invitations(clock, settings, registry, store)
        self.auth = Authenticator(clock, store)
        limits = rate_limits or RateLimits()
        self._limiters = {
            "client": RateLimiter(clock, limits.client),
            "user": RateLimiter(clock, limits.user),
            "anonymous": RateLimiter(clock, limits.anonymous),
        }
        self._max_body = min(max_body_bytes, settings.max_body_bytes)
        self._token_ttl_s = access_token_ttl_s or ACCESS_TOKEN_TTL_S
        #: room id -> (the room record, running, participant count, its resource object
        #: encoded once): see ``RoomRoutes.room_object``.
        self._room_objects: dict[str, tuple[RoomRecord, bool, int, jsonapi.Encoded]] = {}

    # --- small helpers -----------------------------------------------------------------

    def now(self) -> int:
        return int(self._clock.seconds() * 1000)

    @property
    def base_url(self) -> str:
        """Absolute URL of the API root (``{public_url}/api/v2``)."""
        return self._settings.public_url.rstrip("/") + "/api/v2"

    def url(self, path: str) -> str:
        return self.base_url + path

    def client_ip(self, request: IRequest) -> str:
        """The client's address (behind ``--trusted-proxy`` proxies, the forwarded one):
        what anonymous calls and failed authentications are counted against."""
        return client_address(request, self._settings.trusted_proxies)

    def limit(self, kind: str, key: str) -> None:
        """Spend one request from ``key``'s bucket or refuse with 429 + Retry-After."""
        wait = self._limiters[kind].take(key)
        if wait is not None:
            seconds = RateLimiter.retry_after(wait)
            limit = self._limiters[kind].limit
            raise ApiError(429, "rateLimit.exceeded",
                           f"too many requests; retry in {seconds} s",
                           headers={"Retry-After": str(seconds),
                                    "RateLimit-Limit": str(limit.burst),
                                    "RateLimit-Remaining": "0",
                                    "RateLimit-Reset": str(seconds)},
                           meta={"retryAfterSec": seconds})

    # --- the request pipeline ----------------------------------------------------------

    async def handle(self, route: Route, handler: Handler, request: IRequest,
                     params: Mapping[str, str]) -> bytes:
        request._mp_route = route  # type: ignore[attr-defined]
        jsonapi.check_accept(header_text(request, "Accept"), route.media_type)
        ctx = Ctx(request=request, route=route, now=self.now(),
                  query=self._query(request, route), raw_body=self._read_body(request))
        if route.auth in ("client", "any"):
            ctx.caller = await self._authenticate(ctx, allow_user=route.auth == "any")
            if route.scope is not None and route.scope not in ctx.caller.scopes:
                raise ApiError(403, "auth.insufficientScope",
                               f"this call needs the scope {route.scope}",
                               meta={"requiredScope": route.scope})
            self.limit(ctx.caller.kind, ctx.caller.rate_key)
        else:
            self.limit("anonymous", "ip:" + self.client_ip(ctx.request))
        if route.body is not None:
            self._decode_body(ctx, route.body, params)
        reply = await handler(self, ctx, **params)
        return self.render(request, reply, route)

    async def _authenticate(self, ctx: Ctx, *, allow_user: bool) -> Caller:
        request = ctx.request
        uri = request.uri.decode("utf-8", "replace")
        path, _, query = uri.partition("?")
        signed = SignedRequest(method=request.method.decode("ascii", "replace"),
                               path=path, query=query, body=ctx.raw_body)
        try:
            return await self.auth.authenticate(header_text(request, "Authorization"), signed,
                                                allow_user=allow_user)
        except ApiError as e:
            # failed attempts count against the address; a request without credentials
            # guesses nothing and is answered 401 however many came before
            if e.status == 401 and request.getHeader("Authorization") is not None:
                self.limit("anonymous", "ip:" + self.client_ip(ctx.request))
            raise

    def _query(self, request: IRequest, route: Route) -> dict[str, str]:
        known = {p.name for p in route.query} | set(COMMON_QUERY)
        out: dict[str, str] = {}
        for name, values in query_args(request).items():
            if name not in known:
                raise ApiError(400, "request.unknownParameter",
                               f"{name} is not a parameter of this call", parameter=name)
            if len(values) > 1:
                raise ApiError(400, "request.repeatedParameter", f"give {name} only once",
                               parameter=name)
            out[name] = values[0]
        for param in route.query:
            if param.name in out:
                try:
                    param.schema.check(out[param.name], "")
                except Invalid as e:
                    raise ApiError(400, param.error_code, f"{param.name} {e.detail}",
                                   parameter=param.name) from None
        pretty = out.get("pretty")
        if pretty is not None and pretty not in jsonapi.PRETTY_VALUES:
            raise ApiError(400, "request.invalidParameter", "pretty must be true or false",
                           parameter="pretty")
        return out

    def _read_body(self, request: IRequest) -> bytes:
        length = header_text(request, "Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self._max_body:
            raise ApiError(413, "request.tooLarge",
                           f"the body is larger than {self._max_body} bytes")
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        data: bytes = content.read(self._max_body + 1)
        if len(data) > self._max_body:
            raise ApiError(413, "request.tooLarge",
                           f"the body is larger than {self._max_body} bytes")
        return data

    def _decode_body(self, ctx: Ctx, body: Body, params: Mapping[str, str]) -> None:
        if not ctx.raw_body.strip():
            if not body.required:
                ctx.data = {}
                return
            raise ApiError(400, "request.bodyMissing", "this call needs a request body")
        if body.form is not None:
            ctx.data = self._decode_form(ctx)
            try:
                ctx.data = body.form.check(ctx.data, "")
            except Invalid as e:
                name = e.pointer.strip("/") or "body"
                raise ApiError(400, "request.invalidParameter", f"{name} {e.detail}",
                               parameter=name, oauth_error="invalid_request") from None
            return
        jsonapi.check_content_type(header_text(ctx.request, "Content-Type"))
        ctx.data = jsonapi.parse_json(ctx.raw_body)
        assert body.rtype is not None
        # the resource's own id is the last path parameter (/rooms/{roomId}/documents/{id})
        url_id = list(params.values())[-1] if params and body.mode == "update" else None
        try:
            ctx.doc_id, ctx.attrs = body.rtype.parse(ctx.data, body.mode, url_id)
        except TypeConflict as e:
            raise ApiError(409, "document.conflict", e.detail, pointer=e.pointer) from None
        except ClientIdRefused as e:
            raise ApiError(403, "document.clientIdRefused", e.detail, pointer=e.pointer) from None
        except Invalid as e:
            code = ("validation.invalidAttribute" if e.pointer.startswith("/data/attributes")
                    else "document.invalid")
            raise ApiError(422, code, f"{e.pointer or 'the document'} {e.detail}",
                           pointer=e.pointer) from None

    def _decode_form(self, ctx: Ctx) -> dict[str, Any]:
        """An OAuth request body: form-urlencoded (RFC 6749) or a JSON object."""
        content_type = header_text(ctx.request, "Content-Type") or ""
        media = content_type.split(";")[0].strip().lower()
        if media == FORM_TYPE:
            try:
                pairs = parse_form(ctx.raw_body, strict_parsing=True, max_num_fields=50)
            except BadText as e:
                raise ApiError(400, "request.invalidEncoding", e.message, parameter=e.where,
                               oauth_error="invalid_request") from None
            except ValueError:
                raise ApiError(400, "request.invalidForm", "the form body is malformed",
                               oauth_error="invalid_request") from None
            out: dict[str, Any] = {}
            for name, value in pairs:
                if name in out:
                    raise ApiError(400, "request.repeatedParameter",
                                   f"{name} is given more than once", parameter=name,
                                   oauth_error="invalid_request")
                out[name] = value
            return out
        if media in (JSON_TYPE, MEDIA_TYPE):
            value = jsonapi.parse_json(ctx.raw_body)
            if not isinstance(value, dict):
                raise ApiError(400, "request.invalidForm", "the body must be a JSON object",
                               oauth_error="invalid_request")
            return value
        raise ApiError(415, "request.unsupportedMediaType",
                       f"send {FORM_TYPE} (or {JSON_TYPE})", header="Content-Type",
                       oauth_error="invalid_request")

    # --- rendering ---------------------------------------------------------------------

    def render(self, request: IRequest, reply: Reply, route: Route | None) -> bytes:
        media = route.media_type if route else MEDIA_TYPE
        request.setResponseCode(reply.status)
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        for name, value in reply.headers.items():
            request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
        if reply.document is None or reply.status == 204:
            request.setHeader(b"Content-Length", b"0")
            return b""
        body = jsonapi.encode(reply.document, pretty=wants_pretty(request))
        request.setHeader(b"Content-Type", media.encode("ascii"))
        secret = route.secret if route else False
        if not secret:
            request.setHeader(b"Vary", b"Accept-Encoding")
            try:
                accept_encoding = header_text(request, "Accept-Encoding")
            except ApiError:
                accept_encoding = None
            if jsonapi.accepts_gzip(accept_encoding):
                body = jsonapi.gzip_bytes(body)
                request.setHeader(b"Content-Encoding", b"gzip")
        request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
        return body

    def render_error(self, request: IRequest, error: ApiError) -> bytes:
        route: Route | None = getattr(request, "_mp_route", None)
        if error.oauth_error is None and route is not None and route.media_type == JSON_TYPE:
            error.oauth_error = {400: "invalid_request", 401: "invalid_client"}.get(error.status)
        return self.render(request, Reply(error.status, error.document(), error.headers), route)

    # --- lookups shared by resources ---------------------------------------------------

    async def space_for(self, ctx: Ctx, space_id: str) -> SpaceRecord:
        """The caller's space by id, or 404 (another client's space does not exist for it)."""
        assert ctx.caller is not None
        space = None
        if space_id == ctx.caller.space_id:
            space = await self._store.get_space(space_id)
        if space is None:
            raise ApiError(404, "space.notFound", "no such space", parameter="spaceId")
        return space

    async def room_for(self, ctx: Ctx, room_id: str) -> RoomRecord:
        """A room of the caller's space, or 404; 403 for a user token scoped elsewhere."""
        caller = ctx.caller
        assert caller is not None
        room = await self._store.get_room(room_id) if len(room_id) <= 64 else None
        if room is None or room.space_id != caller.space_id:
            raise ApiError(404, "room.notFound", "no such room", parameter="roomId")
        if caller.room_id is not None and caller.room_id != room.id:
            raise ApiError(403, "auth.outOfScope",
                           "your access token is for another room of this space")
        return room

    def page(self, ctx: Ctx) -> tuple[int, tuple[int, str] | None]:
        size = jsonapi.page_size(ctx.query.get("page[size]"))
        after = ctx.query.get("page[after]")
        return size, jsonapi.decode_cursor(after) if after is not None else None

    def page_links(self, ctx: Ctx, path: str, last_key: tuple[int, str] | None,
                   more: bool) -> tuple[str, str | None]:
        size = ctx.query.get("page[size]")
        base = self.url(path)
        extra = f"page[size]={size}&" if size else ""
        self_link = base
        if ctx.query:
            self_link = base + "?" + urlencode(
                {k: v for k, v in ctx.query.items() if k != "_method"}, safe="[]")
        next_link = None
        if more and last_key is not None:
            next_link = f"{base}?{extra}page[after]={jsonapi.encode_cursor(last_key)}"
        return self_link, next_link


def domain_error(error: Exception) -> ApiError:
    """The JSON:API error for a refusal of the registry or of the invitations domain."""
    detail = str(error) or type(error).__name__
    if isinstance(error, inv.InvitationError):
        status = {
            inv.InvitationNotFound: 404, inv.InvitationExpired: 410,
            inv.InvitationRevoked: 410, inv.InvitationUsed: 409,
            inv.InvitationNotYetValid: 409, inv.DisplayNameRequired: 422,
            inv.RoomNotFound: 404, inv.RoomNotOpenYet: 409, inv.RoomExpired: 410,
            inv.RoomNotPublic: 403,
        }.get(type(error), 400)
        meta = {}
        if error.at is not None:
            meta["at"] = format_time(error.at)
        pointer = "/data/attributes/displayName" if isinstance(
            error, inv.DisplayNameRequired) else None
        return ApiError(status, error.code, error.detail, pointer=pointer, meta=meta)
    if isinstance(error, reg.MaxParticipantsReached):
        return ApiError(409, "meeting.full", "the meeting has reached its participant limit")
    if isinstance(error, reg.GuestDeniedAccess):
        return ApiError(403, "meeting.guestDenied", "the meeting's guest policy refuses guests")
    if isinstance(error, reg.MeetingForciblyEnded):
        return ApiError(410, "meeting.ended", "the meeting was ended")
    if isinstance(error, reg.NonUniqueVoiceBridge):
        return ApiError(409, "meeting.voiceBridgeTaken", "the voice bridge is in use")
    if isinstance(error, reg.IdNotUnique):
        return ApiError(409, "meeting.idNotUnique", "a meeting with this id runs already")
    if isinstance(error, reg.NotAllowed):
        return ApiError(409, "meeting.notAllowed", detail)
    if isinstance(error, reg.SeatNotUsable):
        return ApiError(409, "meeting.seatNotUsable", detail)
    return ApiError(409, "meeting.refused", detail)
