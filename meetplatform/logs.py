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

The ``text`` format is twistd's own line, ``{time} [{system}] {message}``, written by
:class:`ClassicText`: the same text, byte for byte, for a quarter of the CPU (Twisted
formats the message with a pure-Python ``string.Formatter`` and the time with
``strftime`` for every line: 34 µs per line here, a twentieth of an invitation's
activation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO, Any, cast

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
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
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


#: The formatter inside :func:`twisted.logger.textFileLogObserver` (what twistd uses).
_TWISTED_TEXT_FORMATTER = "textFileLogObserver.<locals>.formatEvent"


class ClassicText:
    """twistd's text line (:func:`~twisted.logger.formatEventAsClassicLogText` with its
    RFC 3339 time), computed faster for the events that make most lines.

    An event whose ``log_format`` is a plain ``str`` and that carries no failure is
    formatted with ``str.format_map`` (what Twisted's formatter does for every field that
    is not a ``{call()}``), and the time text is kept for the second it names (the format
    has no finer unit). Anything else, or any error on the way, goes to Twisted's own
    function, which also writes its "Unable to format event" text.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._stamp = "-"

    def time_text(self, when: float | None) -> str:
        """``formatTime(when)`` in RFC 3339, computed once per second."""
        if when is None:
            return "-"
        second = math.floor(when)
        if second != self._second:
            self._stamp = formatTime(when, timeFormatRFC3339)
            self._second = second
        return self._stamp

    def __call__(self, event: LogEvent) -> str | None:
        text = event.get("log_format")
        if type(text) is str and "log_failure" not in event and "log_flattened" not in event:
            try:
                message = text.format_map(event)
                system = event.get("log_system")
                if system is None:
                    level = event.get("log_level")
                    system = "{}#{}".format(event.get("log_namespace", "-"),
                                            "-" if level is None else level.name)
                else:
                    system = str(system)
            except Exception:  # noqa: BLE001 - Twisted's own path says what went wrong
                return formatEventAsClassicLogText(event, formatTime=self.time_text)
            if not message:
                return None
            line = f"{self.time_text(event.get('log_time'))} [{system}] {message}"
            return line.replace("\n", "\n\t") + "\n"
        return formatEventAsClassicLogText(event, formatTime=self.time_text)


def text_file_observer(out: IO[Any]) -> FileLogObserver:
    """``textFileLogObserver(out)`` (twistd's), writing :class:`ClassicText` lines."""
    return FileLogObserver(out, ClassicText())


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
        if self._format == "json":
            inner = self._as_json(observer) or observer
        else:
            inner = self._as_text(observer) or observer
        return cast(ILogObserver, FilteringLogObserver(inner, [self.predicate]))

    @staticmethod
    def _as_text(observer: ILogObserver) -> ILogObserver | None:
        """twistd's text observer (a file's, with Twisted's classic formatter) as a
        :func:`text_file_observer` on the same file; any other observer is kept."""
        out = getattr(observer, "_outFile", None)
        formatter = getattr(observer, "formatEvent", None)
        if (not isinstance(observer, FileLogObserver) or out is None
                or getattr(formatter, "__qualname__", "") != _TWISTED_TEXT_FORMATTER):
            return None
        return text_file_observer(out)

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
