"""The WebSocket protocol: a thin dispatcher between frames and the registry.

``onConnect`` authenticates (session token, Origin) and refuses with an HTTP status;
``onOpen`` hands the socket to the :class:`~meetplatform.signalling.hub.Hub`;
``onMessage`` applies the size and rate limits, decodes one envelope with the pure
functions of :mod:`~meetplatform.signalling.messages` and calls ``handle_<type>``;
``onClose`` always deregisters. Autobahn owns ``self.log``; ours is ``_log``.

Traps avoided here, for whoever edits this next:

- Autobahn's ``sendMessage``/``sendData`` evaluate debug-log arguments eagerly on every
  write; :meth:`write_frame` writes pre-built frames straight to the transport instead
  (the connection never negotiates compression and never uses Autobahn's send queue).
- On plain TCP, :meth:`write_frame` keeps the frame until the end of the reactor turn
  (:class:`_DirectSocket`, the factory's turn sender), then hands each socket's frames
  to the kernel in one ``send`` when Twisted holds nothing unsent for it: ``transport.write``
  per frame would register the socket with the reactor and send on its next turn (two
  ``epoll_ctl`` calls and ~20 µs of Python per delivery, most of a room's fan-out).
  The handshake's answer is kept the same way, so a joiner's 101 and its ``joined`` leave
  in one ``send``. Anything the kernel does not take goes to ``transport.write``; pending
  frames are sent before any later write of Autobahn's own (``sendData``: pongs, pings,
  close frames) and before the connection is closed, so the order on the wire is the
  order of the writes.
- Autobahn computes the arguments of its debug log lines (coloured names) on every
  connection, read and write, although they are dropped unread; the factory makes them
  lazy (:mod:`~meetplatform.signalling.autobahn_debug`).
- ``sendClose`` refuses 1001 and 1011; :meth:`close` uses ``sendCloseFrame``.
- An upgrade that went through twisted.web (not handed over by the site before it,
  :mod:`meetplatform.upgrade`) leaves its ``HTTPChannel`` registered as the transport's
  producer; it is swapped for this connection's back-pressure watcher.
- The factory's timers (keepalive pings, handshake timeouts) run on the injected clock,
  not on txaio's global reactor.

Why one module of this size: the Autobahn protocol, its factory and the turn sender share
the traps listed above (callbacks that must not raise, writes that must keep their order);
they are documented and kept in one place so that none is forgotten by a change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.tcp import Connection
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from meetplatform.embedding import normalise_origin
from meetplatform.model import (
    EndReason,
    NotAllowed,
    Participant,
    RecordingUnavailable,
    RegistryError,
    Role,
)
from meetplatform.signalling import hub as hub_module
from meetplatform.signalling import messages as msg
from meetplatform.signalling.autobahn_debug import make_debug_arguments_lazy
from meetplatform.signalling.classroom import ClassroomRequests
from meetplatform.signalling.hub import Gathered, Hub, NotFound, frame

if TYPE_CHECKING:
    from meetplatform.model import Meeting, Seat

_log = Logger()

_OPEN = WebSocketProtocol.STATE_OPEN
_CONNECTING = WebSocketProtocol.STATE_CONNECTING

#: Frames above this are refused by Autobahn itself (close 1009); below it and above
#: ``messages.MAX_MESSAGE_BYTES`` the server answers ``tooLarge`` and keeps the socket.
HARD_MESSAGE_LIMIT = 128 * 1024
#: Bytes that may be queued for a socket after its transport asked us to pause.
MAX_BACKLOG_BYTES = 1024 * 1024

#: Gives the origins allowed to embed a seat's room (the web embed pages provide it).
ExtraOrigins = Callable[["Seat"], Awaitable[Collection[str]]]


@dataclass(frozen=True)
class Reply:
    """A handler's answer: ``data`` for the ack, then ``after()`` once the ack is out."""

    data: dict[str, Any]
    after: Callable[[], None] | None = None


