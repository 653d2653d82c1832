"""The durable store: clients, spaces, rooms, invitations and access tokens in SQLite.

The database file lives in the data directory (``meetplatform.sqlite``), next to the
key that seals request-signing keys (``store.key``). The reactor thread never touches
SQLite: every query of :class:`~meetplatform.store.database.Database` runs on one
dedicated worker thread (a one-thread pool), and :class:`Store` hands back Deferreds.
One thread means one connection and no lock contention inside the process; other
processes (the operator CLI) may use the same file at the same time (WAL mode).

Usage (in the composition root)::

    store = Store.open(reactor, settings.data_dir)   # creates or upgrades the file
    ...
    await store.close()                              # the owner closes it (the service, on stop)

Tests and the CLI may use :meth:`Store.open_inline`, which runs the same queries in the
calling thread.

Why one module of this size: the store's thread, transaction and observer model, and the
read caches that must be dropped in the same transactions, are one mechanism; the
queries themselves live in :mod:`.database`, :mod:`.history_db` and :mod:`.webhooks_db`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from meetplatform.stats import JobStats
from meetplatform.store import sqlite
from meetplatform.store.database import AliasTaken, Database
from meetplatform.store.keys import KeyBox, hash_secret
from meetplatform.store.records import (
    AccessTokenRecord,
    ActivationOutcome,
    ClientRecord,
    RoomRecord,
    SpaceRecord,
    UserTokenRecord,
)

__all__ = [
    "DB_FILE_NAME",
    "AccessTokenRecord",
    "ActivationOutcome",
    "AliasTaken",
    "ClientRecord",
    "Database",
    "RoomRecord",
    "SpaceRecord",
    "Store",
    "StoreClosed",
    "UserTokenRecord",
    "open_database",
]

_log = Logger()

T = TypeVar("T")

#: ``observer(database, kind, record)``, inside the change's transaction (see
#: :meth:`Store.observe`); may return a function to run once the change has committed.
ChangeObserver = Callable[[Database, str, Any], "Callable[[], None] | None"]

DB_FILE_NAME = "meetplatform.sqlite"


def open_database(data_dir: Path) -> Database:
    """A blocking :class:`Database` on the data directory's file (created or upgraded)."""
    data_dir = Path(data_dir)
    path = data_dir / DB_FILE_NAME
    sqlite.create_or_upgrade(path)
    box = KeyBox.load_or_create(data_dir)
    return Database(sqlite.connect(path), box)


class StoreClosed(Exception):
    """The store was closed; no more queries are accepted."""


#: At most this many activations go into one transaction.
MAX_ACTIVATION_BATCH = 500


@dataclass(frozen=True)
class _PendingActivation:
    """An activation waiting for its group commit (see :meth:`Store.activate_user_token`)."""

    secret: str
    now: int
    grant_scope: tuple[str, ...]
    grant_ttl_ms: int
    waiter: Deferred[ActivationOutcome]


