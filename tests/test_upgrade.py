"""WebSocket upgrades handed to their protocol before twisted.web (meetplatform.upgrade).

A plain upgrade to a routed path reaches the path's protocol with every byte and no
twisted.web request; anything else is twisted.web's, exactly as before. Memory
transports and the fake clock, plus one real TLS listener on 127.0.0.1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.server import Request

from meetplatform import upgrade
from meetplatform.build import build_site
from meetplatform.registry import Registry
from meetplatform.site import MeetplatformSite, RootResource, UpgradeOnly
from meetplatform.store import Store
from tests.support import make_settings
from tests.test_config import write_self_signed
from tests.test_site import Spy

HEAD = (b"GET /ws?sessionToken=abc HTTP/1.1\r\nHost: meet.test\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nOrigin: http://meet.test\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class Recording(Factory):
    def __init__(self) -> None:
        self.built: list[Recorder] = []
        self.peers: list[Any] = []

    def buildProtocol(self, addr: Any) -> Recorder:
        self.peers.append(addr)
        protocol = Recorder()
        self.built.append(protocol)
        return protocol


def routed_site(clock: Clock) -> tuple[MeetplatformSite, Recording, Spy, list[Request]]:
    factory, spy = Recording(), Spy()
    root = RootResource()
    root.putChild(b"ws", UpgradeOnly(spy, factory=factory))
    root.putChild(b"healthz", Spy())
    site = MeetplatformSite(root, clock=clock, max_query_bytes=4096, max_body_bytes=4096)
    started: list[Request] = []

    class Hook:
        def started(self, request: Request) -> None:
            started.append(request)

        def finished(self, request: Request) -> None:
            pass

    site.request_hook = Hook()
    return site, factory, spy, started


def connect(site: MeetplatformSite) -> tuple[Any, StringTransport]:
    peer = IPv4Address("TCP", "192.0.2.7", 50000)
    channel = site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer)
    channel.makeConnection(transport)
    return channel, transport


@pytest.mark.parametrize("chunk", [len(HEAD) + 9, 1, 7])
def test_a_plain_upgrade_goes_to_the_routed_protocol_with_every_byte(chunk: int) -> None:
    """In one piece or trickled: the protocol gets the head and what followed it, the
    transport is its own, no twisted.web request exists, and the head deadline is off."""
    clock = Clock()
    site, factory, spy, started = routed_site(clock)
    channel, transport = connect(site)
    data = HEAD + b"\x81\x80more"
    for at in range(0, len(data), chunk):
        # What the reactor does: deliver to the transport's protocol of the moment.
        getattr(transport, "protocol", channel).dataReceived(data[at:at + chunk])
    assert len(factory.built) == 1
    protocol = factory.built[0]
    assert protocol.received == data
    assert protocol.transport is transport and transport.protocol is protocol  # type: ignore[attr-defined]
    assert factory.peers == [transport.getPeer()]
    assert channel.transport is None
    assert not spy.seen and not started
    assert transport.producer is None
    clock.advance(3600)
    assert transport.value() == b"" and not transport.disconnecting


REFUSED_OR_SERVED = {
    "no upgrade (the 426)": HEAD.replace(b"Upgrade: websocket\r\n", b""),
    "another upgrade": HEAD.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
    "websocket second, as UpgradeOnly reads it": HEAD.replace(b"Upgrade: websocket",
                                                              b"Upgrade: h2c, websocket"),
    "POST": HEAD.replace(b"GET", b"POST", 1),
    "HEAD": HEAD.replace(b"GET", b"HEAD", 1),
    "trailing slash": HEAD.replace(b"/ws?", b"/ws/?", 1),
    "encoded path": HEAD.replace(b"/ws?", b"/%77s?", 1),
    "longer path": HEAD.replace(b"/ws?", b"/wss?", 1),
    "HTTP/1.0": HEAD.replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    "a header twice": HEAD.replace(b"Host: meet.test\r\n", b"Host: meet.test\r\nHost: x\r\n"),
    "a body length": HEAD.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
    "chunked": HEAD.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "expect": HEAD.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"),
    "folded header": HEAD.replace(b"Host: meet.test\r\n", b"Host: meet.test\r\n  x\r\n"),
    "space before colon": HEAD.replace(b"Host:", b"Host :"),
    "control character": HEAD.replace(b"meet.test", b"meet\x01test"),
    "bare LF": HEAD.replace(b"Host: meet.test\r\n", b"Host: meet.test\n"),
    "over the line limit": HEAD.replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * 13000 + b"\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_OR_SERVED))
def test_anything_else_is_twisted_webs_request(name: str) -> None:
    """Each of these is answered by twisted.web (its request, its limits, its errors,
    UpgradeOnly's 426 or the resource), never handed to the routed factory."""
    site, factory, _spy, _started = routed_site(Clock())
    channel, transport = connect(site)
    channel.dataReceived(REFUSED_OR_SERVED[name])
    assert not factory.built
    assert transport.value().startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), transport.value()[:200]


def test_the_426_and_the_resource_behind_it_are_unchanged() -> None:
    site, _factory, spy, started = routed_site(Clock())
    channel, transport = connect(site)
    channel.dataReceived(REFUSED_OR_SERVED["no upgrade (the 426)"])
    assert transport.value().startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    channel, transport = connect(site)
    channel.dataReceived(REFUSED_OR_SERVED["a body length"])
    assert [r.path for r in spy.seen] == [b"/ws"] and len(started) == 2


