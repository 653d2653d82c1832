"""The HTTP plumbing under every surface: the site, its input limits, the root resource.

:class:`MeetplatformSite` bounds what a client may send (request line, headers, body)
and answers an excess in plain HTTP before any surface sees it; the small resources
here (``/``, ``/healthz``, the 404 root, the 503 page served while starting) belong to
no surface. Nothing here knows the parts: :mod:`meetplatform.build` builds and mounts
them, :mod:`meetplatform.tap` runs the site.

Why one module of this size: every limit a client meets before a surface sees its request
(request line, headers, head time, body per surface) and the headers every answer gets
are applied in one place, so that none is bypassed by a new surface.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Callable
from typing import Any, Protocol, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolFactory, IReactorTime
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from meetplatform import __version__, upgrade
from meetplatform.clientaddr import client_address, forwarded_https
from meetplatform.config import Settings
from meetplatform.media.nodes import MediaNodes
from meetplatform.registry import Registry

#: Bytes allowed for the request line beyond the query string (method, path, version).
REQUEST_LINE_ALLOWANCE = 8 * 1024
#: Bytes allowed for all header lines besides the request line.
HEADERS_ALLOWANCE = 32 * 1024
#: Body allowed on paths whose surface declared no limit (``/``, ``/healthz``, the pages,
#: the static files, ``/ws``, unknown paths): they take GET and HEAD, whose body is
#: ignored, so a body is only ever a mistake or an attack.
SMALL_BODY_BYTES = 1024


#: The ``Server`` header of every answer: the product, never its version (Twisted's says
#: ``TwistedWeb/<version>``).
SERVER_HEADER = b"meetplatform"
#: The policy of answers that set none (error pages, JSON): they load nothing.
ERROR_PAGE_CSP = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#: Sent on answers over TLS (an ``ssl:`` listener, or a trusted proxy's https).
HSTS = b"max-age=31536000"


# --- small resources ------------------------------------------------------------------------


def _json(request: Request, status: int, body: dict[str, object]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """``GET /healthz``: 200 and a small JSON status, for load balancers and supervisors."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, registry: Registry,
                 media: MediaNodes | None = None, *,
                 recordings: Callable[[], dict[str, object]] | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._registry = registry
        self._media = media
        #: The recordings section (its directory writable, with room; issue 12).
        self._recordings = recordings
        self._started = clock.seconds()

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        if request.postpath not in ([], [b""]):
            return _json(request, 404, {"status": "error", "error": "no such resource"})
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _json(request, 405, {"status": "error", "error": "use GET or HEAD"})
        meetings = sum(1 for _ in self._registry.meetings())
        body: dict[str, object] = {
            "status": "ok",
            "version": __version__,
            "meetings": meetings,
            "uptime": int(self._clock.seconds() - self._started),
        }
        if self._media is not None and self._media.configured:
            body["mediaNodes"] = self._media.health_summary()
        if self._recordings is not None:
            recordings = self._recordings()
            body["recordings"] = recordings
            if recordings.get("status") != "ok":
                body["status"] = "degraded"  # meetings go on; recordings cannot be made
        return _json(request, 200, body)


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
    """The site's root: surfaces are its children; anything else is a plain 404 page.

    Each surface is mounted with the largest body it reads (:meth:`mount`); the site asks
    :meth:`body_limit` as soon as a request's headers are in, so a body larger than its
    route takes is refused before a byte of it is buffered or parsed.
    """

    def __init__(self, default_body_bytes: int = SMALL_BODY_BYTES) -> None:
        super().__init__()
        self.default_body_bytes = default_body_bytes
        self._body_limits: dict[bytes, int] = {}

    def mount(self, name: bytes, resource: IResource, *,
              max_body_bytes: int | None = None) -> None:
        """``putChild`` and, for a surface that reads bodies, the largest one it reads."""
        self.putChild(name, resource)
        if max_body_bytes is not None:
            self._body_limits[name] = max_body_bytes

    def body_limit(self, uri: bytes) -> int:
        """The body limit of the surface serving ``uri`` (its first path segment, decoded
        as :meth:`Site.getResourceFor` decodes it)."""
        path = uri.split(b"?", 1)[0]
        segment = unquote_to_bytes(path.lstrip(b"/").split(b"/", 1)[0])
        return self._body_limits.get(segment, self.default_body_bytes)

    def upgrade_factory(self, path: bytes) -> IProtocolFactory | None:
        """The protocol factory of the :class:`UpgradeOnly` child at ``path`` (exactly
        ``/<name>``, undecoded), which the site hands WebSocket upgrades to directly."""
        child = self.children.get(path[1:]) if path.count(b"/") == 1 else None
        return child.factory if isinstance(child, UpgradeOnly) else None

    def getChild(self, path: bytes, request: Request) -> Resource:  # type: ignore[override]
        return notFound()  # type: ignore[return-value]


