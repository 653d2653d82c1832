"""MediaNodes: health with a task.Clock and fake nodes, placement, and real Janus nodes
(SIGKILL -> offline, restart -> rooms lost reported)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from meetplatform.media.janus import JanusTimeout, JanusUnreachable, VideoRoom
from meetplatform.media.nodes import (
    MediaNodes,
    NodeEvent,
    NodeOffline,
    NodeOnline,
    NodeRestarted,
)
from meetplatform.store.nodes_db import NodeRecord, NodeSecrets
from tests.media.janus_process import JanusProcess, needs_janus

SECRETS = NodeSecrets("api-secret", "admin-secret", "admin-key", "events")


def record(name: str, *, state: str = "enabled", capacity: int = 100,
           janus: JanusProcess | None = None) -> NodeRecord:
    return NodeRecord(
        name=name, admin_url=janus.admin_url if janus else f"http://{name}:7088/admin",
        ws_url=janus.ws_url if janus else f"ws://{name}:8188", capacity=capacity, state=state,
        created_at=0, updated_at=0, secrets=SECRETS)


class FakeControl:
    """A node that answers (or not) as the test says; ``pending`` holds unanswered pings."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mode = "up"          # up | refuse | silent
        self.fresh = True
        self.on_lost: Callable[[str], None] | None = None
        self.connects = 0
        self.closed = 0

    async def ping(self, timeout: float) -> None:
        if self.mode == "refuse":
            raise JanusUnreachable("refused")
        if self.mode == "silent":
            d: Deferred[None] = Deferred()
            self.clock.callLater(timeout, d.errback, JanusTimeout("no answer"))
            await d

    async def connect(self, on_lost: Callable[[str], None]) -> bool:
        self.connects += 1
        self.on_lost = on_lost
        fresh, self.fresh = self.fresh, False
        return fresh

    def close(self) -> None:
        self.closed += 1

    @property
    def rooms(self) -> VideoRoom:
        return VideoRoom(lambda request: succeed({}), "admin-key")


