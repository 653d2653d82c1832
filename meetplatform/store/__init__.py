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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from meetplatform.store.keys import KeyBox
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
        return await self._call(lambda db: db.revoke_client(client_id, now))

    async def rotate_client(self, client_id: str, now: int) -> tuple[ClientRecord, str] | None:
        return await self._call(lambda db: db.rotate_client(client_id, now))

    # --- access tokens -------------------------------------------------------------------

    async def issue_access_token(self, client_id: str, scope: Sequence[str], now: int,
                                 ttl_ms: int) -> tuple[AccessTokenRecord, str] | None:
        return await self._call(lambda db: db.issue_access_token(client_id, scope, now, ttl_ms))

    async def find_access_token(self, token: str) -> AccessTokenRecord | None:
        return await self._call(lambda db: db.find_access_token(token))

    async def revoke_access_token(self, token: str, client_id: str, now: int) -> bool:
        return await self._call(lambda db: db.revoke_access_token(token, client_id, now))

    async def purge_expired_access_tokens(self, now: int) -> int:
        return await self._call(lambda db: db.purge_expired_access_tokens(now))

    # --- spaces --------------------------------------------------------------------------

    async def get_space(self, space_id: str) -> SpaceRecord | None:
        return await self._call(lambda db: db.get_space(space_id))

    async def space_of_client(self, client_id: str) -> SpaceRecord | None:
        return await self._call(lambda db: db.space_of_client(client_id))

    async def update_space(self, space_id: str, changes: Mapping[str, Any],
                           now: int) -> SpaceRecord | None:
        return await self._call(lambda db: db.update_space(space_id, changes, now))

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, space_id: str, fields: Mapping[str, Any],
                          now: int) -> RoomRecord:
        return await self._change(lambda db: db.create_room(space_id, fields, now),
                                  lambda room: ("room.created", room))

    async def get_room(self, room_id: str) -> RoomRecord | None:
        return await self._call(lambda db: db.get_room(room_id))

    async def room_by_alias(self, alias: str) -> RoomRecord | None:
        return await self._call(lambda db: db.room_by_alias(alias))

    async def list_rooms(self, space_id: str, after: tuple[int, str] | None,
                         limit: int) -> list[RoomRecord]:
        return await self._call(lambda db: db.list_rooms(space_id, after, limit))

    async def update_room(self, room_id: str, changes: Mapping[str, Any],
                          now: int) -> RoomRecord | None:
        return await self._change(
            lambda db: db.update_room(room_id, changes, now),
            lambda room: None if room is None else ("room.updated", room))

    async def delete_room(self, room_id: str) -> bool:
        def delete(db: Database) -> tuple[RoomRecord | None, bool]:
            room = db.get_room(room_id) if self._observers else None
            return room, db.delete_room(room_id)

        def event(result: tuple[RoomRecord | None, bool]) -> tuple[str, Any] | None:
            room, deleted = result
            return ("room.deleted", room) if deleted and room is not None else None

        return (await self._change(delete, event))[1]

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
        return await self._change(
            lambda db: db.revoke_user_token(token_id, now),
            lambda token: None if token is None else ("userToken.revoked", token))

    async def activate_user_token(self, secret: str, now: int, *,
                                  grant_scope: Sequence[str] = (),
                                  grant_ttl_ms: int = 0) -> ActivationOutcome:
        return await self._change(
            lambda db: db.activate_user_token(secret, now, grant_scope=grant_scope,
                                              grant_ttl_ms=grant_ttl_ms),
            lambda outcome: ("userToken.activated", outcome.token)
            if outcome.won and outcome.token is not None else None)

    async def refund_activation(self, token_id: str, access_token_id: str | None) -> None:
        await self._call(lambda db: db.refund_activation(token_id, access_token_id))
