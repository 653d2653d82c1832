"""The HTTP kit: what the URL guard refuses and how routing errors are classified.

The surfaces' own wording of each problem is tested through their resources
(tests/web, tests/restapi); these are the decisions they share.
"""

from __future__ import annotations

from typing import cast

from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest
from werkzeug.exceptions import BadRequest, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from meetplatform.httpkit import HttpProblem, Problem, routing_problem, url_problem


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
