"""The signalling socket over real TCP on 127.0.0.1 (twisted.web Site, real reactor)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from meetplatform.model import MeetingSpec, Role
from meetplatform.registry import Registry
from meetplatform.signalling import SignallingService
from meetplatform.signalling.hub import frame
from meetplatform.signalling.protocol import SignallingProtocol, _Backpressure
from tests.support import make_settings


class _Browser(WebSocketClientProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[str, Deferred[dict[str, Any]]] = {}
        self.closed: Deferred[tuple[int | None, str | None]] = Deferred()

    def next(self, kind: str) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        self.waiting[kind] = d
        return d

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = json.loads(payload)
        d = self.waiting.pop(message["type"], None)
        if d is not None:
            d.callback(message)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.closed.called:
            self.closed.callback((code, reason))


async def _open(reactor: Any, port: int, token: str, offer_deflate: bool = False,
                browser_class: type[_Browser] = _Browser) -> _Browser:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/ws?sessionToken={token}",
                                     reactor=reactor)
    if offer_deflate:  # what browsers send with every WebSocket
        from autobahn.websocket.compress import PerMessageDeflateOffer

        factory.setProtocolOptions(perMessageCompressionOffers=[PerMessageDeflateOffer()])
    built: Deferred[_Browser] = Deferred()

    def build() -> _Browser:
        browser = browser_class()
        browser.factory = factory
        first = browser.next("joined")
        first.addCallback(lambda _: built.callback(browser))
        return browser

    factory.protocol = build  # type: ignore[assignment]
    reactor.connectTCP("127.0.0.1", port, factory)
    return await built.addTimeout(10, reactor)


@asynccontextmanager
async def _serving(reactor: Any) -> AsyncIterator[tuple[Registry, SignallingService, int]]:
    """The signalling socket on a twisted.web Site on 127.0.0.1:0; yields the registry,
    the service and the port."""
    registry = Registry(reactor)
    settings = make_settings(public_url="http://127.0.0.1:1")
    service = SignallingService(reactor, settings, registry)
    root = Resource()
    root.putChild(b"ws", service.resource())  # type: ignore[arg-type]
    listening = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    try:
        yield registry, service, listening.getHost().port
    finally:
        await listening.stopListening()


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_real_sockets_carry_chat_and_cut_off_a_reader_that_stopped() -> None:
    """Over real TCP: two browsers join, chat flows, and one that stops reading is
    closed with 4029 once its backlog passes the bound."""
    from twisted.internet import reactor

    async with _serving(reactor) as (registry, service, port):
        meeting, _ = registry.create_meeting(MeetingSpec("int", "Integration"))
        mod_seat = registry.issue_seat(meeting, full_name="Mod", role=Role.MODERATOR)
        ann_seat = registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
        mod = await _open(reactor, port, mod_seat.token)
        ann = await _open(reactor, port, ann_seat.token)
        chat = ann.next("chat")
        mod.sendMessage(b'{"type":"chat","data":{"text":"hello over tcp"}}')
        assert (await chat.addTimeout(10, reactor))["data"]["text"] == "hello over tcp"

        server = next(c for c in service.hub.conns if c.participant
                      and c.participant.user_id == ann_seat.user_id)
        assert isinstance(server, SignallingProtocol)
        assert isinstance(server.transport.producer, _Backpressure)  # type: ignore[union-attr]
        ann.transport.pauseProducing()  # type: ignore[union-attr]  # Ann stops reading
        big = frame(json.dumps({"type": "chat", "data": {"text": "x" * 60_000}}).encode())
        for _ in range(4000):  # at most 240 MB; kernel buffers hold a few MB at most
            if server.state != server.STATE_OPEN:
                break
            server.write_frame(big)
            await deferLater(reactor, 0, lambda: None)
        assert server.state != server.STATE_OPEN
        assert server._backlog <= 1024 * 1024
        ann.transport.resumeProducing()  # type: ignore[union-attr]
        assert (await ann.closed.addTimeout(30, reactor))[0] == 4029
        assert mod.state == mod.STATE_OPEN
        await service.stopService()
        assert (await mod.closed.addTimeout(10, reactor)) == (1001, "server shutting down")


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_browser_offering_compression_joins_uncompressed() -> None:
    """A client that offers permessage-deflate, as every browser does, joins normally and
    the server declines compression (frames are built once for the whole room)."""
    from twisted.internet import reactor

    async with _serving(reactor) as (registry, _, port):
        meeting, _ = registry.create_meeting(MeetingSpec("deflate", "Deflate"))
        seat = registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
        browser = await _open(reactor, port, seat.token, offer_deflate=True)
        assert browser.websocket_extensions_in_use == []
        assert meeting.participant_count == 1
        browser.sendClose()
        await browser.closed.addTimeout(10, reactor)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_frames_stay_in_order_when_the_kernel_and_twisted_both_buffer() -> None:
    """Frames written while the peer is not reading fill the kernel's buffers, then
    Twisted's; frames written after that in the same turn, then a close frame Autobahn
    writes itself, come after all of them. When the peer reads again it gets every
    frame, in order, then the close code."""
    from twisted.internet import reactor

    async with _serving(reactor) as (registry, service, port):
        meeting, _ = registry.create_meeting(MeetingSpec("order", "Order"))
        seat = registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
        received: list[int] = []

        class Counting(_Browser):
            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                message = json.loads(payload)
                if message["type"] == "n":
                    received.append(message["data"]["n"])
                super().onMessage(payload, isBinary)

            def onCloseFrame(self, code: int, reasonRaw: bytes) -> Any:
                received.append(-1)  # where the close frame came on the wire
                return super().onCloseFrame(code, reasonRaw)

        ann = await _open(reactor, port, seat.token, browser_class=Counting)
        server = next(iter(service.hub.conns))
        assert isinstance(server, SignallingProtocol)
        server.factory.max_backlog = 256 * 1024 * 1024  # this test wants no 4029
        ann.transport.pauseProducing()  # type: ignore[union-attr]
        transport: Any = server.transport
        count = 0
        twisted_buffered = False
        while count < 2000 and not twisted_buffered:  # stop once Twisted holds a backlog
            for _ in range(20):
                server.send("n", {"n": count, "pad": "x" * 30_000})
                count += 1
            await deferLater(reactor, 0, lambda: None)  # the turn's frames are sent
            twisted_buffered = bool(transport._tempDataBuffer or transport.dataBuffer)
        assert twisted_buffered, "the kernel took 60 MB without blocking"
        for _ in range(20):  # more frames behind Twisted's backlog, then a close frame
            server.send("n", {"n": count, "pad": "x" * 30_000})
            count += 1
        server.close(4010, "meeting ended")
        ann.transport.resumeProducing()  # type: ignore[union-attr]
        assert (await ann.closed.addTimeout(60, reactor)) == (4010, "meeting ended")
        assert received == [*range(count), -1]


class _RawClient(Protocol):
    """Sends a handshake's bytes and keeps every byte the server answers until it closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.writes: list[bool] = []
        self.ended: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.ended.callback(self.received)


