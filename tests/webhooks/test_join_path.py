"""Webhooks stay off the join path: an event is only captured when it happens, and built,
written and sent on the next turn of the reactor, with the values of its moment.

The world's helpers take that turn themselves (see ``tests/webhooks/harness.py``); these
tests act on the registry directly, so that they can look before the turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from meetplatform.model import EndReason, MeetingSpec, Role
from meetplatform.store import RoomRecord, SpaceRecord
from meetplatform.store import webhooks_db as wdb
from meetplatform.webhooks import DeliveryPolicy
from meetplatform.webhooks import outbox as fanout
from tests.support import result
from tests.webhooks.harness import FakeSender, Sent, World


def outbox(w: World) -> int:
    return result(Deferred.fromCoroutine(w.store.run(wdb.outbox_size)))


def hook_events(sent: list[Sent]) -> list[dict[str, Any]]:
    return [e["data"] for s in sent if s.path == "/hook" for e in json.loads(s.form["event"])]


def count_store_jobs(w: World) -> list[int]:
    """Counts the jobs handed to the store (each would be a hop to its thread)."""
    jobs = [0]
    runner = w.store._runner

    def counting(job: Any) -> Deferred[Any]:
        jobs[0] += 1
        return runner(job)

    w.store._runner = counting  # type: ignore[method-assign]
    return jobs


def test_a_join_neither_writes_nor_sends_until_the_reactor_turns(tmp_path: Path) -> None:
    """registry.connect with the webhook service subscribed hands nothing to the store and
    calls no sender: one delayed call is all it leaves. The next turn writes and sends."""
    w = World(tmp_path)
    w.history.close()  # (history writes joins itself: count the webhooks' jobs only)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    sent_before = len(w.sender.sent)
    jobs = count_store_jobs(w)
    seat = w.registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
    w.registry.connect(seat)
    assert jobs[0] == 0 and len(w.sender.sent) == sent_before
    assert [c.getTime() for c in w.clock.getDelayedCalls()].count(w.clock.seconds()) == 1
    assert w.webhooks.enqueued == 1  # meeting-created only, so far
    w.turn()
    assert jobs[0] > 0
    assert [e["id"] for e in hook_events(w.sender.sent[sent_before:])] == ["user-joined"]
    assert outbox(w) == 0


def test_many_events_of_one_turn_are_one_delayed_call_and_one_transaction(
        tmp_path: Path) -> None:
    """A burst of joins in one turn schedules one call and writes one outbox batch."""
    w = World(tmp_path, sender=FakeSender(hold=True))
    w.history.close()
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    jobs = count_store_jobs(w)
    for n in range(20):
        w.registry.connect(w.registry.issue_seat(meeting, full_name=f"U{n}", role=Role.VIEWER))
    assert jobs[0] == 0
    assert [c.getTime() for c in w.clock.getDelayedCalls()].count(w.clock.seconds()) == 1
    w.turn()
    writes = jobs[0]
    assert outbox(w) == 21  # meeting-created (in flight) and the 20 joins
    assert writes <= 2  # the outbox batch (and the target's read of new rows)


def test_an_event_tells_the_values_of_its_moment(tmp_path: Path) -> None:
    """A participant promoted (and unmuted, then muted) in the same turn as it joined:
    user-joined still says VIEWER, and every change is told as it happened, in order."""
    w = World(tmp_path)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    mod = w.join(meeting, "Mod", Role.MODERATOR)
    seat = w.registry.issue_seat(meeting, full_name="Vic", role=Role.VIEWER)
    vic = w.registry.connect(seat)
    w.registry.set_role(meeting, vic.user_id, Role.MODERATOR, by=mod)
    w.registry.update_media(vic, joined_voice=True)
    w.registry.update_media(vic, muted=False)
    w.registry.update_media(vic, muted=True)
    w.turn()
    events = [e for e in hook_events(w.sender.sent)
              if e["attributes"].get("user", {}).get("internal-user-id") == vic.user_id]
    assert [e["id"] for e in events] == [
        "user-joined", "user-role-changed", "user-audio-voice-enabled",
        "user-audio-unmuted", "user-audio-muted"]
    assert events[0]["attributes"]["user"]["role"] == "VIEWER"
    assert events[1]["attributes"]["user"]["role"] == "MODERATOR"
    assert events[3]["attributes"]["user"]["muted"] is False
    assert events[4]["attributes"]["user"]["muted"] is True


def test_a_space_event_tells_the_role_and_name_of_its_moment(tmp_path: Path) -> None:
    """participant.joined for a space endpoint carries the role the participant joined
    with, even when it was promoted before the event was built."""
    w = World(tmp_path)
    client = w.rest.new_client()
    r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                       token=client.token, json={"data": {
                           "type": "webhookEndpoints",
                           "attributes": {"url": "http://127.0.0.1:9/events"}}})
    assert r.status == 201
    room = w.rest.create_room(client)
    seats = [w.rest.request("POST", f"/rooms/{room['id']}/join", token=client.token,
                            json={"data": {"type": "seats",
                                           "attributes": {"displayName": name}}})
             for name in ("Ann", "Bob")]
    ann, bob = (w.registry.connect(w.registry.seat_for_token(  # type: ignore[arg-type]
        s.json["data"]["attributes"]["sessionToken"])) for s in seats)
    w.registry.set_role(ann.meeting, bob.user_id, Role.MODERATOR)
    w.turn()
    joined = [json.loads(s.body)["data"]["participant"] for s in w.sender.sent
              if s.guarded and json.loads(s.body)["type"] == "participant.joined"]
    assert [(p["displayName"], p["role"]) for p in joined] == [
        ("Ann", "viewer"), ("Bob", "viewer")]


def test_events_keep_the_time_they_happened(tmp_path: Path) -> None:
    """An event built later than it happened still has the time it happened."""
    w = World(tmp_path)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    joined_at = w.clock.seconds()
    w.registry.connect(w.registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER))
    w.advance(5)  # the turn comes late
    (event,) = [e for e in hook_events(w.sender.sent) if e["id"] == "user-joined"]
    assert event["event"]["ts"] == int(joined_at * 1000)


def test_the_events_of_one_turn_arrive_in_order_with_ids_in_order(tmp_path: Path) -> None:
    """Everything captured in one turn reaches the receiver in the order it happened
    (here in one callback), and ids were given in that order."""
    w = World(tmp_path)
    w.hook("http://127.0.0.1:9/hook")
    meeting, _ = w.registry.create_meeting(MeetingSpec("m1", name="M"))
    ann = w.registry.connect(w.registry.issue_seat(meeting, full_name="Ann",
                                                   role=Role.MODERATOR))
    bob = w.registry.connect(w.registry.issue_seat(meeting, full_name="Bob",
                                                   role=Role.VIEWER))
    w.registry.send_chat(meeting, "hi", "Ann", ann)
    w.registry.disconnect(bob)
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    assert w.sender.sent == []
    w.turn()
    assert len(w.sender.sent) == 1  # waiting together: one callback
    events = hook_events(w.sender.sent)
    assert [e["id"] for e in events] == [
        "meeting-created", "user-joined", "user-joined", "chat-group-message-sent",
        "user-left", "user-left", "meeting-ended"]
    ids = [e["event"]["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_stopping_writes_the_events_of_the_current_turn(tmp_path: Path) -> None:
    """A clean stop in the same turn as the events loses none: they are in the outbox,
    and the next start delivers them."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    w.registry.connect(w.registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER))
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    result(w.stop())  # no turn in between
    assert outbox(w) == 4
    w.close()
    again = FakeSender()
    World(tmp_path, sender=again, clock=w.clock)
    assert [e["id"] for e in hook_events(again.sent)] == [
        "meeting-created", "user-joined", "user-left", "meeting-ended"]