class Harness:
    def __init__(self, records: Sequence[NodeRecord]) -> None:
        self.clock = Clock()
        self.records = list(records)
        self.controls: dict[str, FakeControl] = {}
        self.events: list[NodeEvent] = []

        def factory(rec: NodeRecord) -> FakeControl:
            return self.controls.setdefault(rec.name, FakeControl(self.clock))

        async def load() -> list[NodeRecord]:
            return list(self.records)

        self.nodes = MediaNodes(self.clock, load, control_factory=factory)
        self.nodes.subscribe(self.events.append)
        self.nodes.startService()

    def advance(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def health(self, name: str) -> str:
        return {s.name: s.health for s in self.nodes.status()}[name]


def test_nodes_come_online_and_go_offline_after_three_missed_pings() -> None:
    h = Harness([record("a")])
    assert h.health("a") == "online" and h.events == [NodeOnline("a")]
    h.controls["a"].mode = "silent"  # a host that died: only timeouts
    h.advance(8)
    assert h.health("a") == "offline"
    assert isinstance(h.events[-1], NodeOffline) and "no answer" in h.events[-1].reason
    status = h.nodes.status()[0]
    assert status.unreachable and not status.usable
    h.controls["a"].mode = "up"
    h.advance(2)
    assert h.health("a") == "online" and h.events[-1] == NodeOnline("a")


def test_two_misses_are_not_enough_and_offline_comes_within_eight_seconds() -> None:
    h = Harness([record("a")])
    h.controls["a"].mode = "refuse"
    h.advance(2.1)
    h.advance(2.0)
    assert h.health("a") == "online"  # two misses
    h.controls["a"].mode = "up"
    h.advance(2.0)
    h.controls["a"].mode = "silent"
    started = h.clock.seconds()
    while h.health("a") == "online":
        h.advance(0.1)
    assert h.clock.seconds() - started <= 8.0


def test_a_dropped_control_connection_is_offline_at_once_and_a_restart_is_reported() -> None:
    h = Harness([record("a")])
    placement = h.nodes.place("m1", "71234")
    assert placement is not None
    placement.created = True
    control = h.controls["a"]
    control.mode = "refuse"
    assert control.on_lost is not None
    control.on_lost("connection closed")
    assert h.health("a") == "offline"
    offline = h.events[-1]
    assert isinstance(offline, NodeOffline) and offline.placements == (placement,)
    control.mode, control.fresh = "up", True  # Janus came back without its rooms
    h.advance(2)
    assert h.events[-2:] == [NodeRestarted("a", (placement,)), NodeOnline("a")]
    assert placement.created is False
    assert control.connects == 2


def test_placement_spreads_by_load_and_honours_preferred_server() -> None:
    h = Harness([record("a"), record("b"), record("c", state="draining"),
                 record("d", state="disabled")])
    first = h.nodes.place("m1", "70001")
    second = h.nodes.place("m2", "70002")
    assert first is not None and second is not None
    assert {first.node.name, second.node.name} == {"a", "b"}
    assert first.room == 70001 and second.room == 70002
    assert h.nodes.place("m1") is first  # placed once
    h.nodes.count(first, publishers=5, subscriptions=20)
    assert [h.nodes.place(f"x{i}").node.name for i in range(3)] == [  # type: ignore[union-attr]
        second.node.name] * 3
    # preferredServer: honoured when usable, ignored when draining/disabled/unknown
    assert h.nodes.place("p1", preferred=first.node.name).node.name == first.node.name  # type: ignore[union-attr]
    for name in ("c", "d", "nope"):
        chosen = h.nodes.place(f"p-{name}", preferred=name)
        assert chosen is not None and chosen.node.name in ("a", "b")
    loads = {s.name: s for s in h.nodes.status()}
    assert loads["c"].meetings == 0 and loads["d"].meetings == 0


def test_room_ids_are_unique_per_node() -> None:
    h = Harness([record("a", capacity=1000)])
    one = h.nodes.place("m1", "70001")
    two = h.nodes.place("m2", "70001")  # the same bridge on the same node
    assert one is not None and two is not None
    assert one.room == 70001 and two.room != 70001 and 100_000 <= two.room < 1_000_000


def test_full_and_offline_nodes_get_nothing_and_no_nodes_means_mesh() -> None:
    assert Harness([]).nodes.place("m1") is None
    h = Harness([record("a", capacity=2)])
    assert h.nodes.place("m1") is not None
    assert h.nodes.place("m2") is not None
    assert h.nodes.place("m3") is None  # full: 2 meetings on capacity 2
    h.controls["a"].mode = "refuse"
    h.advance(6.5)
    assert h.health("a") == "offline"


@pytest_twisted.ensureDeferred
async def test_release_forgets_the_placement() -> None:
    h = Harness([record("a")])
    placement = h.nodes.place("m1")
    assert placement is not None
    await h.nodes.create_room(placement)
    assert placement.created
    await h.nodes.release("m1")
    assert h.nodes.placement("m1") is None and h.nodes.status()[0].meetings == 0


def test_drained_node_keeps_its_meetings_and_reload_applies_changes() -> None:
    h = Harness([record("a"), record("b")])
    placed = h.nodes.place("m1", preferred="a")
    assert placed is not None and placed.node.name == "a"
    h.records = [record("a", state="draining"), record("b")]
    h.advance(2)
    assert all(h.nodes.place(f"n{i}").node.name == "b" for i in range(3))  # type: ignore[union-attr]
    assert h.nodes.placement("m1") is placed and placed.node.state == "draining"
    h.records = [record("b")]
    h.advance(2)
    assert [s.name for s in h.nodes.status()] == ["b"]
    assert isinstance(h.events[-1], NodeOffline) and h.events[-1].name == "a"


# --- real Janus ----------------------------------------------------------------------------


def real_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        d: Deferred[None] = Deferred()
        real_reactor().callLater(0.05, d.callback, None)
        await d
    return time.monotonic() - started


@needs_janus
@pytest_twisted.ensureDeferred
async def test_real_nodes_placement_kill_and_restart(tmp_path: Path) -> None:
    a = JanusProcess(tmp_path / "a", "a").start()
    b = JanusProcess(tmp_path / "b", "b").start()
    events: list[NodeEvent] = []
    records = [record("a", janus=a), record("b", janus=b)]

    async def load() -> list[NodeRecord]:
        return records

    nodes = MediaNodes(real_reactor(), load)
    nodes.subscribe(events.append)
    nodes.startService()
    try:
        await wait_for(lambda: all(s.online for s in nodes.status()), 10)
        one = nodes.place("m1", "70001")
        two = nodes.place("m2", "70002")
        assert one is not None and two is not None and one.node.name != two.node.name
        await nodes.create_room(one)
        await nodes.create_room(two)
        on_a = one if one.node.name == "a" else two
        rooms = VideoRoom.over_admin(nodes._nodes["a"].control.admin, "admin-key")  # type: ignore[attr-defined]
        assert await rooms.exists(on_a.room)

        a.kill()
        took = await wait_for(lambda: not nodes.status()[0].online, 8)
        assert took < 8
        offline = [e for e in events if isinstance(e, NodeOffline)]
        assert offline[0].name == "a" and offline[0].placements == (on_a,)
        assert nodes.place("m3").node.name == "b"  # type: ignore[union-attr]

        a.start()  # the same ports, a fresh Janus: its rooms are gone
        await wait_for(lambda: nodes.status()[0].online, 10)
        assert NodeRestarted("a", (on_a,)) in events
        await nodes.release(two.meeting)
    finally:
        nodes.stopService()
        a.stop()
        b.stop()


def test_a_changed_node_keeps_its_meetings_and_reports_lost_rooms() -> None:
    h = Harness([record("a")])
    placed = h.nodes.place("m1")
    assert placed is not None
    moved = NodeRecord(name="a", admin_url="http://other:7088/admin", ws_url="ws://other:8188",
                       capacity=100, state="enabled", created_at=0, updated_at=1,
                       secrets=SECRETS)
    h.records = [moved]
    h.controls.clear()  # the factory makes a new control for the new address
    h.advance(2)
    assert h.nodes.placement("m1") is placed and placed.node.ws_url == "ws://other:8188"
    assert h.nodes.status()[0].meetings == 1
    assert NodeRestarted("a", (placed,)) in h.events  # the Janus there has no marker room


@needs_janus
@pytest_twisted.ensureDeferred
async def test_a_restarted_service_destroys_the_rooms_it_left_behind(tmp_path: Path) -> None:
    janus = JanusProcess(tmp_path / "a", "a").start()
    records = [record("a", janus=janus)]

    async def load() -> list[NodeRecord]:
        return records

    first = MediaNodes(real_reactor(), load)
    first.startService()
    second = MediaNodes(real_reactor(), load)
    try:
        await wait_for(lambda: first.status()[0].online, 10)
        left = first.place("m1", "74444")
        assert left is not None
        await first.create_room(left)
        first.stopService()  # "crashed": the room stays on Janus

        second.startService()  # the next process: Janus kept running, marker room there
        await wait_for(lambda: second.status()[0].online, 10)
        rooms = VideoRoom.over_admin(second._nodes["a"].control.admin, "admin-key")  # type: ignore[attr-defined]
        listed: list[int] = []
        for _ in range(40):  # the reconciliation runs right after the connection opens
            listed = [r.room for r in await rooms.list_rooms()]
            if 74444 not in listed:
                break
            d: Deferred[None] = Deferred()
            real_reactor().callLater(0.05, d.callback, None)
            await d
        assert 74444 not in listed and len(listed) == 1  # only the marker room is left
    finally:
        second.stopService()
        janus.stop()
