"""The Janus implementation of the media backend: meetplatform relays each browser's
media signalling to the meeting's Janus node (VideoRoom).

For every participant of a meeting placed on a node (:class:`~meetplatform.media.nodes.
MediaNodes`) the service holds one Janus session with two handles:

- a **publisher** handle, joined to the meeting's room at once (``ptype: publisher``,
  ``id`` chosen here, ``display`` = the participant's id), which publishes when the
  browser sends ``media.publish`` (an offer; the answer goes back in the ack). Camera,
  microphone and screen are streams (mids) of one PeerConnection; each stream's
  ``description`` says what it is (``camera``/``screen``/``mic``);
- one multistream **subscriber** handle, which subscribes to every other publisher's
  streams. Janus offers, the browser answers (``media.offer`` → ``media.answer``); each
  change of the room's streams updates the one subscription (``update``).

The browser never talks to Janus and never learns a Janus secret: JSEP and trickle
candidates go through ``/ws``. What a browser may publish is decided here: a viewer of a
``webcamsOnlyForModerator`` meeting cannot publish video (the offer's video sections are
refused before Janus sees them), only the presenter shares a screen. Mute and remove by a
moderator reach the media through VideoRoom ``moderate`` and ``kick`` with the room
secret (never sent to a browser). Talking events (``audiolevel_event``) become
``talking`` events for the page's speaking indicator.

**Moves.** When a node goes offline or its Janus restarts (rooms lost),
:class:`SfuBackend` re-places each of its meetings, re-creates the room and sets every
participant up again on the new node, then tells each browser ``media.renegotiate``: the
page builds new PeerConnections and publishes again, without reloading. With no usable
node left a meeting falls back to mesh (``media.renegotiate {mode: "mesh"}``). Every
Janus call has a timeout, so nothing waits for a node that went silent; a meeting whose
room or sessions cannot be set up falls back to mesh with a log line.

Why one module of this size: the browser requests, Janus's events, the registry's events
and the node moves all read and change the same per-meeting state (each participant's
handles, the room's published streams, the subscription each one receives) under one
ordering of renegotiations; split, each part would need the others' internals.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from meetplatform import events as ev
from meetplatform.media.backend import (
    MESH,
    SFU,
    MediaRefused,
    MeshBackend,
    may_publish_video,
)
from meetplatform.media.janus import (
    VIDEOROOM_ROOM_EXISTS,
    JanusConnection,
    JanusError,
    JanusHandle,
    JanusPluginError,
    JanusSession,
    JanusTimeout,
    PluginReply,
)
from meetplatform.media.nodes import (
    PREFERRED_SERVER,
    MediaNodes,
    NodeEvent,
    NodeOffline,
    NodeOnline,
    NodeRestarted,
    Placement,
)
from meetplatform.model import Meeting, Participant
from meetplatform.registry import Registry

_log = Logger()

#: Seconds a browser has to answer the subscriber's offer.
ANSWER_TIMEOUT = 15.0
#: Stream sources a browser may declare for its published mids.
SOURCES = ("mic", "camera", "screen")
#: Simulcast substreams (0 lowest) and temporal layers a subscriber may pick.
MAX_SUBSTREAM = 2
MAX_TEMPORAL = 2

#: ``send(participant, kind, data)``: one event to the participant's socket.
Send = Callable[[Participant, str, dict[str, Any]], None]
#: ``connect(ws_url, api_secret)``: a Janus API connection to a node.
Connector = Callable[[str, str], "Deferred[JanusConnection]"]


T = TypeVar("T")


class _Shared(Generic[T]):
    """One piece of work several callers await (a node connection, a room's creation, a
    participant's set-up); each caller gets its own Deferred, and the outcome is kept."""

    def __init__(self, work: Deferred[T]) -> None:
        self.done = False
        self._result: T | None = None
        self._failure: Failure | None = None
        self._waiters: list[Deferred[T]] = []
        work.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, value: T) -> None:
        self.done, self._result = True, value
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(value)

    def _failed(self, failure: Failure) -> None:
        self.done, self._failure = True, failure
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def wait(self) -> Deferred[T]:
        if self._failure is not None:
            return fail(self._failure)
        if self.done:
            return succeed(self._result)  # type: ignore[arg-type]
        waiter: Deferred[T] = Deferred()
        self._waiters.append(waiter)
        return waiter


