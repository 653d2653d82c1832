"""Plain counters the hot paths update, read by :mod:`meetplatform.metrics` at scrape time.

The parts never import the metrics library: they increment ints and fill a
:class:`Histogram` (a list of ints and a float), which costs a few attribute operations
and no lock (everything runs on the reactor thread). The metrics collector turns them
into Prometheus families only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")

#: Upper bounds (seconds) for latencies: from a fast request to a stalled one.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class Histogram:
    """Counts of observations per bucket (``value <= bound``, as Prometheus' ``le``)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        self.bounds = tuple(bounds)
        #: One count per bound, and a last one for values above every bound (``+Inf``).
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(bound, observations <= bound)`` for every bound, then ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            total += count
            out.append((bound, total))
        return out


class JobStats:
    """Jobs submitted and not yet finished, and how long each took (submission to result).

    With no clock (a store running inline, in tests and the CLI) only the count is kept.
    """

    def __init__(self, clock: IReactorTime | None) -> None:
        self._clock = clock
        #: Jobs waiting for the worker thread or running on it.
        self.pending = 0
        self.durations = Histogram()

    def track(self, done: Deferred[T]) -> Deferred[T]:
        """Count ``done`` as pending until it fires; returns it (its result untouched)."""
        self.pending += 1
        started = self._clock.seconds() if self._clock is not None else 0.0

        def finished(result: Any) -> Any:
            self.pending -= 1
            if self._clock is not None:
                self.durations.observe(self._clock.seconds() - started)
            return result

        done.addBoth(finished)
        return done