class _DirectSocket:
    """Frames for one plain TCP socket, sent together at the end of the reactor turn.

    Only for ``twisted.internet.tcp.Connection`` without TLS, whose write buffer is
    ``dataBuffer[offset:]`` plus ``_tempDataBuffer`` (checked to exist once, here; any
    other transport, or a Twisted whose buffer looks different, keeps ``transport.write``).
    :meth:`write` keeps the frame; the factory's turn sender (a
    :class:`~meetplatform.signalling.hub.Gathered`) calls :meth:`flush` once the turn's
    work is done, which joins the socket's frames and hands them to the kernel with one
    ``send`` when Twisted holds nothing unsent for the socket (else, and for whatever the
    kernel does not take, ``transport.write``).
    """

    __slots__ = ("pending", "send", "sender", "transport")

    def __init__(self, transport: Any, sender: Gathered[_DirectSocket]) -> None:
        self.transport = transport
        self.send = transport.socket.send
        self.sender = sender
        self.pending: list[bytes] | None = None

    @classmethod
    def for_transport(cls, transport: Any, sender: Gathered[_DirectSocket]) -> _DirectSocket | None:
        if (isinstance(transport, Connection) and getattr(transport, "TLS", True) is False
                and isinstance(getattr(transport, "dataBuffer", None), bytes)
                and isinstance(getattr(transport, "_tempDataBuffer", None), list)
                and isinstance(getattr(transport, "offset", None), int)
                and getattr(transport, "socket", None) is not None):
            return cls(transport, sender)
        return None

    def write(self, data: bytes) -> None:
        pending = self.pending
        if pending is None:
            self.pending = [data]
            self.sender.add(self)
        else:
            pending.append(data)

    def flush(self) -> None:
        """Send what this turn wrote (also called before Autobahn writes to the socket)."""
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        t = self.transport
        if not t.connected:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        if not t._tempDataBuffer and t.offset == len(t.dataBuffer) and not t.disconnecting:
            try:
                sent = self.send(data)
            except OSError:  # would block, or a lost connection Twisted notices itself
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)

    def drop(self) -> None:
        self.pending = None


@implementer(IPushProducer)
class _Backpressure:
    """Registered with the transport: learns when the peer stops reading."""

    __slots__ = ("conn",)

    def __init__(self, conn: SignallingProtocol) -> None:
        self.conn = conn

    def pauseProducing(self) -> None:
        # Twisted calls this on every write while its buffer is over the limit.
        if not self.conn._paused:
            self.conn._paused = True
            self.conn._backlog = 0

    def resumeProducing(self) -> None:
        self.conn._paused = False
        self.conn._backlog = 0

    def stopProducing(self) -> None:
        self.conn._paused = False


