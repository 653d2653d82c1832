"""Room fan-out: the bridge between registry events and the meeting's sockets.

The :class:`Hub` subscribes to the registry once. Each meeting with sockets has a
:class:`Room`: the current socket of every connected participant and the sockets of the
guests waiting in its lobby. A registry event is encoded to JSON once and framed once,
then the same bytes are written to every socket concerned (see ``Connection.write_frame``),
so a broadcast to a room of 1,000 costs one ``json`` encode, not a thousand.

The hub also owns what only the signalling surface knows: which participant currently
has which socket, the resume grace after a socket drops, duplicate identities (the older
socket is closed with 4008), and closing sockets when their meeting ends (4010) or their
participant is removed (4009).

Why one module of this size: the translation of every registry event into frames and the
caches of the ``joined`` snapshot (cards, roster, the turn's pending announcements) live
together because the same events that are translated are the ones that invalidate the
caches; apart, one would be changed without the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.embedding import normalise_origin
from meetplatform.media.turn import IceServers
from meetplatform.model import (
    GuestStatus,
    MaxParticipantsReached,
    Meeting,
    Participant,
    Seat,
    SeatNotUsable,
)
from meetplatform.registry import Registry
from meetplatform.sanitize import sanitize_html
from meetplatform.signalling import messages as msg
from meetplatform.signalling.classroom import ClassroomFanout
from meetplatform.signalling.media_messages import MediaRequests

_log = Logger()

T = TypeVar("T")

# Close codes (docs/signalling-protocol.md §9).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_FORBIDDEN = 4003
CLOSE_NOT_FOUND = 4004
CLOSE_REPLACED = 4008
CLOSE_REMOVED = 4009
CLOSE_ENDED = 4010
CLOSE_TOO_MANY = 4029

#: A room with at least this many sockets announces joins every :data:`JOIN_WINDOW`
#: seconds instead of at the end of every reactor turn, several in one
#: ``participantsJoined`` message.
BIG_ROOM = 100
#: While a lecture hall of a thousand fills, a join announced on its own costs a write to
#: every socket present: half a million writes for the room, and as many messages for
#: browsers to handle. Gathered over 50 ms (under what a person notices in a participant
#: list), a second of joins costs twenty rounds of writes, one message each. Anything else
#: written to the room first writes what is gathered (ordering).
JOIN_WINDOW = 0.05
#: From this many sockets the window is :data:`HALL_WINDOW`: a room of 500 people filling
#: at hundreds of joins a second sees its list grow four times a second, each round of
#: writes costing a send per socket (a hall of 1,000 filling in a second: 4,000 sends
#: where 50 ms cost 20,000).
HALL = 500
HALL_WINDOW = 0.25


def frame(payload: bytes) -> bytes:
    """A complete unmasked, uncompressed WebSocket text frame (server to client)."""
    return PreparedMessage(payload, False, False, True).payloadHybi


def frame_of(parts: Sequence[bytes | bytearray]) -> bytes:
    """``frame(b"".join(parts))``, copying the parts once (RFC 6455 §5.2: FIN and
    opcode 1, then the payload length in 7, 7+16 or 7+64 bits, no mask)."""
    length = sum(map(len, parts))
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = b"\x81\x7e" + length.to_bytes(2, "big")
    else:
        header = b"\x81\x7f" + length.to_bytes(8, "big")
    return b"".join([header, *parts])


class Connection(Protocol):
    """What the hub needs from a socket (implemented by ``SignallingProtocol``)."""

    seat: Seat | None
    participant: Participant | None
    #: ``connecting``, ``lobby``, ``joined`` or ``gone``.
    phase: str
    #: Set when this socket no longer speaks for its participant (replaced, closing).
    superseded: bool

    def write_frame(self, data: bytes) -> None: ...

    def send(self, kind: str, data: dict[str, Any] | None = None) -> None: ...

    def send_error(self, code: str, message: str, request_id: str | int | None = None,
                   request_type: str | None = None) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


class Room:
    """The sockets of one meeting, and its roster kept encoded for newcomers.

    Every newcomer's ``joined`` lists every participant. Encoding 1,000 participants for
    each of 1,000 joiners is quadratic work, so the room keeps each participant's JSON
    encoded (``cards``) until the participant changes, and the whole encoded array
    (``roster``) until anyone changes; a join appends one card to it. The hub drops a
    card on every registry event that changes what it shows (joined, updated, replaced,
    left) and when the participant's ``reconnecting`` flag turns (resume grace)."""

    __slots__ = ("batched", "cards", "conns", "lobby", "marks", "meeting", "pending",
                 "roster_buffer", "welcome")

    def __init__(self, meeting: Meeting) -> None:
        self.meeting = meeting
        #: internal user id -> the participant's current socket, in connection order.
        self.conns: dict[str, Connection] = {}
        #: waiting guest's user id -> its lobby socket.
        self.lobby: dict[str, Connection] = {}
        self.welcome = sanitize_html(meeting.welcome)
        #: participant -> ``participant_json`` of it as it is now, encoded.
        self.cards: dict[Participant, bytes] = {}
        #: The encoded JSON array of the cards of ``meeting.participants`` in their order,
        #: or ``None`` when it must be built again; a join appends a card to it in place
        #: (amortised, not a copy of the whole roster per join). A newcomer's ``joined``
        #: frame is built from it directly: the roster is copied once, into the frame.
        self.roster_buffer: bytearray | None = None
        #: The cards of the participants who joined and are not announced yet (see
        #: :meth:`flush_joins`), and, for a socket that came in meanwhile, the index of
        #: the first of them it needs (it has the earlier ones in its roster).
        self.pending: list[bytes] = []
        self.marks: dict[str, int] = {}
        #: The pending joins go out as one ``participantsJoined`` (a big room's window).
        self.batched = False

    def forget(self, participant: Participant) -> None:
        """The participant changed (or left): its card and the roster are stale."""
        self.cards.pop(participant, None)
        self.roster_buffer = None

    def flush_joins(self) -> None:
        """Write the pending join announcements, in one write per socket.

        While a room fills, every join is announced to everyone present: a write per
        socket per join. The announcements of one reactor turn (of a window, in a big
        room) are written together instead, at its end, or before anything else is
        written to the room, so that no socket ever sees a later message first: one
        ``participantJoined`` frame per join, or in a big room a single
        ``participantsJoined`` listing them all. A socket that joined meanwhile gets only
        the announcements after its own join."""
        pending = self.pending
        if not pending:
            return
        marks = self.marks
        batched = self.batched
        self.pending, self.marks, self.batched = [], {}, False
        count = len(pending)
        tails: dict[int, bytes] = {}
        singles: list[bytes] = []

        def tail(start: int) -> bytes:
            data = tails.get(start)
            if data is None:
                if batched and count - start > 1:
                    data = frame_of(msg.event_parts("participantsJoined", [
                        ("participants", b"[" + b",".join(pending[start:]) + b"]"),
                        ("polite", b"false")]))
                else:
                    if not singles:
                        singles.extend(frame(msg.event_of_parts("participantJoined", [
                            ("participant", card), ("polite", b"false")])) for card in pending)
                    data = b"".join(singles[start:])
                tails[start] = data
            return data

        for user_id, conn in self.conns.items():
            start = marks.get(user_id, 0) if marks else 0
            if start < count:
                conn.write_frame(tail(start))

    def broadcast(self, data: bytes, exclude: str | None = None) -> None:
        """Write one prepared frame to every participant's socket (but ``exclude``)."""
        if self.pending:
            self.flush_joins()
        for user_id, conn in self.conns.items():
            if user_id != exclude:
                conn.write_frame(data)

    def to_moderators(self, data: bytes) -> None:
        if self.pending:
            self.flush_joins()
        for conn in self.conns.values():
            p = conn.participant
            if p is not None and p.is_moderator:
                conn.write_frame(data)

    def empty(self) -> bool:
        return not self.conns and not self.lobby


