"""Delivery from the outbox: at least once, in order per meeting, with backoff.

:class:`Dispatcher` keeps, for each *target* (a BBB hook, a space's endpoint, one end
callback), a window of its undelivered outbox rows, read from the store oldest first:

- **Order.** Rows with the same ordering key (a meeting's internal id, a room) reach a
  target one after the other, in the order they happened: a row is sent only when no
  earlier row with its key is in flight or waiting. Rows of different meetings go out in
  parallel, up to ``concurrency`` per target.
- **At least once.** A row leaves the outbox only when its receiver answered 2xx (bbb
  hooks: 2xx or 401, as bbb-webhooks). Its event id is the same on every attempt, so a
  receiver deduplicates by it; a process killed after the receiver answered but before the
  row was deleted delivers it once more, with the same id.
- **Backoff.** A failure (an error status, a refused or broken connection, a timeout, an
  address the SSRF guard refuses) pauses the whole target: the next attempt waits
  ``base_delay * 2**(failures-1)`` seconds (at most ``max_delay``), times a random factor
  between 0.5 and 1 (jitter, so that many senders do not come back at once). Failures of
  requests already in flight while the target is paused do not count twice. The wait is
  stored, so a restart does not hammer a receiver that is down.
- **Giving up.** After ``max_failures`` consecutive failures (10 to 20 hours with the
  defaults) an endpoint is *disabled* (the JSON:API shows it, and its client can enable
  it again: its events wait in the outbox), a BBB hook is removed (as bbb-webhooks does;
  integrations that check ``hooks/list`` create it again) and an end callback dropped.

Everything runs on the reactor with the injected clock; the store is read and written off
the reactor thread (results in batches, :class:`~meetplatform.store.batch.BatchWriter`).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from meetplatform.store import Store
from meetplatform.store import webhooks_db as wdb
from meetplatform.store.batch import BatchWriter
from meetplatform.webhooks import signing
from meetplatform.webhooks.http import Sender, describe_failure

_log = Logger()

Target = tuple[str, str]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try. The defaults retry a receiver that is down for 10 to 20 hours
    (30 attempts; the waits double from 1 s up to an hour, each times 0.5 to 1)."""

    #: Seconds a whole request (connect, send, answer) may take.
    timeout: float = 5.0
    #: The first retry waits about this long (seconds); each failure doubles it ...
    base_delay: float = 1.0
    #: ... up to this.
    max_delay: float = 3600.0
    #: Consecutive failures after which a target is disabled (hooks: removed).
    max_failures: int = 30
    #: Requests in flight to one target (each for a different meeting).
    concurrency: int = 8
    #: Requests in flight in all.
    total_concurrency: int = 256
    #: Undelivered rows of one target held in memory at a time.
    window: int = 256
    #: Events of one meeting a BBB hook callback may carry together (bbb-webhooks'
    #: ``multiEvent``: the ``event`` parameter is a JSON array). Only events waiting at
    #: the same time are grouped, in order; 1 sends each on its own.
    hook_batch: int = 10
    #: Requests one target starts in one go; more wait for the next turn of the reactor,
    #: so that a burst of deliveries never holds it for long (other work, joins included,
    #: runs in between).
    sends_per_turn: int = 2

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 62))
        return base * (0.5 + 0.5 * rng.random())


@dataclass(eq=False)
class _Target:
    kind: str
    id: str
    info: wdb.TargetInfo | None = None
    #: Undelivered rows not in flight, by seq.
    window: list[wdb.OutboxRow] = field(default_factory=list)
    #: Ordering key -> seqs of the rows in flight (one request).
    in_flight: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: Delivered rows whose deletion is not written yet (a reload must skip them).
    acked: set[int] = field(default_factory=set)
    failures: int = 0
    timer: IDelayedCall | None = None
    #: Reload everything (first load, after a pause, the target changed).
    stale: bool = True
    #: New rows were written: load those after ``max_seq``.
    fresh: bool = False
    #: The highest seq this target has seen (in the window, in flight or delivered).
    max_seq: int = 0
    loading: bool = False
    more: bool = False
    gone: bool = False
    loaded_once: bool = False
    pumping: bool = False
    repump: bool = False
    #: A pump is scheduled for the next turn of the reactor.
    deferred_pump: IDelayedCall | None = None

    @property
    def key(self) -> Target:
        return (self.kind, self.id)

    @property
    def idle(self) -> bool:
        return (not self.window and not self.in_flight and not self.acked and not self.more
                and not self.stale and not self.fresh and not self.loading
                and self.timer is None and self.deferred_pump is None)


