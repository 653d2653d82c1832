"""The JSON:API surface: :class:`RestApi`, mounted at ``/api/v2``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from meetplatform import __version__
from meetplatform.config import Settings
from meetplatform.history import HistoryReader
from meetplatform.httpkit import HttpProblem, Problem, UrlGuard, install_error_pages
from meetplatform.invitations import Invitations
from meetplatform.registry import Registry
from meetplatform.restapi import routes
from meetplatform.restapi.base import Ctx, RateLimits, broken_parameter, query_args
from meetplatform.restapi.documents import DOCUMENT, DocumentRoutes
from meetplatform.restapi.embed import EmbedRoutes
from meetplatform.restapi.jsonapi import JSON_TYPE, JSONAPI_VERSION, ApiError
from meetplatform.restapi.meetings import MeetingRoutes
from meetplatform.restapi.model import ALL_TYPES
from meetplatform.restapi.oauth import OAuthRoutes
from meetplatform.restapi.openapi import build_document
from meetplatform.restapi.participants import ParticipantRoutes
from meetplatform.restapi.ratelimit import RateLimiter
from meetplatform.restapi.rooms import RoomRoutes
from meetplatform.restapi.routes import Output, Reply, allowed_methods, api_route
from meetplatform.restapi.sessions import ATTENDANCE, SESSION, SessionRoutes
from meetplatform.restapi.spaces import SpaceRoutes
from meetplatform.restapi.user_tokens import UserTokenRoutes
from meetplatform.restapi.webhooks import WEBHOOK_ENDPOINT, WebhookRoutes
from meetplatform.store import Store
from meetplatform.webhooks.receivers import Receivers

if TYPE_CHECKING:
    from meetplatform.documents.meetings import MeetingDocuments
    from meetplatform.history import History
    from meetplatform.webhooks import WebhookService

_log = Logger()

OVERRIDABLE = ("PATCH", "PUT", "DELETE")

INDEX_SCHEMA = {
    "type": "object",
    "properties": {"meta": {"type": "object"}, "links": {"type": "object"},
                   "jsonapi": {"type": "object"}},
    "required": ["meta", "links"],
}


class RestApi(OAuthRoutes, SpaceRoutes, RoomRoutes, UserTokenRoutes, ParticipantRoutes,
              MeetingRoutes, EmbedRoutes, WebhookRoutes, SessionRoutes, DocumentRoutes):
    """The JSON:API v2 for client applications (one Klein app, state per instance).

    ``resource()`` is what the composition root mounts at ``/api/v2``. Optional keyword
    arguments: ``invitations`` (share one :class:`Invitations` with the web pages),
    ``rate_limits``, ``max_body_bytes``, ``access_token_ttl_s``, ``history`` (the meeting
    history the sessions read), ``webhooks`` (told when a webhook endpoint changes) and
    ``documents`` (the meetings' documents, for the ``documents`` resource).
    """

    app = routes.app

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, invitations: Invitations | None = None,
                 rate_limits: RateLimits | None = None, max_body_bytes: int = 64 * 1024,
                 access_token_ttl_s: int | None = None, history: History | None = None,
                 webhooks: WebhookService | None = None,
                 documents: MeetingDocuments | None = None) -> None:
        super().__init__(clock, settings, registry, store, invitations=invitations,
                         rate_limits=rate_limits, max_body_bytes=max_body_bytes,
                         access_token_ttl_s=access_token_ttl_s)
        self._openapi: dict[str, Any] | None = None
        #: The meeting history (sessions read it after its buffered writes).
        self.history = history
        self.history_reader = history.reader if history is not None else HistoryReader(store)
        #: The webhook service (told when an endpoint changes, through its receivers).
        self.webhooks = webhooks
        self.webhook_receivers = (webhooks.receivers if webhooks is not None
                                  else Receivers(store))
        #: The meetings' documents (the ``documents`` resource adds and shows them).
        self.meeting_documents = documents

    @property
    def rate_limiters(self) -> Mapping[str, RateLimiter]:
        """The limiters by kind (``client``, ``user``, ``anonymous``), for the metrics."""
        return self._limiters

    @property
    def max_body_bytes(self) -> int:
        """The largest request body any endpoint reads (the site refuses larger ones)."""
        return self._max_body

    def resource(self) -> IResource:
        """The resource to mount at ``/api/v2`` (root child ``b"api"``, then ``b"v2"``)."""
        return UrlGuard(_MethodOverride(self, self.app.resource()), self.answer_problem,
                        max_query_bytes=self._settings.max_query_bytes, check_query=True)

    async def purge_expired_tokens(self) -> int:
        """Forget access tokens that expired more than a day ago. A periodic job (run it
        from a TimerService): it never raises, it logs."""
        try:
            return await self._store.purge_expired_access_tokens(self.now())
        except Exception:  # noqa: BLE001 - periodic jobs never raise (they log)
            _log.failure("purging expired access tokens failed")
            return 0

    def openapi_document(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = build_document(
                routes.ROUTES, (*ALL_TYPES, WEBHOOK_ENDPOINT, SESSION, ATTENDANCE, DOCUMENT),
                self.base_url)
        return self._openapi

    # --- documents about the API -------------------------------------------------------

    @api_route("GET", "/", summary="Where things are", tag="About", auth="public",
               output=Output("json", schema=INDEX_SCHEMA))
    async def index(self, ctx: Ctx) -> Reply:
        """Links to the OpenAPI document and the collections; no authentication."""
        return Reply(200, {
            "meta": {"name": self._settings.server_name, "version": __version__,
                     "apiVersion": "2"},
            "links": {"self": self.url("/"), "openapi": self.url("/openapi.json"),
                      "token": self.url("/oauth/token"), "spaces": self.url("/spaces"),
                      "meetings": self.url("/meetings")},
            "jsonapi": JSONAPI_VERSION,
        })

    @api_route("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document", tag="About",
               auth="public", output=Output("json", schema={"type": "object"}),
               media_type=JSON_TYPE)
    async def openapi(self, ctx: Ctx) -> Reply:
        return Reply(200, self.openapi_document())

    # --- errors, in one place: the kit's handlers, as JSON:API errors -----------------

    def answer_problem(self, request: IRequest, problem: HttpProblem) -> bytes:
        """The JSON:API error for a refused URL, a routing error or a failure (logged by
        the kit)."""
        return self.render_error(request, _api_error(request, problem))

    def answer_api_error(self, request: IRequest, error: ApiError) -> bytes:
        return self.render_error(request, error)

    install_error_pages(app, answer_problem, surface="JSON:API request",
                        own=(ApiError, answer_api_error), log_uri=True)


def _api_error(request: IRequest, problem: HttpProblem) -> ApiError:
    kind = problem.problem
    if kind is Problem.METHOD_NOT_ALLOWED:
        allowed = allowed_methods(request.path.decode("utf-8", "replace")) or sorted(
            m for m in problem.allowed if m != "HEAD")
        return ApiError(405, "request.methodNotAllowed",
                        f"{request.method.decode('ascii', 'replace')} is not "
                        f"allowed here; use {', '.join(allowed)}",
                        headers={"Allow": ", ".join(allowed)})
    if kind is Problem.NOT_FOUND or (kind is Problem.INVALID
                                     and problem.status in (404, 301, 302, 307, 308)):
        return ApiError(404, "request.notFound", "there is no such endpoint")
    if kind is Problem.INVALID:
        return ApiError(problem.status, "request.invalid",
                        problem.description or "invalid request")
    if kind is Problem.URI_TOO_LONG:
        return ApiError(414, "request.uriTooLong", "the URL is too long")
    if kind is Problem.PATH_NOT_UTF8:
        return ApiError(400, "request.invalidEncoding",
                        "the URL path is not valid UTF-8 once percent-decoded")
    if kind is Problem.QUERY_NOT_UTF8:
        name = broken_parameter(request)
        where = f"the query parameter {name}" if name is not None else "the query"
        return ApiError(400, "request.invalidEncoding",
                        f"{where} is not valid UTF-8 once percent-decoded", parameter=name)
    return ApiError(500, "server.error",
                    "the server failed to handle this request; it was logged")


class _MethodOverride(Resource):
    """The method override (``X-HTTP-Method-Override`` or ``_method`` on a POST), applied
    before routing and behind the kit's URL guard (which checked size and encoding)."""

    isLeaf = True

    def __init__(self, api: RestApi, inner: IResource) -> None:
        super().__init__()
        self._api = api
        self._inner = inner

    def render(self, request: IRequest) -> Any:
        try:
            self._check(request)
        except ApiError as error:
            return self._api.render_error(request, error)
        if not request.postpath:  # "/api/v2" is the index, as "/api/v2/" is
            request.postpath = [b""]
        return self._inner.render(request)

    def _check(self, request: IRequest) -> None:
        args = query_args(request)
        header = request.requestHeaders.getRawHeaders(b"X-HTTP-Method-Override") or []
        param = args.get("_method", [])
        wanted = {v.strip().upper() for v in [*(h.decode("latin-1") for h in header), *param]}
        if not wanted:
            return
        if request.method != b"POST":
            raise ApiError(400, "request.methodOverrideNotAllowed",
                           "X-HTTP-Method-Override and _method are honoured on POST only",
                           header="X-HTTP-Method-Override" if header else None,
                           parameter="_method" if param and not header else None)
        if len(wanted) > 1:
            raise ApiError(400, "request.methodOverrideConflict",
                           "X-HTTP-Method-Override and _method disagree")
        method = wanted.pop()
        if method not in OVERRIDABLE:
            raise ApiError(400, "request.methodOverrideNotAllowed",
                           "the method override may be PATCH, PUT or DELETE",
                           header="X-HTTP-Method-Override" if header else None,
                           parameter="_method" if param and not header else None)
        _log.debug("method override {method} on {uri}", method=method, uri=request.uri)
        request.method = method.encode("ascii")


__all__ = ["RateLimits", "RestApi"]
