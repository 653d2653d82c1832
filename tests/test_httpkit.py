"""The HTTP kit: what the URL guard refuses and how routing errors are classified.

The surfaces' own wording of each problem is tested through their resources
(tests/web, tests/restapi); these are the decisions they share.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel, DummyRequest
from werkzeug.exceptions import BadRequest, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from meetplatform.httpkit import (
    DirectRoute,
    HttpProblem,
    Problem,
    install_error_pages,
    routing_problem,
    url_problem,
)


def _request(uri: bytes, postpath: list[bytes]) -> IRequest:
    request = DummyRequest(postpath)
    request.uri = uri
    return cast(IRequest, request)


def _problem(uri: bytes, postpath: list[bytes], **kw: int) -> Problem | None:
    limits = {"max_uri_bytes": 100, "max_query_bytes": 50, **kw}
    found = url_problem(_request(uri, postpath), check_query=True, **limits)
    return found.problem if found is not None else None


def test_long_urls_and_queries_are_refused_with_414() -> None:
    """The whole URL and its query each have their own limit."""
    assert _problem(b"/x?" + b"q" * 50, [b"x"]) is None
    assert _problem(b"/x?" + b"q" * 51, [b"x"]) is Problem.URI_TOO_LONG
    assert _problem(b"/" + b"x" * 100, [b"x" * 99]) is Problem.URI_TOO_LONG
    found = url_problem(_request(b"/" + b"x" * 200, [b"x"]), max_uri_bytes=100,
                        max_query_bytes=50)
    assert found == HttpProblem(Problem.URI_TOO_LONG, 414)


def test_paths_and_queries_must_be_utf8_once_decoded() -> None:
    """Klein would fail on such a path; the query is checked only where asked for."""
    assert _problem(b"/%ff", [b"\xff"]) is Problem.PATH_NOT_UTF8
    assert _problem(b"/x?a=%C3%A9", [b"x"]) is None
    assert _problem(b"/x?a=%ff", [b"x"]) is Problem.QUERY_NOT_UTF8
    assert _problem(b"/x?a=\xc3%A9", [b"x"]) is Problem.QUERY_NOT_UTF8
    unchecked = url_problem(_request(b"/x?a=%ff", [b"x"]), max_uri_bytes=100,
                            max_query_bytes=50)
    assert unchecked is None


def test_routing_errors_become_problems() -> None:
    """Unknown paths and redirects are "not found"; a wrong method keeps what is allowed."""
    assert routing_problem(NotFound()) == HttpProblem(Problem.NOT_FOUND, 404)
    assert routing_problem(RequestRedirect("https://x.example/")).problem is Problem.NOT_FOUND
    assert routing_problem(MethodNotAllowed(["GET", "HEAD"])) == HttpProblem(
        Problem.METHOD_NOT_ALLOWED, 405, allowed=("GET", "HEAD"))
    invalid = routing_problem(BadRequest("nope"))
    assert (invalid.problem, invalid.status, invalid.description) == (
        Problem.INVALID, 400, "nope")


# --- a route served without Klein ------------------------------------------------------------


class _Refused(Exception):
    """The surface's own refusal."""


class _Surface:
    """A surface as the pages are: Klein routes, the kit's error pages, one direct route."""

    app = Klein()

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gate: Deferred[None] | None = None

    @app.route("/", methods=["POST"])
    async def post(self, request: IRequest) -> bytes:
        behaviour = request.args.get(b"do", [b"ok"])[0]  # type: ignore[attr-defined]
        self.started.append(behaviour.decode())
        if behaviour == b"wait":
            self.gate = Deferred()
            await self.gate
        if behaviour == b"refuse":
            raise _Refused()
        if behaviour == b"crash":
            raise RuntimeError("bug")
        request.setResponseCode(303)
        return b"posted"

    @app.route("/", methods=["GET"])
    def get(self, request: IRequest) -> bytes:
        return b"through klein"

    def answer_problem(self, request: IRequest, problem: HttpProblem) -> bytes:
        request.setResponseCode(problem.status)
        return f"problem {problem.problem.value}".encode()

    def answer_refused(self, request: IRequest, error: _Refused) -> bytes:
        request.setResponseCode(409)
        return b"refused"

    answer_failure = install_error_pages(app, answer_problem, surface="test surface",
                                         own=(_Refused, answer_refused))

    def resource(self) -> IResource:
        return DirectRoute(self.app.resource(), b"POST", [b""], self.post, self.answer_failure)


def _serve(resource: IResource, method: bytes, postpath: list[bytes],
           query: bytes = b"") -> Request:
    channel = DummyChannel()
    channel.site = Site(resource)  # type: ignore[attr-defined]
    request = Request(channel)
    request.method, request.clientproto = method, b"HTTP/1.1"
    request.uri = b"/j/" + b"/".join(postpath[1:]) + (b"?" + query if query else b"")
    request.path = request.uri.split(b"?")[0]
    request.prepath, request.postpath = [b"j"], list(postpath)
    request.args = parse_qs(query)
    request.client = channel.transport.getPeer()  # type: ignore[attr-defined]
    request.host = channel.transport.getHost()  # type: ignore[attr-defined]
    cast(Any, request).test_channel = channel  # Request lets go of its channel when done
    body = resource.render(request)
    if isinstance(body, bytes):
        request.write(body)
        request.finish()
    return request


def _written(request: Request) -> bytes:
    return cast(Any, request).test_channel.transport.written.getvalue()


def test_a_direct_route_answers_as_under_klein_and_leaves_the_rest_to_klein() -> None:
    surface = _Surface()
    resource = surface.resource()
    posted = _serve(resource, b"POST", [b""])
    assert posted.code == 303 and b"posted" in _written(posted)
    got = _serve(resource, b"GET", [b""])
    assert got.code == 200 and b"through klein" in _written(got)
    elsewhere = _serve(resource, b"POST", [b"other"])
    assert elsewhere.code == 404 and b"problem notFound" in _written(elsewhere)


def test_a_direct_routes_failures_get_the_surfaces_answers_and_are_logged(
        fail_on_logged_failures: list[Any]) -> None:
    surface = _Surface()
    resource = surface.resource()
    refused = _serve(resource, b"POST", [b""], b"do=refuse")
    assert refused.code == 409 and b"refused" in _written(refused)
    assert fail_on_logged_failures == []  # a refusal is not a failure
    crashed = _serve(resource, b"POST", [b""], b"do=crash")
    assert crashed.code == 500 and b"problem failed" in _written(crashed)
    assert [(e["surface"], e["log_failure"].type) for e in fail_on_logged_failures] == [
        ("test surface", RuntimeError)]
    fail_on_logged_failures.clear()  # logged, as expected


def test_a_client_that_goes_away_cancels_the_direct_route() -> None:
    surface = _Surface()
    request = _serve(surface.resource(), b"POST", [b""], b"do=wait")
    assert surface.started == ["wait"] and surface.gate is not None
    request.connectionLost(Failure(ConnectionDone()))
    assert surface.gate.called  # cancelled
    assert _written(request) == b""