class Dispatcher:
    """Delivers the outbox (see the module's docstring)."""

    def __init__(self, clock: IReactorTime, store: Store, sender: Sender, *, secret: str,
                 domain: str, policy: DeliveryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        self._store = store
        self._sender = sender
        self._secret = secret
        self._domain = domain
        self.policy = policy or DeliveryPolicy()
        self._rng = rng or random.Random()
        self._targets: dict[Target, _Target] = {}
        self._slots = DeferredSemaphore(self.policy.total_concurrency)
        self._requests: set[Deferred[int]] = set()
        self._running = False
        self._results: BatchWriter[wdb.Result, None] = BatchWriter(
            store, wdb.record_results, name="webhook delivery", on_written=self._written)
        #: Deliveries acknowledged by receivers since start (for metrics and benchmarks).
        self.delivered = 0
        #: Failed attempts since start.
        self.failed = 0
        self._idle_waiters: list[Deferred[None]] = []

    # --- lifecycle ---------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    async def start(self) -> None:
        """Start delivering: every target with undelivered rows is woken."""
        self._running = True
        targets = await self._store.run(wdb.pending_targets)
        self.announce(targets)

    async def scan(self) -> None:
        """Wake every target with undelivered rows that is not being worked on (a periodic
        safety net: an endpoint enabled again, rows left by a failed load)."""
        if not self._running:
            return
        targets = await self._store.run(wdb.pending_targets)
        for key in targets:
            target = self._targets.get(key)
            if target is None or (target.idle and not target.gone):
                self.announce([key])

    async def stop(self) -> None:
        """Stop: cancel timers and requests in flight (their rows stay in the outbox) and
        write the results collected so far."""
        self._running = False
        for target in self._targets.values():
            for call in (target.timer, target.deferred_pump):
                if call is not None and call.active():
                    call.cancel()
            target.timer = target.deferred_pump = None
        for request in list(self._requests):
            request.cancel()
        await self._results.flush()

    # --- waking targets ------------------------------------------------------------------

    def announce(self, targets: Iterable[Target]) -> None:
        """New rows were written for ``targets``."""
        for key in targets:
            target = self._targets.get(key)
            if target is None or target.gone:
                target = self._targets[key] = _Target(key[0], key[1])
            target.fresh = True
            self._pump(target)

    def refresh(self, key: Target) -> None:
        """The target changed (URL, secret, enabled again): read it and its rows anew."""
        target = self._targets.get(key)
        if target is None or target.gone:
            self.announce([key])
            return
        target.stale = True
        self._pump(target)

    def forget(self, key: Target) -> None:
        """The target was removed (a hook destroyed, an endpoint deleted)."""
        target = self._targets.get(key)
        if target is not None:
            target.gone = True
            if target.timer is not None and target.timer.active():
                target.timer.cancel()
            target.timer = None
            target.window.clear()
            if not target.in_flight:
                del self._targets[key]
            self._check_idle()

    def pending_targets(self) -> int:
        return sum(1 for t in self._targets.values() if not t.idle and not t.gone)

    def when_idle(self) -> Deferred[None]:
        """Fires when no target has work in memory (tests and benchmarks)."""
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        self._check_idle()
        return d

    def _check_idle(self) -> None:
        if self._idle_waiters and all(t.idle or (t.gone and not t.in_flight)
                                      for t in self._targets.values()):
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                self._results.flush().chainDeferred(d)

    def _pump(self, target: _Target) -> None:
        """Send what may be sent now. Answers can arrive synchronously (and pump again):
        a nested call only asks the running one to go round once more."""
        if target.pumping:
            target.repump = True
            return
        target.pumping = True
        try:
            while True:
                target.repump = False
                self._pump_once(target)
                if not target.repump:
                    break
        finally:
            target.pumping = False

    def _pump_once(self, target: _Target) -> None:
        if target.gone:
            if not target.in_flight and self._targets.get(target.key) is target:
                del self._targets[target.key]
            self._check_idle()
            return
        if not self._running or target.loading or target.timer is not None:
            return
        if target.stale:
            self._load(target)
            return
        if target.fresh or (target.more and not target.window):
            if len(target.window) < self.policy.window:
                self._load_new(target)
                return
            target.fresh, target.more = False, True  # later, when the window has room
        capacity = self.policy.concurrency - len(target.in_flight)
        if capacity > self.policy.sends_per_turn:
            capacity = self.policy.sends_per_turn
            if target.deferred_pump is None and len(target.window) > capacity:
                target.deferred_pump = self._clock.callLater(0, self._next_turn, target)
        batch = self.policy.hook_batch if target.kind == "hook" else 1
        chosen: dict[str, list[wdb.OutboxRow]] = {}
        if capacity > 0 and target.window:
            blocked = set(target.in_flight)
            for row in target.window:
                group = chosen.get(row.ordering_key)
                if group is not None:
                    if len(group) < batch:
                        group.append(row)  # the next event of the same meeting, in order
                    continue
                if row.ordering_key in blocked or len(chosen) >= capacity:
                    blocked.add(row.ordering_key)
                    continue
                chosen[row.ordering_key] = [row]
            taken = {row.seq for group in chosen.values() for row in group}
            target.window = [row for row in target.window if row.seq not in taken]
            for key, group in chosen.items():
                target.in_flight[key] = tuple(row.seq for row in group)
        for group in chosen.values():
            self._send(target, group)
        if target.idle:
            if self._targets.get(target.key) is target:
                del self._targets[target.key]
            self._check_idle()

    def _next_turn(self, target: _Target) -> None:
        target.deferred_pump = None
        self._pump(target)

    def _load(self, target: _Target) -> None:
        target.loading = True
        target.stale = False
        limit = self.policy.window + len(target.in_flight) + len(target.acked)
        now = self.now_ms()
        loaded: Deferred[tuple[wdb.TargetInfo | None, list[wdb.OutboxRow]]] = (
            Deferred.fromCoroutine(self._store.run(
                lambda db: wdb.load_target(db, target.kind, target.id, now, limit))))
        loaded.addCallbacks(lambda result: self._loaded(target, *result, limit=limit),
                            lambda failure: self._load_failed(target, failure))

    def _load_new(self, target: _Target) -> None:
        """Append the rows written after the last one this target has seen."""
        target.loading = True
        target.fresh = False
        limit = self.policy.window - len(target.window)
        after = target.max_seq
        loaded: Deferred[list[wdb.OutboxRow]] = Deferred.fromCoroutine(self._store.run(
            lambda db: wdb.load_rows(db, target.kind, target.id, after, limit)))
        loaded.addCallbacks(lambda rows: self._loaded_new(target, rows, limit=limit),
                            lambda failure: self._load_failed(target, failure))

    def _loaded_new(self, target: _Target, rows: list[wdb.OutboxRow], *, limit: int) -> None:
        target.loading = False
        new = [row for row in rows if row.seq > target.max_seq]
        target.window.extend(new)
        if new:
            target.max_seq = new[-1].seq
        target.more = len(rows) >= limit
        self._pump(target)

    def _loaded(self, target: _Target, info: wdb.TargetInfo | None,
                rows: list[wdb.OutboxRow], *, limit: int) -> None:
        target.loading = False
        if info is None:
            target.gone = True
            target.window.clear()
            if not target.in_flight and self._targets.get(target.key) is target:
                del self._targets[target.key]
            self._check_idle()
            return
        target.info = info
        busy = {seq for seqs in target.in_flight.values() for seq in seqs} | target.acked
        target.window = [row for row in rows if row.seq not in busy]
        if rows:
            target.max_seq = max(target.max_seq, rows[-1].seq)
        target.more = len(rows) >= limit
        if not target.loaded_once:
            target.loaded_once = True
            target.failures = info.consecutive_failures
            if info.next_attempt_at is not None:
                wait = (info.next_attempt_at - self.now_ms()) / 1000
                if wait > 0 and target.window:
                    self._pause(target, wait)
                    return
        self._pump(target)

    def _load_failed(self, target: _Target, failure: Failure) -> None:
        target.loading = False
        _log.failure("webhooks: reading the outbox of {kind} {id} failed", failure,
                     kind=target.kind, id=target.id)
        self._pause(target, self.policy.max_delay)

    def _pause(self, target: _Target, seconds: float) -> None:
        def resume() -> None:
            target.timer = None
            target.stale = True
            self._pump(target)

        target.timer = self._clock.callLater(seconds, resume)

    # --- one attempt ---------------------------------------------------------------------

    def _request(self, target: _Target, rows: list[wdb.OutboxRow]
                 ) -> tuple[str, str, dict[str, str], bytes, bool]:
        info = target.info
        assert info is not None
        row = rows[0]
        if target.kind == "hook":
            assert info.url is not None
            events = "[" + ",".join(r.payload for r in rows) + "]"
            body = signing.bbb_callback_body(self._domain, events, self.now_ms())
            checksum = signing.bbb_checksum(info.url, body, self._secret,
                                            info.checksum_algorithm)
            return ("POST", signing.bbb_signed_url(info.url, checksum),
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    body.encode("utf-8"), False)
        if target.kind == "endpoint":
            assert info.url is not None
            payload = row.payload.encode("utf-8")
            headers = {"Content-Type": "application/json",
                       **signing.standard_headers(info.keys, row.event_id,
                                                  int(self._clock.seconds()), payload)}
            return "POST", info.url, headers, payload, True
        assert row.url is not None
        if row.method == "POST":  # a one-off callback with a form body (recording ready)
            return ("POST", row.url, {"Content-Type": "application/x-www-form-urlencoded"},
                    row.payload.encode("utf-8"), False)
        return row.method, row.url, {}, b"", False

    def _send(self, target: _Target, rows: list[wdb.OutboxRow]) -> None:
        try:
            method, url, headers, body, guarded = self._request(target, rows)
        except Exception:  # noqa: BLE001 - a bad row must not stop the target
            _log.failure("webhooks: building the request for outbox row {seq} failed",
                         seq=rows[0].seq)
            self._failed(target, rows, "the request could not be built")
            return

        def send() -> Deferred[int]:
            if not self._running or target.gone:
                raise CancelledError()
            request = self._sender.send(method, url, headers, body, guarded=guarded)
            self._requests.add(request)

            def done(result: Any) -> Any:
                self._requests.discard(request)
                return result

            request.addBoth(done)
            return request

        attempt: Deferred[int] = self._slots.run(send)
        attempt.addCallbacks(lambda status: self._answered(target, rows, status),
                             lambda failure: self._errored(target, rows, failure))

    def _answered(self, target: _Target, rows: list[wdb.OutboxRow], status: int) -> None:
        if not self._running:
            target.in_flight.pop(rows[0].ordering_key, None)
            return
        if 200 <= status < 300 or (target.kind == "hook" and status == 401):
            self._delivered(target, rows)
        else:
            self._failed(target, rows, f"HTTP {status}")

    def _errored(self, target: _Target, rows: list[wdb.OutboxRow], failure: Failure) -> None:
        if not self._running or (target.gone and failure.check(CancelledError)):
            # stopped (the request was cancelled): the rows stay for the next start
            target.in_flight.pop(rows[0].ordering_key, None)
            self._check_idle()
            return
        self._failed(target, rows, describe_failure(failure))

    def _delivered(self, target: _Target, rows: list[wdb.OutboxRow]) -> None:
        target.in_flight.pop(rows[0].ordering_key, None)
        target.failures = 0
        now = self.now_ms()
        for row in rows:
            target.acked.add(row.seq)
            self.delivered += 1
            self._results.add(wdb.Delivered(target.kind, target.id, row.seq, now))
        self._pump(target)

    def _failed(self, target: _Target, rows: list[wdb.OutboxRow], error: str) -> None:
        target.in_flight.pop(rows[0].ordering_key, None)
        self.failed += 1
        if target.gone:
            self._check_idle()
            return
        for row in rows:
            bisect.insort(target.window, row, key=lambda r: r.seq)
        now = self.now_ms()
        if target.timer is not None:
            # paused already: this request was in flight when another one failed
            for row in rows:
                self._results.add(wdb.Failed(target.kind, target.id, row.seq, now, error,
                                             None, None))
            return
        target.failures += 1
        _log.info("webhooks: delivery of {event_id} to {kind} {id} failed ({error}); "
                  "consecutive failures: {failures}", event_id=rows[0].event_id,
                  kind=target.kind, id=target.id, error=error, failures=target.failures)
        for row in rows[1:]:
            self._results.add(wdb.Failed(target.kind, target.id, row.seq, now, error, None,
                                         None))
        if target.failures >= self.policy.max_failures:
            self._results.add(wdb.Failed(target.kind, target.id, rows[0].seq, now, error,
                                         target.failures, None))
            reason = f"{target.failures} consecutive failures; last: {error}"
            self._results.add(wdb.Disabled(target.kind, target.id, now, reason))
            _log.warn("webhooks: {kind} {id} disabled after {reason}", kind=target.kind,
                      id=target.id, reason=reason)
            self.forget(target.key)
            return
        delay = self.policy.delay(target.failures, self._rng)
        self._results.add(wdb.Failed(target.kind, target.id, rows[0].seq, now, error,
                                     target.failures, now + int(delay * 1000)))
        self._pause(target, delay)

    def _written(self, results: Any, _: None) -> None:
        for result in results:
            if isinstance(result, wdb.Delivered):
                target = self._targets.get((result.kind, result.target_id))
                if target is not None:
                    target.acked.discard(result.seq)
                    if target.idle:
                        self._pump(target)
        self._check_idle()
