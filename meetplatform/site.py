"""The HTTP plumbing under every surface: the site, its input limits, the root resource.

:class:`MeetplatformSite` bounds what a client may send (request line, headers, body)
and answers an excess in plain HTTP before any surface sees it; the small resources
here (``/``, ``/healthz``, the 404 root, the 503 page served while starting) belong to
no surface. Nothing here knows the parts: :mod:`meetplatform.build` builds and mounts
them, :mod:`meetplatform.tap` runs the site.
"""

from __future__ import annotations

import io
import json
from typing import Any, Protocol, cast

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from meetplatform import __version__
from meetplatform.config import Settings
from meetplatform.registry import Registry

#: Bytes allowed for the request line beyond the query string (method, path, version).
REQUEST_LINE_ALLOWANCE = 8 * 1024
#: Bytes allowed for all header lines besides the request line.
HEADERS_ALLOWANCE = 32 * 1024


# --- small resources ------------------------------------------------------------------------


def _json(request: Request, status: int, body: dict[str, object]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """``GET /healthz``: 200 and a small JSON status, for load balancers and supervisors."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, registry: Registry) -> None:
        super().__init__()
        self._clock = clock
        self._registry = registry
        self._started = clock.seconds()

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        if request.postpath not in ([], [b""]):
            return _json(request, 404, {"status": "error", "error": "no such resource"})
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _json(request, 405, {"status": "error", "error": "use GET or HEAD"})
        meetings = sum(1 for _ in self._registry.meetings())
        return _json(request, 200, {
            "status": "ok",
            "version": __version__,
            "meetings": meetings,
            "uptime": int(self._clock.seconds() - self._started),
        })


class LandingPage(Resource):
    """``GET /``: says what this server is and where its API lives."""

    isLeaf = True

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._text = (
            f"{settings.server_name} (meetplatform {__version__}) is running.\n"
            f"BigBlueButton API: {settings.api_url}\n"
            f"Health: {settings.public_url.rstrip('/')}/healthz\n"
        ).encode()

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return b"use GET or HEAD\n"
        return self._text


class StartingPage(Resource):
    """What the site serves before the first listener is bound and the tree is built."""

    isLeaf = True

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"1")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"meetplatform is starting\n"


class RootResource(Resource):
    """The site's root: surfaces are its children; anything else is a plain 404 page."""

    def getChild(self, path: bytes, request: Request) -> Resource:  # type: ignore[override]
        return notFound()  # type: ignore[return-value]


# --- the site -------------------------------------------------------------------------------


class BoundedRequest(Request):
    """A request whose body may not exceed the site's ``max_body_bytes``.

    A larger body is refused with ``413`` and the connection closed, before it is
    buffered (Twisted would otherwise spool any size into a temporary file). This is
    also what BigBlueButton's nginx answers for an oversized upload.
    """

    _refused = False
    _received = 0

    def _limit(self) -> int:
        site: MeetplatformSite = cast(Any, self.channel).site
        return site.max_body_bytes

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        # No "100 Continue" for a body that will not be read.
        self.requestHeaders.removeHeader(b"expect")
        body = b"request body larger than %d bytes\n" % self._limit()
        transport = self.channel.transport
        assert transport is not None
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()


class BoundedChannel(HTTPChannel):
    """HTTP/1.1 with line limits set by the site and a clear answer when one is exceeded."""

    def lineLengthExceeded(self, line: bytes) -> None:
        # Until the request line is parsed there is no _command: the line was the URI.
        if hasattr(self, "_command"):
            status = b"431 Request Header Fields Too Large"
        else:
            status = b"414 URI Too Long"
        body = b"%s\n" % status
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, len(body), body)
        )
        self.loseConnection()


class RequestHook(Protocol):
    """Told when a request starts (its resource is looked up) and when it finishes."""

    def started(self, request: Request) -> None: ...

    def finished(self, request: Request) -> None: ...


class MeetplatformSite(Site):
    """A Site with input limits and an access log only when asked for.

    Twisted's default access log formats a line per request even when nobody reads it
    (10-20 % of the request cost, docs/performance notes), so it is off unless
    ``access_log`` names a file. The request line may hold ``max_query_bytes`` of query
    string (longer ones get Twisted's 400) so the surfaces can answer in their own format.
    """

    requestFactory = BoundedRequest
    # Plain HTTP/1.1: the WebSocket upgrade takes over this channel's transport.
    protocol = BoundedChannel  # type: ignore[assignment]
    displayTracebacks = False
    # No "Starting factory" lines; the service logs what it listens on.
    noisy = False

    def __init__(
        self,
        resource: Resource,
        *,
        clock: IReactorTime,
        max_query_bytes: int,
        max_body_bytes: int,
        access_log: str | None = None,
    ) -> None:
        super().__init__(resource, logPath=access_log, reactor=clock)
        self.max_body_bytes = max_body_bytes
        self.max_line_bytes = max_query_bytes + REQUEST_LINE_ALLOWANCE
        self.max_header_bytes = self.max_line_bytes + HEADERS_ALLOWANCE

    def buildProtocol(self, addr: IAddress | None) -> Any:
        channel = super().buildProtocol(addr)
        channel.MAX_LENGTH = self.max_line_bytes
        channel.totalHeadersSize = self.max_header_bytes
        return channel

    #: The request metrics (:class:`meetplatform.metrics.RequestStats`), or None.
    request_hook: RequestHook | None = None

    def startFactory(self) -> None:
        if self.logPath is not None:
            super().startFactory()

    def getResourceFor(self, request: Request) -> Resource:
        if self.request_hook is not None:
            self.request_hook.started(request)
        return cast(Resource, super().getResourceFor(request))

    def log(self, request: http.Request) -> None:
        if self.request_hook is not None:
            self.request_hook.finished(cast(Request, request))
        if self.logPath is not None:
            super().log(request)

