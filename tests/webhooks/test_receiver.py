"""Webhooks over real HTTP to a receiver on 127.0.0.1:0, verified as receivers verify them.

The service side is the real one (treq clients, the guarded connection, the outbox); only
time is a fake clock, so retries and timeouts happen when the test advances it. The clock
starts at the wall-clock time because Standard Webhooks receivers check the timestamp.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from standardwebhooks.webhooks import Webhook
from twisted.internet.defer import Deferred

from meetplatform.model import EndReason, Role
from meetplatform.store import webhooks_db as wdb
from meetplatform.webhooks import AddressPolicy, DeliveryPolicy, default_clients
from tests.support import SECRET, make_clock
from tests.webhooks.harness import World
from tests.webhooks.receiver import Received, Receiver, listen, stop

pytestmark = pytest.mark.integration


class Watched:
    """A sender that tells the test when each request it passed on has finished."""

    def __init__(self, inner: Any, reactor: Any) -> None:
        self.inner = inner
        self.reactor = reactor
        self.results: list[Any] = []
        self._waiters: list[tuple[int, Deferred[None]]] = []

    def send(self, method: str, url: str, headers: Any, body: bytes, *,
             guarded: bool) -> Deferred[int]:
        d: Deferred[int] = self.inner.send(method, url, headers, body, guarded=guarded)

        def done(result: Any) -> Any:
            self.results.append(result)
            ready = [w for w in self._waiters if w[0] <= len(self.results)]
            self._waiters = [w for w in self._waiters if w[0] > len(self.results)]
            for _, waiter in ready:
                # after the dispatcher has handled the result too
                self.reactor.callLater(0, waiter.callback, None)
            return result

        return d.addBoth(done)

    def finished(self, count: int, reactor: Any) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if len(self.results) >= count:
            d.callback(None)
        else:
            self._waiters.append((count, d))
        return d.addTimeout(20, reactor)

    def close(self) -> Deferred[None]:
        return self.inner.close()  # type: ignore[no-any-return]


def make_world(tmp_path: Path, reactor: Any, *, allow: tuple[str, ...] = ("127.0.0.0/8",),
               policy: DeliveryPolicy | None = None) -> tuple[World, Watched]:
    clock = make_clock(time.time())
    sender = Watched(default_clients(reactor, AddressPolicy(allow), timeout=5.0, clock=clock),
                     reactor)
    world = World(tmp_path, sender=sender, clock=clock, allow_webhook_networks=allow,
                  policy=policy)
    return world, sender


def bbb_receiver_check(received: Received, port: int, host: str = "127.0.0.1"
                       ) -> list[dict[str, Any]]:
    """What a bbb-webhooks receiver does: recompute the checksum over its own callback
    URL, the raw body and the shared secret; then read the ``event`` JSON array."""
    query = [part for part in received.query.split("&") if not part.startswith("checksum=")]
    given = received.query.rpartition("checksum=")[2]
    callback_url = f"http://{host}:{port}{received.path}" + (
        "?" + "&".join(query) if query else "")
    expected = hashlib.sha1((callback_url + received.body.decode() + SECRET).encode())
    assert given == expected.hexdigest()
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    assert received.headers["user-agent"].startswith("meetplatform/")
    return json.loads(received.form["event"])  # type: ignore[no-any-return]


@pytest_twisted.ensureDeferred
async def test_bbb_hooks_and_end_callbacks_over_real_http(tmp_path: Path) -> None:
    """A hook receives every event of a meeting, checksummed as bbb-webhooks does; the
    end callback gets its GET."""
    from twisted.internet import reactor

    receiver = Receiver()
    port = await listen(reactor, receiver)
    number = port.getHost().port
    w, sender = make_world(tmp_path, reactor)
    try:
        w.hook(f"http://127.0.0.1:{number}/hook?site=a")
        w.xml.create("m1", meta_endCallbackUrl=f"http://127.0.0.1:{number}/end?id=m1")
        meeting = w.registry.get_meeting("m1")
        assert meeting is not None
        mod = w.join(meeting, "Mod", Role.MODERATOR)
        w.registry.update_media(mod, joined_voice=True, muted=False, video_streams=1)
        w.registry.set_raised_hand(mod, True)
        w.registry.send_chat(meeting, "hi", "Mod", mod)
        w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        w.turn()
        await receiver.wait_until(
            lambda r: len(r.hook_events()) == 9 and any(x.path == "/end" for x in r.received),
            reactor)
        hooked = [r for r in receiver.received if r.path == "/hook"]
        events = [e for r in hooked for e in bbb_receiver_check(r, number)]
        assert [e["data"]["id"] for e in events] == [
            "meeting-created", "user-joined", "user-audio-voice-enabled",
            "user-audio-unmuted", "user-cam-broadcast-start", "user-raise-hand-changed",
            "chat-group-message-sent", "user-left", "meeting-ended"]
        (end,) = [r for r in receiver.received if r.path == "/end"]
        assert end.method == "GET" and end.query == "id=m1&recordingmarks=false"
        await sender.finished(len(receiver.received), reactor)
        assert all(result == 200 for result in sender.results)
        assert len(hooked) < 9  # events waiting together went in one callback
    finally:
        await w.stop()
        await stop(port)


@pytest_twisted.ensureDeferred
async def test_bbb_hooks_and_space_endpoints_deliver_to_ipv6_literals(tmp_path: Path) -> None:
    """A hook whose callback is ``http://[::1]:port/...`` and a space endpoint on an
    allowed IPv6 literal both get their events (hyperlink's IDNA step used to refuse
    ``'::1'``, so such a hook was accepted and then failed forever)."""
    from twisted.internet import reactor

    receiver = Receiver()
    port = await listen(reactor, receiver, interface="::1")
    number = port.getHost().port
    w, sender = make_world(tmp_path, reactor, allow=("::1/128",))
    try:
        w.hook(f"http://[::1]:{number}/hook?site=a")
        client = w.rest.new_client()
        r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                           token=client.token, json={"data": {
                               "type": "webhookEndpoints",
                               "attributes": {"url": f"http://[::1]:{number}/events"}}})
        assert r.status == 201, r.body
        w.xml.create("m1")
        w.rest.create_room(client, name="Class")
        w.turn()
        await receiver.wait_until(
            lambda r: r.hook_events() and any(x.path == "/events" for x in r.received),
            reactor)
        hooked = [r for r in receiver.received if r.path == "/hook"]
        events = [e for r in hooked for e in bbb_receiver_check(r, number, "[::1]")]
        assert events[0]["data"]["id"] == "meeting-created"
        (space_event,) = [r for r in receiver.received if r.path == "/events"]
        assert json.loads(space_event.body)["type"] == "room.created"
        await sender.finished(len(receiver.received), reactor)
        assert all(result == 200 for result in sender.results)
    finally:
        await w.stop()
        await stop(port)


@pytest_twisted.ensureDeferred
async def test_space_endpoints_verify_with_a_standard_webhooks_library(tmp_path: Path) -> None:
    """A space endpoint's events arrive signed; the reference library verifies them with
    the secret shown at creation, and they carry the event id as webhook-id."""
    from twisted.internet import reactor

    receiver = Receiver(status=204)
    port = await listen(reactor, receiver)
    number = port.getHost().port
    w, _ = make_world(tmp_path, reactor)
    try:
        client = w.rest.new_client()
        r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                           token=client.token, json={"data": {
                               "type": "webhookEndpoints",
                               "attributes": {"url": f"http://127.0.0.1:{number}/events"}}})
        assert r.status == 201, r.body
        secret = r.json["data"]["attributes"]["secret"]
        room = w.rest.create_room(client, name="Class")
        r = w.rest.request("POST", f"/rooms/{room['id']}/join", token=client.token,
                           json={"data": {"type": "seats",
                                          "attributes": {"displayName": "Ann"}}})
        seat = w.registry.seat_for_token(r.json["data"]["attributes"]["sessionToken"])
        assert seat is not None
        ann = w.registry.connect(seat)
        w.registry.end_meeting(ann.meeting, EndReason.ENDED_FROM_API)
        w.turn()
        await receiver.wait(5, reactor)
        verifier = Webhook(secret)
        events = [verifier.verify(r.body, r.headers) for r in receiver.received]
        assert [e["type"] for e in events] == ["room.created", "session.started",
                                               "participant.joined", "participant.left",
                                               "session.ended"]
        assert [r.headers["webhook-id"] for r in receiver.received] == [e["id"] for e in events]
        assert events[2]["data"]["participant"]["displayName"] == "Ann"
    finally:
        await w.stop()
        await stop(port)


@pytest_twisted.ensureDeferred
async def test_the_guard_refuses_private_addresses_after_resolution(tmp_path: Path) -> None:
    """An endpoint whose host name resolves to loopback (DNS changed after it was
    created) never reaches it without --allow-webhook-network: the delivery fails, the
    receiver sees nothing, and ``lastError`` says that delivery to the host's address is
    not allowed without saying what the name resolves to."""
    from twisted.internet import reactor

    receiver = Receiver()
    port = await listen(reactor, receiver)
    number = port.getHost().port
    w, sender = make_world(tmp_path, reactor, allow=())
    try:
        client = w.rest.new_client()
        endpoint, _ = await w.webhooks.receivers.create_endpoint(
            space_id=client.space.id, url=f"http://localhost:{number}/x",
            description="", event_types=[], now=w.rest.now_ms())
        w.rest.create_room(client)
        await sender.finished(1, reactor)
        assert receiver.received == []
        state = await w.store.run(lambda db: wdb.get_endpoint(db, endpoint.id))
        assert state is not None and state.consecutive_failures == 1
        assert state.last_error == "delivery to the address of localhost is not allowed"
    finally:
        await w.stop()
        await stop(port)


@pytest_twisted.ensureDeferred
async def test_a_receiver_down_then_back_gets_every_event_in_order(tmp_path: Path) -> None:
    """The receiver answers 503, then is not listening at all, then comes back: after the
    backoff every event arrives, in order, each with the id it had from the start."""
    from twisted.internet import reactor

    receiver = Receiver(status=503)
    port = await listen(reactor, receiver)
    number = port.getHost().port
    w, sender = make_world(tmp_path, reactor, policy=DeliveryPolicy(base_delay=1.0))
    try:
        w.hook(f"http://127.0.0.1:{number}/hook")
        meeting = w.meeting("m1")
        ann = w.join(meeting, "Ann")
        w.registry.disconnect(ann)
        w.turn()
        await sender.finished(1, reactor)
        first_try = bbb_receiver_check(receiver.received[0], number)
        assert [e["data"]["id"] for e in first_try] == ["meeting-created"]
        await stop(port)  # the receiver goes away entirely
        w.advance(1)
        await sender.finished(2, reactor)
        assert "connection" in str(sender.results[1]) or "refused" in str(sender.results[1])
        receiver.status = 200
        port = await listen(reactor, receiver, number)
        w.advance(2)
        await receiver.wait_until(lambda r: len(r.hook_events()) == 1 + 3, reactor)
        events = [e for r in receiver.received[1:] for e in bbb_receiver_check(r, number)]
        assert [e["data"]["id"] for e in events] == ["meeting-created", "user-joined",
                                                     "user-left"]
        assert events[0]["data"]["event"]["id"] == first_try[0]["data"]["event"]["id"]
        w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        w.turn()
        await receiver.wait_until(lambda r: len(r.hook_events()) == 1 + 4, reactor)
        events = [e for r in receiver.received[1:] for e in bbb_receiver_check(r, number)]
        assert [e["data"]["id"] for e in events] == [
            "meeting-created", "user-joined", "user-left", "meeting-ended"]
        await Deferred.fromCoroutine(w.webhooks.settle()).addTimeout(20, reactor)
        assert await w.store.run(wdb.outbox_size) == 0
    finally:
        await w.stop()
        await stop(port)


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_never_answers_times_out_and_is_retried(tmp_path: Path) -> None:
    """A request the receiver never answers fails after the timeout; the retry, once the
    receiver answers again, delivers the event."""
    from twisted.internet import reactor

    receiver = Receiver(status=None)
    port = await listen(reactor, receiver)
    number = port.getHost().port
    w, sender = make_world(tmp_path, reactor)
    try:
        w.hook(f"http://127.0.0.1:{number}/hook")
        w.meeting("m1")
        await receiver.wait(1, reactor)
        w.advance(5)
        await sender.finished(1, reactor)
        assert "TimeoutError" in repr(sender.results[0]) or "timed out" in str(sender.results[0])
        receiver.status = 200
        w.advance(1)
        await receiver.wait(2, reactor)
        first_id, retry_id = (json.loads(r.form["event"])[0]["data"]["event"]["id"]
                              for r in receiver.received[:2])
        assert first_id == retry_id
        await sender.finished(2, reactor)
        assert sender.results[1] == 200
    finally:
        for request in receiver.held:
            if not request.finished and not request._disconnected:
                request.finish()
        await w.stop()
        await stop(port)