def test_flush_and_settle_include_the_events_of_the_current_turn(tmp_path: Path) -> None:
    """flush() fires once the events captured so far are in the outbox; settle() once they
    are delivered, without waiting for a turn."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(hook_batch=1))
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    w.registry.connect(w.registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER))
    assert outbox(w) == 1
    result(w.webhooks.flush())
    assert outbox(w) == 2
    w.registry.connect(w.registry.issue_seat(meeting, full_name="Bob", role=Role.VIEWER))
    sender.hold = False
    settled = Deferred.fromCoroutine(w.webhooks.settle())
    while sender.release():
        pass
    assert settled.called and outbox(w) == 0
    assert [e["id"] for e in hook_events(sender.sent)] == [
        "meeting-created", "user-joined", "user-joined"]


ROOM_FIELDS = {"alias": "standup", "name": "Stand-up", "type": "conference",
               "visibility": "private", "lobby": False, "max_participants": 0,
               "camera": True, "microphone": True, "screenshare": True, "not_before": None,
               "expires_at": None, "metadata": {}}


def space_with_endpoint(w: World) -> str:
    made: tuple[Any, SpaceRecord, str] = result(
        Deferred.fromCoroutine(w.store.create_client("app", 0)))
    space = made[1]
    result(Deferred.fromCoroutine(w.webhooks.receivers.create_endpoint(
        space_id=space.id, url="http://127.0.0.1:9/space", description="t",
        event_types=[], now=0)))
    return space.id


def test_a_store_change_and_its_event_commit_together(tmp_path: Path) -> None:
    """A room created through the store has its ``room.created`` row in the outbox as
    soon as the change has committed, with no reactor turn in between (a kill -9 right
    after the API answered loses nothing); a change that fails writes no event."""
    from meetplatform.store.database import AliasTaken

    w = World(tmp_path, sender=FakeSender(hold=True))
    space_id = space_with_endpoint(w)
    created = Deferred.fromCoroutine(w.store.create_room(space_id, ROOM_FIELDS, 0))
    room: RoomRecord = result(created)
    assert outbox(w) == 1  # no w.turn(): written in the room's own transaction
    taken = Deferred.fromCoroutine(w.store.create_room(space_id, ROOM_FIELDS, 0))
    refused = taken.result
    assert isinstance(refused, Failure) and isinstance(refused.value, AliasTaken)
    taken.addErrback(lambda _: None)
    assert outbox(w) == 1  # the refused room has no event
    w.sender.hold = False
    settled = Deferred.fromCoroutine(w.webhooks.settle())
    while w.sender.release():
        pass
    assert settled.called
    bodies = [json.loads(s.body) for s in w.sender.sent if s.path == "/space"]
    assert [(b["type"], b["data"]["roomId"]) for b in bodies] == [("room.created", room.id)]


def test_a_failing_outbox_write_does_not_fail_the_change(
        tmp_path: Path, fail_on_logged_failures: list[Any]) -> None:
    """If writing the event fails (a bug), the change still commits, the failure is
    logged, and no half-written outbox rows stay behind."""
    w = World(tmp_path, sender=FakeSender(hold=True))
    space_id = space_with_endpoint(w)
    real_enqueue = fanout.enqueue

    def broken(db: Any, occurrences: Any) -> Any:
        real_enqueue(db, occurrences)  # rows written, then the failure
        raise RuntimeError("boom")

    fanout.enqueue = broken  # type: ignore[assignment]
    try:
        room: RoomRecord = result(
            Deferred.fromCoroutine(w.store.create_room(space_id, ROOM_FIELDS, 0)))
    finally:
        fanout.enqueue = real_enqueue  # type: ignore[assignment]
    assert result(Deferred.fromCoroutine(w.store.get_room(room.id))) == room
    assert outbox(w) == 0
    assert len(fail_on_logged_failures) == 1
    fail_on_logged_failures.clear()  # expected


def test_without_any_receiver_events_cost_nothing_and_a_new_hook_hears_what_follows(
        tmp_path: Path) -> None:
    """With no hook and no endpoint, joins, chat and media changes write nothing to the
    store. A hook created afterwards gets the events that follow, told against the
    state of their moment: Vic unmuted before the hook existed, so muting is told."""
    w = World(tmp_path)
    w.history.close()
    assert not w.webhooks.receivers.any
    meeting = w.meeting("m1")
    jobs = count_store_jobs(w)
    ann = w.join(meeting, "Ann")
    vic = w.join(meeting, "Vic")
    w.registry.update_media(vic, joined_voice=True, muted=False)
    w.registry.send_chat(meeting, "hello", "Ann", ann)
    w.turn()
    assert jobs[0] == 0 and outbox(w) == 0 and w.sender.sent == []

    w.hook("http://127.0.0.1:9/hook")
    assert w.webhooks.receivers.any
    w.registry.update_media(vic, muted=True)
    w.join(meeting, "Bob")
    w.turn()
    told = [(e["id"], e["attributes"]["user"].get("name")) for e in hook_events(w.sender.sent)]
    assert told == [("user-audio-muted", None), ("user-joined", "Bob")]


def test_after_the_last_receiver_goes_events_cost_nothing_but_end_callbacks_go(
        tmp_path: Path) -> None:
    """Destroying the last hook (or deleting the last endpoint) stops the building again;
    a meeting's end callback is still called, as it is with no hook ever made."""
    w = World(tmp_path)
    w.history.close()
    hook_id = w.hook("http://127.0.0.1:9/hook")
    other = w.hook("http://127.0.0.1:9/other")
    assert w.call("hooks/destroy", {"hookID": hook_id}).returncode == "SUCCESS"
    assert w.webhooks.receivers.any  # one is left
    assert w.call("hooks/destroy", {"hookID": other}).returncode == "SUCCESS"
    assert not w.webhooks.receivers.any
    w.xml.create("m1", meta_endCallbackUrl="http://127.0.0.1:9/end?meetingID=m1")
    meeting = w.registry.get_meeting("m1")
    assert meeting is not None
    sent = len(w.sender.sent)
    jobs = count_store_jobs(w)
    w.join(meeting, "Ann")
    assert jobs[0] == 0
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    w.turn()
    assert [(s.method, s.url) for s in w.sender.sent[sent:]] == [
        ("GET", "http://127.0.0.1:9/end?meetingID=m1&recordingmarks=false")]


def test_a_count_made_before_a_hook_was_asked_for_does_not_hide_it(tmp_path: Path) -> None:
    """A count of the receivers that started before a hook was created (and finds none)
    does not turn the events off: the hook gets the join that follows."""
    w = World(tmp_path)
    w.history.close()
    receivers = w.webhooks.receivers
    held: list[Any] = []
    runner = w.store._runner

    def holding(job: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        held.append(d)
        w.store._runner = runner  # type: ignore[method-assign]  # only this one job
        return d

    w.store._runner = holding  # type: ignore[method-assign]
    receivers.recount()  # held: it will say "none", counted before the hook existed
    w.hook("http://127.0.0.1:9/hook")
    held[0].callback(False)
    assert receivers.any
    w.meeting("m1")
    assert [e["id"] for e in hook_events(w.sender.sent)] == ["meeting-created"]
