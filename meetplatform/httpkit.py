"""The kit of every Klein surface: one URL guard in front of the routes, one error installer.

The conference pages (``/client``), the invitation and embed pages (``/j``, ``/embed``) and
the JSON:API (``/api/v2``) refuse the same things the same way; only the format of the
answer differs (an HTML page, a JSON:API ``errors[]`` document). So the decisions live
here once and every surface supplies a single function, ``answer(self, request,
problem)``, that words an :class:`HttpProblem` in its own format:

- :class:`UrlGuard` refuses, before routing, what Klein would choke on or what no route
  should see: an over-long URL or query (414) and a path (optionally a query) that is not
  UTF-8 once percent-decoded (400). Klein decodes path segments itself and would answer
  such a request with an unformatted 500.
- :func:`install_error_pages` registers the surface's Klein error handler, which sorts what
  went wrong: the surface's own refusal type, then every routing error (unknown path,
  wrong method, redirect), then anything else, which is *logged* here with its traceback
  and answered as a 500. A surface cannot forget to log a failure nor answer one in
  another surface's format.
- :class:`DirectRoute` serves one hot route of a surface without Klein's dispatch, with
  the same answers for its failures.

This module imports nothing of the project: every surface may use it without an arrow
between surfaces.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

__all__ = ["MAX_URI_BYTES", "DirectRoute", "HttpProblem", "Problem", "UrlGuard",
           "install_error_pages",
           "routing_problem", "url_problem"]

_log = Logger()

#: The longest URL (path and query) a surface routes unless it says otherwise.
MAX_URI_BYTES = 16 * 1024

S = TypeVar("S")
E = TypeVar("E", bound=Exception)


class Problem(enum.Enum):
    """What went wrong with a request before or while a surface handled it."""

    #: No route for the path (also a routing redirect, which the surfaces do not offer).
    NOT_FOUND = "notFound"
    #: A route for the path, but not for the method (``allowed`` lists the methods).
    METHOD_NOT_ALLOWED = "methodNotAllowed"
    #: The URL or its query is longer than the surface accepts (414).
    URI_TOO_LONG = "uriTooLong"
    #: A path segment is not UTF-8 once percent-decoded (400).
    PATH_NOT_UTF8 = "pathNotUtf8"
    #: A query name or value is not UTF-8 once percent-decoded (400).
    QUERY_NOT_UTF8 = "queryNotUtf8"
    #: Any other routing refusal (``status`` is werkzeug's, ``description`` its text).
    INVALID = "invalid"
    #: An exception escaped the surface's code; it was logged (500).
    FAILED = "failed"


@dataclass(frozen=True)
class HttpProblem:
    """A problem with a request and the HTTP status it gets unless the surface knows better."""

    problem: Problem
    status: int
    #: For :attr:`Problem.METHOD_NOT_ALLOWED`: the methods the route takes.
    allowed: tuple[str, ...] = ()
    #: For :attr:`Problem.INVALID`: werkzeug's description of the refusal.
    description: str = ""


def routing_problem(error: HTTPException) -> HttpProblem:
    """The problem a routing exception (from werkzeug, through Klein) stands for."""
    if isinstance(error, MethodNotAllowed):
        return HttpProblem(Problem.METHOD_NOT_ALLOWED, 405,
                           allowed=tuple(error.valid_methods or ()))
    if isinstance(error, NotFound | RequestRedirect):
        return HttpProblem(Problem.NOT_FOUND, 404)
    return HttpProblem(Problem.INVALID, int(getattr(error, "code", None) or 400),
                       description=str(getattr(error, "description", "")))


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _query_utf8(query: bytes) -> bool:
    """Whether every name and value of ``query`` is UTF-8 once decoded as ``parse_qs``
    decodes it (bytes that are not UTF-8 come back as surrogates, which do not encode)."""
    pairs = parse_qsl(query.decode("utf-8", "surrogateescape"), keep_blank_values=True,
                      encoding="utf-8", errors="surrogateescape")
    try:
        for name, value in pairs:
            name.encode("utf-8")
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def url_problem(request: IRequest, *, max_uri_bytes: int, max_query_bytes: int,
                check_query: bool = False) -> HttpProblem | None:
    """What :class:`UrlGuard` refuses in ``request``, or ``None``."""
    uri: bytes = request.uri
    _, _, query = uri.partition(b"?")
    if len(uri) > max_uri_bytes or len(query) > max_query_bytes:
        return HttpProblem(Problem.URI_TOO_LONG, 414)
    if not all(_utf8(segment) for segment in request.postpath):  # type: ignore[attr-defined]
        return HttpProblem(Problem.PATH_NOT_UTF8, 400)
    if check_query and not _query_utf8(query):
        return HttpProblem(Problem.QUERY_NOT_UTF8, 400)
    return None


class UrlGuard(Resource):
    """Refuses, before routing, the URLs no route should see (see :func:`url_problem`).

    ``answer`` words the refusal in the surface's format; ``inner`` (the Klein resource,
    or a further check in front of it) renders everything else.
    """

    isLeaf = True

    def __init__(self, inner: IResource, answer: Callable[[IRequest, HttpProblem], bytes],
                 *, max_query_bytes: int, max_uri_bytes: int = MAX_URI_BYTES,
                 check_query: bool = False) -> None:
        super().__init__()
        self._inner = inner
        self._answer = answer
        self._max_uri_bytes = max_uri_bytes
        self._max_query_bytes = max_query_bytes
        self._check_query = check_query

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        problem = url_problem(request, max_uri_bytes=self._max_uri_bytes,
                              max_query_bytes=self._max_query_bytes,
                              check_query=self._check_query)
        if problem is not None:
            return self._answer(request, problem)
        return self._inner.render(request)


def install_error_pages(app: Klein, answer: Callable[[S, IRequest, HttpProblem], bytes], *,
                        surface: str,
                        own: tuple[type[E], Callable[[S, IRequest, E], bytes]] | None = None,
                        log_uri: bool = False) -> Callable[[S, IRequest, Failure], bytes]:
    """Register ``app``'s error handlers: ``own`` errors, routing errors, failures.

    Call it once in the surface's class body, after ``answer`` (and the ``own`` handler)
    are defined; both are called with the surface instance Klein is bound to. Failures
    are logged as "<surface> failed", with the method and URI only if ``log_uri`` (the
    pages' paths carry invitation secrets, which must not reach the logs).

    Returns the same answering as one function ``(self, request, failure)``, for a route
    the surface serves without Klein (:class:`DirectRoute`): kept in the class body, it
    is a method of the surface.
    """

    def answer_failure(self: S, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if own is not None and isinstance(error, own[0]):
            return own[1](self, request, error)
        if isinstance(error, HTTPException):
            return answer(self, request, routing_problem(error))
        if log_uri:
            _log.failure("{surface} {method} {uri} failed", failure=failure,
                         surface=surface, method=request.method, uri=request.uri)
        else:
            _log.failure("{surface} failed", failure=failure, surface=surface)
        return answer(self, request, HttpProblem(Problem.FAILED, 500))

    # Klein tries its handlers in registration order: one for everything, which sorts.
    @app.handle_errors(Exception)
    def _failed(self: S, request: IRequest, failure: Failure) -> bytes:
        return answer_failure(self, request, failure)

    return answer_failure


class DirectRoute(Resource):
    """One route of a Klein surface served without Klein; every other request goes to
    the surface's Klein resource.

    Klein's dispatch (a Werkzeug map bound per request, a request adapter, Deferreds
    around the handler and its answer) costs about 50 µs a request on this hardware: an
    eighth of an invitation's activation, the request a thousand invitees send in the
    same minute. A route where that counts is served here: ``method`` and exactly the
    path segments ``postpath`` go to ``handler`` (the same coroutine Klein routes to),
    whose bytes are written; a failure is answered by ``on_failure`` (the surface's
    :func:`install_error_pages` answering), so the route behaves as under Klein. A
    client that goes away cancels the handler, as Klein does.
    """

    isLeaf = True

    def __init__(self, inner: IResource, method: bytes, postpath: list[bytes],
                 handler: Callable[[IRequest], Coroutine[Any, Any, bytes]],
                 on_failure: Callable[[IRequest, Failure], bytes]) -> None:
        super().__init__()
        self._inner = inner
        self._method = method
        self._postpath = postpath
        self._handler = handler
        self._on_failure = on_failure

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        if (request.method != self._method
                or request.postpath != self._postpath):  # type: ignore[attr-defined]
            return self._inner.render(request)
        work = Deferred.fromCoroutine(self._handler(request))
        finished: Deferred[None] = request.notifyFinish()  # type: ignore[attr-defined]
        finished.addErrback(lambda _: work.cancel())

        def write(body: bytes) -> None:
            if not finished.called:
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError) and finished.called:
                return  # the client went away: nothing to answer
            write(self._on_failure(request, failure))

        work.addCallbacks(write, failed).addErrback(
            lambda failure: _log.failure("answering a request failed", failure=failure))
        return NOT_DONE_YET
