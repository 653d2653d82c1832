"""The process's log: a level filter (per namespace too) and a JSON format, under twistd.

twistd sets up the log observer itself (``--logfile``, ``--syslog``, standard output with
``-n``) after the plugin's ``makeService`` has returned, and a plugin cannot hand it one
(an ``ILogObserver`` component is only read from a ``.tac`` application, and replacing
twistd's observer would lose its file choice and rotation). So :class:`ProcessLogging`
works on what twistd made: when the service starts it replaces each observer of the
global log publisher by a :class:`~twisted.logger.FilteringLogObserver` around it (the
same :class:`~twisted.logger.LogLevelFilterPredicate` that ``twist --log-level`` uses),
and for ``json`` first swaps a file observer's formatting for :func:`json_line`, writing
to the same file. :meth:`ProcessLogging.uninstall` puts the originals back.

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
                 log_format: str = "text") -> None:
        self._publisher = publisher
        self.predicate = level_predicate(levels)
        self._format = log_format
        self._replaced: list[tuple[ILogObserver, ILogObserver]] = []

    def install(self) -> None:
        """Wrap every observer of the publisher (once; later calls do nothing)."""
        if self._replaced:
            return
        # LogPublisher has no public way to list its observers; twistd keeps its own
        # reference only to remove it at exit (removing an absent observer is a no-op).
        observers: list[ILogObserver] = list(getattr(self._publisher, "_observers", []))
        unformatted = 0
        for observer in observers:
            inner = observer
            if self._format == "json":
                json_observer = self._as_json(observer)
                if json_observer is None:
                    unformatted += 1
                else:
                    inner = json_observer
            wrapped = cast(ILogObserver, FilteringLogObserver(inner, [self.predicate]))
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
