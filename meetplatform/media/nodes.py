"""The media nodes the service places meetings on: health, Janus restarts and placement.

:class:`MediaNodes` is a Twisted service (reactor injected; tests drive it with
``task.Clock``). Every ``ping_interval`` (2 s) it

1. reloads the nodes from the store (``meetplatform nodes ...`` changes apply within one
   interval, without restarting the service);
2. pings every node's Admin API (``ping_timeout``, 1.5 s). ``misses_to_offline`` (3)
   failed pings in a row mark a node **offline** (a node that stops answering is offline
   within 3 x 2 s + 1.5 s < 8 s); a node that answers again is **online** once its
   control connection is back;
3. keeps one **control connection** per node (a Janus API WebSocket with one session).
   When it drops, the node is offline at once (a ``kill -9`` is seen in milliseconds).

**Janus restarts.** Rooms live in Janus's memory. When the control connection opens,
the service makes sure a *marker room* exists on the node (:data:`MARKER_ROOM`); if it
is missing on a node that had been connected before, Janus restarted and lost every room:
subscribers get a :class:`NodeRestarted` naming the placements whose rooms are gone (the
media layer re-creates them and has its browsers renegotiate).

When the marker is there (Janus kept running while meetplatform restarted), the rooms on
the node that no meeting holds are destroyed (:meth:`MediaNodes.reconcile`): room secrets
are derived from the node's admin key (:func:`room_secret`), so a new process can.

**Placement** (:meth:`MediaNodes.place`): a meeting goes to the least-loaded *usable*
node: enabled (not disabled, not draining), online, and below its capacity. Load is the
relay's own count, kept by the media layer through :meth:`MediaNodes.count`: publishers
+ subscriptions + one per meeting (so empty meetings spread too), divided by the node's
capacity. ``preferredServer`` wins when it names a usable node (Mconf-LB semantics: an
unknown or unusable name is ignored). The room id on Janus is the meeting's voice bridge
when that number is free on the node (voice bridges are unique per server, as Mconf-LB
requires), else a free 6-digit number. With no node configured :meth:`place` returns
None: meetings stay browser-to-browser (mesh), the default.

Usage by the media layer::

    placement = nodes.place(meeting.internal_id, meeting.voice_bridge, preferred)
    if placement is not None:
        await nodes.create_room(placement)        # VideoRoom create, lock_record, secret
        nodes.count(placement, publishers=+1)     # as the relay adds and removes streams
        handle = ...  # JanusConnection.connect(reactor, placement.node.ws_url, ...)
    nodes.subscribe(on_node_event)                # NodeOnline / NodeOffline / NodeRestarted
    await nodes.release(meeting.internal_id)      # destroys the room; when the meeting ends

Why one module of this size: health, restart detection and placement read and change the
same table of nodes and their states on the same tick; split, each would need the
others' internals.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.media.janus import (
    DEFAULT_KEEPALIVE,
    JanusAdmin,
    JanusConnection,
    JanusError,
    JanusSession,
    JanusTimeout,
    JanusUnreachable,
    VideoRoom,
)
from meetplatform.registry import Registry
from meetplatform.store.nodes_db import NodeRecord

_log = Logger()

PING_INTERVAL = 2.0
PING_TIMEOUT = 1.5
MISSES_TO_OFFLINE = 3
#: A room the service keeps on every node: gone means Janus restarted (rooms lost).
MARKER_ROOM = 9_007_199_254_740_000
#: The room ``meetplatform nodes check`` creates and destroys (never an orphan).
PROBE_ROOM = 9_007_199_254_739_000
#: Room ids when the voice bridge cannot be used: 6 digits, apart from 5-digit bridges.
_ROOM_MIN, _ROOM_SPAN = 100_000, 900_000
_MAX_ROOM = 2**53 - 1

PENDING, ONLINE, OFFLINE = "pending", "online", "offline"
#: The create parameter naming the node a meeting should go to (Mconf-LB).
PREFERRED_SERVER = "preferredServer"


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeEvent:
    name: str


@dataclass(frozen=True)
class NodeOnline(NodeEvent):
    """The node answers and its control connection is open."""


@dataclass(frozen=True)
class NodeOffline(NodeEvent):
    """The node stopped answering or its control connection dropped; ``placements`` are
    the meetings on it (the media layer may move them)."""

    reason: str
    placements: tuple[Placement, ...] = ()


@dataclass(frozen=True)
class NodeRestarted(NodeEvent):
    """Janus restarted: every room on it is gone, ``placements`` need theirs again."""

    placements: tuple[Placement, ...] = ()


NodeListener = Callable[[NodeEvent], None]
JanusEventListener = Callable[[str, dict[str, Any]], None]
#: Janus's event type of core events (``started``/``shutdown``).
CORE_EVENT = 256


# --- what is placed --------------------------------------------------------------------------


@dataclass(eq=False)
class Placement:
    """A meeting's room on a node. ``secret`` is the room secret (kick, moderate, destroy):
    it stays in the service, never sent to a browser."""

    meeting: str
    node: NodeRecord
    room: int
    secret: str = field(repr=False)
    created: bool = False
    publishers: int = 0
    subscriptions: int = 0


@dataclass(frozen=True)
class NodeStatus:
    """A node as getServers, /healthz and the CLI show it."""

    name: str
    state: str
    health: str
    #: Why it is offline (or the last ping error), for operators.
    reason: str | None
    #: True when it timed out (unreachable) rather than refused (down).
    unreachable: bool
    capacity: int
    meetings: int
    publishers: int
    subscriptions: int
    ws_url: str
    admin_url: str

    @property
    def online(self) -> bool:
        return self.health == ONLINE

    @property
    def usable(self) -> bool:
        return self.online and self.state == "enabled" and self.load < 1.0

    @property
    def load(self) -> float:
        """Share of the capacity in use (streams and meetings)."""
        return (self.publishers + self.subscriptions + self.meetings) / self.capacity


def room_secret(node: NodeRecord, room: int) -> str:
    """A room's secret: derived from the node's admin key, so that a restarted service can
    still destroy the rooms it left behind (:meth:`MediaNodes.reconcile`)."""
    return hmac.new(node.secrets.admin_key.encode(), f"meetplatform room {room}".encode(),
                    hashlib.sha256).hexdigest()


# --- talking to a node -----------------------------------------------------------------------


class NodeControl(Protocol):
    """What :class:`MediaNodes` needs from a node (:class:`JanusNodeControl`; tests fake it)."""

    async def ping(self, timeout: float) -> None: ...

    async def connect(self, on_lost: Callable[[str], None]) -> bool:
        """Open the control connection; True if Janus has no marker room (a fresh Janus)."""
        ...

    def close(self) -> None: ...

    @property
    def rooms(self) -> VideoRoom: ...


class JanusNodeControl:
    """The real :class:`NodeControl`: Admin API pings and rooms, one WebSocket session."""

    def __init__(self, reactor: Any, node: NodeRecord, *, timeout: float = 5.0,
                 keepalive: float = DEFAULT_KEEPALIVE) -> None:
        self._reactor = reactor
        self._node = node
        self._timeout = timeout
        self._keepalive = keepalive
        self.admin = JanusAdmin(reactor, node.admin_url, node.secrets.admin_secret,
                                timeout=timeout)
        self._rooms = VideoRoom.over_admin(self.admin, node.secrets.admin_key)
        self.connection: JanusConnection | None = None
        self.session: JanusSession | None = None

    @property
    def rooms(self) -> VideoRoom:
        return self._rooms

    async def ping(self, timeout: float) -> None:
        await self.admin.ping(timeout=timeout)

    async def connect(self, on_lost: Callable[[str], None]) -> bool:
        self.close()
        connection = await JanusConnection.connect(
            self._reactor, self._node.ws_url, self._node.secrets.api_secret,
            timeout=self._timeout)
        try:
            session = await connection.create_session(keepalive_interval=self._keepalive)
            fresh = not await self._rooms.exists(MARKER_ROOM)
            if fresh:
                await self._rooms.create_room(
                    MARKER_ROOM, secret=secrets.token_urlsafe(24), publishers=1,
                    description="meetplatform marker (do not destroy)",
                    notify_joining=False, audiolevel_event=False)
        except BaseException:
            connection.close()
            raise
        self.connection, self.session = connection, session
        connection.on_close(on_lost)
        session.on_lost(on_lost)
        return fresh

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = self.session = None


ControlFactory = Callable[[NodeRecord], NodeControl]


@dataclass(eq=False)
class _Node:
    record: NodeRecord
    control: NodeControl
    health: str = PENDING
    misses: int = 0
    reason: str | None = None
    unreachable: bool = False
    connected: bool = False
    connecting: bool = False
    pinging: bool = False
    #: The control connection has been open at least once (a fresh Janus after that is a
    #: restart).
    seen: bool = False
    placements: dict[str, Placement] = field(default_factory=dict)


# --- the service ---------------------------------------------------------------------------


class MediaNodes(Service):
    """Health and placement over the configured media nodes (see the module docs)."""

    name = "media-nodes"

    def __init__(self, clock: IReactorTime,
                 load_nodes: Callable[[], Awaitable[Sequence[NodeRecord]]], *,
                 control_factory: ControlFactory | None = None,
                 ping_interval: float = PING_INTERVAL, ping_timeout: float = PING_TIMEOUT,
                 misses_to_offline: int = MISSES_TO_OFFLINE) -> None:
        self._clock = clock
        self._load_nodes = load_nodes
        self._control_factory: ControlFactory = control_factory or (
            lambda record: JanusNodeControl(clock, record))
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.misses_to_offline = misses_to_offline
        self._nodes: dict[str, _Node] = {}
        self._placements: dict[str, Placement] = {}
        self._listeners: list[NodeListener] = []
        self._janus_listeners: list[JanusEventListener] = []
        self._loop: LoopingCall | None = None
        self._loading = False
        #: Fires after the first load of the nodes (tests and start-up wait for it).
        self.loaded: Deferred[None] = Deferred()

    # --- lifecycle ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        loop = LoopingCall(self.tick)
        loop.clock = self._clock
        self._loop = loop
        loop.start(self.ping_interval, now=True).addErrback(
            lambda f: _log.failure("media node health loop failed", f))

    def stopService(self) -> Deferred[None] | None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        for node in self._nodes.values():
            node.control.close()
        return super().stopService()  # type: ignore[no-any-return]

    def tick(self) -> Deferred[None]:
        """Reload the nodes, then ping each one (what the loop runs every interval)."""
        return Deferred.fromCoroutine(self._tick())

    async def _tick(self) -> None:
        if not self._loading:
            self._loading = True
            try:
                self._apply(await self._load_nodes())
            except Exception:  # noqa: BLE001 - logged; the known nodes are still watched
                _log.failure("loading the media nodes failed")
            finally:
                self._loading = False
                if not self.loaded.called:
                    self.loaded.callback(None)
        for node in list(self._nodes.values()):
            if not node.pinging:
                Deferred.fromCoroutine(self._check(node))

    def _apply(self, records: Iterable[NodeRecord]) -> None:
        wanted = {record.name: record for record in records}
        for name in list(self._nodes):
            node = self._nodes[name]
            record = wanted.get(name)
            if record is not None:
                for placement in node.placements.values():
                    placement.node = record
            if record is not None and (record.admin_url, record.ws_url, record.secrets) == (
                    node.record.admin_url, node.record.ws_url, node.record.secrets):
                node.record = record  # only its state or capacity changed
                continue
            node.control.close()
            del self._nodes[name]
            if record is None:
                _log.info("media node {name} removed", name=name)
                if node.placements:
                    self._emit(NodeOffline(name, "removed by the operator",
                                           tuple(node.placements.values())))
                continue
            # New addresses or secrets: a new connection, and its meetings stay with it.
            # Seen before: a Janus without the marker room there is reported as restarted.
            _log.info("media node {name} changed: reconnecting", name=name)
            self._nodes[name] = _Node(record, self._control_factory(record),
                                      placements=node.placements, seen=node.seen)
        for name, record in wanted.items():
            if name not in self._nodes:
                self._nodes[name] = _Node(record, self._control_factory(record))

    async def _check(self, node: _Node) -> None:
        node.pinging = True
        try:
            await node.control.ping(self.ping_timeout)
        except JanusError as error:
            self._missed(node, str(error), isinstance(error, JanusTimeout))
            return
        except Exception as error:  # noqa: BLE001 - any failure is a miss, and is logged
            _log.failure("pinging media node {name} failed", name=node.record.name)
            self._missed(node, str(error), False)
            return
        finally:
            node.pinging = False
        if node.connected:
            node.misses = 0
        elif not node.connecting:
            # Only a working control connection clears the misses: a node that answers
            # pings but refuses the API secret goes offline (and says why) like a dead one.
            await self._connect(node)

    async def _connect(self, node: _Node) -> None:
        node.connecting = True
        name = node.record.name
        try:
            fresh = await node.control.connect(lambda reason: self._lost(node, reason))
        except JanusError as error:
            node.connecting = False
            self._missed(node, f"control connection failed: {error}",
                         isinstance(error, JanusTimeout))
            return
        except Exception as error:  # noqa: BLE001 - logged, counted as a miss
            node.connecting = False
            _log.failure("connecting to media node {name} failed", name=name)
            self._missed(node, str(error), False)
            return
        node.connecting = False
        if self._nodes.get(name) is not node:  # removed or changed meanwhile
            node.control.close()
            return
        node.connected = True
        node.misses = 0
        restarted = fresh and node.seen
        node.seen = True
        if restarted:
            lost = tuple(node.placements.values())
            for placement in lost:
                placement.created = False
            # A killed Janus dropped the control connection first: the meetings that were
            # moved (or fell back to mesh) then are no longer placed here, so ``count``
            # may be 0 although rooms were lost.
            _log.warn("media node {name}: Janus restarted, its rooms are gone; {count} "
                      "meeting(s) placed on it get theirs again", name=name, count=len(lost))
            self._emit(NodeRestarted(name, lost))
        elif not fresh:
            Deferred.fromCoroutine(self.reconcile(name))
        if node.health != ONLINE:
            node.health, node.reason, node.unreachable = ONLINE, None, False
            _log.info("media node {name} is online", name=name)
            self._emit(NodeOnline(name))

    def _missed(self, node: _Node, reason: str, timed_out: bool) -> None:
        node.misses += 1
        node.reason, node.unreachable = reason, timed_out
        if node.misses >= self.misses_to_offline:
            self._offline(node, reason)

    def _lost(self, node: _Node, reason: str) -> None:
        if self._nodes.get(node.record.name) is not node:
            return
        node.connected = False
        node.control.close()
        node.reason = f"control connection lost: {reason}"
        self._offline(node, node.reason)

    def _offline(self, node: _Node, reason: str) -> None:
        if node.health == OFFLINE:
            return
        node.health = OFFLINE
        if node.connected:
            node.connected = False
            node.control.close()
        _log.warn("media node {name} is offline: {reason}", name=node.record.name,
                  reason=reason)
        self._emit(NodeOffline(node.record.name, reason, tuple(node.placements.values())))

    # --- events ---------------------------------------------------------------------------

    def subscribe(self, listener: NodeListener) -> Callable[[], None]:
        """``listener(event)`` for every :class:`NodeOnline`/:class:`NodeOffline`/
        :class:`NodeRestarted`; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: NodeEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the others
                _log.failure("media node listener {listener!r} failed", listener=listener)

    # --- events Janus pushes (sampleevh, see meetplatform.media.events) -------------------

    def subscribe_janus_events(self, listener: JanusEventListener) -> Callable[[], None]:
        """``listener(node name, event)`` for each event a node's Janus posts (sessions,
        handles, plugin events, core start/stop); returns a function that unsubscribes."""
        self._janus_listeners.append(listener)
        return lambda: self._janus_listeners.remove(listener) if (
            listener in self._janus_listeners) else None

    def janus_event(self, name: str, event: dict[str, Any]) -> None:
        """Hand an authenticated node's event to the listeners."""
        if event.get("type") == CORE_EVENT:
            status = (event.get("event") or {}).get("status")
            _log.info("media node {name}: Janus core {status}", name=name, status=status)
        for listener in list(self._janus_listeners):
            try:
                listener(name, event)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the others
                _log.failure("Janus event listener {listener!r} failed", listener=listener)

    # --- what the others read -------------------------------------------------------------

    def record(self, name: str) -> NodeRecord | None:
        """The stored node called ``name`` (as last loaded), if any."""
        node = self._nodes.get(name)
        return node.record if node is not None else None

    @property
    def configured(self) -> bool:
        """True when at least one node is configured (else meetings are mesh)."""
        return bool(self._nodes)

    def status(self) -> list[NodeStatus]:
        return [self._status(node) for _, node in sorted(self._nodes.items())]

    def _status(self, node: _Node) -> NodeStatus:
        placements = node.placements.values()
        record = node.record
        return NodeStatus(
            name=record.name, state=record.state, health=node.health, reason=node.reason,
            unreachable=node.unreachable, capacity=record.capacity,
            meetings=len(node.placements),
            publishers=sum(p.publishers for p in placements),
            subscriptions=sum(p.subscriptions for p in placements),
            ws_url=record.ws_url, admin_url=record.admin_url)

    def health_summary(self) -> dict[str, Any]:
        """What ``/healthz`` shows: each node's state, health and load (no secrets)."""
        return {status.name: {"state": status.state, "health": status.health,
                              "meetings": status.meetings, "load": round(status.load, 3)}
                for status in self.status()}

    def placement(self, meeting: str) -> Placement | None:
        return self._placements.get(meeting)

    # --- placement ------------------------------------------------------------------------

    def place(self, meeting: str, voice_bridge: str | None = None,
              preferred: str | None = None) -> Placement | None:
        """The node (and room id) for a meeting (its internal id); the same one for a
        meeting placed already. None when no node is usable (meetings stay mesh)."""
        existing = self._placements.get(meeting)
        if existing is not None:
            return existing
        statuses = {node.record.name: self._status(node) for node in self._nodes.values()}
        usable = [s for s in statuses.values() if s.usable]
        if not usable:
            if statuses:
                _log.warn("no usable media node for meeting {meeting}: it runs mesh",
                          meeting=meeting)
            return None
        chosen = statuses.get(preferred or "")
        if chosen is None or not chosen.usable:
            chosen = min(usable, key=lambda s: (s.load, s.meetings, s.name))
        node = self._nodes[chosen.name]
        room = self._room_id(node, voice_bridge)
        placement = Placement(meeting, node.record, room, room_secret(node.record, room))
        node.placements[meeting] = placement
        self._placements[meeting] = placement
        _log.info("meeting {meeting} placed on media node {node} (room {room})",
                  meeting=meeting, node=node.record.name, room=placement.room)
        return placement

    @staticmethod
    def _room_id(node: _Node, voice_bridge: str | None) -> int:
        used = {p.room for p in node.placements.values()} | {MARKER_ROOM}
        if (voice_bridge and voice_bridge.isdigit() and 0 < int(voice_bridge) <= _MAX_ROOM
                and int(voice_bridge) not in used):
            return int(voice_bridge)
        while True:
            candidate = _ROOM_MIN + secrets.randbelow(_ROOM_SPAN)
            if candidate not in used:
                return candidate

    def count(self, placement: Placement, *, publishers: int = 0,
              subscriptions: int = 0) -> None:
        """The relay added (positive) or removed (negative) publishers/subscriptions."""
        placement.publishers = max(0, placement.publishers + publishers)
        placement.subscriptions = max(0, placement.subscriptions + subscriptions)

    def _control(self, placement: Placement) -> NodeControl:
        node = self._nodes.get(placement.node.name)
        if node is None:
            raise JanusUnreachable(f"media node {placement.node.name} is no longer configured")
        return node.control

    def videoroom(self, placement: Placement) -> VideoRoom:
        """Synchronous VideoRoom requests (kick, moderate...) on the placement's node."""
        return self._control(placement).rooms

    async def create_room(self, placement: Placement, **options: Any) -> None:
        """Create the placement's VideoRoom (``lock_record`` always on)."""
        await self._control(placement).rooms.create_room(
            placement.room, secret=placement.secret, description=placement.meeting, **options)
        placement.created = True

    def follow(self, registry: Registry, *, create_rooms: bool = True) -> Callable[[], None]:
        """Place every meeting the registry creates (with its ``preferredServer``
        create parameter and voice bridge) and release it when it ends. With
        ``create_rooms`` its VideoRoom is created on the node right away (failures are
        logged; the media layer may retry with :meth:`create_room`). Returns a function
        that stops following."""

        def on_event(event: ev.Event) -> None:
            if isinstance(event, ev.MeetingCreated):
                meeting = event.meeting
                placement = self.place(meeting.internal_id, meeting.voice_bridge,
                                       meeting.spec.params.get(PREFERRED_SERVER))
                if placement is not None and create_rooms:
                    Deferred.fromCoroutine(self._create_logged(placement))
            elif isinstance(event, ev.MeetingEnded):
                Deferred.fromCoroutine(self.release(event.meeting.internal_id))

        return registry.subscribe(on_event)

    async def _create_logged(self, placement: Placement) -> None:
        try:
            await self.create_room(placement)
        except JanusError as error:
            _log.warn("creating room {room} of meeting {meeting} on media node {node} "
                      "failed: {error}", room=placement.room, meeting=placement.meeting,
                      node=placement.node.name, error=str(error))

    async def reconcile(self, name: str) -> list[int]:
        """Destroy the rooms on node ``name`` that no placement knows (left behind by a
        meetplatform that stopped or crashed); returns their ids. Errors are logged."""
        node = self._nodes.get(name)
        if node is None:
            return []
        try:
            rooms = await node.control.rooms.list_rooms()
        except JanusError as error:
            _log.warn("listing the rooms of media node {name} failed: {error}", name=name,
                      error=str(error))
            return []
        known = {p.room for p in node.placements.values()} | {MARKER_ROOM, PROBE_ROOM}
        orphans = [r.room for r in rooms if r.room not in known]
        for room in orphans:
            try:
                await node.control.rooms.destroy_room(room, secret=room_secret(node.record,
                                                                               room))
            except JanusError as error:
                _log.warn("media node {name}: cannot destroy orphan room {room}: {error}",
                          name=name, room=room, error=str(error))
            else:
                _log.info("media node {name}: destroyed orphan room {room}", name=name,
                          room=room)
        return orphans

    async def release(self, meeting: str) -> None:
        """Forget a meeting's placement and destroy its room (errors are logged)."""
        placement = self._placements.pop(meeting, None)
        if placement is None:
            return
        node = self._nodes.get(placement.node.name)
        if node is not None:
            node.placements.pop(meeting, None)
        if placement.created and node is not None and node.health == ONLINE:
            try:
                await node.control.rooms.destroy_room(placement.room, secret=placement.secret)
            except JanusError as error:
                _log.warn("destroying room {room} on media node {node} failed: {error}",
                          room=placement.room, node=placement.node.name, error=str(error))
