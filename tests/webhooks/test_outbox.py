"""The fan-out into the outbox and the receivers the surfaces manage, without a service.

:func:`meetplatform.webhooks.outbox.enqueue` decides which receivers get an occurrence
and renders each body once; the store only keeps the rows. :class:`Receivers` makes the
changes the surfaces ask for and tells the dispatcher (here a recorder) afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from meetplatform.store import Store
from meetplatform.store import webhooks_db as wdb
from meetplatform.store.database import Database
from meetplatform.webhooks import outbox, payloads
from meetplatform.webhooks.events import MeetingRef, Occurrence
from meetplatform.webhooks.receivers import Receivers, TooMany
from tests.support import result

MEETING = MeetingRef("int-1", "m1", None, "m1", None)


class Recorder:
    """Stands for the dispatcher: what it was told, in order."""

    def __init__(self) -> None:
        self.told: list[tuple[str, tuple[str, str]]] = []

    def forget(self, key: tuple[str, str]) -> None:
        self.told.append(("forget", key))

    def refresh(self, key: tuple[str, str]) -> None:
        self.told.append(("refresh", key))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open_inline(tmp_path)


def done(coro: Any) -> Any:
    return result(Deferred.fromCoroutine(coro))


def new_space(store: Store) -> str:
    """A space of a new client (endpoints belong to a space that exists)."""
    return done(store.create_client("app", 0))[1].id  # type: ignore[no-any-return]


def rows(store: Store) -> list[tuple[str, str, str, str, str, str | None]]:
    def query(db: Database) -> list[tuple[str, str, str, str, str, str | None]]:
        return [tuple(r) for r in db.connection.execute(  # type: ignore[misc]
            "SELECT event_id, event_type, target_kind, target_id, method, url"
            " FROM webhook_outbox ORDER BY seq")]
    return done(store.run(query))  # type: ignore[no-any-return]


def payload_of(store: Store, kind: str, target_id: str) -> str:
    return done(store.run(lambda db: db.connection.execute(  # type: ignore[no-any-return]
        "SELECT payload FROM webhook_outbox WHERE target_kind = ? AND target_id = ?",
        (kind, target_id)).fetchone()[0]))


def test_hooks_get_the_events_of_their_meeting_and_ids_with_their_body(store: Store) -> None:
    """A hook receives its meeting's events (or all), of its event ids (or all); a raw
    hook the raw body, the others the mapped one; rows follow hooks' ids in order."""
    receivers = Receivers(store)

    def hook(url: str, **kwargs: Any) -> str:
        options: dict[str, Any] = {"meeting_id": None, "event_ids": None, "get_raw": False}
        options.update(kwargs)
        made, duplicated = done(receivers.create_hook(
            callback_url=url, checksum_algorithm="sha1", now=1, **options))
        assert not duplicated
        return made.id  # type: ignore[no-any-return]

    every = hook("http://a.example/every")
    own = hook("http://a.example/own", meeting_id="m1")
    other = hook("http://a.example/other", meeting_id="m2")
    raw = hook("http://a.example/raw", get_raw=True, event_ids=["user-joined"])
    created = Occurrence("evt_1", 5, "k", meeting=MEETING, bbb_name="meeting-created")
    joined = Occurrence("evt_2", 6, "k", meeting=MEETING, bbb_name="user-joined")
    targets = done(store.run(lambda db: outbox.enqueue(db, [created, joined])))
    assert targets == {("hook", every), ("hook", own), ("hook", raw)}
    assert other not in {t for _, t in targets}
    by_id = sorted([every, own, raw])
    assert rows(store) == (
        [("evt_1", "meeting-created", "hook", h, "POST", None) for h in by_id if h != raw]
        + [("evt_2", "user-joined", "hook", h, "POST", None) for h in by_id])
    assert payload_of(store, "hook", raw) == payloads.bbb_raw(joined)
    assert payload_of(store, "hook", own) == payloads.bbb_mapped(created)


