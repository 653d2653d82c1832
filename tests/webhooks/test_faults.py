"""Faults: the service is killed with events pending; the next one delivers all of them.

Over real HTTP to a receiver on 127.0.0.1:0: the first "process" (a world over the data
directory) is killed while the receiver holds its first requests unanswered and the rest
wait in the outbox; a second process on the same data directory (the store reopened)
delivers everything. The receiver deduplicates by event id, as receivers are told to:
every event arrives, some twice, but never twice with different ids.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from meetplatform.model import EndReason, Role
from meetplatform.store import webhooks_db as wdb
from meetplatform.webhooks import AddressPolicy, default_clients
from tests.support import make_clock
from tests.webhooks.harness import World
from tests.webhooks.receiver import Receiver, listen, stop

pytestmark = pytest.mark.integration


def world(tmp_path: Path, reactor: Any) -> World:
    clock = make_clock(time.time())
    sender = default_clients(reactor, AddressPolicy(["127.0.0.0/8"]), clock=clock)
    return World(tmp_path, sender=sender, clock=clock)


def identities(receiver: Receiver) -> dict[tuple[str, ...], set[str]]:
    """Each logical event (receiver, name, meeting, user or ordinal) -> the ids it came
    with. A well-behaved sender gives every logical event exactly one id."""
    seen: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for request in receiver.received:
        if request.path == "/hook":
            for event in json.loads(request.form["event"]):
                data = event["data"]
                user = data["attributes"].get("user", {}).get("internal-user-id", "")
                meeting = data["attributes"]["meeting"]["external-meeting-id"]
                seen[("hook", data["id"], meeting, user)].add(data["event"]["id"])
        else:
            body = json.loads(request.body)
            participant = body["data"].get("participant", {}).get("participantId", "")
            seen[("endpoint", body["type"], participant)].add(request.headers["webhook-id"])
    return seen


@pytest_twisted.ensureDeferred
async def test_killed_with_events_pending_then_restarted(tmp_path: Path) -> None:
    """Kill the service while its first deliveries are unanswered and the rest wait; a
    restart on the same data delivers every event; duplicates carry the same id."""
    from twisted.internet import reactor

    receiver = Receiver(status=None)  # holds requests: in flight when the kill comes
    port = await listen(reactor, receiver)
    number = port.getHost().port
    first = world(tmp_path, reactor)
    second: World | None = None
    try:
        first.hook(f"http://127.0.0.1:{number}/hook")
        client = first.rest.new_client()
        r = first.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                               token=client.token, json={"data": {
                                   "type": "webhookEndpoints",
                                   "attributes": {"url": f"http://127.0.0.1:{number}/space"}}})
        assert r.status == 201
        room = first.rest.create_room(client)
        seat = first.rest.request("POST", f"/rooms/{room['id']}/join", token=client.token,
                                  json={"data": {"type": "seats",
                                                 "attributes": {"displayName": "Ann"}}})
        ann = first.registry.connect(first.registry.seat_for_token(  # type: ignore[arg-type]
            seat.json["data"]["attributes"]["sessionToken"]))
        bob = first.join(ann.meeting, "Bob", Role.MODERATOR)
        first.registry.disconnect(bob)
        first.registry.end_meeting(ann.meeting, EndReason.ENDED_FROM_API)
        first.turn()
        # in flight: the hook's first event, and the endpoint's first of each key (the
        # room's, the session's); every other event waits behind one of them
        await receiver.wait(3, reactor)
        assert await first.store.run(wdb.outbox_size) == 6 + 7
        first.crash()

        receiver.status = 200
        second = world(tmp_path, reactor)
        await Deferred.fromCoroutine(second.webhooks.settle()).addTimeout(20, reactor)
        assert await second.store.run(wdb.outbox_size) == 0
        seen = identities(receiver)
        assert all(len(ids) == 1 for ids in seen.values()), seen
        assert sorted(key[:2] for key in seen) == sorted([
            ("hook", "meeting-created"), ("hook", "user-joined"), ("hook", "user-joined"),
            ("hook", "user-left"), ("hook", "user-left"), ("hook", "meeting-ended"),
            ("endpoint", "room.created"), ("endpoint", "session.started"),
            ("endpoint", "participant.joined"), ("endpoint", "participant.joined"),
            ("endpoint", "participant.left"), ("endpoint", "participant.left"),
            ("endpoint", "session.ended")])
        # the three events in flight at the kill arrived twice, with their first ids
        arrived = len(receiver.hook_events()) + sum(
            1 for r in receiver.received if r.path != "/hook")
        assert arrived == len(seen) + 3
    finally:
        for request in receiver.held:
            if not request.finished and not request._disconnected:
                request.finish()
        if second is not None:
            await second.stop()
        await stop(port)
