"""Delivery from the outbox: order, concurrency, backoff, giving up, crashes, restarts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, TimeoutError

from meetplatform.model import EndReason, Role
from meetplatform.store import webhooks_db as wdb
from meetplatform.webhooks import DeliveryPolicy
from tests.support import result
from tests.webhooks.harness import FakeSender, Sent, World, refused


def event_of(sent: Sent) -> dict[str, Any]:
    return json.loads(sent.form["event"])[0]["data"]  # type: ignore[no-any-return]


def key(sent: Sent) -> tuple[str, str]:
    data = event_of(sent)
    return data["attributes"]["meeting"]["external-meeting-id"], data["id"]


def outbox(w: World) -> int:
    return result(Deferred.fromCoroutine(w.store.run(wdb.outbox_size)))


def test_one_meetings_events_go_one_at_a_time_others_in_parallel(tmp_path: Path) -> None:
    """A meeting's next event waits until the receiver answered the previous one, while
    other meetings' events go out at the same time."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(hook_batch=1))
    w.hook("http://127.0.0.1:9/hook")
    first = w.meeting("m1")
    second = w.meeting("m2")
    w.join(first, "Ann")
    w.join(second, "Bob")
    w.join(first, "Cid")
    assert [key(s) for s in sender.sent] == [("m1", "meeting-created"),
                                             ("m2", "meeting-created")]
    sender.release()
    assert [key(s) for s in sender.sent[2:]] == [("m1", "user-joined"), ("m2", "user-joined")]
    sender.release()
    assert [key(s) for s in sender.sent[4:]] == [("m1", "user-joined")]
    sender.release()
    assert len(sender.sent) == 5 and outbox(w) == 0
    assert [event_of(s)["attributes"]["user"]["name"] for s in sender.sent
            if key(s) == ("m1", "user-joined")] == ["Ann", "Cid"]


def test_a_meetings_waiting_events_go_together_to_hooks(tmp_path: Path) -> None:
    """Events of one meeting that wait together reach a BBB hook in one callback (the
    ``event`` array, bbb-webhooks' multiEvent), in order, at most hook_batch at a time."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(hook_batch=3))
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    for name in ("Ann", "Bob", "Cid", "Dan"):
        w.join(meeting, name)
    sender.release()
    batches = [[e["data"]["attributes"].get("user", {}).get("name")
                for e in json.loads(s.form["event"])] for s in sender.sent]
    assert batches == [[None], ["Ann", "Bob", "Cid"]]
    sender.release()
    sender.release()
    assert [len(json.loads(s.form["event"])) for s in sender.sent] == [1, 3, 1]
    assert outbox(w) == 0


def test_concurrency_per_receiver_is_bounded(tmp_path: Path) -> None:
    """No more than ``concurrency`` requests are in flight to one receiver."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(concurrency=3))
    w.hook("http://127.0.0.1:9/hook")
    for n in range(10):
        w.meeting(f"m{n}")
    assert len(sender.held) == 3
    while sender.release():
        pass
    assert len(sender.sent) == 10 and outbox(w) == 0