class SignallingProtocol(  # type: ignore[misc] # Autobahn's bases disagree, not ours
        WebSocketServerProtocol, ClassroomRequests):
    """One browser's signalling socket."""

    factory: SignallingFactory

    def __init__(self) -> None:
        super().__init__()
        self.seat: Seat | None = None
        self.participant: Participant | None = None
        self.phase = "connecting"
        self.superseded = False
        self._bucket: msg.TokenBucket | None = None
        self._paused = False
        self._backlog = 0
        self._detached = False
        self._direct: _DirectSocket | None = None

    # --- handshake ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        # From the start: the handshake's answer (the 101, or a refusal) is then kept with
        # the frames onOpen writes, and all of it leaves in one send at the end of the turn.
        self._direct = _DirectSocket.for_transport(self.transport, self.factory.turn_sender)

    def onConnect(  # type: ignore[override] # Autobahn accepts a Deferred too
            self, request: ConnectionRequest) -> str | None | Deferred[str | None]:
        try:
            return self._authorize(request)
        except ConnectionDeny as deny:
            _log.info("signalling handshake refused ({code} {reason}) from {peer}",
                      code=deny.code, reason=deny.reason, peer=request.peer)
            raise
        except Exception:  # noqa: BLE001 - logged; the socket must survive
            _log.failure("signalling handshake failed")
            raise ConnectionDeny(ConnectionDeny.INTERNAL_SERVER_ERROR, "internal error")

    def _authorize(self, request: ConnectionRequest) -> str | None | Deferred[str | None]:
        hub = self.factory.hub
        if hub.closing:
            raise ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "server shutting down")
        # An origin other than the service's own (or a configured extra one) may still
        # be a site allowed to embed the seat's room: asked below, once the seat is known.
        foreign = not hub.origin_allowed(request.origin)
        embedding_origins = self.factory.extra_origins_for
        if foreign and embedding_origins is None:
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        tokens = request.params.get("sessionToken") or []
        if len(tokens) != 1 or not msg.valid_token(tokens[0]):
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST,
                                 "sessionToken missing or malformed")
        chosen = None
        if request.protocols:
            if msg.SUBPROTOCOL not in request.protocols:
                raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "unsupported subprotocol")
            chosen = msg.SUBPROTOCOL
        seat = hub.registry.lookup_seat(tokens[0])
        if seat is None:
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "unknown session token")
        if foreign:
            assert embedding_origins is not None
            return self._check_embedding_origin(request, seat, chosen, embedding_origins)
        self.seat = seat
        return chosen

    def _check_embedding_origin(self, request: ConnectionRequest, seat: Seat,
                                chosen: str | None,
                                lookup: ExtraOrigins) -> Deferred[str | None]:
        """Accept ``request.origin`` if it may embed the seat's room (Autobahn waits for
        the Deferred; a ConnectionDeny failure refuses the handshake)."""
        wanted = normalise_origin(request.origin or "")

        def decide(origins: Collection[str]) -> str | None:
            if wanted is None or wanted not in origins:
                raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
            self.seat = seat
            return chosen

        def refused(failure: Failure) -> Failure:
            if not failure.check(ConnectionDeny):
                _log.failure("looking up the embedding origins failed", failure)
                failure = Failure(ConnectionDeny(ConnectionDeny.INTERNAL_SERVER_ERROR,
                                                 "internal error"))
            deny: Any = failure.value
            _log.info("signalling handshake refused ({code} {reason}) from {peer}",
                      code=deny.code, reason=deny.reason, peer=request.peer)
            return failure

        async def origins() -> Collection[str]:
            return await lookup(seat)

        return Deferred.fromCoroutine(origins()).addCallback(decide).addErrback(refused)

    def onOpen(self) -> None:
        try:
            self._bucket = msg.TokenBucket(hub_module.RATE_PER_SECOND, hub_module.RATE_BURST,
                                           self.factory.clock.seconds())
            transport: Any = self.transport
            # twisted.web's HTTPChannel is still registered after the upgrade.
            try:
                transport.unregisterProducer()
            except RuntimeError:
                pass  # some transports refuse when nothing is registered
            transport.registerProducer(_Backpressure(self), True)
            self.factory.opened += 1
            self.factory.hub.attach(self)
        except Exception:  # noqa: BLE001 - logged; the socket must survive
            _log.failure("signalling socket failed to open")
            self.close(1011, "internal error")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._detached:
            return
        self._detached = True
        try:
            self.factory.hub.detach(self)
        except Exception:  # noqa: BLE001 - logged; the socket must survive
            _log.failure("signalling socket failed to deregister")

    # --- writing ----------------------------------------------------------------------------

    def write_frame(self, data: bytes) -> None:
        """Write one complete pre-built frame, unless closing or the peer is stuck."""
        if self.state != _OPEN:
            return
        if self._paused:
            backlog = self._backlog + len(data)
            if backlog > self.factory.max_backlog:
                _log.info("closing slow consumer {peer} ({backlog} bytes backlog)",
                          peer=self.peer, backlog=self._backlog)
                self.close(hub_module.CLOSE_TOO_MANY, "slow consumer")
                return
            self._backlog = backlog
        if self._direct is not None:
            self._direct.write(data)
        else:
            transport: Any = self.transport
            transport.write(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Autobahn's own writes: during the handshake (its HTTP answer) they are kept for
        the end of the turn like our frames; later ones (pongs, pings, close frames) go
        after our pending frames."""
        if self._direct is not None:
            if self.state == _CONNECTING and not sync and not chopsize:
                self._direct.write(data)
                return
            self._direct.flush()
        super().sendData(data, sync, chopsize)

    def _closeConnection(self, abort: bool = False) -> None:
        if self._direct is not None:
            if abort:
                self._direct.drop()
            else:
                self._direct.flush()
        super()._closeConnection(abort)

    def send(self, kind: str, data: dict[str, Any] | None = None) -> None:
        self.write_frame(frame(msg.event(kind, data)))

    def send_error(self, code: str, message: str, request_id: str | int | None = None,
                   request_type: str | None = None) -> None:
        self.write_frame(frame(msg.error(code, message, request_id, request_type)))

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with any code (``sendClose`` refuses 1001/1011)."""
        if self.state == _OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123],
                                isReply=False)

    def abort(self) -> None:
        self.dropConnection(abort=True)

    # --- reading ----------------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.received += 1
        if self.phase == "gone" or self.state != _OPEN:
            return
        bucket = self._bucket
        assert bucket is not None
        verdict = bucket.take(self.factory.clock.seconds())
        if verdict == "abuse":
            _log.info("closing {peer}: rate limit exceeded", peer=self.peer)
            self.close(hub_module.CLOSE_TOO_MANY, "rate limited")
            return
        try:
            request = msg.decode_request(payload, isBinary)
        except msg.EnvelopeError as e:
            self.send_error(e.code, e.message, e.request_id, e.request_type)
            return
        if request.type in msg.STREAM_REQUESTS:
            bucket.refund()  # the whiteboard's own budget applies (Classroom.DRAW_RATE)
        elif verdict == "limited":
            self.send_error("rateLimited",
                            f"more than {hub_module.RATE_PER_SECOND} messages per second",
                            request.id, request.type)
            return
        self._dispatch(request)

    def _dispatch(self, request: msg.Request) -> None:
        kind = request.type
        try:
            if self.phase != "joined" and (kind in msg.PARSERS or kind.startswith("media.")) \
                    and kind not in msg.LOBBY_REQUESTS:
                raise msg.MessageError("notJoined", "wait until a moderator lets you in")
            if kind.startswith("media."):
                result = self.factory.hub.media.handle(self._me, kind, request.data)
            else:
                data = msg.parse(request)
                result = getattr(self, "handle_" + kind)(data)
        except msg.MessageError as e:
            self.send_error(e.code, e.message, request.id, kind)
            return
        except RecordingUnavailable as e:
            self.send_error("recordingUnavailable", str(e), request.id, kind)
            return
        except NotAllowed as e:
            self.send_error("notAllowed", str(e) or "not allowed", request.id, kind)
            return
        except RegistryError as e:
            self.send_error("notAllowed", str(e) or type(e).__name__, request.id, kind)
            return
        except Exception:  # noqa: BLE001 - logged; the socket must survive
            _log.failure("signalling request {type} failed", type=kind)
            self.send_error("internal", "the server failed to handle this request",
                            request.id, kind)
            return
        if isinstance(result, Deferred):
            self._later(request, result)
            return
        reply = result if isinstance(result, Reply) else Reply(result or {})
        if request.id is not None:
            self.write_frame(frame(msg.ack(request.id, reply.data)))
        if reply.after is not None:
            try:
                reply.after()
            except Exception:  # noqa: BLE001 - logged; the socket must survive
                _log.failure("signalling request {type} failed after its ack", type=kind)

    def _later(self, request: msg.Request, result: Deferred[dict[str, Any]]) -> None:
        """Ack (or refuse) a request whose handler waits for something (a media node)."""
        kind = request.type

        def done(data: dict[str, Any]) -> None:
            if request.id is not None and self.phase != "gone":
                self.write_frame(frame(msg.ack(request.id, data or {})))

        def failed(failure: Failure) -> None:
            error: Any = failure.value
            if failure.check(msg.MessageError):
                self.send_error(error.code, error.message, request.id, kind)
                return
            _log.failure("signalling request {type} failed", failure, type=kind)
            self.send_error("internal", "the server failed to handle this request",
                            request.id, kind)

        result.addCallbacks(done, failed)

    # --- handlers: one per request type (docs/signalling-protocol.md §4) -------------------

    @property
    def _me(self) -> Participant:
        assert self.participant is not None
        return self.participant

    @property
    def _meeting(self) -> Meeting:
        return self._me.meeting

    def _other(self, user_id: str) -> Participant:
        target = self._meeting.participants.get(user_id)
        if target is None:
            raise NotFound("no connected participant with that id")
        return target

    def _moderator_target(self, user_id: str) -> Participant:
        self.factory.hub.registry.require_moderator(self._me)
        return self._other(user_id)

    def handle_media(self, m: msg.Media) -> None:
        if m.video is not None:
            self.factory.hub.media.check_camera(self._me, m.video)
        self.factory.hub.registry.update_media(
            self._me,
            joined_voice=m.joined_voice,
            listen_only=m.listen_only,
            muted=m.muted,
            video_streams=None if m.video is None else int(m.video),
            screen_sharing=m.screen,
        )

    def handle_chat(self, text: str) -> dict[str, Any]:
        me = self._me
        message = self.factory.hub.registry.send_chat(me.meeting, text, me.full_name, me)
        return {"id": message.id}

    def handle_recording(self, recording: bool) -> None:
        """A moderator starts or stops recording (the registry checks who may, and
        refuses to start in a meeting without a media node: ``recordingUnavailable``)."""
        self.factory.hub.registry.set_recording(self._meeting, recording, by=self._me)

    def handle_raiseHand(self, raised: bool) -> None:
        self.factory.hub.registry.set_raised_hand(self._me, raised, by=self._me)

    def handle_lowerHand(self, user_id: str) -> None:
        target = self._me if user_id == self._me.user_id else self._other(user_id)
        self.factory.hub.registry.set_raised_hand(target, False, by=self._me)

    def handle_mute(self, user_id: str) -> None:
        self._moderator_target(user_id)
        self.factory.hub.registry.request_mute(self._meeting, user_id, by=self._me)

    def handle_muteAll(self, _: None) -> dict[str, Any]:
        targets = self.factory.hub.registry.request_mute(self._meeting, None, by=self._me)
        return {"count": len(targets)}

    def handle_remove(self, user_id: str) -> None:
        self._moderator_target(user_id)
        if user_id == self._me.user_id:
            raise NotAllowed("you cannot remove yourself; use leave")
        self.factory.hub.registry.remove(self._meeting, user_id, by=self._me)

    def handle_presenter(self, user_id: str) -> None:
        self._moderator_target(user_id)
        self.factory.hub.registry.set_presenter(self._meeting, user_id, by=self._me)

    def handle_role(self, target: tuple[str, str]) -> None:
        user_id, role = target
        self._moderator_target(user_id)
        self.factory.hub.registry.set_role(self._meeting, user_id, Role(role), by=self._me)

    def handle_admit(self, user_id: str) -> None:
        registry = self.factory.hub.registry
        registry.require_moderator(self._me)
        registry.admit_guest(self.factory.hub.waiting_seat(self._meeting, user_id),
                             by=self._me)

    def handle_deny(self, user_id: str) -> None:
        registry = self.factory.hub.registry
        registry.require_moderator(self._me)
        registry.deny_guest(self.factory.hub.waiting_seat(self._meeting, user_id),
                            by=self._me)

    def handle_end(self, _: None) -> Reply:
        registry = self.factory.hub.registry
        me, meeting = self._me, self._meeting
        registry.require_moderator(me)
        return Reply({}, lambda: registry.end_meeting(meeting, EndReason.ENDED_BY_MODERATOR,
                                                      by=me))

    def handle_leave(self, _: None) -> Reply:
        return Reply({}, lambda: self.factory.hub.leave(self))

    def handle_signal(self, signal: msg.Signal) -> None:
        self.factory.hub.relay(self, signal)

    def handle_ping(self, ts: float | None) -> dict[str, Any]:
        return {"ts": ts, "serverTs": self.factory.hub.registry.now()}

    def handle_iceRefresh(self, _: None) -> dict[str, Any]:
        """Fresh ICE servers (new TURN credentials), asked for before an ICE restart."""
        return self.factory.hub.ice.for_user(self._me.user_id).as_json()


