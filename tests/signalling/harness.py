"""An in-memory world for signalling tests: fake clock, real registry, real service.

Sockets are Autobahn client and server protocols joined by ``create_memory_agent`` over
in-memory transports; :meth:`World.flush` moves every byte and runs every zero-delay call
synchronously, so tests never wait on real time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from autobahn.twisted.testing import create_memory_agent
from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump

from meetplatform.config import IceServer
from meetplatform.model import GuestPolicy, Meeting, MeetingSpec, Role, Seat
from meetplatform.registry import Registry
from meetplatform.signalling import SignallingService
from tests.support import PUBLIC_URL, START, make_settings

ORIGIN = "https://meet.example.test"


class Client(WebSocketClientProtocol):
    """A test browser: records every event and how the socket closed."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.closed: tuple[int | None, str | None] | None = None
        self.world: World | None = None
        self.last_joined: dict[str, Any] | None = None
        self._next_id = 0

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = json.loads(payload.decode("utf-8"))
        self.received.append(message)
        if message["type"] == "joined":
            self.last_joined = message["data"]

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.closed = (code, reason)

    # --- helpers -----------------------------------------------------------------------

    def request(self, kind: str, data: dict[str, Any] | None = None,
                id: Any = "auto") -> Any:
        """Send one request and flush; returns the id used (None: no id)."""
        if id == "auto":
            self._next_id += 1
            id = f"r{self._next_id}"
        envelope: dict[str, Any] = {"type": kind, "data": data or {}}
        if id is not None:
            envelope["id"] = id
        self.send_raw(json.dumps(envelope).encode())
        return id

    def send_raw(self, payload: bytes, binary: bool = False) -> None:
        self.sendMessage(payload, isBinary=binary)
        assert self.world is not None
        self.world.flush()

    def take(self) -> list[dict[str, Any]]:
        """Every frame received since the last take."""
        out, self.received = self.received, []
        return out

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind]

    def types(self) -> list[str]:
        return [m["type"] for m in self.received]

    def reply(self, request_id: Any) -> dict[str, Any]:
        """The ack or error answering ``request_id`` (exactly one must exist)."""
        found = [m for m in self.received
                 if m["type"] in ("ack", "error") and m.get("id") == request_id]
        assert len(found) == 1, (request_id, self.received)
        return found[0]

    def ok(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request that must be acked; returns the ack's data."""
        rid = self.request(kind, data)
        answer = self.reply(rid)
        assert answer["type"] == "ack", answer
        return answer["data"]

    def fails(self, kind: str, data: dict[str, Any] | None = None) -> str:
        """Send a request that must fail; returns the error code."""
        rid = self.request(kind, data)
        answer = self.reply(rid)
        assert answer["type"] == "error", answer
        assert answer["message"]
        return answer["code"]

    @property
    def joined(self) -> dict[str, Any]:
        """The latest `joined` snapshot this socket received."""
        assert self.last_joined is not None, self.received
        return self.last_joined

    @property
    def user_id(self) -> str:
        return self.joined["self"]["id"]

    @property
    def open(self) -> bool:
        return self.closed is None and self.state == self.STATE_OPEN


class Refused(Exception):
    pass


class SyncPumper:
    """The pumper ``create_memory_agent`` wants, driven by hand instead of a reactor."""

    def __init__(self, clock: MemoryReactorClock) -> None:
        self.clock = clock
        self.pumps: list[IOPump] = []
        #: Pumps not flushed (to play a stuck receiver).
        self.frozen: set[IOPump] = set()

    def add(self, pump: IOPump) -> None:
        self.pumps.append(pump)

    def flush(self) -> None:
        for _ in range(1000):
            self.clock.advance(0)
            moved = False
            for pump in list(self.pumps):
                if pump in self.frozen:
                    continue
                moved = pump.flush() or moved
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self.pumps.remove(pump)
            if not moved and not any(c.getTime() <= self.clock.seconds()
                                     for c in self.clock.getDelayedCalls()):
                return
        raise AssertionError("pumping does not settle")


class World:
    def __init__(self, **settings: Any) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(START)
        defaults: dict[str, Any] = {
            "public_url": PUBLIC_URL,
            "ice_servers": (IceServer(("stun:stun.example.test:3478",)),
                            IceServer(("turn:turn.example.test:3478",), "u", "p")),
            "resume_grace_seconds": 20.0,
            "extra_origins": ("https://lms.example.org",),
        }
        defaults.update(settings)
        self.settings = make_settings(**defaults)
        clock: Any = self.clock  # a MemoryReactorClock provides IReactorTime
        self.registry = Registry(clock, server_url=PUBLIC_URL)
        self.service = SignallingService(clock, self.settings, self.registry)
        self.pumper = SyncPumper(self.clock)
        self.agent = create_memory_agent(
            self.clock, self.pumper, lambda: self.service.factory.buildProtocol(None))
        self.servers: list[Any] = []

    def flush(self) -> None:
        self.pumper.flush()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.flush()

    # --- meetings and seats -----------------------------------------------------------

    def meeting(self, meeting_id: str = "m1", **spec: Any) -> Meeting:
        meeting, _ = self.registry.create_meeting(MeetingSpec(meeting_id, "Weekly", **spec))
        return meeting

    def seat(self, meeting: Meeting, name: str = "Ada", role: Role = Role.VIEWER,
             **kwargs: Any) -> Seat:
        return self.registry.issue_seat(meeting, full_name=name, role=role, **kwargs)

    # --- sockets ------------------------------------------------------------------------

    def open_socket(self, token: str | None, *, origin: str | None = ORIGIN,
                    protocols: list[str] | None = None, query: str | None = None) -> Client:
        """Open a socket; raises :class:`Refused` with the HTTP refusal text."""
        url = "ws://meet.example.test/ws"
        if query is not None:
            url += "?" + query
        elif token is not None:
            url += "?sessionToken=" + token
        options: dict[str, Any] = {}
        if origin is not None:
            options["origin"] = origin
        if protocols is not None:
            options["protocols"] = protocols
        result: list[Any] = []
        built: list[Client] = []

        def build() -> Client:
            client = Client()
            built.append(client)
            return client

        d = self.agent.open(url, options, protocol_class=build)
        d.addBoth(result.append)
        self.flush()
        if not result:
            # Autobahn never settles is_open when the server refuses the upgrade; the
            # refusal shows in the client's close reason instead.
            assert built and built[0].closed is not None, "handshake did not finish"
            raise Refused(str(built[0].closed[1]))
        outcome = result[0]
        if isinstance(outcome, Failure):
            raise Refused(str(outcome.value))
        client: Client = outcome
        client.world = self
        self.servers.append(self.agent._servers[client])
        self.flush()
        return client

    def join(self, meeting: Meeting, name: str = "Ada", role: Role = Role.VIEWER,
             **kwargs: Any) -> Client:
        seat = self.seat(meeting, name, role, **kwargs)
        return self.open_socket(seat.token)

    def drop(self, client: Client) -> None:
        """The browser's connection dies without a closing handshake (reload, network)."""
        client.transport.abortConnection()  # type: ignore[union-attr]
        self.flush()

    def server_of(self, client: Client) -> Any:
        return self.agent._servers[client]


def pair(world: World, **spec: Any) -> tuple[Client, Client]:
    """A moderator and a viewer joined to a new meeting, their snapshots taken."""
    meeting = world.meeting(**spec)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    mod.take()
    ann.take()
    return mod, ann


#: What a client reads for a member a participant card leaves out (docs §3.3; the page's
#: ``card()`` in conference/protocol.js).
CARD_DEFAULTS: dict[str, Any] = {
    "externalId": "", "guest": False, "presenter": False, "muted": False,
    "listenOnly": False, "joinedVoice": False, "video": False, "screen": False,
    "raisedHand": False, "avatarUrl": "", "reconnecting": False}


def card(participant: dict[str, Any]) -> dict[str, Any]:
    """A participant card as a client reads it: every member, defaults filled in."""
    return {**CARD_DEFAULTS, **participant}


def ids(participants: list[dict[str, Any]]) -> list[str]:
    return [p["id"] for p in participants]


def events(client: Client, kind: str) -> Iterator[dict[str, Any]]:
    return (m["data"] for m in client.received if m["type"] == kind)


__all__ = ["Client", "GuestPolicy", "Refused", "Role", "World", "card", "events", "ids"]
