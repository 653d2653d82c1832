"""Group commit: many small writes from the reactor, few transactions on the store's thread.

Registry events arrive one by one on the reactor thread (a join, a leave, a mute...). Each
would be one SQLite transaction, and with ``synchronous=FULL`` each transaction waits for
the disk. :class:`BatchWriter` keeps at most one batch in flight: while it is written,
new items wait in a buffer, and all of them go into the next transaction. Under light load
every item is written at once (a batch of one); under heavy load batches grow and the
number of transactions (and fsyncs) stays small. Adding an item never blocks and never
waits for the disk.

The store runs its jobs one at a time in the order they were submitted, so batches are
written in the order their items were added, and a query submitted after :meth:`flush`
sees every item added before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from meetplatform.store import Database, Store, StoreClosed

_log = Logger()

T = TypeVar("T")
R = TypeVar("R")


class BatchWriter(Generic[T, R]):
    """Writes items with ``apply(database, items)`` on the store's thread, in batches.

    ``on_written(items, result)`` runs on the reactor thread after each batch committed.
    A batch that fails is logged with the number of items lost; later batches go on.
    """

    def __init__(self, store: Store, apply: Callable[[Database, Sequence[T]], R], *,
                 name: str, on_written: Callable[[Sequence[T], R], None] | None = None,
                 max_batch: int = 2000) -> None:
        self._store = store
        self._apply = apply
        self._name = name
        self._on_written = on_written
        self._max_batch = max_batch
        self._buffer: list[T] = []
        self._in_flight = 0
        self._submitted = 0
        self._done = 0
        self._waiters: list[tuple[int, Deferred[None]]] = []

    @property
    def pending(self) -> int:
        """Items added but not yet written (buffered or in flight)."""
        return len(self._buffer) + self._in_flight

    def add(self, item: T) -> None:
        """Queue ``item``; it is written in the next transaction (now, if none is in flight)."""
        self._buffer.append(item)
        self._ready()

    def extend(self, items: Iterable[T]) -> None:
        """Queue several items (they go in the same transaction if they fit)."""
        self._buffer.extend(items)
        if self._buffer:
            self._ready()

    def _ready(self) -> None:
        if not self._in_flight:  # else the next batch goes when this one is written
            self._submit()

    def flush(self) -> Deferred[None]:
        """Submit what is buffered now; fires once everything added so far is written."""
        while self._buffer:
            self._submit()
        target = self._submitted
        if self._done >= target:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append((target, waiter))
        return waiter

    def _submit(self) -> None:
        items = self._buffer[:self._max_batch]
        del self._buffer[:self._max_batch]
        self._in_flight += len(items)
        self._submitted += 1
        apply = self._apply

        def job(db: Database) -> R:
            return apply(db, items)

        written: Deferred[R] = Deferred.fromCoroutine(self._store.run(job))
        written.addCallbacks(lambda result: self._written(items, result),
                             lambda failure: self._failed(items, failure))

    def _written(self, items: list[T], result: R) -> None:
        if self._on_written is not None:
            try:
                self._on_written(items, result)
            except Exception:  # noqa: BLE001 - a callback's bug must not stop the writer
                _log.failure("{name}: handling a written batch failed", name=self._name)
        self._finished(items)

    def _failed(self, items: list[T], failure: Failure) -> None:
        if failure.check(StoreClosed):
            _log.warn("{name}: {count} item(s) not written: the store is closed",
                      name=self._name, count=len(items))
        else:
            _log.failure("{name}: writing {count} item(s) failed; they are lost", failure,
                         name=self._name, count=len(items))
        self._finished(items)

    def _finished(self, items: list[T]) -> None:
        self._in_flight -= len(items)
        self._done += 1
        ready = [w for w in self._waiters if w[0] <= self._done]
        if ready:
            self._waiters = [w for w in self._waiters if w[0] > self._done]
            for _, waiter in ready:
                waiter.callback(None)
        if self._buffer and not self._in_flight:
            self._submit()