def test_a_burst_of_requests_is_spread_over_turns_of_the_reactor(tmp_path: Path) -> None:
    """A target starts at most sends_per_turn requests at once; the rest go in the next
    turns, so that other work (joins) runs in between."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, spread=True, start=False,
              policy=DeliveryPolicy(sends_per_turn=2, concurrency=8))
    w.hook("http://127.0.0.1:9/hook")
    for n in range(7):
        w.meeting(f"m{n}")
    w.start()  # seven events wait at once
    assert len(sender.held) == 2
    assert [c.getTime() for c in w.clock.getDelayedCalls()].count(w.clock.seconds()) == 1
    w.advance(0)  # (a fake clock runs the following turns at once)
    assert len(sender.held) == 7
    sender.release()
    w.advance(0)
    assert outbox(w) == 0


def test_failures_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    """After each failure the receiver is left alone for base*2^(n-1) seconds times a
    random factor in [0.5, 1], up to max_delay; a success resets it."""
    sender = FakeSender(status=refused)
    policy = DeliveryPolicy(base_delay=1.0, max_delay=8.0, max_failures=100)
    w = World(tmp_path, sender=sender, policy=policy)
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    times = [w.clock.seconds()]
    for _ in range(7):
        before = len(sender.sent)
        while len(sender.sent) == before:
            w.advance(0.05)
        times.append(w.clock.seconds())
    waits = [b - a for a, b in itertools.pairwise(times)]
    for n, wait in enumerate(waits, start=1):
        nominal = min(8.0, 2 ** (n - 1))
        assert nominal * 0.5 - 0.05 <= wait <= nominal + 0.05, (n, waits)
    assert len({round(x, 2) for x in waits[3:]}) > 1  # jittered, not fixed
    sender.status = lambda sent: 200
    w.advance(8)
    assert outbox(w) == 0
    state: wdb.TargetInfo = result(Deferred.fromCoroutine(w.store.run(
        lambda db: wdb.target_info(db, "hook", db.connection.execute(
            "SELECT id FROM bbb_hooks").fetchone()[0], 0))))
    assert state.consecutive_failures == 0


def test_a_paused_receiver_gets_nothing_until_the_wait_is_over(tmp_path: Path) -> None:
    """While a receiver is backing off, new events wait: no request is made."""
    sender = FakeSender(status=refused)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(base_delay=10.0))
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    assert len(sender.sent) == 1
    for n in range(2, 6):
        w.meeting(f"m{n}")
    assert len(sender.sent) == 1
    sender.status = lambda sent: 200
    w.advance(10)
    assert len(sender.sent) == 6 and outbox(w) == 0


def test_requests_failing_together_count_as_one_failure(tmp_path: Path) -> None:
    """When several requests in flight fail at once (a receiver went down), the failure
    count rises by one, not by the number of requests."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(max_failures=2))
    w.hook("http://127.0.0.1:9/hook")
    for n in range(5):
        w.meeting(f"m{n}")
    held = sender.held
    sender.held = []
    sender.hold = False
    sender.status = lambda sent: 200
    for _, d in held:
        d.callback(503)
    listed = w.call("hooks/list")
    assert len(listed.xml.findall("hooks/hook")) == 1  # not removed: one failure so far
    w.advance(2)
    assert outbox(w) == 0


@pytest.mark.parametrize(("status", "delivered"), [
    (200, True), (201, True), (204, True), (299, True), (301, False), (302, False),
    (400, False), (404, False), (410, False), (429, False), (500, False), (503, False),
])
def test_only_2xx_answers_deliver_to_endpoints(tmp_path: Path, status: int,
                                               delivered: bool) -> None:
    """A space endpoint's event is delivered by a 2xx answer; redirects are not followed
    and count as failures, like every other status."""
    sender = FakeSender(status=lambda sent: status)
    w = World(tmp_path, sender=sender)
    client = w.rest.new_client()
    w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints", token=client.token,
                   json={"data": {"type": "webhookEndpoints",
                                  "attributes": {"url": "http://127.0.0.1:9/x"}}})
    w.rest.create_room(client)
    assert (outbox(w) == 0) is delivered


def test_timeouts_are_failures_that_are_retried(tmp_path: Path) -> None:
    """A request that times out is retried after the backoff, with the same event id."""
    answers: list[Any] = [TimeoutError(), 200]
    sender = FakeSender(status=lambda sent: answers.pop(0))
    w = World(tmp_path, sender=sender)
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    assert len(sender.sent) == 1 and outbox(w) == 1
    w.advance(1)
    assert len(sender.sent) == 2 and outbox(w) == 0
    assert event_of(sender.sent[0])["event"]["id"] == event_of(sender.sent[1])["event"]["id"]
    row_error: int = result(Deferred.fromCoroutine(w.store.run(lambda db: db.connection.execute(
        "SELECT count(*) FROM webhook_outbox").fetchone()[0])))
    assert row_error == 0


def test_a_hook_that_keeps_failing_is_removed_as_bbb_webhooks_does(tmp_path: Path) -> None:
    """After max_failures consecutive failures a BBB hook is removed with its events;
    hooks/list no longer shows it, so integrations that check create it again."""
    sender = FakeSender(status=lambda sent: 500)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(max_failures=4, max_delay=1))
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    for _ in range(10):
        w.advance(1)
    assert len(sender.sent) == 4
    assert w.call("hooks/list").xml.findall("hooks/hook") == []
    assert outbox(w) == 0
    w.meeting("m2")
    assert len(sender.sent) == 4


def test_an_end_callback_is_given_up_after_max_failures(tmp_path: Path) -> None:
    """An end callback that never succeeds is dropped after max_failures attempts."""
    sender = FakeSender(status=refused)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(max_failures=3, max_delay=1))
    meeting = w.meeting("m1", metadata={"endcallbackurl": "http://127.0.0.1:9/end"})
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    for _ in range(10):
        w.advance(1)
    assert [s.url for s in sender.sent] == ["http://127.0.0.1:9/end?recordingmarks=false"] * 3
    assert outbox(w) == 0