class SignallingFactory(WebSocketServerFactory):
    """Builds :class:`SignallingProtocol` instances sharing one :class:`Hub`."""

    protocol = SignallingProtocol  # type: ignore[assignment]

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        *,
        auto_ping_interval: float,
        auto_ping_timeout: float,
        open_handshake_timeout: float,
        close_handshake_timeout: float,
        max_backlog: int = MAX_BACKLOG_BYTES,
        extra_origins_for: ExtraOrigins | None = None,
    ) -> None:
        super().__init__(reactor=clock, server=hub.settings.server_name)
        make_debug_arguments_lazy()
        self.hub = hub
        #: Origins (besides the service's) allowed for a seat: its space's embedding sites.
        self.extra_origins_for = extra_origins_for
        self.clock = clock
        self.max_backlog = max_backlog
        #: Sends each plain TCP socket's frames of a reactor turn together.
        self.turn_sender: Gathered[_DirectSocket] = Gathered(
            clock, 0, _DirectSocket.flush, "sending to a socket")
        #: Sockets opened and messages received since start (plain ints: the metrics).
        self.opened = self.received = 0
        self._batched_timer = _clock_timer(clock)
        self.setProtocolOptions(
            maxFramePayloadSize=HARD_MESSAGE_LIMIT,
            maxMessagePayloadSize=HARD_MESSAGE_LIMIT,
            autoFragmentSize=0,
            failByDrop=False,
            openHandshakeTimeout=open_handshake_timeout,
            closeHandshakeTimeout=close_handshake_timeout,
            autoPingInterval=auto_ping_interval,
            autoPingTimeout=auto_ping_timeout,
            perMessageCompressionAccept=lambda offers: None,
        )
        # Autobahn copies its ~30 protocol options onto every connection unless the
        # protocol already has them: holding them once on a per-factory subclass keeps
        # them off each of thousands of idle connections (about 2 KB each).
        # A function-valued option (perMessageCompressionAccept) must stay a plain function,
        # not become a method of the protocol class.
        options: dict[str, Any] = {
            name: staticmethod(value) if callable(value) else value
            for name in SignallingProtocol.CONFIG_ATTRS
            for value in (getattr(self, name),)
        }
        # With every option on the class, Autobahn's per-connection copy loop has nothing
        # to copy; an empty list also spares each handshake its debug line's eager
        # ``pformat`` of the ~30 (option, value, source) triples (a third of a join's CPU
        # in a room filling to 1,000), which txaio then drops unread.
        options["CONFIG_ATTRS"] = ()
        subclass: type[SignallingProtocol] = type(
            "SignallingProtocol", (SignallingProtocol,), options)
        self.protocol = subclass


def _clock_timer(clock: IReactorTime) -> Any:
    """Autobahn's batched timer (one delayed call per 200 ms bucket), on our clock."""
    from txaio._common import _BatchedTimer

    return _BatchedTimer(200.0, 1000, seconds_provider=clock.seconds,
                         delayed_call_creator=clock.callLater)
