"""``/metrics``: the service's state and work in the Prometheus text format.

Exposition is the official ``prometheus_client`` library's (its families, its text and
OpenMetrics encoders), over a :class:`~prometheus_client.CollectorRegistry` of each
service's own, so that tests running several services never share a metric. What is
counted costs the hot paths next to nothing:

- the state (meetings, participants, open sockets, the store's queue, the webhook
  outbox) is read from the parts when ``/metrics`` is scraped, by :class:`PartsCollector`;
- the signalling, the store, the webhook delivery and the rate limiters increment plain
  ints (:mod:`meetplatform.stats`) that the collector reads;
- the site calls :class:`RequestStats` when a request starts and when it finishes: one
  dict update and one histogram bucket per request, labelled by *surface* (the first
  path segment) and *call* (a BBB call name, a JSON:API route template); labels are
  only ever values from fixed sets, never what a client sent (ids, tokens), so their
  number stays bounded;
- :class:`ReactorLag` measures how late a timer fires on the injected clock.

The library's own ``prometheus_client.twisted.MetricsResource`` is a WSGI resource: it
collects on a thread of the global reactor's pool, where reading the registry would race
with the reactor thread that changes it. :class:`MetricsPage` collects on the reactor
thread instead (after one store query, the outbox size, made off it).

Serving is the operator's choice (docs/operations.md): a separate listener
(``--metrics-listen``) or the public listeners with a bearer token
(``--metrics-token-file``); with neither, ``/metrics`` does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from meetplatform import __version__
from meetplatform.model import Role
from meetplatform.stats import Histogram
from meetplatform.store import webhooks_db as wdb

if TYPE_CHECKING:
    from meetplatform.build import Parts

_log = Logger()

#: Where the metrics are served.
METRICS_PATH = b"metrics"


# --- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTemplate:
    """A JSON:API route as a label: ``"GET /rooms/{roomId}"``."""

    method: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


class RestRoutes:
    """Finds the template of a JSON:API path without the router (about a microsecond).

    Routes are indexed by method and number of segments; among those, the first whose
    literal segments all match wins, routes with more literal segments first (as the
    router prefers ``/rooms/mine`` to ``/rooms/{roomId}``).
    """

    def __init__(self, routes: Iterable[RouteTemplate]) -> None:
        self._index: dict[tuple[bytes, int], list[tuple[tuple[bytes | None, ...], str]]] = {}
        for route in routes:
            pattern = tuple(None if part.startswith("{") else part.encode()
                            for part in route.path.strip("/").split("/"))
            self._index.setdefault((route.method.encode(), len(pattern)), []).append(
                (pattern, route.label))
        for candidates in self._index.values():
            candidates.sort(key=lambda c: -sum(part is not None for part in c[0]))

    def label(self, method: bytes, path: bytes) -> str:
        """The route's label, or ``unmatched``."""
        segments = path.strip(b"/").split(b"/")
        if method == b"HEAD":
            method = b"GET"
        for pattern, label in self._index.get((method, len(segments)), ()):
            for part, segment in zip(pattern, segments):
                if part is not None and part != segment:
                    break
            else:
                return label
        return "unmatched"


class RequestStats:
    """Counts and latencies of finished requests (the site's hook).

    ``surfaces`` are the root's children (the first path segments served); the BBB
    calls and the JSON:API routes name the ``call`` label of their surfaces. Anything
    else is labelled ``other`` or ``unknown``: a client cannot add label values.
    """

    def __init__(self, clock: IReactorTime, surfaces: Iterable[bytes],
                 bbb_calls: Iterable[str], rest_routes: Iterable[RouteTemplate]) -> None:
        self._clock = clock
        self._surfaces = {name: name.decode("ascii") or "root" for name in surfaces}
        self._bbb_calls = {name.encode(): name for name in bbb_calls}
        self._rest = RestRoutes(rest_routes)
        #: (surface, call, status) -> requests finished.
        self.counts: dict[tuple[str, str, str], int] = {}
        #: (surface, call) -> seconds from the resource lookup to the finish.
        self.latency: dict[tuple[str, str], Histogram] = {}

    def started(self, request: Request) -> None:
        """The site looks up the request's resource: processing begins."""
        request.metrics_started = self._clock.seconds()  # type: ignore[attr-defined]

    def finished(self, request: Request) -> None:
        """The request finished (the site's ``log``)."""
        surface, call = self.labels(request.method, request.path)
        code = request.code
        key = (surface, call, str(code) if 100 <= code <= 599 else "other")
        self.counts[key] = self.counts.get(key, 0) + 1
        started = getattr(request, "metrics_started", None)
        if started is not None:
            histogram = self.latency.get((surface, call))
            if histogram is None:
                histogram = self.latency[(surface, call)] = Histogram()
            histogram.observe(self._clock.seconds() - started)

    def labels(self, method: bytes, path: bytes) -> tuple[str, str]:
        """``(surface, call)`` for a request path (without its query)."""
        parts = path[1:].split(b"/", 2)
        surface = self._surfaces.get(parts[0], "other")
        if surface == "bigbluebutton":
            return surface, self._bbb_call(path)
        if surface == "api":
            if len(parts) > 1 and parts[1] == b"v2":
                return surface, self._rest.label(method, path[len(b"/api/v2"):])
            return surface, "unmatched"
        return surface, ""

    def _bbb_call(self, path: bytes) -> str:
        prefix = b"/bigbluebutton/api"
        if not path.startswith(prefix):
            return "unknown"
        name = path[len(prefix):].strip(b"/")
        if not name:
            return "index"
        return self._bbb_calls.get(name, "unknown")