def _handshake(token: str) -> bytes:
    return (f"GET /ws?sessionToken={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Origin: http://127.0.0.1:1\r\n\r\n").encode()


async def _exchange(reactor: Any, port: int, request: bytes, *, until: bytes | None = None,
                    ) -> bytes:
    """The server's bytes for ``request``: until the connection ends, or until ``until``
    has arrived (then the client closes)."""
    client = _RawClient(request)
    await ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port)
    if until is not None:
        while until not in client.received:
            await deferLater(reactor, 0.01, lambda: None)
        assert client.transport is not None
        client.transport.loseConnection()
    return await client.ended.addTimeout(10, reactor)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_the_handshake_answer_comes_first_then_joined_and_a_refusal_before_the_close(
        ) -> None:
    """The handshake's answer is kept with the frames of the same turn: a joiner reads
    the 101 (with its accept key) and then its ``joined``; a refused handshake reads its
    whole HTTP answer before the server closes the connection."""
    from twisted.internet import reactor

    async with _serving(reactor) as (registry, _, port):
        meeting, _ = registry.create_meeting(MeetingSpec("raw", "Raw"))
        seat = registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER)
        answer = await _exchange(reactor, port, _handshake(seat.token), until=b'"joined"')
        head, _, frames = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        assert frames[0] == 0x81  # a text frame: joined, right after the answer
        offset = {126: 4, 127: 10}.get(frames[1] & 0x7F, 2)
        assert frames[offset:].startswith(b'{"type":"joined"')

        refused = await _exchange(reactor, port, _handshake("st_" + "x" * 40))
        assert refused.startswith(b"HTTP/1.1 403 ")
        assert refused.endswith(b"\r\n\r\n")
