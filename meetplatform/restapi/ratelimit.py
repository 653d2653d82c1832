"""Token-bucket rate limits on the injected clock (per client, per invited user, per IP)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per second sustained, bursts of up to ``burst``."""

    rate: float
    burst: int


class RateLimiter:
    """Buckets by key; the least recently used ones are forgotten past ``max_keys``."""

    def __init__(self, clock: IReactorTime, limit: Limit, max_keys: int = 100_000) -> None:
        if limit.rate <= 0 or limit.burst < 1:
            raise ValueError("a limit needs a positive rate and a burst of at least 1")
        self._clock = clock
        self.limit = limit
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: Requests refused since start (the metrics read it).
        self.refused = 0

    def take(self, key: str, cost: float = 1.0) -> float | None:
        """Spend ``cost`` from ``key``'s bucket: ``None`` if allowed, else the seconds to
        wait before it would be."""
        now = self._clock.seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.limit.burst), updated=now)
            self._buckets[key] = bucket
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.limit.burst), bucket.tokens + elapsed * self.limit.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return None
        self.refused += 1
        return (cost - bucket.tokens) / self.limit.rate

    @staticmethod
    def retry_after(seconds: float) -> int:
        """Whole seconds for a ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(seconds))
