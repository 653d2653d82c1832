"""The composition root: ``twistd meetplatform`` options, the service and the resource tree.

This is the one place that builds and wires things. :func:`makeService` reads the secret
(generating it on the first start) and returns a :class:`MeetplatformService`, which binds
every ``--listen`` endpoint when it starts. The public URL (what join redirects and links
use) is derived from the first listener's *bound* address unless ``--public-url`` is set,
so ``tcp:0`` gets its real port; only then are the :class:`Settings`, the registry and the
resource tree (:func:`build_site`) built and installed into the already-listening site.
With TCP endpoints all of this happens synchronously inside ``privilegedStartService``
(``startService`` under ``twist``), before the reactor runs, so no request ever sees the
placeholder that answers 503 until then.
"""

from __future__ import annotations

import gc
import io
import json
import shlex
from collections.abc import Sequence
from typing import Any, cast

from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, FirstError, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from meetplatform import __version__
from meetplatform.config import ConfigOptions, ServiceConfig, Settings, public_host, url_for
from meetplatform.history import History
from meetplatform.invitations import Invitations
from meetplatform.media.events import JanusEventsResource
from meetplatform.media.service import attach_media
from meetplatform.registry import Registry
from meetplatform.restapi import RestApi
from meetplatform.secret import LoadedSecret, SecretError, load_or_create_secret
from meetplatform.signalling import SignallingService
from meetplatform.store import Store
from meetplatform.web.embed import EmbedPages
from meetplatform.web.invite import InvitePages
from meetplatform.web.pages import WebPages
from meetplatform.webhooks import WebhookService
from meetplatform.xmlapi import XmlApi
from meetplatform.xmlapi.history_calls import HistoryCalls
from meetplatform.xmlapi.hooks import HookCalls

_log = Logger()

#: Bytes allowed for the request line beyond the query string (method, path, version).
REQUEST_LINE_ALLOWANCE = 8 * 1024
#: Bytes allowed for all header lines besides the request line.
HEADERS_ALLOWANCE = 32 * 1024


class Options(ConfigOptions):
    synopsis = "[options]"
    longdesc = (
        "Run meetplatform: the BigBlueButton API, the JSON:API, embeddable conference "
        "pages and WebSocket signalling in one process. Every option can also be set "
        "with a MEETPLATFORM_* environment variable or in the TOML file named by "
        "--config; the command line wins over the environment, which wins over the "
        "file. See docs/operations.md."
    )


# --- small resources ------------------------------------------------------------------------