class Store:
    """Asynchronous access to the :class:`Database`: each call runs on the store's thread."""

    def __init__(self, opener: Callable[[], Database],
                 runner: Callable[[Callable[[], Any]], Deferred[Any]],
                 stop: Callable[[], None], *, stats: JobStats | None = None) -> None:
        self._opener = opener
        #: Jobs queued or running on the store's thread and their latency (the metrics).
        self.stats = stats or JobStats(None)
        self._runner = runner
        self._stop = stop
        self._db: Database | None = None
        self._closed = False
        self._observers: list[ChangeObserver] = []
        #: Grows after every change made through this store that can end an access
        #: token's validity (revocations, rotations, deletions); caches of verified tokens
        #: (:class:`meetplatform.restapi.auth.TokenCache`) drop what they hold when it moves.
        self.credentials_epoch = 0
        #: Rooms and spaces read recently, by id (see :meth:`get_room`, :meth:`get_space`).
        self._records: dict[tuple[str, str], RoomRecord | SpaceRecord] = {}
        self._records_epoch = 0
        #: (space id, cursor, limit) -> a page of ``list_rooms``, until any room changes.
        self._room_pages: dict[tuple[str, tuple[int, str] | None, int],
                               tuple[RoomRecord, ...]] = {}
        #: Invitations as recently read or activated, by secret hash, with the epochs they
        #: were read in (see :meth:`invitation_context`).
        self._invitations: dict[str, tuple[tuple[int, int], tuple[
            UserTokenRecord, SpaceRecord | None, ClientRecord | None,
            RoomRecord | None] | None]] = {}
        #: Activations waiting for the next group commit (see :meth:`activate_user_token`).
        self._activations: list[_PendingActivation] = []
        self._activating = False
        self._activations_idle: list[Deferred[None]] = []

    # --- opening and closing -------------------------------------------------------------

    @classmethod
    def open(cls, reactor: IReactorFromThreads, data_dir: Path) -> Store:
        """Create or upgrade the database file now (blocking: call it at start-up) and start
        the worker thread. Whoever opens it closes it (:meth:`close`); the service does on stop."""
        data_dir = Path(data_dir)
        path = data_dir / DB_FILE_NAME
        sqlite.create_or_upgrade(path)
        box = KeyBox.load_or_create(data_dir)
        pool = ThreadPool(minthreads=1, maxthreads=1, name="meetplatform-store")

        # The worker thread starts with the first query, so that a store nobody uses
        # (a service built but never serving) leaves no thread behind.
        def run(job: Callable[[], Any]) -> Deferred[Any]:
            if not pool.started:
                pool.start()
            return deferToThreadPool(reactor, pool, job)  # type: ignore[arg-type]

        def stop() -> None:
            if pool.started:
                pool.stop()

        store = cls(lambda: Database(sqlite.connect(path), box), run, stop,
                    stats=JobStats(cast(IReactorTime, reactor)))
        _log.info("store opened at {path}", path=str(path))
        return store

    @classmethod
    def open_inline(cls, data_dir: Path) -> Store:
        """The same store, running every query in the calling thread (tests, CLI tools)."""
        db = open_database(data_dir)

        def run(job: Callable[[], Any]) -> Deferred[Any]:
            try:
                return succeed(job())
            except Exception:  # noqa: BLE001 - handed to the caller as a Failure
                return fail(Failure())

        return cls(lambda: db, run, db.close)

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stop()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def close(self) -> None:
        """Finish the queries in flight, close the connection and stop the thread."""
        if self._closed:
            return
        while self._activating:  # activations waiting for a group commit are written too
            idle: Deferred[None] = Deferred()
            self._activations_idle.append(idle)
            await idle
        if self._db is not None:
            await self._call(lambda db: None)  # everything queued before has run
        self._close_now()

    # --- running queries -----------------------------------------------------------------

    def _call(self, fn: Callable[[Database], T]) -> Deferred[T]:
        if self._closed:
            return fail(StoreClosed("the store is closed"))

        def job() -> T:
            if self._db is None:
                self._db = self._opener()  # opened on the worker thread, used only there
            return fn(self._db)

        return self.stats.track(self._runner(job))

    async def run(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(database)`` on the store's thread (for queries without a method here)."""
        return await self._call(fn)

    # --- observers (webhooks) ------------------------------------------------------------

    def observe(self, observer: ChangeObserver) -> Callable[[], None]:
        """Call ``observer(database, kind, record)`` for every change made through this
        store, **inside the change's own transaction**, on the store's thread:
        ``room.created|updated|deleted`` (a :class:`RoomRecord`) and
        ``userToken.created|activated|revoked`` (a :class:`UserTokenRecord`). What the
        observer writes commits with the change, or not at all (the webhook outbox: a
        committed change always has its event). The observer may return a function, run on
        the reactor thread once the change has committed. An observer that raises is
        logged and its writes are undone; the change itself still commits. Returns a
        function that stops observing."""
        self._observers.append(observer)

        def stop() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return stop

    def _observed(self, db: Database, kind: str, record: Any,
                  observers: Sequence[ChangeObserver]) -> list[Callable[[], None]]:
        """Run ``observers`` inside the current transaction, each in a savepoint."""
        afters: list[Callable[[], None]] = []
        conn = db.connection
        for observer in observers:
            conn.execute("SAVEPOINT observer")
            try:
                after = observer(db, kind, record)
            except Exception:  # noqa: BLE001 - an observer's bug must not fail the change
                conn.execute("ROLLBACK TO observer")
                conn.execute("RELEASE observer")
                _log.failure("store observer {observer!r} failed on {kind}",
                             observer=observer, kind=kind)
                continue
            conn.execute("RELEASE observer")
            if after is not None:
                afters.append(after)
        return afters

    async def _change(self, change: Callable[[Database], T],
                      event: Callable[[T], tuple[str, Any] | None]) -> T:
        """Run ``change`` in one transaction with the observers of the event it makes."""
        observers = list(self._observers)

        def job(db: Database) -> tuple[T, list[Callable[[], None]]]:
            with db.transaction():
                result = change(db)
                made = event(result) if observers else None
                afters = self._observed(db, *made, observers) if made is not None else []
            return result, afters

        result, afters = await self._call(job)
        for after in afters:
            try:
                after()
            except Exception:  # noqa: BLE001 - the change is committed; log and go on
                _log.failure("store observer's follow-up failed")
        return result

    async def _revoking(self, fn: Callable[[Database], T]) -> T:
        """Run a change that may end access tokens; move :attr:`credentials_epoch` once it
        has run (committed or failed), so that no cache keeps a token it revoked."""
        try:
            return await self._call(fn)
        finally:
            self.credentials_epoch += 1

    # --- rooms and spaces read from memory -----------------------------------------------

    #: At most this many rooms and spaces are kept in memory.
    RECORDS_CACHED = 10_000

    async def _cached(self, key: tuple[str, str], read: Callable[[Database], T]) -> T:
        """``read``'s record for ``key`` from memory, else from the database (and kept).

        Rooms and spaces change only through this store (the operator CLI creates clients
        and their spaces, which are not cached until read, and never changes them), so
        the copy in memory stays exact: :meth:`_records_changed` drops it when a change
        has run, and a read that was in flight meanwhile is not kept (it may predate the
        change). Reads of a room or space on every JSON:API call then cost no round trip
        to the store's thread. Records are frozen; absent ones are not cached."""
        found = self._records.get(key)
        if found is not None:
            return found  # type: ignore[return-value]
        epoch = self._records_epoch
        record = await self._call(read)
        if record is not None and epoch == self._records_epoch:
            self._keep(key, record)  # type: ignore[arg-type]
        return record

    def _keep(self, key: tuple[str, str], record: RoomRecord | SpaceRecord) -> None:
        if key not in self._records and len(self._records) >= self.RECORDS_CACHED:
            del self._records[next(iter(self._records))]
        self._records[key] = record

    def _records_changed(self, *keys: tuple[str, str]) -> None:
        self._records_epoch += 1
        for key in keys:
            self._records.pop(key, None)
        self._room_pages.clear()

    # --- clients -------------------------------------------------------------------------

    async def create_client(self, name: str, now: int) -> tuple[ClientRecord, SpaceRecord, str]:
        return await self._call(lambda db: db.create_client(name, now))

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return await self._call(lambda db: db.get_client(client_id))

    async def list_clients(self) -> list[ClientRecord]:
        return await self._call(lambda db: db.list_clients())

    async def check_client_secret(self, client_id: str, secret: str) -> ClientRecord | None:
        return await self._call(lambda db: db.check_client_secret(client_id, secret))

    async def client_signing_key(self, client_id: str) -> tuple[ClientRecord, bytes] | None:
        return await self._call(lambda db: db.client_signing_key(client_id))

    async def revoke_client(self, client_id: str, now: int) -> ClientRecord | None:
        return await self._revoking(lambda db: db.revoke_client(client_id, now))

    async def rotate_client(self, client_id: str, now: int) -> tuple[ClientRecord, str] | None:
        return await self._revoking(lambda db: db.rotate_client(client_id, now))

    # --- access tokens -------------------------------------------------------------------

    async def issue_access_token(self, client_id: str, scope: Sequence[str], now: int,
                                 ttl_ms: int) -> tuple[AccessTokenRecord, str] | None:
        return await self._call(lambda db: db.issue_access_token(client_id, scope, now, ttl_ms))

    async def find_access_token(self, token: str) -> AccessTokenRecord | None:
        return await self._call(lambda db: db.find_access_token(token))

    async def revoke_access_token(self, token: str, client_id: str, now: int) -> bool:
        return await self._revoking(lambda db: db.revoke_access_token(token, client_id, now))

    async def purge_expired_access_tokens(self, now: int) -> int:
        return await self._revoking(lambda db: db.purge_expired_access_tokens(now))

    # --- spaces --------------------------------------------------------------------------

    async def get_space(self, space_id: str) -> SpaceRecord | None:
        return await self._cached(("space", space_id), lambda db: db.get_space(space_id))

    async def space_of_client(self, client_id: str) -> SpaceRecord | None:
        return await self._call(lambda db: db.space_of_client(client_id))

    async def update_space(self, space_id: str, changes: Mapping[str, Any],
                           now: int) -> SpaceRecord | None:
        try:
            return await self._call(lambda db: db.update_space(space_id, changes, now))
        finally:
            self._records_changed(("space", space_id))

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, space_id: str, fields: Mapping[str, Any],
                          now: int) -> RoomRecord:
        try:
            return await self._change(lambda db: db.create_room(space_id, fields, now),
                                      lambda room: ("room.created", room))
        finally:
            self._records_changed()  # the space's lists have one more room

    async def get_room(self, room_id: str) -> RoomRecord | None:
        return await self._cached(("room", room_id), lambda db: db.get_room(room_id))

    async def room_by_alias(self, alias: str) -> RoomRecord | None:
        return await self._call(lambda db: db.room_by_alias(alias))

    async def list_rooms(self, space_id: str, after: tuple[int, str] | None,
                         limit: int) -> list[RoomRecord]:
        """A page of the space's rooms, from memory until any room changes through this
        store; a room equal to the one kept in memory is that very record (so that what
        callers keep per record, such as an encoded resource, is found again)."""
        page = (space_id, after, limit)
        listed = self._room_pages.get(page)
        if listed is not None:
            return list(listed)
        epoch = self._records_epoch
        rooms = await self._call(lambda db: db.list_rooms(space_id, after, limit))
        out = []
        for room in rooms:
            key = ("room", room.id)
            kept = self._records.get(key)
            if kept is not None and kept == room:
                out.append(kept)  # type: ignore[arg-type]
                continue
            if epoch == self._records_epoch:
                self._keep(key, room)
            out.append(room)
        if epoch == self._records_epoch:  # pages are dropped on any change of any room
            if len(self._room_pages) >= self.RECORDS_CACHED:
                self._room_pages.clear()
            self._room_pages[page] = tuple(out)
        return out

    async def update_room(self, room_id: str, changes: Mapping[str, Any],
                          now: int) -> RoomRecord | None:
        try:
            return await self._change(
                lambda db: db.update_room(room_id, changes, now),
                lambda room: None if room is None else ("room.updated", room))
        finally:
            self._records_changed(("room", room_id))

    async def delete_room(self, room_id: str) -> bool:
        def delete(db: Database) -> tuple[RoomRecord | None, bool]:
            room = db.get_room(room_id) if self._observers else None
            return room, db.delete_room(room_id)

        def event(result: tuple[RoomRecord | None, bool]) -> tuple[str, Any] | None:
            room, deleted = result
            return ("room.deleted", room) if deleted and room is not None else None

        try:
            return (await self._change(delete, event))[1]
        finally:
            self.credentials_epoch += 1  # its invitations' access tokens went with it
            self._records_changed(("room", room_id))

    # --- user tokens ---------------------------------------------------------------------

    async def create_user_token(self, **kwargs: Any) -> tuple[UserTokenRecord, str]:
        """See :meth:`Database.create_user_token` for the keyword arguments."""
        return await self._change(lambda db: db.create_user_token(**kwargs),
                                  lambda made: ("userToken.created", made[0]))

    async def get_user_token(self, token_id: str) -> UserTokenRecord | None:
        return await self._call(lambda db: db.get_user_token(token_id))

    async def find_user_token(self, secret: str) -> UserTokenRecord | None:
        return await self._call(lambda db: db.find_user_token(secret))

    async def list_user_tokens(self, space_id: str, room_id: str | None,
                               after: tuple[int, str] | None,
                               limit: int) -> list[UserTokenRecord]:
        return await self._call(lambda db: db.list_user_tokens(space_id, room_id, after, limit))

    async def revoke_user_token(self, token_id: str, now: int) -> UserTokenRecord | None:
        try:
            return await self._change(
                lambda db: db.revoke_user_token(token_id, now),
                lambda token: None if token is None else ("userToken.revoked", token))
        finally:
            self.credentials_epoch += 1  # the access tokens its activations handed out

    async def invitation_context(self, secret: str, *, recent: bool = False) -> tuple[
            UserTokenRecord, SpaceRecord | None, ClientRecord | None, RoomRecord | None] | None:
        """The invitation with this secret, its space, the space's client and its room (if
        it is a room invitation), read in one job on the store's thread; ``None`` if unknown.

        ``recent=True`` accepts what an earlier read or activation of this invitation
        found, kept in memory, for a caller about to call :meth:`activate_user_token`: its
        conditional ``UPDATE`` decides with the database's state, and a kept record can
        only be behind it in ways that make an activation lose there, never refuse
        wrongly (uses only grow and are updated from every activation; a refund, a
        revocation and any change to rooms, spaces or clients through this store drop
        what is kept). Saves the round trip to the store's thread on every activation
        of a popular invitation.
        """
        key = hash_secret(secret) if recent else ""
        if recent:
            kept = self._invitations.get(key)
            if kept is not None and kept[0] == self._invitations_epoch():
                return kept[1]
        epoch = self._invitations_epoch()

        def read(db: Database) -> tuple[UserTokenRecord, SpaceRecord | None,
                                        ClientRecord | None, RoomRecord | None] | None:
            token = db.find_user_token(secret)
            if token is None:
                return None
            space = db.get_space(token.space_id)
            client = db.get_client(space.client_id) if space is not None else None
            room = db.get_room(token.room_id) if token.room_id is not None else None
            return token, space, client, room

        found = await self._call(read)
        if recent and found is not None and epoch == self._invitations_epoch():
            if len(self._invitations) >= self.RECORDS_CACHED:
                self._invitations.clear()
            self._invitations[key] = (epoch, found)
        return found

    def _invitations_epoch(self) -> tuple[int, int]:
        return (self._records_epoch, self.credentials_epoch)

    def _activated(self, secret: str, outcome: ActivationOutcome) -> None:
        """Keep the invitation's state after an activation (see :meth:`invitation_context`)."""
        if outcome.token is None:
            return
        key = hash_secret(secret)
        kept = self._invitations.get(key)
        if kept is not None and kept[0] == self._invitations_epoch():
            context = kept[1]
            if context is not None and context[0].uses <= outcome.token.uses:
                self._invitations[key] = (kept[0], (outcome.token, *context[1:]))

    async def activate_user_token(self, secret: str, now: int, *,
                                  grant_scope: Sequence[str] = (),
                                  grant_ttl_ms: int = 0) -> ActivationOutcome:
        """Use the invitation once (:meth:`Database.activate_user_token`), with its
        ``userToken.activated`` observers, and answer once that is **committed**.

        Group commit: while one transaction of activations is being written (with
        ``synchronous=FULL``, one fsync), the activations that arrive wait and all go into
        the next one, each in its own savepoint (one that fails is undone alone and fails
        alone). A lone activation is written at once. So a burst of invitees costs a few
        fsyncs instead of one each, and no activation is answered before it is on disk."""
        if self._closed:
            raise StoreClosed("the store is closed")
        waiter: Deferred[ActivationOutcome] = Deferred()
        self._activations.append(
            _PendingActivation(secret, now, tuple(grant_scope), grant_ttl_ms, waiter))
        if not self._activating:
            self._commit_activations()
        return await waiter

    def _commit_activations(self) -> None:
        batch = self._activations[:MAX_ACTIVATION_BATCH]
        del self._activations[:MAX_ACTIVATION_BATCH]
        self._activating = True
        observers = list(self._observers)

        def job(db: Database) -> list[tuple[ActivationOutcome, list[Callable[[], None]]]
                                      | Failure]:
            results: list[tuple[ActivationOutcome, list[Callable[[], None]]] | Failure] = []
            with db.transaction() as conn:
                for item in batch:
                    conn.execute("SAVEPOINT activation")
                    try:
                        outcome = db.activate_user_token(
                            item.secret, item.now, grant_scope=item.grant_scope,
                            grant_ttl_ms=item.grant_ttl_ms)
                        afters = (self._observed(db, "userToken.activated", outcome.token,
                                                 observers)
                                  if observers and outcome.won and outcome.token is not None
                                  else [])
                    except Exception:  # noqa: BLE001 - this activation fails, not the batch
                        conn.execute("ROLLBACK TO activation")
                        conn.execute("RELEASE activation")
                        results.append(Failure())
                        continue
                    conn.execute("RELEASE activation")
                    results.append((outcome, afters))
            return results

        def committed(results: list[tuple[ActivationOutcome, list[Callable[[], None]]]
                                     | Failure]) -> None:
            self._activating = False
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, Failure):
                    item.waiter.errback(result)
                    continue
                outcome, afters = result
                self._activated(item.secret, outcome)
                for after in afters:
                    try:
                        after()
                    except Exception:  # noqa: BLE001 - the change is committed; log, go on
                        _log.failure("store observer's follow-up failed")
                item.waiter.callback(outcome)
            self._next_activations()

        def failed(failure: Failure) -> None:
            self._activating = False
            for item in batch:
                item.waiter.errback(failure)
            self._next_activations()

        self._call(job).addCallbacks(committed, failed)

    def _next_activations(self) -> None:
        if self._activating:
            return
        if self._activations and not self._closed:
            self._commit_activations()
            return
        waiting, self._activations = self._activations, []
        for item in waiting:  # the store was closed under them
            item.waiter.errback(StoreClosed("the store is closed"))
        idle, self._activations_idle = self._activations_idle, []
        for waiter in idle:
            waiter.callback(None)

    async def refund_activation(self, token_id: str, access_token_id: str | None) -> None:
        await self._revoking(lambda db: db.refund_activation(token_id, access_token_id))
