"""The asynchronous store on its worker thread, with the real reactor (pytest-twisted)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from meetplatform.store import Store, StoreClosed

NOW = 1_700_000_000_000
DAY = 86_400_000
ROOM = {"alias": "standup", "name": "Standup", "type": "webinar", "visibility": "public",
            "lobby": True, "max_participants": 12, "camera": False, "microphone": True,
            "screenshare": False, "not_before": None, "expires_at": NOW + 7 * DAY,
            "metadata": {"course": "101"}}


def reactor() -> Any:
    from twisted.internet import reactor as installed  # pytest-twisted installed it

    return installed


@pytest_twisted.ensureDeferred
async def test_queries_run_off_the_reactor_thread(tmp_path: Path) -> None:
    """Every query runs on the store's own thread, never on the reactor's."""
    store = Store.open(reactor(), tmp_path)
    try:
        worker = await store.run(lambda db: threading.get_ident())
        assert worker != threading.get_ident()
        again = await store.run(lambda db: threading.get_ident())
        assert again == worker  # one dedicated thread: one connection, no contention
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    """Clients, spaces, rooms, invitations and access tokens written, the store closed and
    opened again from the same file: all there, and a used invitation is still used."""
    store = Store.open(reactor(), tmp_path)
    client, space, secret = await store.create_client("acme", NOW)
    await store.update_space(space.id, {"visibility": "public",
                                        "embed_origins": ["https://lms.example.com"]}, NOW)
    room = await store.create_room(space.id, ROOM, NOW)
    used, used_secret = await store.create_user_token(
        space_id=space.id, room_id=room.id, role="moderator", display_name="Ada",
        external_user_id="u-1", permissions={"camera": False}, max_uses=1, not_before=None,
        expires_at=NOW + DAY, now=NOW)
    pending, pending_secret = await store.create_user_token(
        space_id=space.id, room_id=None, role="viewer", display_name="", external_user_id="",
        permissions={}, max_uses=2, not_before=None, expires_at=NOW + DAY, now=NOW)
    won = await store.activate_user_token(used_secret, NOW + 1, grant_scope=("rooms:read",),
                                          grant_ttl_ms=DAY)
    assert won.won and won.access_token
    issued = await store.issue_access_token(client.id, ["rooms:read"], NOW, DAY)
    assert issued is not None
    await store.close()

    reopened = Store.open(reactor(), tmp_path)
    try:
        assert await reopened.check_client_secret(client.id, secret) is not None
        space_again = await reopened.space_of_client(client.id)
        assert space_again is not None and space_again.visibility == "public"
        assert space_again.embed_origins == ("https://lms.example.com",)
        assert await reopened.get_room(room.id) == room
        assert (await reopened.room_by_alias("standup")) == room
        used_again = await reopened.get_user_token(used.id)
        assert used_again is not None and used_again.uses == 1
        assert used_again.status(NOW + 2) == "activated"
        lost = await reopened.activate_user_token(used_secret, NOW + 2)
        assert not lost.won and lost.reason == "used"
        assert (await reopened.get_user_token(pending.id)) == pending
        assert (await reopened.activate_user_token(pending_secret, NOW + 2)).won
        token = await reopened.find_access_token(issued[1])
        assert token is not None and token.active(NOW + 2)
        user_token = await reopened.find_access_token(won.access_token)
        assert user_token is not None and user_token.room_id == room.id
    finally:
        await reopened.close()


@pytest_twisted.ensureDeferred
async def test_a_closed_store_refuses_queries(tmp_path: Path) -> None:
    """After close, a query fails with StoreClosed instead of hanging."""
    store = Store.open(reactor(), tmp_path)
    await store.close()
    with pytest.raises(StoreClosed):
        await store.list_clients()


@pytest_twisted.ensureDeferred
async def test_errors_come_back_as_failures(tmp_path: Path) -> None:
    """An exception on the worker thread reaches the caller, and the store keeps working."""
    store = Store.open(reactor(), tmp_path)
    try:
        with pytest.raises(ZeroDivisionError):
            await store.run(lambda db: 1 / 0)
        assert await store.list_clients() == []
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_activations_share_transactions_and_fail_alone(tmp_path: Path) -> None:
    """Activations sent together are group-committed (fewer transactions than activations,
    each answered once its transaction committed); exactly as many win as there are uses,
    each winner's observer ran, and one that fails is undone alone."""
    from twisted.internet.defer import DeferredList, ensureDeferred

    store = Store.open(reactor(), tmp_path)
    try:
        _, space, _ = await store.create_client("acme", NOW)
        room = await store.create_room(space.id, ROOM, NOW)
        token, secret = await store.create_user_token(
            space_id=space.id, room_id=room.id, role="participant", display_name="",
            external_user_id="", permissions={}, max_uses=30, not_before=None,
            expires_at=NOW + DAY, now=NOW)
        batches: list[int] = []
        seen: list[str] = []

        def observer(db: Any, kind: str, record: Any) -> None:
            seen.append(kind)

        store.observe(observer)
        real = store._commit_activations

        def counting() -> None:
            batches.append(len(store._activations))
            real()

        store._commit_activations = counting  # type: ignore[method-assign]
        good = [ensureDeferred(store.activate_user_token(
            secret, NOW + 1, grant_scope=("rooms:read",), grant_ttl_ms=DAY))
            for _ in range(20)]
        bad = ensureDeferred(store.activate_user_token(  # its scope cannot be stored
            secret, NOW + 1, grant_scope=(object(),), grant_ttl_ms=DAY))  # type: ignore[arg-type]
        good += [ensureDeferred(store.activate_user_token(
            secret, NOW + 1, grant_scope=("rooms:read",), grant_ttl_ms=DAY))
            for _ in range(20)]
        results = await DeferredList([*good, bad], consumeErrors=True)
        outcomes = [r for ok, r in results[:40] if ok]
        assert len(outcomes) == 40
        assert not results[40][0]  # the bad one failed, alone
        assert sum(o.won for o in outcomes) == 30
        assert len(batches) < 41 and sum(batches) == 41
        assert seen.count("userToken.activated") == 30
        stored = await store.get_user_token(token.id)
        assert stored is not None and stored.uses == 30
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_rooms_and_spaces_read_from_memory_stay_exact(tmp_path: Path) -> None:
    """Rooms and spaces are read from memory after the first read, and every change
    through the store shows at once: an update, a delete, and a read that was in flight
    while a change ran (it is not kept). A room id never finds a space, or the reverse."""
    from twisted.internet.defer import ensureDeferred

    store = Store.open(reactor(), tmp_path)
    try:
        _, space, _ = await store.create_client("acme", NOW)
        room = await store.create_room(space.id, ROOM, NOW)
        assert await store.get_room(room.id) == room
        assert await store.get_space(space.id) == space
        queries: list[str] = []
        store._call = _counting(store._call, queries)  # type: ignore[method-assign]
        assert await store.get_room(room.id) == room and queries == []  # from memory
        assert await store.get_room(space.id) is None  # a space's id is not a room's
        in_flight = ensureDeferred(store.get_room(room.id + "x"))  # absent: not cached
        renamed = await store.update_room(room.id, {"name": "Renamed"}, NOW + 1)
        await in_flight
        assert renamed is not None and (await store.get_room(room.id)) == renamed
        await store.update_space(space.id, {"visibility": "public"}, NOW + 2)
        updated_space = await store.get_space(space.id)
        assert updated_space is not None and updated_space.visibility == "public"
        store._records.clear()
        racing = ensureDeferred(store.get_room(room.id))  # runs before the delete
        deleting = ensureDeferred(store.delete_room(room.id))
        after = ensureDeferred(store.get_room(room.id))  # sent before the delete finished
        assert (await racing) == renamed and await deleting and (await after) is None
        assert await store.get_room(room.id) is None
    finally:
        await store.close()