# --- the reactor ------------------------------------------------------------------------


#: Bounds for the reactor's lateness: a healthy reactor is late by well under 10 ms.
LAG_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ReactorLag(Service):
    """How late a timer set on the clock fires: what a busy reactor makes every event wait.

    A timer is set ``interval`` seconds ahead; when it fires, the time past its due time
    is observed and the next one is set. (Unlike a ``LoopingCall``, which realigns to its
    grid after a late call, each measurement starts from a known due time.)
    """

    name = "reactor-lag"

    def __init__(self, clock: IReactorTime, interval: float = 1.0) -> None:
        self._clock = clock
        self.interval = interval
        self.lateness = Histogram(LAG_BOUNDS)
        self._due = 0.0
        self._call: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._schedule()

    def stopService(self) -> None:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        self._due = self._clock.seconds() + self.interval
        self._call = self._clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        self.lateness.observe(max(0.0, self._clock.seconds() - self._due))
        self._schedule()


# --- collecting -------------------------------------------------------------------------


def _histogram(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    buckets = [(floatToGoString(bound), count) for bound, count in histogram.cumulative()]
    family.add_metric(labels, buckets, histogram.sum)


class PartsCollector(Collector):
    """Reads the parts' state and counters into metric families at scrape time."""

    def __init__(self, parts: Parts, requests: RequestStats, lag: ReactorLag) -> None:
        self._parts = parts
        self._requests = requests
        self._lag = lag
        #: Rows in the webhook outbox, read before each collection (None: unknown).
        self.outbox_rows: int | None = None

    def limiters(self) -> Mapping[str, Any]:
        parts = self._parts
        out: dict[str, Any] = {f"rest_{kind}": limiter
                               for kind, limiter in parts.rest_api.rate_limiters.items()}
        out["invite_pages"] = parts.invite.kit.limiter
        out["embed_pages"] = parts.embed.kit.limiter
        return out

    def collect(self) -> Iterator[Metric]:
        parts = self._parts
        info = GaugeMetricFamily("meetplatform_build_info", "The running version.",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from self._meetings()
        yield from self._sockets()
        yield from self._http()
        store = parts.store.stats
        yield GaugeMetricFamily(
            "meetplatform_store_queue_depth",
            "Store jobs (queries and writes) waiting for or running on the store's thread.",
            value=store.pending)
        family = HistogramMetricFamily(
            "meetplatform_store_job_duration_seconds",
            "Seconds from submitting a store job to its result, queue wait included.")
        _histogram(family, [], store.durations)
        yield family
        yield from self._webhooks()
        refusals = CounterMetricFamily(
            "meetplatform_rate_limit_refusals", "Requests refused by a rate limit.",
            labels=["limiter"])
        for name, limiter in self.limiters().items():
            refusals.add_metric([name], limiter.refused)
        yield refusals
        lag = HistogramMetricFamily(
            "meetplatform_reactor_lag_seconds",
            "How late a timer fired on the reactor (time every event waited for it).")
        _histogram(lag, [], self._lag.lateness)
        yield lag

    def _meetings(self) -> Iterator[Metric]:
        running = waiting = lobby = 0
        roles = {Role.MODERATOR: 0, Role.VIEWER: 0}
        for meeting in self._parts.registry.meetings():
            if meeting.running:
                running += 1
            else:
                waiting += 1
            for participant in meeting.participants.values():
                roles[participant.role] = roles.get(participant.role, 0) + 1
            lobby += sum(1 for seat in meeting.seats.values() if seat.in_lobby)
        meetings = GaugeMetricFamily(
            "meetplatform_meetings",
            "Live meetings: running (someone connected) or waiting (nobody connected).",
            labels=["state"])
        meetings.add_metric(["running"], running)
        meetings.add_metric(["waiting"], waiting)
        yield meetings
        participants = GaugeMetricFamily(
            "meetplatform_participants", "Connected participants by role.",
            labels=["role"])
        for role, count in roles.items():
            participants.add_metric([role.value.lower()], count)
        yield participants
        yield GaugeMetricFamily("meetplatform_lobby_guests",
                                "Guests waiting in a meeting's lobby.", value=lobby)

    def _sockets(self) -> Iterator[Metric]:
        signalling = self._parts.signalling
        yield GaugeMetricFamily("meetplatform_websocket_open_connections",
                                "Open signalling sockets.", value=len(signalling.hub.conns))
        yield CounterMetricFamily("meetplatform_websocket_connections",
                                  "Signalling sockets opened.",
                                  value=signalling.factory.opened)
        yield CounterMetricFamily("meetplatform_websocket_messages_received",
                                  "Signalling messages received.",
                                  value=signalling.factory.received)

    def _http(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            "meetplatform_http_requests", "HTTP requests finished.",
            labels=["surface", "call", "code"])
        for labels, count in sorted(self._requests.counts.items()):
            counts.add_metric(list(labels), count)
        yield counts
        latency = HistogramMetricFamily(
            "meetplatform_http_request_duration_seconds",
            "Seconds from routing a request to finishing its answer.",
            labels=["surface", "call"])
        for key, histogram in sorted(self._requests.latency.items()):
            _histogram(latency, list(key), histogram)
        yield latency

    def _webhooks(self) -> Iterator[Metric]:
        webhooks = self._parts.webhooks
        if self.outbox_rows is not None:
            yield GaugeMetricFamily(
                "meetplatform_webhook_outbox_rows",
                "Webhook deliveries waiting in the outbox (one row per event and receiver).",
                value=self.outbox_rows)
        yield CounterMetricFamily("meetplatform_webhook_events",
                                  "Webhook events handed to the outbox.",
                                  value=webhooks.enqueued)
        yield CounterMetricFamily("meetplatform_webhook_deliveries",
                                  "Webhook deliveries a receiver acknowledged.",
                                  value=webhooks.dispatcher.delivered)
        yield CounterMetricFamily("meetplatform_webhook_delivery_failures",
                                  "Webhook delivery attempts that failed.",
                                  value=webhooks.dispatcher.failed)


# --- the whole ----------------------------------------------------------------------------


class Metrics:
    """One service's metrics: its registry, the site's request hook and the lag timer.

    Start :attr:`lag` with the service (it is a child service); install
    :attr:`requests` on the site (``site.request_stats``).
    """

    def __init__(self, clock: IReactorTime, parts: Parts, surfaces: Iterable[bytes],
                 rest_routes: Sequence[RouteTemplate] | None = None) -> None:
        if rest_routes is None:
            from meetplatform.restapi import routes

            rest_routes = [RouteTemplate(r.method, r.path) for r in routes.ROUTES]
        self._store = parts.store
        self.requests = RequestStats(clock, surfaces, parts.xml_api.call_names(),
                                     rest_routes)
        self.lag = ReactorLag(clock)
        self.registry = CollectorRegistry()
        self._collector = PartsCollector(parts, self.requests, self.lag)
        self.registry.register(self._collector)

    async def refresh(self) -> None:
        """Read what needs the store (the outbox size) before a collection."""
        try:
            self._collector.outbox_rows = await self._store.run(wdb.outbox_size)
        except Exception:  # noqa: BLE001 - a scrape still answers without it
            _log.failure("metrics: reading the webhook outbox size failed")
            self._collector.outbox_rows = None

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The collected metrics in the format ``accept`` asks for, and its media type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class MetricsPage(Resource):
    """``GET /metrics``; with a ``token``, only for ``Authorization: Bearer <token>``."""

    isLeaf = True

    def __init__(self, metrics: Metrics, token: str | None = None) -> None:
        super().__init__()
        self._metrics = metrics
        self._token = _digest(token.encode("utf-8")) if token is not None else None

    def render(self, request: Request) -> Any:  # type: ignore[override]
        request.setHeader(b"cache-control", b"no-store")
        if self._token is not None and not self._authorized(request):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="metrics"')
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"a bearer token is required\n"
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such resource\n"
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"use GET or HEAD\n"
        accept = request.getHeader(b"accept")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        done = Deferred.fromCoroutine(self._metrics.refresh())
        done.addCallback(lambda _: None if gone else self._write(request, accept))
        done.addErrback(lambda f: _log.failure("metrics: answering a scrape failed", f))
        return NOT_DONE_YET

    def _write(self, request: Request, accept: bytes | None) -> None:
        body, content_type = self._metrics.exposition(
            accept.decode("latin-1") if accept is not None else None)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def _authorized(self, request: Request) -> bool:
        assert self._token is not None
        header = request.getHeader(b"authorization") or b""
        scheme, _, credentials = header.partition(b" ")
        # Constant time: digests of equal length, compared with compare_digest, so that
        # neither a wrong guess's content nor its length shows in the answer's timing.
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            _digest(credentials.strip()), self._token)


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class _MetricsRoot(Resource):
    """The separate metrics listener's root: ``/metrics``, and 404 for anything else."""

    def getChild(self, path: bytes, request: Request) -> Resource:  # type: ignore[override]
        return notFound()  # type: ignore[return-value]


def metrics_root(page: MetricsPage) -> Resource:
    """The resource tree of the separate metrics listener: ``/metrics`` and nothing else."""
    root = _MetricsRoot()
    root.putChild(METRICS_PATH, page)
    return root