def test_a_restart_keeps_the_backoff(tmp_path: Path) -> None:
    """A new process respects the wait the previous one stored: a receiver that is down
    is not hammered at every restart."""
    sender = FakeSender(status=refused)
    first = World(tmp_path, sender=sender, policy=DeliveryPolicy(base_delay=1000.0))
    first.hook("http://127.0.0.1:9/hook")
    first.meeting("m1")
    assert len(sender.sent) == 1
    result(first.stop())
    first.close()
    again = FakeSender()
    second = World(tmp_path, sender=again, clock=first.clock,
                   policy=DeliveryPolicy(base_delay=1000.0))
    assert again.sent == []
    second.advance(1000)
    assert [key(s) for s in again.sent] == [("m1", "meeting-created")]


def test_a_request_in_flight_at_a_crash_is_sent_again_with_the_same_id(tmp_path: Path) -> None:
    """The receiver got the event but the process died before recording it: the next
    process sends it again with the same id (receivers deduplicate by it)."""
    sender = FakeSender(hold=True)
    first = World(tmp_path, sender=sender)
    first.hook("http://127.0.0.1:9/hook")
    meeting = first.meeting("m1")
    first.join(meeting, "Ann")
    assert len(sender.held) == 1  # meeting-created in flight, user-joined waits
    first.close()  # killed: no stop, nothing more written
    again = FakeSender()
    World(tmp_path, sender=again, clock=first.clock)
    (request,) = again.sent  # both waiting events in one callback
    events = [e["data"] for e in json.loads(request.form["event"])]
    assert [e["id"] for e in events] == ["meeting-created", "user-joined"]
    assert events[0]["event"]["id"] == event_of(sender.sent[0])["event"]["id"]


def test_stopping_leaves_undelivered_events_for_the_next_start(tmp_path: Path) -> None:
    """A clean stop cancels requests in flight; their events stay in the outbox."""
    sender = FakeSender(hold=True)
    w = World(tmp_path, sender=sender)
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    result(w.stop())
    assert sender.held[0][1].called  # cancelled
    assert outbox(w) == 1


def test_the_periodic_scan_wakes_forgotten_targets(tmp_path: Path) -> None:
    """Rows nobody announced (written by another process, say) are found by the scan."""
    sender = FakeSender()
    w = World(tmp_path, sender=sender)
    hook_id = w.hook("http://127.0.0.1:9/hook")
    w.webhooks.close()  # stop listening: the next event is written by hand
    from meetplatform.webhooks.events import Occurrence

    occurrence = Occurrence("evt_manual", 1, "k", bbb_name="meeting-created")
    result(Deferred.fromCoroutine(w.store.run(lambda db: db.connection.execute(
        "INSERT INTO webhook_outbox (event_id, event_type, target_kind, target_id,"
        " ordering_key, payload, created_at) VALUES (?, ?, 'hook', ?, 'k', '{}', 1)",
        (occurrence.id, "meeting-created", hook_id)))))
    assert sender.sent == []
    w.advance(300)
    assert len(sender.sent) == 1 and outbox(w) == 0


def test_one_unwritable_event_never_loses_the_others_of_its_turn(
        tmp_path: Path, fail_on_logged_failures: list[Any]) -> None:
    """The events of one turn go to the outbox in one transaction. A join whose name
    holds a lone surrogate (the edges refuse it; made here directly) cannot be written:
    it is set aside with a log line, and the other joins of that turn are delivered."""
    w = World(tmp_path)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    for name in ("Ann", "Eve\ud800", "Bob"):  # one turn: one batch
        w.registry.connect(w.registry.issue_seat(meeting, full_name=name, role=Role.VIEWER))
    w.turn()
    events = [e["data"] for s in w.sender.sent for e in json.loads(s.form["event"])]
    assert [(e["id"], e["attributes"].get("user", {}).get("name")) for e in events] == [
        ("meeting-created", None), ("user-joined", "Ann"), ("user-joined", "Bob")]
    assert outbox(w) == 0
    logged = sorted((e["name"], e["item"]) for e in fail_on_logged_failures)
    assert logged == [
        ("history", "JoinOp (text that is not valid Unicode in full_name)"),
        ("webhook outbox", ("Occurrence (text that is not valid Unicode in "
                            "bbb_attributes.user.name, rest_data.participant.displayName)"))]
    assert all("set aside" in e["log_format"] for e in fail_on_logged_failures)
    fail_on_logged_failures.clear()
