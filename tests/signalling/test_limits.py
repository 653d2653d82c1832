"""Per-connection limits: message size, request rate, slow consumers, keepalive."""

from __future__ import annotations

import json
from typing import Any

from meetplatform.signalling.protocol import MAX_BACKLOG_BYTES
from tests.signalling.harness import Client, World, pair


def test_messages_over_64_kib_are_refused_but_the_socket_stays(world: World) -> None:
    """A message just over 64 KiB gets `tooLarge`; the next request works."""
    mod, _ = pair(world)
    payload = json.dumps({"type": "chat", "id": 1, "data": {"text": "x" * 65_536}}).encode()
    mod.send_raw(payload)
    assert [(m["type"], m["code"]) for m in mod.take()] == [("error", "tooLarge")]
    assert mod.ok("ping")["ts"] is None and mod.open


def test_messages_over_the_hard_limit_close_the_socket_with_1009(world: World) -> None:
    """A message over 128 KiB is refused by the WebSocket layer with close 1009."""
    mod, ann = pair(world)
    mod.send_raw(b'{"type":"chat","data":{"text":"' + b"x" * 140_000 + b'"}}')
    assert mod.closed is not None and mod.closed[0] == 1009
    assert ann.open  # the server and the others are unaffected


def test_invalid_utf8_fails_the_socket_cleanly_with_1007(world: World) -> None:
    """A text frame that is not UTF-8 is a protocol violation closed with 1007."""
    mod, ann = pair(world)
    mod.send_raw(b'{"type":"ping","x":"\xff"}')
    assert mod.closed is not None and mod.closed[0] == 1007
    assert ann.ok("ping")["serverTs"] == world.registry.now()


def test_the_rate_limit_allows_a_burst_then_answers_rate_limited(world: World) -> None:
    """200 messages at once pass, the 201st gets `rateLimited`; a second later it's fine."""
    mod, _ = pair(world)
    for n in range(200):
        mod.request("ping", {"ts": n}, id=n)
    assert [m["type"] for m in mod.take()] == ["ack"] * 200
    assert mod.fails("ping") == "rateLimited"
    world.advance(1.0)
    assert mod.ok("ping", {"ts": 1})["ts"] == 1
    assert mod.open


def test_sustained_flooding_closes_the_socket_with_4029(world: World) -> None:
    """A client that keeps flooding past the limit is closed with 4029."""
    mod, ann = pair(world)
    for n in range(400):
        mod.request("ping", id=n)
        if mod.closed:
            break
    limited = [m for m in mod.received if m.get("code") == "rateLimited"]
    assert len(limited) == 199
    assert mod.closed == (4029, "rate limited")
    assert ann.open


def stuck(world: World, client: Client) -> Any:
    """Freeze a client's connection and make its transport ask the server to pause,
    as a TCP transport does when the peer stops reading."""
    server = world.server_of(client)
    for pump in world.pumper.pumps:
        if pump.server is server:
            world.pumper.frozen.add(pump)
    server.transport.producer.pauseProducing()
    return server


def test_a_stuck_receiver_is_closed_with_4029_and_its_backlog_is_bounded(
        world: World) -> None:
    """A receiver that stops reading is cut off at 1 MiB of backlog with 4029 "slow
    consumer"; the room goes on and the server stops queueing for it."""
    mod, ann = pair(world)
    server = stuck(world, ann)
    meeting = world.registry.get_meeting("m1")
    assert meeting is not None
    text = "y" * 500
    sent = 0
    while server.state == server.STATE_OPEN:
        world.registry.send_chat(meeting, text, "LMS")
        server.transport.producer.pauseProducing()  # as Twisted does on every write
        sent += 1
        assert sent < 5000
    queued = sum(len(chunk) for chunk in server.transport.stream)
    assert MAX_BACKLOG_BYTES - 1024 < queued <= MAX_BACKLOG_BYTES + 128
    for _ in range(100):
        world.registry.send_chat(meeting, text, "LMS")
    assert sum(len(chunk) for chunk in server.transport.stream) == queued
    world.flush()
    assert len(mod.of_type("chat")) == sent + 100 and mod.open
    world.pumper.frozen.clear()
    world.flush()
    assert ann.closed == (4029, "slow consumer")
    assert len(ann.of_type("chat")) == sent - 1


def test_a_receiver_that_catches_up_is_not_cut_off(world: World) -> None:
    """Back-pressure that is released (the peer read its data) resets the backlog."""
    _, ann = pair(world)
    server = stuck(world, ann)
    meeting = world.registry.get_meeting("m1")
    assert meeting is not None
    text = "z" * 500
    for _ in range(3):
        for _ in range(1500):  # ~0.8 MiB while paused
            world.registry.send_chat(meeting, text, "LMS")
        server.transport.producer.resumeProducing()
        world.pumper.frozen.clear()
        world.flush()
        assert ann.open
        server.transport.producer.pauseProducing()
        stuck(world, ann)
    assert len(ann.of_type("chat")) == 4500


def test_keepalive_pings_keep_live_peers_and_drop_silent_ones(world: World) -> None:
    """The server pings every 20 s; a peer that answers stays, one that doesn't is
    dropped (and its participant enters the resume grace)."""
    mod, ann = pair(world)
    for _ in range(3):
        world.advance(21)
    assert mod.open and ann.open
    stuck(world, ann)
    world.server_of(ann).transport.producer.resumeProducing()
    world.advance(21)  # ping sent, never delivered
    world.advance(21)  # no pong within 20 s
    world.pumper.frozen.clear()
    world.flush()
    assert ann.closed is not None and ann.closed[0] == 1006
    assert mod.of_type("participantUpdated")[-1]["data"]["participant"]["reconnecting"]
    assert mod.open


def test_each_connection_reads_the_options_from_its_class(world: World) -> None:
    """The protocol options live once on the factory's protocol class: a connection holds
    no copy of them (memory), and Autobahn's per-connection copy has nothing to do."""
    from meetplatform.signalling.protocol import HARD_MESSAGE_LIMIT, SignallingProtocol

    mod, _ = pair(world)
    server = world.server_of(mod)
    assert type(server).CONFIG_ATTRS == ()
    assert server.maxMessagePayloadSize == HARD_MESSAGE_LIMIT
    assert not set(SignallingProtocol.CONFIG_ATTRS) & set(vars(server))
