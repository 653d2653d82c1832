"""The plain counters the metrics read from the signalling (sockets opened, messages)."""

from __future__ import annotations

from tests.signalling.harness import World


def test_sockets_and_messages_are_counted(world: World) -> None:
    meeting = world.meeting()
    ada = world.join(meeting, "Ada")
    bob = world.join(meeting, "Bob")
    factory = world.service.factory
    assert factory.opened == 2 and factory.received == 0
    assert len(world.service.hub.conns) == 2
    ada.ok("raiseHand", {"raised": True})
    ada.send_raw(b"not json")
    world.flush()
    assert factory.received == 2
    world.drop(bob)
    assert len(world.service.hub.conns) == 1
    assert factory.opened == 2
