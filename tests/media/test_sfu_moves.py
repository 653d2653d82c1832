"""SfuBackend when a node's Janus restarts (rooms lost) or goes away: MediaNodes with fake
controls and a fake Janus API, driven by a ``task.Clock`` (no Janus, no browser).

A restart seen on a node the meeting stays on (``NodeRestarted`` with its placement)
re-creates the room there and has every page renegotiate; a ``kill`` of the only node
drops the control connection first (``NodeOffline``): the meeting falls back to mesh and
goes back through the node once it answers again without its marker room."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from meetplatform.media.janus import PluginReply, VideoRoom
from meetplatform.media.nodes import (
    MediaNodes,
    NodeEvent,
    NodeOffline,
    NodeOnline,
    NodeRestarted,
)
from meetplatform.media.sfu import SfuBackend
from meetplatform.model import MeetingSpec, Participant, Role
from meetplatform.registry import Registry
from meetplatform.store.nodes_db import NodeRecord
from tests.media.test_nodes import FakeControl, record


class RoomsControl(FakeControl):
    """A fake node whose VideoRoom requests (create, destroy...) are recorded."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.requests: list[dict[str, Any]] = []

    @property
    def rooms(self) -> VideoRoom:
        def send(request: dict[str, Any]) -> Deferred[dict[str, Any]]:
            self.requests.append(request)
            return succeed({"room": request.get("room")})
        return VideoRoom(send, "admin-key")

    def created(self) -> list[int]:
        return [r["room"] for r in self.requests if r["request"] == "create"]