def _counting(call: Any, queries: list[str]) -> Any:
    def counted(fn: Any) -> Any:
        queries.append(getattr(fn, "__name__", "?"))
        return call(fn)

    return counted


@pytest_twisted.ensureDeferred
async def test_listed_rooms_from_memory_follow_every_change(tmp_path: Path) -> None:
    """A page of rooms is served from memory until a room is created, changed or
    deleted through the store: each of those shows in the very next listing."""
    store = Store.open(reactor(), tmp_path)
    try:
        _, space, _ = await store.create_client("acme", NOW)
        first = await store.create_room(space.id, ROOM, NOW)
        assert [r.id for r in await store.list_rooms(space.id, None, 10)] == [first.id]
        assert [r.id for r in await store.list_rooms(space.id, None, 10)] == [first.id]
        second = await store.create_room(space.id, {**ROOM, "alias": "other"}, NOW + 1)
        assert [r.id for r in await store.list_rooms(space.id, None, 10)] == [
            first.id, second.id]
        await store.update_room(first.id, {"name": "Renamed"}, NOW + 2)
        listed = await store.list_rooms(space.id, None, 10)
        assert listed[0].name == "Renamed"
        await store.delete_room(second.id)
        assert [r.id for r in await store.list_rooms(space.id, None, 10)] == [first.id]
    finally:
        await store.close()