class UpgradeOnly(Resource):
    """``/ws``: hands WebSocket upgrades to ``inner`` (Autobahn's resource) and answers
    anything else itself with a plain ``426 Upgrade Required``.

    Autobahn's resource takes over the connection for any request and, when it is not an
    upgrade, serves a status page naming Autobahn and its version.

    ``factory``, when given, is the protocol factory behind ``inner``: the site then gives
    a connection whose first request is a plain upgrade to this path straight to a
    protocol of it, without twisted.web (:mod:`meetplatform.upgrade`); this resource
    serves the rest.
    """

    isLeaf = True

    def __init__(self, inner: IResource, factory: IProtocolFactory | None = None) -> None:
        super().__init__()
        self._inner = inner
        self.factory = factory

    def render(self, request: Request) -> Any:  # type: ignore[override]
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if b"websocket" in upgrade.split(b","):
            return self._inner.render(request)
        request.setResponseCode(426, b"Upgrade Required")
        request.setHeader(b"upgrade", b"websocket")
        request.setHeader(b"connection", b"Upgrade")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return b"this is the signalling WebSocket: open it with a WebSocket client\n"


# --- the access log -------------------------------------------------------------------------

#: Query parameters whose values are credentials (compared case-insensitively).
SECRET_PARAMETERS = frozenset({
    "password", "attendeepw", "moderatorpw", "sessiontoken", "session_token", "token",
    "access_token", "client_secret", "secret",
})
#: Prefixes of the service's own secrets (client secrets, access tokens, invitations).
SECRET_PREFIXES = (b"mpcs_", b"mpat_", b"mpua_", b"mput_")
#: Path prefixes whose next segment is a credential (``/j/<invitation secret>``).
SECRET_PATHS = (b"j",)
REDACTED = b"REDACTED"


def _is_secret(value: bytes) -> bool:
    return unquote_to_bytes(value).startswith(SECRET_PREFIXES)


def redact_uri(uri: bytes) -> bytes:
    """``uri`` with every credential replaced by ``REDACTED``, for the access log.

    Credentials are the values of :data:`SECRET_PARAMETERS` (BBB passwords, seat and
    access tokens), any path segment or value that starts like one of the service's
    secrets, and the segment after ``/j/`` (an invitation link). Checksums stay: they
    are no secret and tell an operator which call was signed.
    """
    path, question, query = uri.partition(b"?")
    segments = path.split(b"/")
    for index, segment in enumerate(segments):
        secret_path = index == 2 and segments[1] in SECRET_PATHS and segment != b""
        if secret_path or _is_secret(segment):
            segments[index] = REDACTED
    parts = query.split(b"&") if question else []
    for index, part in enumerate(parts):
        name, equals, value = part.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace").lower()
        if equals and (key in SECRET_PARAMETERS or _is_secret(value)):
            parts[index] = name + b"=" + REDACTED
    return b"/".join(segments) + question + b"&".join(parts)