def _json(request: Request, status: int, body: dict[str, object]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """``GET /healthz``: 200 and a small JSON status, for load balancers and supervisors."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, registry: Registry, media: Any = None) -> None:
        super().__init__()
        self._clock = clock
        self._registry = registry
        self._media = media
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


class _Starting(Resource):
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


def build_site(
    clock: IReactorTime,
    settings: Settings,
    registry: Registry,
    store: Store,
    parent: IServiceCollection | None = None,
) -> Resource:
    """The root resource: one child per surface, all sharing one registry and one store.

    Add a surface with one ``putChild`` line (its Klein class's ``resource()``). Surfaces
    with a lifecycle of their own (the signalling closes its sockets on shutdown) are
    attached to ``parent``, the running service, when one is given; so are the meeting
    history and the webhook delivery (they write what they hold before the store closes),
    and the history's recovery of meetings a killed process left open runs then.
    """
    invitations = Invitations(clock, settings, registry, store)
    root = RootResource()
    root.putChild(b"", LandingPage(settings))
    history = History(clock, settings, registry, store)
    webhooks = WebhookService(clock, settings, registry, store)
    xml_api = XmlApi(clock, settings, registry)
    media = attach_media(clock, settings, registry, store, xml_api, parent)
    root.putChild(b"healthz", HealthResource(clock, registry, media))
    root.putChild(b"janus-events", JanusEventsResource(media))
    HistoryCalls(clock, settings, history).register(xml_api)
    HookCalls(clock, settings, store, webhooks).register(xml_api)
    root.putChild(b"bigbluebutton", xml_api.resource())
    if parent is not None:
        history.setServiceParent(parent)
        webhooks.setServiceParent(parent)
        recovered = Deferred.fromCoroutine(history.recover())
        recovered.addCallback(webhooks.meetings_interrupted)
        recovered.addErrback(lambda f: _log.failure("recovering the meeting history failed", f))
    pages = WebPages(clock, settings, registry)
    root.putChild(b"client", pages.resource())
    root.putChild(b"static", pages.static_resource())
    embed = EmbedPages(clock, settings, registry, store, invitations=invitations, pages=pages)
    root.putChild(b"embed", embed.resource())
    root.putChild(b"j", InvitePages(clock, settings, registry, store, invitations=invitations,
                                    pages=pages).resource())
    signalling = SignallingService(clock, settings, registry,
                                   extra_origins_for=embed.origins_for_seat)
    root.putChild(b"ws", signalling.resource())
    if parent is not None:
        signalling.setServiceParent(parent)
    api = Resource()
    api.putChild(b"v2", RestApi(clock, settings, registry, store, invitations=invitations,
                                history=history, webhooks=webhooks).resource())
    root.putChild(b"api", api)
    return root


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

    def startFactory(self) -> None:
        if self.logPath is not None:
            super().startFactory()

    def log(self, request: http.Request) -> None:
        if self.logPath is not None:
            super().log(request)


# --- the service ----------------------------------------------------------------------------


class StartupError(Exception):
    """The service cannot start; the message tells the operator why."""


def _listener_url(kind: str, address: IAddress) -> str:
    if isinstance(address, (IPv4Address, IPv6Address)):
        return url_for("https" if kind == "ssl" else "http", address.host, address.port)
    if isinstance(address, UNIXAddress):
        name = address.name.decode() if isinstance(address.name, bytes) else address.name
        return f"unix:{name}"
    return str(address)


def secret_command(config: ServiceConfig) -> str:
    """The ``meetplatform secret`` command line that finds this configuration's secret."""
    words = ["meetplatform", "secret"]
    file_origin = f"config file {config.config_file}"
    if config.config_file is not None:
        words += ["--config", str(config.config_file)]
    for name in ("data_dir", "secret_file"):
        source = config.sources.get(name)
        if source is not None and not source.startswith(file_origin):
            words += ["--" + name.replace("_", "-"), str(getattr(config, name))]
    return " ".join(shlex.quote(word) for word in words)


#: Collect the youngest generation every 10,000 net allocations instead of 700: a
#: signalling fan-out allocates a few objects per socket, and every tenth young collection
#: is followed by an older one.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_garbage_collector() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    A full collection walks every tracked object: with Twisted, Klein, lxml and the
    product imported, ~70 ms on this hardware, during which no socket is served (a
    room's messages wait behind it: the p99 latency of a busy room). ``gc.freeze()``
    moves the objects alive once the service is up (modules, classes, the composition
    root; none of them ever become garbage) to a generation the collector skips, so a
    full collection walks only what was created since. Called once, when the service
    has started; tests that build sites directly do not call it.
    """
    gc.collect()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


class MeetplatformService(MultiService):
    """Binds the listeners, then builds settings, registry and site; ends meetings on stop.

    After a successful start, ``settings``, ``registry``, ``site`` and ``ports`` are the
    live objects (tests and later services use them).
    """

    def __init__(self, reactor: Any, config: ServiceConfig, secret: LoadedSecret) -> None:
        super().__init__()
        self._reactor = reactor
        self.config = config
        self._secret = secret
        self.site = MeetplatformSite(
            _Starting(),
            clock=reactor,
            max_query_bytes=config.max_query_bytes,
            max_body_bytes=config.max_body_bytes,
            access_log=str(config.access_log) if config.access_log is not None else None,
        )
        self.ports: list[IListeningPort] = []
        self.settings: Settings | None = None
        self.registry: Registry | None = None
        self.store: Store | None = None
        self.ready: Deferred[None] | None = None
        self._starting = False
        self._startup_error: str | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._bind()

    def startService(self) -> None:
        if self.ready is None:
            # ``twist`` never calls privilegedStartService; bind now.
            self._bind()
        super().startService()

    def _bind(self) -> None:
        self._starting = True
        try:
            self.ready = gatherResults(
                [self._listen(description) for description in self.config.listen],
                consumeErrors=True,
            ).addCallback(self._bound)
            self.ready.addErrback(self._failed)
        finally:
            self._starting = False
        if self._startup_error is not None:
            # Already logged; twistd exits with status 1 instead of printing a traceback.
            raise SystemExit(1)

    def _listen(self, description: str) -> Deferred[IListeningPort]:
        def explain(failure: Failure) -> Failure:
            raise StartupError(f"cannot listen on {description}: {failure.getErrorMessage()}")

        return maybeDeferred(
            lambda: serverFromString(self._reactor, description).listen(self.site)
        ).addErrback(explain)

    def _bound(self, ports: Sequence[IListeningPort]) -> None:
        self.ports = list(ports)
        listeners = self.config.listeners
        first = self.ports[0].getHost()
        public_url = self.config.public_url
        if public_url is None:
            if not isinstance(first, (IPv4Address, IPv6Address)):
                raise StartupError(
                    f"the first listener {listeners[0].description!r} has no URL of its "
                    "own: set --public-url"
                )
            kind = "tcp6" if isinstance(first, IPv6Address) else "tcp"
            scheme = "https" if listeners[0].kind == "ssl" else "http"
            public_url = url_for(scheme, public_host(first.host, kind), first.port)
        settings = self.config.settings(self._secret.value, public_url)
        registry = Registry(self._reactor, public_url)
        store = Store.open(self._reactor, settings.data_dir)
        self.site.resource = build_site(self._reactor, settings, registry, store, parent=self)
        self.settings, self.registry, self.store = settings, registry, store

        for listener, port in zip(listeners, self.ports):
            _log.info("listening on {url}", url=_listener_url(listener.kind, port.getHost()))
        _log.info("BBB API URL: {url}", url=settings.api_url)
        _log.info(
            "Shared secret: stored in {path} (show it with `{command}`)",
            path=str(self._secret.path),
            command=secret_command(self.config),
        )
        if self._secret.generated:
            _log.info(
                "Generated a new shared secret (shown only this once): {secret}",
                secret=self._secret.value,
            )
        for warning in (*self.config.warnings, *self._secret.warnings):
            _log.warn("{warning}", warning=warning)
        settle_garbage_collector()

    def _failed(self, failure: Failure) -> None:
        if failure.check(FirstError):
            failure = failure.value.subFailure  # type: ignore[union-attr]
        if failure.check(StartupError):
            self._startup_error = failure.getErrorMessage()
            _log.critical("{error}", error=self._startup_error)
        else:
            self._startup_error = "unexpected error while starting"
            _log.failure("meetplatform could not start", failure)
        if not self._starting:
            # A listener that failed after startup was over: stop instead of serving half.
            self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        if self.registry is not None:
            live = sum(1 for _ in self.registry.meetings())
            _log.info("stopping: ending {count} live meeting(s)", count=live)
            self.registry.end_all()
        stopped = [maybeDeferred(super().stopService)]
        stopped += [maybeDeferred(port.stopListening) for port in self.ports]
        self.ports = []
        done = gatherResults(stopped).addCallback(lambda _: None)
        if self.store is not None:
            store, self.store = self.store, None
            done.addCallback(lambda _: Deferred.fromCoroutine(store.close()))
        return done


def makeService(options: Options, reactor: Any = None) -> MeetplatformService:
    """Build the service from parsed options (twistd calls this once)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    try:
        secret = load_or_create_secret(options.configuration)
    except SecretError as error:
        raise SystemExit(f"meetplatform: {error}") from None
    return MeetplatformService(reactor, options.configuration, secret)
