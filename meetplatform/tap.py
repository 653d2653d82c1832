"""The composition root: ``twistd meetplatform`` options and the service.

:func:`makeService` reads the secret (generating it on the first start) and returns a
:class:`MeetplatformService`, which binds every ``--listen`` endpoint when it starts. The
public URL (what join redirects and links use) is derived from the first listener's
*bound* address unless ``--public-url`` is set, so ``tcp:0`` gets its real port; only
then are the :class:`Settings`, the registry and the store made, the parts built
(:func:`~meetplatform.build.build_parts`), mounted into a resource tree
(:func:`~meetplatform.build.mount`) that is installed into the already-listening site,
and attached to the service (:func:`~meetplatform.build.attach`). With TCP endpoints
all of this happens synchronously inside ``privilegedStartService`` (``startService``
under ``twist``), before the reactor runs, so no request ever sees the placeholder that
answers 503 until then. The site and its input limits are :mod:`meetplatform.site`.
"""

from __future__ import annotations

import gc
import shlex
from collections.abc import Sequence
from typing import Any

from twisted.application import app
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, FirstError, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from meetplatform.build import Parts, attach, build_parts, mount
from meetplatform.config import (
    ConfigError,
    ConfigOptions,
    ServiceConfig,
    Settings,
    parse_listener,
    public_host,
    read_metrics_token,
    read_turn_secret,
    url_for,
    with_backlog,
)
from meetplatform.logs import ProcessLogging
from meetplatform.metrics import METRICS_PATH, Metrics, MetricsPage, metrics_root
from meetplatform.registry import Registry
from meetplatform.secret import LoadedSecret, SecretError, load_or_create_secret
from meetplatform.site import MeetplatformSite, StartingPage
from meetplatform.store import Store

_log = Logger()