@dataclass(eq=False)
class FakeHandle:
    janus: FakeJanus
    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def subscribe(self, subscriber: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        return lambda: None

    async def message(self, body: dict[str, Any], jsep: dict[str, Any] | None = None,
                      timeout: float | None = None) -> PluginReply:
        self.messages.append(body)
        self.janus.messages.append((self.url, body))
        if body.get("request") == "join" and body.get("ptype") == "publisher":
            return PluginReply({"videoroom": "joined", "private_id": 7})
        return PluginReply({"videoroom": "event"})

    async def trickle(self, candidate: dict[str, Any] | None) -> None:
        return None


@dataclass(eq=False)
class FakeSession:
    janus: FakeJanus
    url: str
    destroyed: bool = False

    def on_lost(self, listener: Callable[[str], None]) -> None:
        return None

    async def attach(self) -> FakeHandle:
        return FakeHandle(self.janus, self.url)

    async def destroy(self) -> None:
        self.destroyed = True


@dataclass(eq=False)
class FakeConnection:
    janus: FakeJanus
    url: str
    closed: bool = False

    async def create_session(self) -> FakeSession:
        return FakeSession(self.janus, self.url)


@dataclass
class FakeJanus:
    """The Janus API of every node, as SfuBackend's connector sees it."""

    connections: list[str] = field(default_factory=list)
    #: (ws url, plugin message body) in order.
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def connect(self, url: str, secret: str) -> Deferred[Any]:
        self.connections.append(url)
        return succeed(FakeConnection(self, url))

    def joins(self, url: str) -> list[str]:
        """The displays (participant ids) that joined a room as publishers on ``url``."""
        return [body["display"] for u, body in self.messages
                if u == url and body.get("request") == "join"
                and body.get("ptype") == "publisher"]


class World:
    """Registry, MediaNodes over fake controls, SfuBackend over a fake Janus."""

    def __init__(self, records: list[NodeRecord]) -> None:
        self.clock = Clock()
        self.records = records
        self.controls: dict[tuple[str, str], RoomsControl] = {}
        self.events: list[NodeEvent] = []

        def factory(rec: NodeRecord) -> RoomsControl:
            return self.controls.setdefault((rec.name, rec.ws_url), RoomsControl(self.clock))

        async def load() -> list[NodeRecord]:
            return list(self.records)

        self.nodes = MediaNodes(self.clock, load, control_factory=factory)
        self.nodes.subscribe(self.events.append)
        self.nodes.startService()
        self.registry = Registry(self.clock, server_url="https://meet.example.test")
        self.janus = FakeJanus()
        self.backend = SfuBackend(self.clock, self.nodes, self.registry,
                                  connect=self.janus.connect)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.backend.send = lambda p, kind, data: self.sent.append((p.user_id, kind, data))

    def join(self, meeting: Any, name: str) -> Participant:
        participant = self.registry.connect(
            self.registry.issue_seat(meeting, full_name=name, role=Role.MODERATOR))
        self.backend.joined_info(participant, False)
        return participant

    def advance(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def renegotiations(self, user: str) -> list[dict[str, Any]]:
        return [data for u, kind, data in self.sent if u == user and kind == "media.renegotiate"]

    def close(self) -> None:
        self.backend.close()
        self.nodes.stopService()


def test_a_restart_reported_with_the_meeting_recreates_its_room_on_the_same_node() -> None:
    """NodeRestarted naming a meeting's placement (here: the operator pointed the node at
    another Janus, which has no marker room): the room is created again on that node,
    everyone joins it again and every page is told ``media.renegotiate {mode: "sfu"}``,
    nobody is duplicated and the meeting stays SFU on the same node."""
    world = World([record("a")])
    try:
        meeting, _ = world.registry.create_meeting(MeetingSpec("m1", "Weekly"))
        ann = world.join(meeting, "Ann")  # placed on its first join: the room made now
        ben = world.join(meeting, "Ben")
        placement = world.nodes.placement(meeting.internal_id)
        assert placement is not None and world.backend.is_sfu(meeting)
        first = world.controls[("a", "ws://a:8188")]
        assert first.created() == [placement.room]
        assert sorted(world.janus.joins("ws://a:8188")) == sorted([ann.user_id, ben.user_id])

        world.records = [replace(record("a"), admin_url="http://other:7088/admin",
                                 ws_url="ws://other:8188", updated_at=1)]
        world.advance(2)

        assert NodeRestarted("a", (placement,)) in world.events
        again = world.controls[("a", "ws://other:8188")]
        assert again.created() == [placement.room]
        assert placement.created
        assert world.nodes.placement(meeting.internal_id) is placement
        assert sorted(world.janus.joins("ws://other:8188")) == sorted(
            [ann.user_id, ben.user_id])
        for person in (ann, ben):
            assert world.renegotiations(person.user_id) == [{"mode": "sfu"}]
        assert world.backend.is_sfu(meeting)
        assert len(meeting.participants) == 2
    finally:
        world.close()


def test_a_killed_and_restarted_only_node_takes_its_meeting_back() -> None:
    """The only node's Janus is killed (its control connection drops: NodeOffline) and
    comes back at once without its rooms: the meeting falls back to mesh, the restart is
    reported (NodeRestarted, then NodeOnline) and the meeting goes back through the same
    node, in a room created again, with every page renegotiating to mesh and back."""
    world = World([record("a")])
    try:
        meeting, _ = world.registry.create_meeting(MeetingSpec("m1", "Weekly"))
        ann = world.join(meeting, "Ann")
        ben = world.join(meeting, "Ben")
        placement = world.nodes.placement(meeting.internal_id)
        assert placement is not None
        control = world.controls[("a", "ws://a:8188")]
        assert control.on_lost is not None

        control.mode = "refuse"  # killed: the connection drops, pings are refused
        control.on_lost("connection closed")
        assert isinstance(world.events[-1], NodeOffline)
        assert not world.backend.is_sfu(meeting)
        for person in (ann, ben):
            assert [r["mode"] for r in world.renegotiations(person.user_id)] == ["mesh"]

        control.mode, control.fresh = "up", True  # started again: no marker room
        world.advance(2)
        assert world.events[-2:] == [NodeRestarted("a", ()), NodeOnline("a")]
        back = world.nodes.placement(meeting.internal_id)
        assert back is not None and back.node.name == "a" and back.created
        assert control.created() == [placement.room, back.room]
        assert world.backend.is_sfu(meeting)
        for person in (ann, ben):
            assert [r["mode"] for r in world.renegotiations(person.user_id)] == [
                "mesh", "sfu"]
        joins = world.janus.joins("ws://a:8188")
        assert sorted(joins) == sorted([ann.user_id, ben.user_id] * 2)
        assert len(meeting.participants) == 2
    finally:
        world.close()
