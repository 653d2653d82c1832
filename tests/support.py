"""What every test harness shares: the start time, settings, and firing Deferreds inline.

Harnesses build their parts with :func:`meetplatform.build.build_parts` (the whole
service) or, when they test one surface alone, with that surface's constructor; either
way over :func:`make_clock` and :func:`make_settings`. This module imports no surface
(importing Klein before pytest-twisted has installed its reactor would install the
default one), so any test module may import it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from meetplatform.config import Settings

T = TypeVar("T")

#: When the fake clocks start (2023-11-14T22:13:20Z): far from the epoch, so a time of 0
#: never passes for "now".
START = 1_700_000_000.0
#: The shared secret of test settings (a BBB-style one; XML API tests sign with it).
SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b"
#: The public URL of test settings unless a harness names its own.
PUBLIC_URL = "https://meet.example.test"


def make_clock(start: float = START) -> Clock:
    """A fake clock standing at ``start``."""
    clock = Clock()
    clock.advance(start)
    return clock


def make_settings(**overrides: Any) -> Settings:
    """Test settings: :data:`SECRET` and :data:`PUBLIC_URL`, the defaults of
    :class:`Settings` for the rest, and ``overrides`` on top."""
    values: dict[str, Any] = {"secret": SECRET, "public_url": PUBLIC_URL}
    values.update(overrides)
    return Settings(**values)


def result(d: Deferred[T] | Any) -> T:
    """The result of a Deferred that has fired already (raises its failure); anything
    else is returned as it is."""
    if not isinstance(d, Deferred):
        return d  # type: ignore[no-any-return]
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]  # type: ignore[no-any-return]


def run(coro: Any) -> Any:
    """Run a coroutine whose awaits all resolve synchronously."""
    return result(Deferred.fromCoroutine(coro))