class _LoggedRequest:
    """What the combined log format reads of a request, with credentials redacted and
    the client address of :func:`meetplatform.clientaddr.client_address`."""

    def __init__(self, request: http.Request, trusted_proxies: tuple[str, ...]) -> None:
        self._request = request
        self.method = request.method
        self.uri = redact_uri(request.uri)
        self.clientproto = request.clientproto
        self.code = request.code
        self.sentLength = request.sentLength
        self._client = client_address(cast(Any, request), trusted_proxies)

    def getClientAddress(self) -> IPv4Address | IPv6Address:
        # combinedLogFormatter prints ``.host`` of an IP address; the text is what counts.
        kind = IPv6Address if ":" in self._client else IPv4Address
        return kind("TCP", self._client, 0)

    def getHeader(self, name: bytes) -> bytes | None:
        value = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return redact_uri(value)
        return value


# --- the site -------------------------------------------------------------------------------


def raw_answer(status: bytes, body: bytes) -> bytes:
    """A whole plain-text answer that closes the connection, for what the site refuses
    before a request object can answer (too large, too long, too slow)."""
    return (
        b"HTTP/1.1 %s\r\nServer: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n"
        b"\r\n%s" % (status, SERVER_HEADER, len(body), body)
    )


class BoundedRequest(Request):
    """A request whose body may not exceed its route's limit, and is never parsed here.

    The limit is the smaller of the site's ``max_body_bytes`` and what the surface the
    path leads to was mounted with (:meth:`RootResource.body_limit`; a small one for
    routes that read no body). A larger body is refused with ``413`` and the connection
    closed, before it is buffered (Twisted would otherwise spool any size into a
    temporary file). This is also what BigBlueButton's nginx answers for an oversized
    upload.

    Twisted parses urlencoded and multipart POST bodies into ``request.args`` as soon as
    they are received, for every path and before any resource is asked: a 2 MB body of
    ``&`` held the reactor for about a second. Here that parse is switched off
    (the site passes Twisted's ``parsePOSTFormSubmission=False``); ``request.args`` holds the
    query only, and the surfaces that take forms (the XML API, the invitation pages, the
    OAuth endpoints) decode ``request.content`` themselves, within their own limits.
    """

    _refused = False
    _received = 0
    _route_limit: int | None = None

    def _limit(self) -> int:
        if self._route_limit is None:
            site: MeetplatformSite = cast(Any, self.channel).site
            uri: bytes = getattr(self.channel, "_path", b"/")
            self._route_limit = site.body_limit(uri)
        return self._route_limit

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

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self._edge_headers()
        super().write(data)

    def _edge_headers(self) -> None:
        """What every answer of the site carries, set just before the headers are sent
        (so whatever a resource, Twisted's error pages or Klein did, it holds):
        ``Server: meetplatform`` without version, ``X-Content-Type-Options: nosniff``,
        a restrictive CSP on error answers that have none of their own, and HSTS on
        answers over TLS (an ``ssl:`` listener, or a trusted proxy's
        ``X-Forwarded-Proto: https``)."""
        headers = self.responseHeaders
        headers.setRawHeaders(b"server", [SERVER_HEADER])
        if not headers.hasHeader(b"x-content-type-options"):
            headers.setRawHeaders(b"x-content-type-options", [b"nosniff"])
        if self.code >= 400 and not headers.hasHeader(b"content-security-policy"):
            headers.setRawHeaders(b"content-security-policy", [ERROR_PAGE_CSP])
        if not headers.hasHeader(b"strict-transport-security"):
            site: MeetplatformSite = cast(Any, self.channel).site
            if self.isSecure() or forwarded_https(cast(Any, self), site.trusted_proxies):
                headers.setRawHeaders(b"strict-transport-security", [HSTS])

    def _refuse(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        # No "100 Continue" for a body that will not be read.
        self.requestHeaders.removeHeader(b"expect")
        body = b"request body larger than %d bytes\n" % self._limit()
        transport = self.channel.transport
        assert transport is not None
        transport.write(raw_answer(b"413 Content Too Large", body))
        self.channel.loseConnection()


class BoundedChannel(HTTPChannel):
    """HTTP/1.1 with line limits set by the site and a clear answer when one is exceeded,
    and a deadline for each request head.

    Twisted's own timeout is an idle timeout (reset by every byte), so a client sending
    one header line every 20 s held a connection forever ("slowloris"). Here a client has
    the site's ``request_head_timeout`` (30 s by default) from the moment the connection
    is ready for a request (accepted, or the previous response done) until the blank line
    that ends the headers; past it the connection is closed (with ``408`` if part of a head
    had arrived). The deadline runs on the site's clock (one ``callLater`` per connection,
    not per request), and stops counting once the head is in: the body, a long request and
    a WebSocket are not bounded by it.

    The first request of a connection is looked at before twisted.web parses it: a plain
    WebSocket upgrade to a path the root routes (``/ws``) is handed, bytes and transport,
    to a protocol of that path's factory (:mod:`meetplatform.upgrade`, which says what
    "plain" means); anything else is parsed here as it always was. Until the head is
    complete the bytes are kept, within the site's line limit, under the same deadline.
    """

    #: The one timer of the connection's head deadlines (see :meth:`_arm_head_deadline`).
    _head_deadline: IDelayedCall | None = None
    #: True from the moment the connection is ready for a request until its head is in.
    _in_head = False
    #: When the current head's time started (the site's clock).
    _head_since = 0.0
    _head_started = False
    #: The first bytes of the connection while they may be a routed upgrade's head.
    _sniffed: bytes | None = None

    def _arm_head_deadline(self) -> None:
        """Start the head's time. One timer serves every request of a kept-alive connection:
        arming only notes the time, and the timer, when it fires, either finds the head in
        time (and waits for the rest of it) or closes the connection. Scheduling and
        cancelling a timer per request was a measurable part of a small request's cost."""
        site: MeetplatformSite = cast(Any, self).site
        self._in_head = True
        self._head_started = False
        self._head_since = site.reactor.seconds()
        if self._head_deadline is None:
            self._head_deadline = self.callLater(site.request_head_timeout, self._head_check)

    def _head_complete(self) -> None:
        """The head is in: the body, a long request and a WebSocket are not bounded."""
        self._in_head = False

    def _cancel_head_deadline(self) -> None:
        self._in_head = False
        if self._head_deadline is not None:
            if self._head_deadline.active():
                self._head_deadline.cancel()
            self._head_deadline = None

    def _head_check(self) -> None:
        self._head_deadline = None
        if not self._in_head:
            return  # the next request arms it again
        site: MeetplatformSite = cast(Any, self).site
        left = self._head_since + site.request_head_timeout - site.reactor.seconds()
        if left > 0:
            self._head_deadline = self.callLater(left, self._head_check)
            return
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        self._in_head = False
        transport = self.transport
        if transport is None or transport.disconnecting:  # type: ignore[attr-defined]
            return
        if self._head_started:
            body = b"request head not received in time\n"
            transport.write(raw_answer(b"408 Request Timeout", body))
        self.loseConnection()

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm_head_deadline()
        self._sniffed = b""

    def dataReceived(self, data: bytes) -> None:
        if self._in_head and data:
            self._head_started = True
        if self._sniffed is not None:
            data = self._sniffed + data
            site: MeetplatformSite = cast(Any, self).site
            verdict = upgrade.sniff(data, site.upgrade_factory, max_bytes=self.MAX_LENGTH,
                                    max_headers=self.maxHeaders)
            if verdict == upgrade.MORE:
                self._sniffed = data
                return
            self._sniffed = None
            if verdict != upgrade.HTTP and self._hand_over(
                    cast(IProtocolFactory, verdict), data):
                return
        super().dataReceived(data)

    def _hand_over(self, factory: IProtocolFactory, data: bytes) -> bool:
        """Give the connection and ``data`` to a new protocol of ``factory`` (False if it
        builds none: twisted.web then serves the request)."""
        transport: Any = self.transport
        protocol = factory.buildProtocol(transport.getPeer())
        if protocol is None:
            return False
        self._cancel_head_deadline()
        self.setTimeout(None)
        cast(Any, self._networkProducer).unregisterProducer()
        # As after Autobahn's resource took the transport: this channel is done.
        self.transport = None
        upgrade.attach(transport, protocol)
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        return True

    def allHeadersReceived(self) -> None:
        self._head_complete()
        super().allHeadersReceived()

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes,
                     headers: Any) -> None:
        """The same bytes as twisted.web's, written as one piece: its ``writeSequence`` of
        four pieces per header line (about forty per answer here) checked and buffered
        each piece on its own, a tenth of an activation's CPU under cProfile."""
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, headers)
            return
        lines = [b"%s %s %s\r\n" % (version, code, reason)]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        cast(Any, self.transport).write(b"".join(lines))

    def requestDone(self, request: http.Request) -> None:
        if self.persistent:
            # Armed first: buffered (pipelined) data is parsed inside requestDone.
            self._arm_head_deadline()
        super().requestDone(request)

    def connectionLost(self, reason: Any = None) -> None:
        self._cancel_head_deadline()
        super().connectionLost(reason)

    def lineLengthExceeded(self, line: bytes) -> None:
        # Until the request line is parsed there is no _command: the line was the URI.
        if hasattr(self, "_command"):
            status = b"431 Request Header Fields Too Large"
        else:
            status = b"414 URI Too Long"
        body = b"%s\n" % status
        assert self.transport is not None
        self.transport.write(raw_answer(status, body))
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
        request_head_timeout: float = Settings.request_head_timeout,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        super().__init__(resource, logPath=access_log, reactor=clock,
                         parsePOSTFormSubmission=False)
        self.max_body_bytes = max_body_bytes
        self.request_head_timeout = request_head_timeout
        self.trusted_proxies = trusted_proxies
        self.max_line_bytes = max_query_bytes + REQUEST_LINE_ALLOWANCE
        self.max_header_bytes = self.max_line_bytes + HEADERS_ALLOWANCE

    def upgrade_factory(self, path: bytes) -> IProtocolFactory | None:
        """The protocol factory WebSocket upgrades to ``path`` go to directly, if any."""
        route = getattr(self.resource, "upgrade_factory", None)
        return None if route is None else cast("IProtocolFactory | None", route(path))

    def body_limit(self, uri: bytes) -> int:
        """The largest body a request for ``uri`` may send."""
        limit = self.max_body_bytes
        route_limit = getattr(self.resource, "body_limit", None)
        if route_limit is not None:
            limit = min(limit, route_limit(uri))
        return limit

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
    def _openLogFile(self, path: str | bytes) -> Any:
        """The access log: appended to, never rotated here, readable by its owner only.

        Twisted's ``Site`` rotates its log itself (numbered files every MB, without
        end); this one leaves rotation to the operator (``logrotate`` with
        ``copytruncate``: the file is opened in append mode, so writes land at the end
        of the truncated file). A new file is created ``0600``; an existing one loses
        its permissions for others (it holds client addresses and URLs).
        """
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o007:
            os.fchmod(fd, mode & ~0o007)
        return open(fd, "a", 1, encoding="utf-8", newline="\n")

    def log(self, request: http.Request) -> None:
        if self.request_hook is not None:
            self.request_hook.finished(cast(Request, request))
        if self.logPath is not None:
            super().log(cast(Any, _LoggedRequest(request, self.trusted_proxies)))