def test_only_the_first_request_of_a_connection_is_looked_at() -> None:
    """An upgrade after a request on a kept-alive connection goes through twisted.web."""
    site, factory, spy, _started = routed_site(Clock())
    channel, _transport = connect(site)
    channel.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + HEAD)
    assert not factory.built
    assert len(spy.seen) == 1 and spy.seen[0].path == b"/ws"


def test_an_unrouted_site_and_a_starting_site_parse_everything() -> None:
    """Without a factory (UpgradeOnly without one, or the 503 page while starting)
    twisted.web serves the upgrade request."""
    spy = Spy()
    root = RootResource()
    root.putChild(b"ws", UpgradeOnly(spy))
    site = MeetplatformSite(root, clock=Clock(), max_query_bytes=4096, max_body_bytes=4096)
    channel, _transport = connect(site)
    channel.dataReceived(HEAD)
    assert len(spy.seen) == 1


def test_the_head_deadline_runs_while_an_upgrade_head_is_incomplete() -> None:
    clock = Clock()
    site, factory, _, _ = routed_site(clock)
    channel, transport = connect(site)
    channel.dataReceived(HEAD[:60])
    clock.advance(site.request_head_timeout + 1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting and not factory.built


def test_a_tls_wrapper_gets_the_protocol_as_its_wrapped_one() -> None:
    """Over TLS the site's channel sits inside a wrapper: the wrapper's protocol changes
    (as Autobahn's resource does it), so decrypted bytes reach the new protocol."""
    site, factory, _, _ = routed_site(Clock())
    wrapping = WrappingFactory(site)
    peer = IPv4Address("TCP", "192.0.2.7", 50000)
    wrapper = wrapping.buildProtocol(peer)
    assert isinstance(wrapper, ProtocolWrapper)
    transport = StringTransport(peerAddress=peer)
    wrapper.makeConnection(transport)
    wrapper.dataReceived(HEAD)
    protocol = factory.built[0]
    assert wrapper.wrappedProtocol is protocol and protocol.transport is wrapper
    wrapper.dataReceived(b"later")
    assert protocol.received == HEAD + b"later"


def test_sniff_asks_the_route_only_for_the_request_path() -> None:
    asked: list[bytes] = []

    def route(path: bytes) -> str | None:
        asked.append(path)
        return "factory" if path == b"/ws" else None

    def verdict(data: bytes) -> object:
        return upgrade.sniff(data, route, max_bytes=8192, max_headers=500)

    assert verdict(b"") == upgrade.MORE and verdict(b"GE") == upgrade.MORE
    assert verdict(b"GET /ws?sessionToken=a") == upgrade.MORE
    assert verdict(HEAD[:40]) == upgrade.MORE
    assert verdict(b"PUT /ws") == upgrade.HTTP
    assert verdict(b"GET /healthz HTTP/1.1\r\n") == upgrade.HTTP
    assert verdict(HEAD) == "factory"
    assert asked == [b"/ws", b"/healthz", b"/ws"]
    assert upgrade.sniff(HEAD, route, max_bytes=len(HEAD) - 1, max_headers=500) == upgrade.HTTP
    assert upgrade.sniff(HEAD, route, max_bytes=8192, max_headers=5) == upgrade.HTTP


@pytest_twisted.ensureDeferred
async def test_the_signalling_answers_an_upgrade_over_a_real_tls_listener(
        tmp_path: Path) -> None:
    """An ``ssl:`` listener of the product's site: the upgrade reaches Autobahn (its
    refusal of an unknown seat) without a twisted.web request."""
    from twisted.internet import reactor as global_reactor
    from twisted.internet import ssl
    from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol, serverFromString

    reactor: Any = global_reactor
    write_self_signed(tmp_path / "server.pem")
    settings = make_settings(public_url="https://meet.test", secret="upgrade-test")
    store = Store.open_inline(Path(tempfile.mkdtemp(prefix="mp-upgrade-")))
    root = build_site(reactor, settings, Registry(reactor, settings.public_url), store)
    site = MeetplatformSite(root, clock=reactor, max_query_bytes=4096, max_body_bytes=4096)
    started: list[Request] = []

    class Hook:
        def started(self, request: Request) -> None:
            started.append(request)

        def finished(self, request: Request) -> None:
            pass

    site.request_hook = Hook()

    class Raw(Protocol):
        def __init__(self) -> None:
            self.received = b""
            self.done: Deferred[bytes] = Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.received += data
            if b"\r\n\r\n" in self.received and not self.done.called:
                self.done.callback(self.received)

    port = await serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:privateKey={tmp_path / 'server.pem'}"
    ).listen(site)
    try:
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port,
                                      ssl.CertificateOptions())
        raw = await connectProtocol(endpoint, Raw())
        assert raw.transport is not None
        raw.transport.write(HEAD.replace(b"http://meet.test", b"https://meet.test"))
        answer = await raw.done.addTimeout(10, reactor)
        raw.transport.loseConnection()
        # And a plain GET /ws on the same listener is still the site's 426.
        plain = await connectProtocol(endpoint, Raw())
        assert plain.transport is not None
        plain.transport.write(b"GET /ws HTTP/1.1\r\nHost: meet.test\r\n\r\n")
        refused = await plain.done.addTimeout(10, reactor)
        plain.transport.loseConnection()
    finally:
        await port.stopListening()
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 403 unknown session token", answer
    assert refused.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert [r.path for r in started] == [b"/ws"]  # the plain GET's request only