class _Gate:
    """Opened (or failed) once: a participant's Janus set-up."""

    def __init__(self) -> None:
        self._work: Deferred[None] = Deferred()
        self.shared: _Shared[None] = _Shared(self._work)

    @property
    def called(self) -> bool:
        return self.shared.done

    def open(self) -> None:
        if not self.shared.done:
            self._work.callback(None)

    def fail(self, error: Exception) -> None:
        if not self.shared.done:
            self._work.errback(Failure(error))


# --- SDP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One m-line of an SDP: its kind, mid and whether it sends media."""

    kind: str
    mid: str | None
    sending: bool


def sdp_sections(sdp: str) -> list[Section]:
    """The m-sections of ``sdp`` (kind, mid, sending: not inactive/recvonly, port > 0)."""
    sections: list[Section] = []
    kind: str | None = None
    mid: str | None = None
    port_zero = False
    direction = "sendrecv"
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if kind is not None:
                sections.append(Section(kind, mid, not port_zero and direction in (
                    "sendrecv", "sendonly")))
            parts = line[2:].split()
            kind = parts[0] if parts else ""
            port_zero = len(parts) > 1 and parts[1] == "0"
            mid, direction = None, "sendrecv"
        elif kind is not None and line.startswith("a=mid:"):
            mid = line[6:]
        elif kind is not None and line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive") \
                and line.startswith("a="):
            direction = line[2:]
    if kind is not None:
        sections.append(Section(kind, mid, not port_zero and direction in (
            "sendrecv", "sendonly")))
    return sections


# --- state ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Peer:
    """One participant's Janus state in an SFU meeting."""

    participant: Participant
    room: _Room
    feed: int
    generation: int = 0
    session: JanusSession | None = None
    pub: JanusHandle | None = None
    sub: JanusHandle | None = None
    private_id: int | None = None
    published: bool = False
    #: mid -> source the browser declared for its published streams.
    sources: dict[str, str] = field(default_factory=dict)
    sub_joined: bool = False
    #: (feed, feed mid) pairs the subscriber receives.
    subscribed: set[tuple[int, str]] = field(default_factory=set)
    #: subscriber mid -> its stream (what the page is told).
    sub_streams: list[dict[str, Any]] = field(default_factory=list)
    offer_seq: int = 0
    answer: Deferred[str] | None = None
    lock: DeferredLock = field(default_factory=DeferredLock)
    ready: _Gate = field(default_factory=_Gate)
    moderated: bool = False
    #: Janus reported the publisher's PeerConnection up (``webrtcup``): others may
    #: subscribe to it now (Janus refuses a feed whose media have not started: 428).
    media_up: bool = False
    gone: bool = False

    @property
    def user_id(self) -> str:
        return self.participant.user_id


@dataclass(eq=False)
class _Room:
    """An SFU meeting: its placement and the participants set up on it."""

    meeting: Meeting
    placement: Placement | None
    mode: str = SFU
    peers: dict[str, _Peer] = field(default_factory=dict)
    #: feed id -> the streams it publishes: [{mid, type, description}].
    streams: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    feeds: dict[int, str] = field(default_factory=dict)
    talking: dict[str, bool] = field(default_factory=dict)
    created: _Shared[None] | None = None
    moving: bool = False
    #: Fell back to mesh because no node was usable: back to a node when one is.
    fell_back: bool = False


