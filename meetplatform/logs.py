"""The process's log: a level filter (per namespace too) and a JSON format, under twistd.

twistd sets up the log observer itself (``--logfile``, ``--syslog``, standard output with
``-n``) after the plugin's ``makeService`` has returned: it uses the application's
``ILogObserver`` component if there is one, else makes its own. A plugin does not make
the application, but its service is added to it right after ``makeService``
(``setServiceParent``), before twistd reads the component. So :class:`ProcessLogging`:

1. :meth:`~ProcessLogging.application_observer` asks twistd's own logger class for the
   observer twistd would make from its command line (same file, same rotation on
   SIGUSR1), wraps it in a :class:`~twisted.logger.FilteringLogObserver` (the
   :class:`~twisted.logger.LogLevelFilterPredicate` that ``twist --log-level`` uses) and,
   for ``json``, writes :func:`json_line` to that same file instead; the service sets it
   as the application's component, so the very first line is filtered and formatted;
2. when the service starts, :meth:`~ProcessLogging.install` wraps whatever other
   observers the global publisher has (``twist``, ``twistd --logger``, ``--syslog``)
   the same way. :meth:`ProcessLogging.uninstall` puts those back.

Without this twistd writes every level: a churn of 200,000 joins logged 35 MB, mostly
debug lines. Events are dropped by the filter before any formatting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    eventAsJSON,
    formatEvent,
)
from twisted.python.failure import Failure

_log = Logger()

#: The level of every namespace without one of its own.
DEFAULT_LEVEL = "info"


def level_predicate(levels: Sequence[tuple[str, str]]) -> LogLevelFilterPredicate:
    """The filter for ``(namespace, level)`` pairs; namespace ``""`` is the default.

    A namespace's level applies to the namespaces under it (``meetplatform.signalling``
    covers ``meetplatform.signalling.hub``) unless they have their own.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(DEFAULT_LEVEL))
    for namespace, name in levels:
        # An empty namespace sets the default level.
        predicate.setLogLevelForNamespace(namespace, LogLevel.levelWithName(name))
    return predicate


def json_line(event: LogEvent) -> str:
    """One event as one line of JSON that :func:`twisted.logger.eventFromJSON` reads back.

    Twisted's own serialisation (``eventAsJSON``), plus the formatted message as
    ``log_text`` and a failure's traceback as ``log_traceback``, so that a log shipper
    needs no Twisted to show them. No record separator (``twist --log-format json`` writes
    RFC 7464 sequences, ``\\x1e`` before each record): JSON Lines is what shippers read.
    """
    extra: dict[str, Any] = {"log_text": formatEvent(event)}
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        extra["log_traceback"] = failure.getTraceback()
    return eventAsJSON({**event, **extra}) + "\n"


class ProcessLogging:
    """Filters (and for ``json`` reformats) what ``publisher``'s observers receive.

    The service installs it when it starts; twistd's observers are there by then.
    """

    def __init__(self, publisher: LogPublisher, levels: Sequence[tuple[str, str]],
                 log_format: str = "text", *, twistd_options: Any = None) -> None:
        self._publisher = publisher
        self.predicate = level_predicate(levels)
        self._format = log_format
        self._twistd_options = twistd_options
        self._replaced: list[tuple[ILogObserver, ILogObserver]] = []
        self._component: ILogObserver | None = None

    def application_observer(self) -> ILogObserver | None:
        """twistd's own log observer, filtered and formatted; None if there is none to
        make here (not under twistd, or ``--syslog``: :meth:`install` covers those)."""
        options = self._twistd_options
        if options is None or not hasattr(options, "get") or options.get("syslog"):
            return None
        try:
            from twisted.scripts import twistd

            # The observer twistd makes when the application has none (--logfile, -n).
            made = twistd._SomeApplicationRunner.loggerFactory(options)._getLogObserver()
        except Exception:  # noqa: BLE001 - fall back to wrapping it at start
            _log.failure("cannot make twistd's log observer; filtering it at start instead")
            return None
        if not ILogObserver.providedBy(made):
            return None
        self._component = self._wrap(made)
        return self._component

    def install(self) -> None:
        """Wrap every observer of the publisher (once; later calls do nothing)."""
        if self._replaced:
            return
        # LogPublisher has no public way to list its observers; twistd keeps its own
        # reference only to remove it at exit (removing an absent observer is a no-op).
        observers: list[ILogObserver] = list(getattr(self._publisher, "_observers", []))
        unformatted = 0
        for observer in observers:
            if observer is self._component:
                continue  # twistd uses the one made by application_observer
            if self._format == "json" and self._as_json(observer) is None:
                unformatted += 1
            wrapped = self._wrap(observer)
            self._publisher.removeObserver(observer)
            self._publisher.addObserver(wrapped)
            self._replaced.append((observer, wrapped))
        if unformatted:
            _log.warn("log format json: {count} log observer(s) are not files (syslog, "
                      "--logger) and keep their own format", count=unformatted)

    def uninstall(self) -> None:
        """Put the original observers back."""
        for original, wrapped in reversed(self._replaced):
            self._publisher.removeObserver(wrapped)
            self._publisher.addObserver(original)
        self._replaced = []

    def _wrap(self, observer: ILogObserver) -> ILogObserver:
        inner = (self._as_json(observer) or observer) if self._format == "json" else observer
        return cast(ILogObserver, FilteringLogObserver(inner, [self.predicate]))

    @staticmethod
    def _as_json(observer: ILogObserver) -> ILogObserver | None:
        """A JSON observer writing to the same file as ``observer``, if it is a file's.

        twistd's observer is ``textFileLogObserver(file)`` (standard output, or its
        rotating ``LogFile``); the file is kept, only the formatting changes.
        """
        out = getattr(observer, "_outFile", None)
        if not isinstance(observer, FileLogObserver) or out is None:
            return None
        return cast(ILogObserver, FileLogObserver(out, json_line))
