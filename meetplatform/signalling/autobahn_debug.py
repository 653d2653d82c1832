"""Autobahn's debug-log arguments, computed only if a debug line is ever formatted.

Autobahn logs at debug level on every connection, handshake, read and write, e.g.
``self.log.debug("{func} received {data_len} bytes for peer={peer}",
func=hltype(self.dataReceived), peer=hlval(self.peer), data_len=hlval(len(data)))``.
txaio drops these events unless debug logging is on, but Python evaluates the arguments
first: ``hltype`` builds a qualified name and colours it with ``click.style`` (tens of
µs), about five times per join plus once per frame read: a third of the server's CPU
for a join into a room of 1,000, and part of every message (docs/performance.md,
issue 14).

:func:`make_debug_arguments_lazy` replaces ``hltype`` and ``hlval`` in the namespaces of
Autobahn's WebSocket modules by functions that only keep their arguments; the real
function runs when the log event is formatted (``str``, ``format``, ``repr``), so a
debug log that is switched on shows exactly the text it showed before. It is safe
because those names are used in these modules only as arguments of log calls
(``tests/signalling/test_autobahn_debug.py`` checks Autobahn's source for it, so an
Autobahn release that uses them otherwise fails the tests instead of printing an
object). Process-wide and idempotent; a name that is not Autobahn's own function (a
different Autobahn) is left alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from autobahn import util

#: Autobahn's modules whose debug arguments are made lazy (the WebSocket protocol and
#: its Twisted adapter: what a signalling socket and the Janus client run).
MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")
#: The helpers whose results only ever go into a log event there.
NAMES = ("hltype", "hlval")


class LazyText:
    """``function(*args)``, computed when the log event is formatted."""

    __slots__ = ("_args", "_function")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._function = function
        self._args = args

    def __str__(self) -> str:
        return str(self._function(*self._args))

    def __format__(self, spec: str) -> str:
        return format(self._function(*self._args), spec)

    def __repr__(self) -> str:
        return repr(self._function(*self._args))


def lazy(function: Callable[..., Any]) -> Callable[..., LazyText]:
    """``function`` deferred: calls return a :class:`LazyText` of its result."""

    def deferred(*args: Any) -> LazyText:
        return LazyText(function, args)

    deferred.__wrapped__ = function  # type: ignore[attr-defined]
    deferred.__name__ = getattr(function, "__name__", "deferred")
    return deferred


def make_debug_arguments_lazy() -> None:
    """Make ``hltype``/``hlval`` lazy in :data:`MODULES` (once; see the module doc)."""
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in NAMES:
            original: Callable[..., Any] = getattr(util, name)
            if getattr(module, name, None) is original:
                setattr(module, name, lazy(original))
