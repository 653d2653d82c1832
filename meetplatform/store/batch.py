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

One bad item never costs the others their write. When a batch's transaction fails, the
same store job splits it in halves, each written in its own transaction, and so on down
to single items (bisection: k bad items among n cost about 2·k·log2(n) extra
transactions, where retrying every item alone would cost n fsyncs). An item that fails on
its own is *quarantined*: logged at error level with its reason and left out. It is not
kept in a quarantine table: the usual cause is text that cannot be encoded (a lone
surrogate, which the edges refuse since :mod:`meetplatform.text`), which a table in the
same database could not hold either, so the log line is its record. The line names the
item's type and the fields holding broken text, not their values: items carry display
names, meeting data and callback URLs, which logs must not collect. Retries happen inside
the batch's own store job, so order is kept and a query submitted after :meth:`flush`
still sees every item that could be written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from meetplatform.store import Database, Store, StoreClosed

_log = Logger()

T = TypeVar("T")
R = TypeVar("R")

#: Quarantined items logged one by one per batch; more are counted in one line.
MAX_LOGGED_PER_BATCH = 10
#: How deep :func:`describe` looks for broken text inside an item.
MAX_DESCRIBE_DEPTH = 6


@dataclass
class _Outcome(Generic[T, R]):
    """What one batch's store job did: the parts written (each with ``apply``'s result)
    and the items that failed alone, with their failure."""

    written: list[tuple[list[T], R]] = field(default_factory=list)
    refused: list[tuple[T, Failure]] = field(default_factory=list)


def describe(item: object) -> str:
    """An item's type and where it holds text that cannot be encoded (a lone surrogate),
    e.g. ``JoinOp (text that is not valid Unicode in full_name)``; never the values."""
    broken = sorted(set(_broken_text(item, "", 0)))
    name = type(item).__name__
    return f"{name} (text that is not valid Unicode in {', '.join(broken)})" if broken else name


def _broken_text(value: object, path: str, depth: int) -> Iterable[str]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield path or "the item"
        return
    if depth >= MAX_DESCRIBE_DEPTH:
        return
    children: Iterable[tuple[object, object]]
    if is_dataclass(value) and not isinstance(value, type):
        children = ((f.name, getattr(value, f.name)) for f in fields(value))
    elif isinstance(value, Mapping):
        children = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        children = enumerate(value)
    else:
        return
    for key, child in children:
        label = _label(key)
        yield from _broken_text(child, f"{path}.{label}" if path else label, depth + 1)
        if isinstance(key, str):
            yield from _broken_text(key, f"{path}.<a key>" if path else "<a key>", depth + 1)


def _label(key: object) -> str:
    if isinstance(key, int):
        return str(key)
    if isinstance(key, str) and key.isascii() and key.isprintable() and len(key) <= 64:
        return key
    return "?"


def _write(db: Database, apply: Callable[[Database, Sequence[T]], R],
           items: list[T]) -> _Outcome[T, R]:
    """``apply(db, items)``; if it fails, each half in its own transaction, down to single
    items, which are set aside when they fail alone (see the module's docstring)."""
    outcome: _Outcome[T, R] = _Outcome()
    pending = [items]
    while pending:
        part = pending.pop()
        try:
            outcome.written.append((part, apply(db, part)))
        except Exception:  # noqa: BLE001 - a bad item is quarantined, not fatal to the batch
            if len(part) == 1:
                failure = Failure()
                failure.cleanFailure()  # the traceback as text: no frames cross threads
                outcome.refused.append((part[0], failure))
            else:
                middle = len(part) // 2
                pending.extend((part[middle:], part[:middle]))  # the first half goes first
    return outcome


class BatchWriter(Generic[T, R]):
    """Writes items with ``apply(database, items)`` on the store's thread, in batches.

    ``on_written(items, result)`` runs on the reactor thread after each batch committed,
    once per transaction: for a batch that had to be split, once per part written. An
    item that cannot be written even alone is logged (quarantined) and left out; the rest
    of its batch is written, and later batches go on.
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

        def job(db: Database) -> _Outcome[T, R]:
            return _write(db, apply, items)

        written: Deferred[_Outcome[T, R]] = Deferred.fromCoroutine(self._store.run(job))
        written.addCallbacks(lambda outcome: self._written(items, outcome),
                             lambda failure: self._failed(items, failure))

    def _written(self, items: list[T], outcome: _Outcome[T, R]) -> None:
        if outcome.refused:
            self._quarantined(len(items), outcome.refused)
        if self._on_written is not None:
            for part, result in outcome.written:
                try:
                    self._on_written(part, result)
                except Exception:  # noqa: BLE001 - a callback's bug must not stop the writer
                    _log.failure("{name}: handling a written batch failed", name=self._name)
        self._finished(items)

    def _quarantined(self, batch: int, refused: list[tuple[T, Failure]]) -> None:
        """Log the items that could not be written even alone (their only record)."""
        for item, failure in refused[:MAX_LOGGED_PER_BATCH]:
            _log.failure("{name}: an item could not be written and was set aside "
                         "(the other items of its batch were written): {reason}; item: "
                         "{item}", failure, level=LogLevel.error, name=self._name,
                         reason=failure.getErrorMessage(), item=describe(item))
        if len(refused) > MAX_LOGGED_PER_BATCH:
            _log.error("{name}: {count} more item(s) of a batch of {batch} could not be "
                       "written and were set aside", name=self._name,
                       count=len(refused) - MAX_LOGGED_PER_BATCH, batch=batch)

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