class SfuBackend:
    """Janus-relayed media for the meetings placed on nodes; see the module docs.

    ``send`` delivers one event to a participant's socket (the signalling surface sets it);
    ``on_moved(meeting)`` listeners hear when a meeting changed node (the XML API drops
    its cached ``<server>`` block)."""

    mode = SFU

    def __init__(self, clock: IReactorTime, nodes: MediaNodes, registry: Registry, *,
                 connect: Connector | None = None, timeout: float = 5.0,
                 answer_timeout: float = ANSWER_TIMEOUT,
                 mesh: MeshBackend | None = None) -> None:
        self._clock = clock
        self.nodes = nodes
        self.registry = registry
        self.timeout = timeout
        self.answer_timeout = answer_timeout
        self.mesh = mesh or MeshBackend()
        self._connect: Connector = connect or (
            lambda url, secret: Deferred.fromCoroutine(JanusConnection.connect(
                clock, url, secret, timeout=timeout)))
        self.send: Send = lambda participant, kind, data: None
        self.on_moved: list[Callable[[Meeting], None]] = []
        #: ``(meeting, feed, streams)`` listeners: a publisher's streams changed (each
        #: ``{mid, type, source}``); the recording service notes which are screens.
        self.on_streams: list[Callable[[Meeting, int, list[dict[str, Any]]], None]] = []
        self._rooms: dict[str, _Room] = {}
        self._connections: dict[str, _Shared[JanusConnection]] = {}
        self._unsubscribe = [registry.subscribe(self._on_registry_event),
                             nodes.subscribe(self._on_node_event)]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    # --- which backend ----------------------------------------------------------------------

    def mode_for(self, meeting: Meeting) -> str:
        """``sfu`` for a meeting with a room on a node, else ``mesh``. A meeting not placed
        yet is placed on its first join (a node may have come up since it was created)."""
        room = self._rooms.get(meeting.internal_id)
        if room is not None:
            return room.mode
        placement = self.nodes.placement(meeting.internal_id)
        if placement is not None and len(meeting.participants) <= 1 and not any(
                s.name == placement.node.name and s.online for s in self.nodes.status()):
            # Placed at creation on a node that has gone offline since: place it again.
            Deferred.fromCoroutine(self.nodes.release(meeting.internal_id))
            placement = None
        if placement is None and len(meeting.participants) <= 1 and self.nodes.configured:
            placement = self.nodes.place(meeting.internal_id, meeting.voice_bridge,
                                         meeting.spec.params.get(PREFERRED_SERVER))
        if placement is None:
            return MESH
        self._rooms[meeting.internal_id] = _Room(meeting, placement)
        return SFU

    def joined_info(self, participant: Participant, resumed: bool) -> dict[str, Any]:
        """Start (or, after a resume, restart) the participant's Janus session; what the
        ``joined`` snapshot says about media."""
        meeting = participant.meeting
        if self.mode_for(meeting) == MESH:
            return self.mesh.joined_info(participant, resumed)
        room = self._rooms[meeting.internal_id]
        old = room.peers.pop(participant.user_id, None)
        if old is not None:
            self._drop_peer(old, hard=False)
        peer = _Peer(participant, room, feed=_new_feed(room))
        room.peers[participant.user_id] = peer
        room.feeds[peer.feed] = participant.user_id
        Deferred.fromCoroutine(self._start(peer))
        return {"mode": SFU, "simulcast": True,
                "canPublishVideo": may_publish_video(participant)}

    def check_camera(self, participant: Participant, on: bool) -> None:
        room = self._rooms.get(participant.meeting.internal_id)
        if room is None or room.mode == MESH:
            self.mesh.check_camera(participant, on)
        elif on and participant.video_streams == 0 and not may_publish_video(participant):
            raise MediaRefused("notAllowed",
                               "In this meeting only moderators may share a camera.")

    def is_sfu(self, meeting: Meeting) -> bool:
        room = self._rooms.get(meeting.internal_id)
        return room is not None and room.mode == SFU

    # --- setting a participant up ---------------------------------------------------------

    async def _connection(self, placement: Placement) -> JanusConnection:
        name = placement.node.name
        shared = self._connections.get(name)
        if shared is None or shared.failed:
            shared = _Shared(self._connect(placement.node.ws_url,
                                           placement.node.secrets.api_secret))
            self._connections[name] = shared
        try:
            connection = await shared.wait()
        except JanusError:
            if self._connections.get(name) is shared:
                del self._connections[name]
            raise
        if connection.closed:
            if self._connections.get(name) is shared:
                del self._connections[name]
            return await self._connection(placement)
        return connection

    async def _ensure_room(self, room: _Room) -> None:
        placement = room.placement
        assert placement is not None
        if placement.created:
            return
        if room.created is None or room.created.failed:
            room.created = _Shared(Deferred.fromCoroutine(self._create_room(placement)))
        await room.created.wait()

    async def _create_room(self, placement: Placement) -> None:
        try:
            await self.nodes.create_room(placement)
        except JanusPluginError as error:
            if error.code != VIDEOROOM_ROOM_EXISTS:
                raise
            placement.created = True  # created meanwhile (placed at the meeting's create)

    async def _start(self, peer: _Peer) -> None:
        generation = peer.generation
        room = peer.room
        try:
            await self._ensure_room(room)
            placement = room.placement
            assert placement is not None
            connection = await self._connection(placement)
            session = await connection.create_session()
            if self._stale(peer, generation):
                await _quietly(session.destroy())
                return
            peer.session = session
            session.on_lost(lambda reason: self._session_lost(peer, generation, reason))
            pub = await session.attach()
            peer.pub = pub
            pub.subscribe(lambda message: self._publisher_event(peer, message))
            reply = await pub.message({
                "request": "join", "ptype": "publisher", "room": placement.room,
                "id": peer.feed, "display": peer.user_id}, timeout=self.timeout)
            peer.private_id = reply.data.get("private_id")
            sub = await session.attach()
            peer.sub = sub
            sub.subscribe(lambda message: self._subscriber_event(peer, message))
        except JanusError as error:
            if self._stale(peer, generation):
                return
            _log.warn("setting up {user} of meeting {meeting} on media node {node} failed: "
                      "{error}", user=peer.user_id, meeting=room.meeting.meeting_id,
                      node=room.placement.node.name if room.placement else "-",
                      error=str(error))
            peer.ready.fail(error)
            self._fall_back(room, f"media node failed: {error}")
            return
        if self._stale(peer, generation):
            return
        peer.ready.open()
        await self._sync(peer)

    def _stale(self, peer: _Peer, generation: int) -> bool:
        return peer.gone or peer.generation != generation

    def _session_lost(self, peer: _Peer, generation: int, reason: str) -> None:
        if self._stale(peer, generation):
            return
        _log.info("Janus session of {user} lost: {reason}", user=peer.user_id, reason=reason)

    async def _ready(self, participant: Participant) -> _Peer:
        room = self._rooms.get(participant.meeting.internal_id)
        peer = room.peers.get(participant.user_id) if room is not None else None
        if room is None or room.mode != SFU or peer is None:
            raise MediaRefused("wrongMode", "this meeting's media do not go through a "
                                            "media node now; wait for media.renegotiate")
        try:
            await peer.ready.shared.wait()
        except JanusError:
            raise MediaRefused("mediaUnavailable",
                               "the media server is not available; retrying") from None
        return peer

    # --- requests from the browser --------------------------------------------------------

    async def publish(self, participant: Participant, sdp: str,
                      sources: dict[str, str]) -> dict[str, Any]:
        """``media.publish``: check what the offer sends, hand it to Janus, return the
        answer ``{type, sdp}``."""
        sections = sdp_sections(sdp)
        for section in sections:
            if not section.sending:
                continue
            source = sources.get(section.mid or "")
            if section.kind == "audio":
                if source not in (None, "mic"):
                    raise MediaRefused("invalid", "an audio stream must be the microphone")
            elif section.kind == "video":
                if source == "screen":
                    if not participant.presenter:
                        raise MediaRefused("notAllowed",
                                           "only the presenter can share the screen")
                elif not may_publish_video(participant):
                    raise MediaRefused(
                        "notAllowed", "In this meeting only moderators may share a camera.")
            else:
                raise MediaRefused("invalid", f"cannot publish {section.kind} streams")
        peer = await self._ready(participant)
        generation = peer.generation
        assert peer.pub is not None
        descriptions = [{"mid": mid, "description": source}
                        for mid, source in sources.items()]
        body: dict[str, Any] = {"request": "configure" if peer.published else "publish",
                                "descriptions": descriptions}
        if not peer.published:
            body["display"] = peer.user_id
        try:
            reply = await peer.pub.message(body, {"type": "offer", "sdp": sdp},
                                           timeout=self.timeout)
        except JanusError as error:
            _log.warn("publishing for {user} failed: {error}", user=peer.user_id,
                      error=str(error))
            raise MediaRefused("mediaUnavailable", "the media server refused the stream") \
                from None
        if self._stale(peer, generation) or reply.jsep is None:
            raise MediaRefused("wrongMode", "the meeting moved; wait for media.renegotiate")
        placement = peer.room.placement
        if not peer.published and placement is not None:
            self.nodes.count(placement, publishers=+1)
        peer.published = True
        peer.sources = dict(sources)
        self._set_streams(peer, reply.data.get("streams"))
        return {"type": "answer", "sdp": str(reply.jsep.get("sdp", ""))}

    def _set_streams(self, peer: _Peer, streams: Any) -> None:
        room = peer.room
        active = []
        for stream in streams or []:
            if not isinstance(stream, dict) or stream.get("disabled"):
                continue
            mid = str(stream.get("mid"))
            active.append({"mid": mid, "type": stream.get("type"),
                           "source": peer.sources.get(mid) or (
                               "mic" if stream.get("type") == "audio" else "camera")})
        room.streams[peer.feed] = active
        for listener in list(self.on_streams):
            try:
                listener(room.meeting, peer.feed, active)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the relay
                _log.failure("a streams listener failed")
        if peer.media_up:
            self._sync_all(room, exclude=peer)

    def answer(self, participant: Participant, seq: int, sdp: str) -> None:
        """``media.answer``: the browser's answer to the subscriber offer ``seq``."""
        room = self._rooms.get(participant.meeting.internal_id)
        peer = room.peers.get(participant.user_id) if room is not None else None
        if peer is None or peer.answer is None or seq != peer.offer_seq:
            raise MediaRefused("invalid", "no subscriber offer with that sequence number")
        waiting, peer.answer = peer.answer, None
        waiting.callback(sdp)

    async def trickle(self, participant: Participant, target: str,
                      candidate: dict[str, Any] | None) -> None:
        """``media.trickle``: one ICE candidate of the browser's publisher or subscriber."""
        peer = await self._ready(participant)
        handle = peer.pub if target == "publisher" else peer.sub
        if handle is None:
            return
        try:
            await handle.trickle(candidate)
        except JanusError as error:
            _log.debug("trickle for {user} failed: {error}", user=peer.user_id,
                       error=str(error))

    async def configure(self, participant: Participant, mid: str, substream: int | None,
                        temporal: int | None) -> None:
        """``media.configure``: the simulcast layer of one received stream (by tile size
        and bandwidth, chosen by the page)."""
        peer = await self._ready(participant)
        if peer.sub is None or not peer.sub_joined:
            return
        stream: dict[str, Any] = {"mid": mid}
        if substream is not None:
            stream["substream"] = substream
        if temporal is not None:
            stream["temporal"] = temporal
        try:
            await peer.sub.message({"request": "configure", "streams": [stream]},
                                   timeout=self.timeout)
        except JanusError as error:
            raise MediaRefused("invalid", f"cannot configure that stream: {error}") from None

    # --- the subscription -----------------------------------------------------------------

    def _sync_all(self, room: _Room, exclude: _Peer | None = None) -> None:
        for other in list(room.peers.values()):
            if other is not exclude and other.ready.called and not other.gone:
                Deferred.fromCoroutine(self._sync(other))

    async def _sync(self, peer: _Peer) -> None:
        """Bring the peer's one subscription to every other publisher's streams."""
        await peer.lock.acquire()
        try:
            await self._sync_locked(peer)
        except JanusError as error:
            if not peer.gone:
                _log.warn("updating the subscription of {user} failed: {error}",
                          user=peer.user_id, error=str(error))
        except Exception:  # noqa: BLE001 - logged; the next change syncs again
            _log.failure("updating the subscription of {user} failed", user=peer.user_id)
        finally:
            peer.lock.release()

    async def _sync_locked(self, peer: _Peer) -> None:
        generation = peer.generation
        room = peer.room
        if peer.gone or peer.sub is None or room.placement is None:
            return
        up = {other.feed for other in room.peers.values() if other.media_up}
        wanted = {(feed, str(s["mid"])) for feed, streams in room.streams.items()
                  if feed != peer.feed and feed in up for s in streams}
        add = wanted - peer.subscribed
        remove = peer.subscribed - wanted
        if not add and not remove:
            return
        reply: PluginReply
        if not peer.sub_joined:
            if not add:
                return
            reply = await peer.sub.message({
                "request": "join", "ptype": "subscriber", "room": room.placement.room,
                "private_id": peer.private_id,
                "streams": [{"feed": feed, "mid": mid} for feed, mid in sorted(add)]},
                timeout=self.timeout)
            peer.sub_joined = True
        else:
            body: dict[str, Any] = {"request": "update"}
            if add:
                body["subscribe"] = [{"feed": feed, "mid": mid} for feed, mid in sorted(add)]
            if remove:
                body["unsubscribe"] = [{"feed": feed, "mid": mid}
                                       for feed, mid in sorted(remove)]
            reply = await peer.sub.message(body, timeout=self.timeout)
        if self._stale(peer, generation):
            return
        self._read_sub_streams(peer, reply.data.get("streams"))
        if reply.jsep is not None:
            await self._offer(peer, reply.jsep)

    def _read_sub_streams(self, peer: _Peer, streams: Any) -> None:
        if not isinstance(streams, list):
            return
        room = peer.room
        out = []
        subscribed = set()
        for s in streams:
            if not isinstance(s, dict) or not s.get("active", True):
                continue
            feed = s.get("feed_id")
            if feed is None or s.get("type") == "data":
                continue
            user = room.feeds.get(int(feed))
            feed_mid = str(s.get("feed_mid"))
            subscribed.add((int(feed), feed_mid))
            source = next((x["source"] for x in room.streams.get(int(feed), [])
                           if x["mid"] == feed_mid), None)
            out.append({"mid": str(s.get("mid")), "type": s.get("type"), "userId": user,
                        "source": source or ("mic" if s.get("type") == "audio"
                                             else "camera")})
        before = len(peer.subscribed)
        peer.subscribed = subscribed
        peer.sub_streams = out
        placement = room.placement
        if placement is not None:
            self.nodes.count(placement, subscriptions=len(subscribed) - before)

    async def _offer(self, peer: _Peer, jsep: dict[str, Any]) -> None:
        """Send Janus's offer to the browser, wait for its answer, ``start``."""
        peer.offer_seq += 1
        waiting: Deferred[str] = Deferred()
        peer.answer = waiting
        self.send(peer.participant, "media.offer", {
            "seq": peer.offer_seq, "sdp": str(jsep.get("sdp", "")),
            "streams": peer.sub_streams})
        waiting.addTimeout(self.answer_timeout, self._clock)
        try:
            sdp = await waiting
        except Exception:  # noqa: BLE001 - a browser that does not answer: logged
            if peer.answer is waiting:
                peer.answer = None
            if not peer.gone:
                _log.info("{user} did not answer its subscriber offer in time",
                          user=peer.user_id)
            return
        if peer.gone or peer.sub is None:
            return
        await peer.sub.message({"request": "start"}, {"type": "answer", "sdp": sdp},
                               timeout=self.timeout)

    # --- Janus events -----------------------------------------------------------------------

    def _publisher_event(self, peer: _Peer, message: dict[str, Any]) -> None:
        room = peer.room
        if message.get("janus") == "webrtcup":
            peer.media_up = True
            self._sync_all(room, exclude=peer)
            return
        data = ((message.get("plugindata") or {}).get("data")) or {}
        kind = data.get("videoroom")
        if kind in ("talking", "stopped-talking"):
            # Every publisher handle of the room hears it: act on the first peer's only.
            first = next(iter(room.peers.values()), None)
            if first is not peer:
                return
            user = room.feeds.get(int(data.get("id") or 0))
            talking = kind == "talking"
            if user is not None and room.talking.get(user) != talking:
                room.talking[user] = talking
                for other in room.peers.values():
                    self.send(other.participant, "talking", {"id": user, "talking": talking})
        elif kind == "event" and data.get("moderation") and data.get("id") == peer.feed:
            self.send(peer.participant, "media.moderation",
                      {"muted": data.get("moderation") == "muted", "mid": data.get("mid")})
        elif kind == "event" and data.get("leaving") == "ok" and data.get("reason") == "kicked":
            _log.info("{user} was kicked from room {room}", user=peer.user_id,
                      room=room.placement.room if room.placement else "-")

    def _subscriber_event(self, peer: _Peer, message: dict[str, Any]) -> None:
        data = ((message.get("plugindata") or {}).get("data")) or {}
        jsep = message.get("jsep")
        if data.get("videoroom") == "updated" and jsep is not None:
            # Janus renegotiated on its own (a publisher left): relay, in turn.
            self._read_sub_streams(peer, data.get("streams"))

            async def relay() -> None:
                await peer.lock.acquire()
                try:
                    await self._offer(peer, jsep)
                except JanusError as error:
                    _log.warn("relaying Janus's offer to {user} failed: {error}",
                              user=peer.user_id, error=str(error))
                finally:
                    peer.lock.release()

            Deferred.fromCoroutine(relay())

    # --- registry events --------------------------------------------------------------------

    def _on_registry_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ParticipantLeft):
            self._left(event.participant, event.reason)
        elif isinstance(event, ev.MuteRequested):
            Deferred.fromCoroutine(self._moderate(event.participant, True))
        elif isinstance(event, ev.ParticipantUpdated) and "muted" in event.changed:
            p = event.participant
            if not p.muted:
                Deferred.fromCoroutine(self._moderate(p, False))
        elif isinstance(event, ev.MeetingEnded):
            room = self._rooms.pop(event.meeting.internal_id, None)
            if room is not None:
                for peer in list(room.peers.values()):
                    self._drop_peer(peer, hard=True)

    def _left(self, participant: Participant, reason: str) -> None:
        room = self._rooms.get(participant.meeting.internal_id)
        peer = room.peers.get(participant.user_id) if room is not None else None
        if room is None or peer is None or peer.participant is not participant:
            return
        del room.peers[participant.user_id]
        if reason == "removed" and room.placement is not None and peer.published:
            Deferred.fromCoroutine(self._kick(room.placement, peer))
        else:
            self._drop_peer(peer, hard=True)

    async def _kick(self, placement: Placement, peer: _Peer) -> None:
        try:
            await self.nodes.videoroom(placement).kick(placement.room, peer.feed,
                                                       secret=placement.secret)
            _log.info("kicked {user} from room {room} on media node {node}",
                      user=peer.user_id, room=placement.room, node=placement.node.name)
        except JanusError as error:
            _log.warn("kicking {user} from room {room} failed: {error}", user=peer.user_id,
                      room=placement.room, error=str(error))
        self._drop_peer(peer, hard=True)

    async def _moderate(self, participant: Participant, mute: bool) -> None:
        room = self._rooms.get(participant.meeting.internal_id)
        peer = room.peers.get(participant.user_id) if room is not None else None
        if room is None or peer is None or room.placement is None or not peer.published:
            return
        if not mute and not peer.moderated:
            return
        mids = [mid for mid, source in peer.sources.items() if source == "mic"]
        placement = room.placement
        for mid in mids:
            try:
                await self.nodes.videoroom(placement).moderate(
                    placement.room, peer.feed, mid, mute, secret=placement.secret)
            except JanusError as error:
                _log.warn("moderating {user} in room {room} failed: {error}",
                          user=peer.user_id, room=placement.room, error=str(error))
                return
        peer.moderated = mute
        _log.info("{user} {how} on media node {node} (room {room})", user=peer.user_id,
                  how="muted" if mute else "unmuted", node=placement.node.name,
                  room=placement.room)

    def _drop_peer(self, peer: _Peer, *, hard: bool) -> None:
        """Forget a participant's Janus state and destroy its session (best effort)."""
        peer.gone = True
        room = peer.room
        if room.feeds.get(peer.feed) == peer.user_id:
            del room.feeds[peer.feed]
        room.talking.pop(peer.user_id, None)
        placement = room.placement
        if placement is not None:
            self.nodes.count(placement, publishers=-1 if peer.published else 0,
                             subscriptions=-len(peer.subscribed))
        if peer.answer is not None:
            waiting, peer.answer = peer.answer, None
            waiting.cancel()
        peer.ready.fail(JanusError("participant left"))
        if room.streams.pop(peer.feed, None) is not None:
            self._sync_all(room)
        session, peer.session = peer.session, None
        if session is not None:
            Deferred.fromCoroutine(_quietly(session.destroy()))

    # --- moves ------------------------------------------------------------------------------

    def _on_node_event(self, event: NodeEvent) -> None:
        if isinstance(event, NodeOnline):
            for waiting in list(self._rooms.values()):
                if waiting.fell_back and waiting.mode == MESH:
                    self._recover(waiting)
        if isinstance(event, (NodeOffline, NodeRestarted)):
            self._connections.pop(event.name, None)
            for placement in event.placements:
                room = self._rooms.get(placement.meeting)
                if room is not None and room.mode == SFU and not room.moving:
                    Deferred.fromCoroutine(self._move(room, isinstance(event, NodeOffline)))

    async def _move(self, room: _Room, elsewhere: bool) -> None:
        """Re-place the meeting (another node when its node is gone), re-create the
        room, set everyone up again and have every browser renegotiate."""
        meeting = room.meeting
        room.moving = True
        try:
            old = room.placement
            if elsewhere:
                await self.nodes.release(meeting.internal_id)
                room.placement = self.nodes.place(meeting.internal_id, meeting.voice_bridge,
                                                  meeting.spec.params.get(PREFERRED_SERVER))
            for peer in list(room.peers.values()):
                peer.generation += 1
                self._reset_peer(peer)
            room.streams.clear()
            room.talking.clear()
            # The room is made anew (a new node, or a Janus that lost it): a creation
            # awaited before is no proof that it exists now.
            room.created = None
            self._moved(meeting)
            if room.placement is None:
                self._fall_back(room, "no usable media node")
                return
            _log.info("meeting {meeting} moved from media node {old} to {new} (room {room})",
                      meeting=meeting.meeting_id, old=old.node.name if old else "-",
                      new=room.placement.node.name, room=room.placement.room)
            for peer in list(room.peers.values()):
                room.feeds[peer.feed] = peer.user_id
                self.send(peer.participant, "media.renegotiate", {"mode": SFU})
                Deferred.fromCoroutine(self._start(peer))
        finally:
            room.moving = False

    def _reset_peer(self, peer: _Peer) -> None:
        """Forget a peer's Janus objects (their node is gone or lost them) for a new start."""
        session = peer.session
        if session is not None:
            Deferred.fromCoroutine(_quietly(session.destroy()))
        if peer.answer is not None:
            waiting, peer.answer = peer.answer, None
            waiting.cancel()
        peer.session = peer.pub = peer.sub = None
        peer.private_id = None
        peer.published = peer.sub_joined = peer.moderated = peer.media_up = False
        peer.subscribed = set()
        peer.sub_streams = []
        peer.sources = {}
        peer.ready.fail(JanusError("moved"))
        peer.ready = _Gate()
        peer.lock = DeferredLock()

    def _recover(self, room: _Room) -> None:
        """A meeting that fell back to mesh goes back through a node that is usable
        again: its browsers are told ``media.renegotiate {mode: "sfu"}``."""
        meeting = room.meeting
        if meeting.ended:
            return
        placement = self.nodes.place(meeting.internal_id, meeting.voice_bridge,
                                     meeting.spec.params.get(PREFERRED_SERVER))
        if placement is None:
            return
        room.placement, room.mode, room.fell_back = placement, SFU, False
        room.peers.clear()
        room.streams.clear()
        room.feeds.clear()
        room.talking.clear()
        room.created = None
        _log.info("meeting {meeting} goes back through media node {node} (room {room})",
                  meeting=meeting.meeting_id, node=placement.node.name, room=placement.room)
        self._moved(meeting)
        for participant in list(meeting.participants.values()):
            peer = _Peer(participant, room, feed=_new_feed(room))
            room.peers[participant.user_id] = peer
            room.feeds[peer.feed] = participant.user_id
            self.send(participant, "media.renegotiate", {
                "mode": SFU, "simulcast": True,
                "canPublishVideo": may_publish_video(participant)})
            Deferred.fromCoroutine(self._start(peer))

    def _moved(self, meeting: Meeting) -> None:
        for listener in self.on_moved:
            try:
                listener(meeting)
            except Exception:  # noqa: BLE001 - logged; the others still hear of it
                _log.failure("meeting-moved listener failed")

    def _fall_back(self, room: _Room, reason: str) -> None:
        """The meeting cannot use a node: it goes on mesh, and its browsers are told."""
        if room.mode == MESH:
            return
        room.mode = MESH
        room.fell_back = True
        meeting = room.meeting
        _log.warn("meeting {meeting} falls back to mesh: {reason}",
                  meeting=meeting.meeting_id, reason=reason)
        for peer in list(room.peers.values()):
            peer.generation += 1
            self._reset_peer(peer)
            peer.gone = True
            self.send(peer.participant, "media.renegotiate", {
                "mode": MESH, "cameraLimit": self.mesh.camera_limit,
                "reason": "The media server is not available: media go directly between "
                          "browsers now."})
        room.peers.clear()
        if room.placement is not None:
            Deferred.fromCoroutine(self.nodes.release(meeting.internal_id))
            room.placement = None
        self._moved(meeting)


def _new_feed(room: _Room) -> int:
    while True:
        feed = 1 + secrets.randbelow(2**52)
        if feed not in room.feeds:
            return feed


async def _quietly(work: Any) -> None:
    """Await a best-effort Janus call (destroying a session on a node that may be gone)."""
    try:
        await work
    except (JanusError, JanusTimeout) as error:
        _log.debug("best-effort Janus call failed: {error}", error=str(error))