class Gathered(Generic[T]):
    """Things handled together ``delay`` seconds after the first of them came (0: right
    after the reactor has handled the current turn's events), each once and in order, on
    the injected clock. One that fails is logged and does not hold back the others (a room
    whose announcements were never written would keep them pending for good).

    It serves the join announcements (rooms, :meth:`Room.flush_joins`) and the turn sender
    of plain TCP sockets (:mod:`~meetplatform.signalling.protocol`): a room's fan-out
    writes one frame to each member, and when several messages are fanned out in the same
    turn each socket still gets a single ``send``."""

    __slots__ = ("_call", "_clock", "_delay", "_each", "_items", "_what")

    def __init__(self, clock: IReactorTime, delay: float, each: Callable[[T], object],
                 what: str) -> None:
        self._clock = clock
        self._delay = delay
        self._each = each
        #: What handling one item is, for the log line of a failure.
        self._what = what
        self._items: list[T] = []
        self._call: IDelayedCall | None = None

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._call is None:
            self._call = self._clock.callLater(self._delay, self.flush)

    def flush(self) -> None:
        self._call = None
        items, self._items = self._items, []
        each = self._each
        for item in items:
            try:
                each(item)
            except Exception:  # noqa: BLE001 - one item must not stall the others
                _log.failure("signalling: {what} failed", what=self._what)

    def cancel(self) -> None:
        """No more handling (shutdown: every socket is closing)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class NotFound(msg.MessageError):
    def __init__(self, message: str) -> None:
        super().__init__("notFound", message)


class Hub:
    """Signalling state of the whole process; one per :class:`SignallingService`."""

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 media: MediaRequests | None = None) -> None:
        self.clock = clock
        #: The meetings' media backends (mesh, or Janus nodes): ``joined``'s ``media``,
        #: the ``media.*`` requests and the checks of ``signal`` and cameras.
        self.media = media or MediaRequests(None)
        self.settings = settings
        self.registry = registry
        self.rooms: dict[Meeting, Room] = {}
        #: Every open socket (for shutdown).
        self.conns: set[Connection] = set()
        #: Participants whose socket dropped, with the timer that makes them leave.
        self.grace: dict[Participant, IDelayedCall] = {}
        self.closing = False
        self._drained: list[Deferred[None]] = []
        #: Rooms with joins to announce at the end of this turn, and big rooms (halls)
        #: with joins to announce when their window closes.
        self._turn_joins = Gathered(clock, 0, Room.flush_joins, "announcing joins")
        self._window_joins = Gathered(clock, JOIN_WINDOW, Room.flush_joins, "announcing joins")
        self._hall_joins = Gathered(clock, HALL_WINDOW, Room.flush_joins, "announcing joins")
        #: Each participant's ICE servers, TURN credentials minted per join (docs/media.md).
        self.ice = IceServers(clock, settings)
        #: The members of ``joined`` that are the same for everyone, encoded once.
        self._grace_json = msg.encode_value(settings.resume_grace_seconds)
        self._limits_json = msg.encode({
            "maxMessageBytes": msg.MAX_MESSAGE_BYTES,
            "messagesPerSecond": RATE_PER_SECOND,
            "burst": RATE_BURST,
            "chatMaxChars": msg.CHAT_MAX_CHARS,
        })
        allowed = [settings.public_url, *settings.extra_origins]
        self.allowed_origins = frozenset(o for o in map(normalise_origin, allowed) if o)
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.ParticipantJoined: self._on_joined,
            ev.ParticipantUpdated: self._on_updated,
            ev.ParticipantLeft: self._on_left,
            ev.ParticipantReplaced: self._on_replaced,
            ev.MuteRequested: self._on_mute_requested,
            ev.ChatMessageSent: self._on_chat,
            ev.GuestWaiting: self._on_guest_waiting,
            ev.GuestLeft: self._on_guest_left,
            ev.GuestAdmitted: self._on_guest_admitted,
            ev.GuestDenied: self._on_guest_denied,
            ev.MeetingEnded: self._on_meeting_ended,
            ev.RecordingChanged: self._on_recording_changed,
            ev.RecordingAvailabilityChanged: self._on_recording_availability,
        }
        #: The classroom's fan-out (adds its handlers to ``_handlers``).
        self.classroom = ClassroomFanout(self)
        self._unsubscribe = registry.subscribe(self._on_event)

    # --- handshake ------------------------------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not a browser) is fine; a browser's must be ours or an allowed one."""
        if not origin:
            return True
        normal = normalise_origin(origin)
        return normal is not None and normal in self.allowed_origins

    # --- sockets arriving and leaving -------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        """A socket finished its handshake: join, resume, or wait in the lobby."""
        seat = conn.seat
        assert seat is not None
        self.conns.add(conn)
        if self.closing:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        if self._refuse_void(conn, seat):
            return
        if seat.guest_status is GuestStatus.WAIT:
            self._enter_lobby(conn, seat)
        else:
            self._enter(conn, seat)

    def _refuse_void(self, conn: Connection, seat: Seat) -> bool:
        """Explain and close when the seat can't be used any more; True if it was."""
        meeting = seat.meeting
        if meeting.ended:
            conn.send("ended", msg.ended_json(meeting))
            conn.close(CLOSE_NOT_FOUND, "meeting ended")
        elif seat.guest_status is GuestStatus.DENY or seat.revoked_reason == "denied":
            conn.send("denied")
            conn.close(CLOSE_FORBIDDEN, "denied")
        elif seat.revoked_reason == "replaced":
            conn.send("replaced")
            conn.close(CLOSE_REPLACED, "replaced by a newer connection")
        elif seat.revoked:
            conn.send("removed")
            conn.close(CLOSE_REMOVED, "removed")
        else:
            return False
        conn.phase = "gone"
        return True

    def _room(self, meeting: Meeting) -> Room:
        room = self.rooms.get(meeting)
        if room is None:
            room = self.rooms[meeting] = Room(meeting)
        return room

    def _drop_room_if_empty(self, room: Room) -> None:
        if room.empty() and self.rooms.get(room.meeting) is room:
            del self.rooms[room.meeting]

    def _enter_lobby(self, conn: Connection, seat: Seat) -> None:
        room = self._room(seat.meeting)
        old = room.lobby.get(seat.user_id)
        room.lobby[seat.user_id] = conn
        conn.phase = "lobby"
        if old is not None and old is not conn:
            self._supersede(old)
        conn.send("lobby", {"status": "waiting", "meeting": {"name": seat.meeting.name}})
        self.registry.guest_waiting(seat)

    def _enter(self, conn: Connection, seat: Seat) -> None:
        try:
            participant = self.registry.connect(seat)
        except MaxParticipantsReached:
            conn.send_error("meetingFull", "This meeting is full.")
            conn.close(CLOSE_FORBIDDEN, "meeting full")
            conn.phase = "gone"
            return
        except SeatNotUsable:
            if not self._refuse_void(conn, seat):
                conn.close(CLOSE_FORBIDDEN, "seat not usable")
                conn.phase = "gone"
            return
        meeting = participant.meeting
        room = self._room(meeting)
        resumed = False
        timer = self.grace.pop(participant, None)
        if timer is not None:
            if timer.active():
                timer.cancel()
            resumed = True
            room.forget(participant)  # no longer "reconnecting"
        old = room.conns.get(participant.user_id)
        if old is not None and old is not conn:
            self._supersede(old)
            resumed = True
        conn.participant = participant
        conn.phase = "joined"
        room.conns[participant.user_id] = conn
        if room.pending:  # its roster has the joins announced so far this turn
            room.marks[participant.user_id] = len(room.pending)
        # The roster (300 kB in a room of 1,000) is copied once, into the frame.
        conn.write_frame(frame_of(msg.event_parts(
            "joined", self._joined_parts(room, participant, resumed))))
        if resumed:
            updated = frame(msg.event_of_parts("participantUpdated",
                                               [("participant", self._card(room, participant))]))
            reset = frame(msg.event("peerReset", {"id": participant.user_id, "polite": False}))
            room.flush_joins()
            for user_id, other in room.conns.items():
                if user_id != participant.user_id:
                    other.write_frame(updated)
                    other.write_frame(reset)
            # Plain joins are not logged here: the registry's events (history, webhooks)
            # record them, and a line per join was a tenth of a join's CPU in a big room.
            _log.debug("{user_id} resumed in meeting {meeting_id}",
                       user_id=participant.user_id, meeting_id=meeting.meeting_id)

    def _supersede(self, old: Connection) -> None:
        """An older socket of the same identity: tell it and close it (4008)."""
        if old.superseded:
            return
        if old.seat is not None:
            self._settle(old.seat.meeting)
        old.superseded = True
        old.phase = "gone"
        old.send("replaced")
        old.close(CLOSE_REPLACED, "replaced by a newer connection")

    def detach(self, conn: Connection) -> None:
        """The socket closed (always called, once, from ``onClose``)."""
        self.conns.discard(conn)
        if not self.conns and self._drained:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)
        seat = conn.seat
        phase, conn.phase = conn.phase, "gone"
        if seat is None or conn.superseded:
            return
        room = self.rooms.get(seat.meeting)
        if phase == "lobby":
            if room is not None and room.lobby.get(seat.user_id) is conn:
                del room.lobby[seat.user_id]
                self._drop_room_if_empty(room)
                self.registry.guest_left(seat)
            return
        participant = conn.participant
        if phase != "joined" or participant is None or room is None:
            return
        if room.conns.get(participant.user_id) is not conn:
            return
        del room.conns[participant.user_id]
        self._drop_room_if_empty(room)
        meeting = participant.meeting
        if meeting.ended or meeting.participants.get(participant.user_id) is not participant:
            return
        if self.closing:
            return
        grace = self.settings.resume_grace_seconds
        if grace <= 0:
            self.registry.disconnect(participant, "disconnected")
            return
        self.grace[participant] = self.clock.callLater(grace, self._grace_over, participant)
        room.forget(participant)  # now "reconnecting"
        if room.conns:
            room.broadcast(frame(msg.event_of_parts("participantUpdated", [
                ("participant", self._card(room, participant))])))

    def _grace_over(self, participant: Participant) -> None:
        self.grace.pop(participant, None)
        self.registry.disconnect(participant, "disconnected")

    def leave(self, conn: Connection) -> None:
        """``leave``: the participant goes now, without the resume grace."""
        if conn.phase == "joined" and conn.participant is not None:
            self.registry.disconnect(conn.participant, "left")
        else:
            conn.close(CLOSE_NORMAL, "left")  # a lobby guest: detach tells the moderators

    # --- requests that need the hub's knowledge of sockets ---------------------------------

    def relay(self, conn: Connection, signal: msg.Signal) -> None:
        """Send a ``signal`` to exactly the one participant it is addressed to."""
        sender = conn.participant
        assert sender is not None
        if signal.to == sender.user_id:
            raise msg.invalid("'to' must be another participant")
        self.media.check_signal(sender)
        room = self.rooms.get(sender.meeting)
        target = room.conns.get(signal.to) if room is not None else None
        if target is None:
            raise NotFound("that participant is not connected")
        assert room is not None
        room.flush_joins()  # the target learns of the sender before its signal
        data = {"from": sender.user_id}
        data.update(signal.relay)
        target.write_frame(frame(msg.event("signal", data)))

    def send_to(self, participant: Participant, kind: str, data: dict[str, Any]) -> None:
        """One event to the participant's current socket (none during a resume grace),
        after the meeting's pending join announcements (a media offer names them)."""
        self._settle(participant.meeting)
        room = self.rooms.get(participant.meeting)
        conn = room.conns.get(participant.user_id) if room is not None else None
        if conn is not None and conn.participant is participant:
            conn.send(kind, data)

    def waiting_seat(self, meeting: Meeting, user_id: str) -> Seat:
        for seat in meeting.waiting_guests():
            if seat.user_id == user_id:
                return seat
        raise NotFound("no guest with that id is waiting")

    def is_reconnecting(self, participant: Participant) -> bool:
        return participant in self.grace

    # --- the joined snapshot ----------------------------------------------------------------

    def _card(self, room: Room, p: Participant) -> bytes:
        """``participant_json(p)`` encoded, from the room's cache when still valid."""
        card = room.cards.get(p)
        if card is None:
            card = room.cards[p] = msg.encode(msg.participant_json(p, p in self.grace))
        return card

    def _roster(self, room: Room) -> bytearray:
        """Every participant's card as one encoded JSON array (meeting order): the room's
        buffer itself, to be copied into a frame before anything changes it."""
        buffer = room.roster_buffer
        if buffer is None:
            card = self._card
            buffer = room.roster_buffer = bytearray(b"[")
            buffer += b",".join([card(room, p) for p in room.meeting.participants.values()])
            buffer += b"]"
        return buffer

    def _joined_parts(self, room: Room, me: Participant,
                      resumed: bool) -> list[tuple[str, bytes | bytearray]]:
        """The members of ``joined``, encoded; the roster is spliced in from the cache."""
        meeting = room.meeting
        moderator = me.is_moderator
        encode = msg.encode_value
        ice = self.ice.for_user(me.user_id).as_json()
        parts: list[tuple[str, bytes | bytearray]] = [
            ("chat", encode([msg.chat_json(m) for m in list(meeting.chat)[-msg.RECENT_CHAT:]])
             if meeting.chat else b"[]"),
            *((name, encode(value)) for name, value in ice.items()),
            ("resumeGraceSeconds", self._grace_json),
            ("resumed", b"true" if resumed else b"false"),
            ("polite", b"true"),
            ("limits", self._limits_json),
            ("serverTime", b"%d" % self.registry.now()),
            ("media", encode(self.media.joined_info(me, resumed))),
        ]
        if moderator:
            parts.append(("waitingGuests", encode([msg.guest_json(s) for s in meeting.lobby()])))
        parts.append(("presentation", encode(self.classroom.snapshot(me))))
        # Asked after the media's joined_info: the first join places the meeting.
        available = self.registry.recording_available(meeting)
        return [
            ("self", self._card(room, me)),
            ("meeting", encode(msg.meeting_json(meeting, moderator, room.welcome,
                                                recording_available=available))),
            ("participants", self._roster(room)),
            *parts,
        ]

    # --- registry events ------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _settle(self, meeting: Meeting) -> None:
        """Write the meeting's pending join announcements before writing anything else."""
        room = self.rooms.get(meeting)
        if room is not None and room.pending:
            room.flush_joins()

    def _on_joined(self, event: ev.ParticipantJoined) -> None:
        p = event.participant
        room = self.rooms.get(p.meeting)
        if room is None:
            return
        room.cards.pop(p, None)
        card = self._card(room, p)
        buffer = room.roster_buffer
        if buffer is not None:  # the newcomer is the meeting's last participant
            del buffer[-1]
            if len(buffer) > 1:
                buffer += b","
            buffer += card
            buffer += b"]"
        if not room.conns:
            return
        if not room.pending:
            sockets = len(room.conns)
            room.batched = sockets >= BIG_ROOM
            writer = (self._hall_joins if sockets >= HALL else
                      self._window_joins if room.batched else self._turn_joins)
            writer.add(room)
        room.pending.append(card)
        if p.user_id in room.conns:  # never announce a participant to itself
            room.marks[p.user_id] = len(room.pending)

    def _on_updated(self, event: ev.ParticipantUpdated) -> None:
        p = event.participant
        room = self.rooms.get(p.meeting)
        if room is None:
            return
        room.forget(p)
        if not room.conns:
            return
        room.broadcast(frame(msg.event_of_parts("participantUpdated", [
            ("participant", self._card(room, p))])))
        if "role" in event.changed and p.is_moderator:
            # A new moderator learns who is waiting, as if it had just joined.
            conn = room.conns.get(p.user_id)
            if conn is not None:
                for seat in p.meeting.lobby():
                    conn.send("guestWaiting", msg.guest_json(seat))

    def _on_left(self, event: ev.ParticipantLeft) -> None:
        p = event.participant
        timer = self.grace.pop(p, None)
        if timer is not None and timer.active():
            timer.cancel()
        if event.reason == "ended":
            return  # MeetingEnded closes every socket; no per-participant fan-out
        room = self.rooms.get(p.meeting)
        if room is None:
            return
        room.forget(p)
        room.flush_joins()
        conn = room.conns.get(p.user_id)
        if conn is not None and conn.participant is p:
            del room.conns[p.user_id]
            conn.phase = "gone"
            if event.reason == "removed":
                conn.send("removed")
                conn.close(CLOSE_REMOVED, "removed by a moderator")
            else:
                conn.close(CLOSE_NORMAL, "left")
        if room.conns:
            room.broadcast(frame(msg.event("participantLeft",
                                           {"id": p.user_id, "reason": event.reason})))
        self._drop_room_if_empty(room)

    def _on_replaced(self, event: ev.ParticipantReplaced) -> None:
        # Keep the old socket in the room: _enter sees it and treats the newcomer as a
        # resume (peerReset to the others), then supersedes it.
        room = self.rooms.get(event.participant.meeting)
        if room is None:
            return
        room.forget(event.participant)  # it took the new seat's name and role
        old = room.conns.get(event.participant.user_id)
        if old is not None and old.seat is event.old_seat:
            self._supersede(old)

    def _on_mute_requested(self, event: ev.MuteRequested) -> None:
        p = event.participant
        room = self.rooms.get(p.meeting)
        conn = room.conns.get(p.user_id) if room is not None else None
        if conn is not None:
            self._settle(p.meeting)
            conn.send("muteRequested", {"by": event.by.full_name if event.by else None})

    def _on_chat(self, event: ev.ChatMessageSent) -> None:
        room = self.rooms.get(event.message.meeting)
        if room is not None and room.conns:
            room.broadcast(frame(msg.event("chat", msg.chat_json(event.message))))

    def _on_recording_changed(self, event: ev.RecordingChanged) -> None:
        room = self.rooms.get(event.meeting)
        if room is not None and room.conns:
            room.broadcast(frame(msg.event("recordingChanged", {
                "recording": event.recording,
                "by": event.by.full_name if event.by is not None else None})))

    def _on_recording_availability(self, event: ev.RecordingAvailabilityChanged) -> None:
        room = self.rooms.get(event.meeting)
        if room is not None and room.conns:
            room.broadcast(frame(msg.event("recordingAvailability",
                                           {"available": event.available})))

    def _on_guest_waiting(self, event: ev.GuestWaiting) -> None:
        room = self.rooms.get(event.seat.meeting)
        if room is not None:
            room.to_moderators(frame(msg.event("guestWaiting", msg.guest_json(event.seat))))

    def _on_guest_left(self, event: ev.GuestLeft) -> None:
        room = self.rooms.get(event.seat.meeting)
        if room is not None:
            room.to_moderators(frame(msg.event("guestLeft", {"id": event.seat.user_id})))

    def _guest_handled(self, seat: Seat, admitted: bool) -> Connection | None:
        room = self.rooms.get(seat.meeting)
        if room is None:
            return None
        room.to_moderators(frame(msg.event("guestHandled",
                                           {"id": seat.user_id, "admitted": admitted})))
        conn = room.lobby.pop(seat.user_id, None)
        self._drop_room_if_empty(room)
        return conn

    def _on_guest_admitted(self, event: ev.GuestAdmitted) -> None:
        conn = self._guest_handled(event.seat, True)
        if conn is not None:
            conn.phase = "admitted"
            conn.send("admitted")
            # Connect after the registry has told every subscriber about the admission,
            # so that everyone sees "admitted" before "joined".
            self.clock.callLater(0, self._enter_admitted, conn, event.seat)

    def _enter_admitted(self, conn: Connection, seat: Seat) -> None:
        if conn.phase != "admitted" or conn not in self.conns:
            return
        if self._refuse_void(conn, seat):
            return
        self._enter(conn, seat)

    def _on_guest_denied(self, event: ev.GuestDenied) -> None:
        conn = self._guest_handled(event.seat, False)
        if conn is not None:
            conn.phase = "gone"
            conn.send("denied")
            conn.close(CLOSE_FORBIDDEN, "denied by a moderator")

    def _on_meeting_ended(self, event: ev.MeetingEnded) -> None:
        meeting = event.meeting
        for p in [p for p in self.grace if p.meeting is meeting]:
            timer = self.grace.pop(p)
            if timer.active():
                timer.cancel()
        room = self.rooms.pop(meeting, None)
        if room is None:
            return
        room.flush_joins()
        ended = frame(msg.event("ended", msg.ended_json(meeting)))
        for conn in [*room.conns.values(), *room.lobby.values()]:
            conn.phase = "gone"
            conn.write_frame(ended)
            conn.close(CLOSE_ENDED, "meeting ended")
        _log.info("closed {count} sockets of ended meeting {meeting_id}",
                  count=len(room.conns) + len(room.lobby), meeting_id=meeting.meeting_id)

    # --- shutdown ---------------------------------------------------------------------------

    def shutdown(self, timeout: float) -> Deferred[None]:
        """Close every socket with 1001; fires once all closed (or after ``timeout``)."""
        self.closing = True
        self._unsubscribe()
        self._window_joins.cancel()
        self._hall_joins.cancel()
        for timer in self.grace.values():
            if timer.active():
                timer.cancel()
        self.grace.clear()
        for conn in list(self.conns):
            conn.phase = "gone"
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        if not self.conns:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)

        def give_up() -> None:
            for conn in list(self.conns):
                conn.abort()
            if not d.called:
                self._drained.remove(d)
                d.callback(None)

        call = self.clock.callLater(timeout, give_up)

        def cancel_timer(result: None) -> None:
            if call.active():
                call.cancel()
            return result

        d.addBoth(cancel_timer)
        return d


#: Per-connection request rate (docs §7).
RATE_PER_SECOND = 50
RATE_BURST = 200