class Options(ConfigOptions):
    synopsis = "[options]"
    longdesc = (
        "Run meetplatform: the BigBlueButton API, the JSON:API, embeddable conference "
        "pages and WebSocket signalling in one process. Every option can also be set "
        "with a MEETPLATFORM_* environment variable or in the TOML file named by "
        "--config; the command line wins over the environment, which wins over the "
        "file. See docs/operations.md."
    )


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

    After a successful start, ``settings``, ``registry``, ``store``, ``parts``, ``site``
    and ``ports`` are the live objects (tests and later services use them), and
    ``metrics`` when ``--metrics-listen`` or ``--metrics-token-file`` asked for them.

    ``logging`` (what :func:`makeService` passes under twistd) filters and formats the
    process's log from the start on; ``metrics_token`` is the bearer token that opens
    ``/metrics`` (read from ``--metrics-token-file``); ``turn_secret`` the TURN server's
    shared secret (read from ``--turn-secret-file`` when not given).
    """

    def __init__(self, reactor: Any, config: ServiceConfig, secret: LoadedSecret, *,
                 logging: ProcessLogging | None = None,
                 metrics_token: str | None = None,
                 turn_secret: str | None = None) -> None:
        super().__init__()
        self._reactor = reactor
        self.config = config
        self._secret = secret
        self._logging = logging
        self._metrics_token = metrics_token
        if turn_secret is None and config.turn_secret_file is not None:
            turn_secret = read_turn_secret(config.turn_secret_file)
        self._turn_secret = turn_secret
        #: Serves only ``/metrics`` on ``--metrics-listen`` (503 until started).
        self.metrics_site = MeetplatformSite(
            StartingPage(),
            clock=reactor,
            max_query_bytes=config.max_query_bytes,
            max_body_bytes=config.max_body_bytes,
        )
        self.metrics_port: IListeningPort | None = None
        self.metrics: Metrics | None = None
        self.site = MeetplatformSite(
            StartingPage(),
            clock=reactor,
            max_query_bytes=config.max_query_bytes,
            max_body_bytes=config.max_body_bytes,
            access_log=str(config.access_log) if config.access_log is not None else None,
            request_head_timeout=config.request_head_timeout,
            trusted_proxies=config.trusted_proxies,
        )
        self.ports: list[IListeningPort] = []
        self.settings: Settings | None = None
        self.registry: Registry | None = None
        self.store: Store | None = None
        self.parts: Parts | None = None
        self.ready: Deferred[None] | None = None
        self._starting = False
        self._startup_error: str | None = None

    def setServiceParent(self, parent: Any) -> None:
        """twistd adds the service to its application, then reads the application's log
        observer: give it the filtered (and formatted) one (see :mod:`meetplatform.logs`)."""
        if (self._logging is not None and isinstance(parent, Componentized)
                and parent.getComponent(ILogObserver) is None):
            observer = self._logging.application_observer()
            if observer is not None:
                parent.setComponent(ILogObserver, observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._bind()

    def startService(self) -> None:
        if self.ready is None:
            # ``twist`` never calls privilegedStartService; bind now.
            self._bind()
        super().startService()

    def _bind(self) -> None:
        if self._logging is not None:
            # twistd has set up its log observer by now: filter it from here on.
            self._logging.install()
        self._starting = True
        listening = [self._listen(description) for description in self.config.listen]
        if self.config.metrics_listen is not None:
            listening.append(self._listen(self.config.metrics_listen, self.metrics_site))
        try:
            self.ready = gatherResults(listening, consumeErrors=True).addCallback(self._bound)
            self.ready.addErrback(self._failed)
        finally:
            self._starting = False
        if self._startup_error is not None:
            # Already logged; twistd exits with status 1 instead of printing a traceback.
            raise SystemExit(1)

    def _listen(self, description: str,
                site: MeetplatformSite | None = None) -> Deferred[IListeningPort]:
        def explain(failure: Failure) -> Failure:
            raise StartupError(f"cannot listen on {description}: {failure.getErrorMessage()}")

        factory = self.site if site is None else site
        return maybeDeferred(
            lambda: serverFromString(self._reactor, with_backlog(description)).listen(factory)
        ).addErrback(explain)

    def _bound(self, ports: Sequence[IListeningPort]) -> None:
        self.ports = list(ports[:len(self.config.listen)])
        if self.config.metrics_listen is not None:
            self.metrics_port = ports[-1]
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
        settings = self.config.settings(self._secret.value, public_url, self._turn_secret)
        registry = Registry(self._reactor, public_url)
        store = Store.open(self._reactor, settings.data_dir)
        parts = build_parts(self._reactor, settings, registry, store)
        root = mount(parts)
        attach(parts, self)
        self._add_metrics(parts, root)
        self.site.resource = root
        self.settings, self.registry, self.store, self.parts = settings, registry, store, parts

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
        if self.metrics_port is not None:
            _log.info("metrics: {url}/metrics",
                      url=_listener_url(parse_listener(self.config.metrics_listen or "").kind,
                                       self.metrics_port.getHost()))
        if self._metrics_token is not None:
            _log.info("metrics: /metrics on the public listeners, with the bearer token")
        if settings.turn_uris:
            _log.info("TURN: credentials minted per participant for {uris} (valid {ttl} s)",
                      uris=" ".join(settings.turn_uris), ttl=settings.turn_ttl)
        if settings.ice_transport_policy == "relay":
            _log.info("ICE transport policy relay: browsers send media only through TURN")
        for warning in (*self.config.warnings, *self._secret.warnings):
            _log.warn("{warning}", warning=warning)
        settle_garbage_collector()

    def _add_metrics(self, parts: Parts, root: Any) -> None:
        """Count and serve metrics if a metrics listener or token asks for them."""
        if self.config.metrics_listen is None and self._metrics_token is None:
            return  # no /metrics, and nothing counted per request
        surfaces = [*root.listNames(), METRICS_PATH]
        metrics = Metrics(self._reactor, parts, surfaces)
        page = MetricsPage(metrics, self._metrics_token)
        if self._metrics_token is not None:
            root.putChild(METRICS_PATH, page)
        self.metrics_site.resource = metrics_root(page)
        self.site.request_hook = metrics.requests
        metrics.lag.setServiceParent(self)
        self.metrics = metrics

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
        if self.metrics_port is not None:
            stopped.append(maybeDeferred(self.metrics_port.stopListening))
        self.ports, self.metrics_port = [], None
        done = gatherResults(stopped).addCallback(lambda _: None)
        if self.store is not None:
            store, self.store = self.store, None
            done.addCallback(lambda _: Deferred.fromCoroutine(store.close()))
        if self._logging is not None:
            done.addBoth(self._restore_logging)
        return done

    def _restore_logging(self, result: Any) -> Any:
        assert self._logging is not None
        self._logging.uninstall()
        return result


def makeService(options: Options, reactor: Any = None) -> MeetplatformService:
    """Build the service from parsed options (twistd calls this once).

    twistd passes no reactor: the service then runs on the global one and owns the
    process's log (level and format, :mod:`meetplatform.logs`). Tests pass their reactor
    and keep the log of the test process as it is.
    """
    config = options.configuration
    logging = None
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
        # Under twistd the plugin's options hang below twistd's own (--logfile, -n ...).
        parent = getattr(options, "parent", None)
        logging = ProcessLogging(
            globalLogPublisher, config.log_level, config.log_format,
            twistd_options=parent if isinstance(parent, app.ServerOptions) else None)
    try:
        secret = load_or_create_secret(config)
        token = (read_metrics_token(config.metrics_token_file)
                 if config.metrics_token_file is not None else None)
        turn_secret = (read_turn_secret(config.turn_secret_file)
                       if config.turn_secret_file is not None else None)
    except (SecretError, ConfigError) as error:
        raise SystemExit(f"meetplatform: {error}") from None
    return MeetplatformService(reactor, config, secret, logging=logging, metrics_token=token,
                               turn_secret=turn_secret)