def test_endpoints_get_their_spaces_wanted_types_and_callbacks_their_get(
        store: Store) -> None:
    """Enabled endpoints of the event's space get it when they want its type (empty:
    all), with the JSON:API body; a disabled one gets nothing; each end callback URL
    is its own GET target."""
    receivers = Receivers(store)
    sp_1, sp_2 = new_space(store), new_space(store)
    everything, secret = done(receivers.create_endpoint(
        space_id=sp_1, url="https://e.example/all", description="", event_types=[],
        now=1))
    assert secret.startswith("whsec_")
    rooms, _ = done(receivers.create_endpoint(
        space_id=sp_1, url="https://e.example/rooms", description="",
        event_types=["room.created"], now=1))
    off, _ = done(receivers.create_endpoint(
        space_id=sp_1, url="https://e.example/off", description="", event_types=[],
        now=1, enabled=False))
    assert not off.enabled
    elsewhere, _ = done(receivers.create_endpoint(
        space_id=sp_2, url="https://e.example/2", description="", event_types=[], now=1))
    started = Occurrence("evt_3", 7, "k", rest_type="session.started", space_id=sp_1,
                         callbacks=("https://cb.example/end",))
    targets = done(store.run(lambda db: outbox.enqueue(db, [started])))
    (callback,) = [t for t in targets if t[0] == "callback"]
    assert callback[1].startswith(outbox.CALLBACK_ID_PREFIX)
    assert targets == {("endpoint", everything.id), callback}
    assert rows(store) == [
        ("evt_3", "session.started", "endpoint", everything.id, "POST", None),
        ("evt_3", "meeting-ended-callback", "callback", callback[1], "GET",
         "https://cb.example/end")]
    assert json.loads(payload_of(store, "endpoint", everything.id)) == json.loads(
        payloads.rest_body(started))
    assert rooms.id not in {t for _, t in targets}
    assert elsewhere.id not in {t for _, t in targets}


def test_an_endpoint_signs_with_the_key_of_the_secret_shown_once(store: Store) -> None:
    """The store keeps only the sealed key of the secret the caller was given; after a
    rotation the new key signs first and the previous one still signs."""
    from meetplatform.webhooks import signing

    receivers = Receivers(store)
    sp_1 = new_space(store)
    endpoint, secret = done(receivers.create_endpoint(
        space_id=sp_1, url="https://e.example/x", description="", event_types=[], now=1))
    info = done(store.run(lambda db: wdb.target_info(db, "endpoint", endpoint.id, 2)))
    assert info.keys == (signing.key_of(secret),)
    rotated = done(receivers.rotate_endpoint_secret(endpoint.id, 3))
    assert rotated is not None
    record, new_secret = rotated
    assert new_secret != secret and record.secret_rotated_at == 3
    info = done(store.run(lambda db: wdb.target_info(db, "endpoint", endpoint.id, 4)))
    assert info.keys == (signing.key_of(new_secret), signing.key_of(secret))
    assert done(receivers.rotate_endpoint_secret("we_missing", 5)) is None


def test_receivers_tell_the_dispatcher_after_each_change(store: Store) -> None:
    """A hook destroyed, an endpoint disabled or deleted: the dispatcher forgets it; an
    endpoint changed, enabled again or given a new secret: it reads it anew. Nothing is
    told for what did not exist."""
    dispatcher = Recorder()
    receivers = Receivers(store, dispatcher)  # type: ignore[arg-type]
    sp_1 = new_space(store)
    hook, _ = done(receivers.create_hook(callback_url="http://a.example/h", meeting_id=None,
                                         event_ids=None, get_raw=False,
                                         checksum_algorithm="sha1", now=1))
    assert done(receivers.destroy_hook(hook.id)) is True
    assert done(receivers.destroy_hook(hook.id)) is False
    endpoint, _ = done(receivers.create_endpoint(
        space_id=sp_1, url="https://e.example/x", description="", event_types=[], now=1))
    key = ("endpoint", endpoint.id)
    done(receivers.update_endpoint(endpoint.id, {"enabled": False}, 2))
    done(receivers.update_endpoint(endpoint.id, {"enabled": True}, 3))
    done(receivers.update_endpoint(endpoint.id, {"description": "d"}, 4))
    done(receivers.rotate_endpoint_secret(endpoint.id, 5))
    assert done(receivers.update_endpoint("we_missing", {"description": "d"}, 6)) is None
    assert done(receivers.delete_endpoint(endpoint.id)) is True
    assert dispatcher.told == [("forget", ("hook", hook.id)), ("forget", key),
                               ("refresh", key), ("refresh", key), ("refresh", key),
                               ("forget", key)]


def test_limits_are_refused_with_too_many(store: Store) -> None:
    receivers = Receivers(store)
    sp_1 = new_space(store)
    for n in range(wdb.MAX_ENDPOINTS_PER_SPACE):
        done(receivers.create_endpoint(space_id=sp_1, url=f"https://e.example/{n}",
                                       description="", event_types=[], now=1))
    with pytest.raises(TooMany):
        done(receivers.create_endpoint(space_id=sp_1, url="https://e.example/x",
                                       description="", event_types=[], now=1))
