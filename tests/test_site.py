"""The site's edge: per-route body limits, no eager form parsing, the request-head deadline,
the client address behind trusted proxies, the access log and the headers of every answer.

Raw HTTP on a memory transport and the fake clock: nothing here sleeps or measures time
(the latency under a form-body flood is measured by ``bench/http_edge_bench.py``).
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import directlyProvides

from meetplatform.build import build_site
from meetplatform.checksum import checksum
from meetplatform.registry import Registry
from meetplatform.site import SMALL_BODY_BYTES, MeetplatformSite, RootResource, redact_uri
from meetplatform.store import Store
from meetplatform.tap import makeService
from tests.support import make_settings
from tests.test_tap import BindingReactor, options

SECRET = "site-test-secret"


def tree(clock: Clock, **settings: Any) -> Resource:
    config = make_settings(public_url="http://meet.test", secret=SECRET, **settings)
    registry = Registry(clock, config.public_url)
    store = Store.open_inline(Path(tempfile.mkdtemp(prefix="mp-site-")))
    return build_site(clock, config, registry, store)


def make_site(root: Resource | None = None, *, clock: Clock | None = None,
              max_body_bytes: int = 2 * 1024 * 1024, **kwargs: Any) -> MeetplatformSite:
    clock = clock or Clock()
    return MeetplatformSite(root if root is not None else tree(clock), clock=clock,
                            max_query_bytes=4096, max_body_bytes=max_body_bytes, **kwargs)


def connect(site: MeetplatformSite, peer: str = "127.0.0.1") -> tuple[Any, StringTransport]:
    address = IPv4Address("TCP", peer, 50000)
    channel = site.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


def exchange(site: MeetplatformSite, *chunks: bytes, peer: str = "127.0.0.1") -> StringTransport:
    channel, transport = connect(site, peer)
    for chunk in chunks:
        channel.dataReceived(chunk)
    return transport


class Spy(Resource):
    """Records what the site hands a resource."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Request] = []
        self.bodies: list[bytes] = []

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        self.seen.append(request)
        self.bodies.append(request.content.read() if request.content else b"")
        return b"ok"


# --- bodies ----------------------------------------------------------------------------------


def test_routes_that_read_no_body_refuse_a_large_one_before_reading_it() -> None:
    """A 2 MB form to /healthz (or /, /static, an unknown path) is refused with 413 as
    soon as its headers are in: the site limit (2 MB) is not what applies there."""
    site = make_site()
    for path in (b"/healthz", b"/", b"/static/x.css", b"/nothing", b"/ws", b"/%68ealthz"):
        transport = exchange(
            site, b"POST " + path + b" HTTP/1.1\r\nHost: meet.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 2097152\r\n\r\n", b"&" * 65536)
        assert transport.value().startswith(b"HTTP/1.1 413 "), path
        assert b"larger than %d bytes" % SMALL_BODY_BYTES in transport.value()
        assert transport.disconnecting


def test_each_surface_has_its_own_body_limit() -> None:
    """The XML API takes the site's limit, the JSON:API and the pages their own smaller ones."""
    root = tree(Clock())
    assert isinstance(root, RootResource)
    site = make_site(root)
    assert site.body_limit(b"/bigbluebutton/api/create") == 2 * 1024 * 1024
    assert site.body_limit(b"/api/v2/oauth/token?x=1") == 64 * 1024
    assert site.body_limit(b"/j/mput_abc") == 8 * 1024
    assert site.body_limit(b"/embed/room/session") == 8 * 1024
    assert site.body_limit(b"/healthz") == SMALL_BODY_BYTES
    assert make_site(root, max_body_bytes=4096).body_limit(b"/bigbluebutton/api") == 4096


def test_the_site_never_parses_form_bodies_into_args() -> None:
    """A urlencoded or multipart POST leaves ``request.args`` to the query: Twisted's eager
    parse (which held the reactor for a second on 2 MB of ``&``) is off."""
    spy = Spy()
    root = RootResource()
    root.mount(b"spy", spy, max_body_bytes=1024 * 1024)
    site = make_site(root)
    body = b"a=1&" + b"&" * 100_000
    exchange(site, b"POST /spy?q=1 HTTP/1.1\r\nHost: t\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n"
             b"Content-Length: %d\r\n\r\n" % len(body) + body)
    multipart = (b'--B\r\nContent-Disposition: form-data; name="m"\r\n\r\nv\r\n--B--\r\n')
    exchange(site, b"POST /spy HTTP/1.1\r\nHost: t\r\n"
             b"Content-Type: multipart/form-data; boundary=B\r\n"
             b"Content-Length: %d\r\n\r\n" % len(multipart) + multipart)
    assert [request.args for request in spy.seen] == [{b"q": [b"1"]}, {}]
    assert spy.bodies[0] == body


def test_parse_calls_are_never_made_for_a_flood(monkeypatch: Any) -> None:
    """Twisted's form parser is not called at all for a body sent to /healthz."""
    calls: list[bytes] = []
    original = http.parse_qs

    def counting(qs: bytes, *args: Any, **kwargs: Any) -> Any:
        calls.append(qs)
        return original(qs, *args, **kwargs)

    monkeypatch.setattr(http, "parse_qs", counting)
    exchange(make_site(), b"POST /healthz HTTP/1.1\r\nHost: t\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n"
             b"Content-Length: 1000\r\n\r\n" + b"&" * 1000)
    assert calls == []


def test_xml_api_reads_a_multipart_form_itself() -> None:
    """A signed multipart create through the real site (no eager parse) succeeds."""
    site = make_site()
    pairs = [("meetingID", "mp-1"), ("name", "Multipart")]
    value = checksum("create", "meetingID=mp-1&name=Multipart", SECRET, "sha1")
    parts = "".join(f'--XyZ\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                    for k, v in pairs + [("checksum", value)])
    body = (parts + "--XyZ--\r\n").encode()
    transport = exchange(site, b"POST /bigbluebutton/api/create HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: multipart/form-data; boundary=XyZ\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert b"<returncode>SUCCESS</returncode>" in transport.value(), transport.value()


# --- the request-head deadline ----------------------------------------------------------------


def test_a_trickled_request_head_is_cut_off_at_the_deadline() -> None:
    """One header line every 20 s (slowloris) is closed with 408 at 30 s, not after 80."""
    clock = Clock()
    site = make_site(Spy(), clock=clock)
    channel, transport = connect(site)
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(20)
    channel.dataReceived(b"Host: meet.test\r\n")
    assert not transport.disconnecting
    clock.advance(9.9)
    channel.dataReceived(b"X-A: 1\r\n")
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.disconnecting


def test_the_deadline_is_configurable_and_covers_a_silent_connection() -> None:
    """--request-head-timeout sets it; a connection that sends nothing is closed silently."""
    clock = Clock()
    site = make_site(Spy(), clock=clock, request_head_timeout=5)
    _, transport = connect(site)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting and transport.value() == b""


def test_a_complete_head_stops_the_deadline_and_keep_alive_rearms_it() -> None:
    """Once the headers are in, a slow body or a long answer is not cut by the deadline;
    after the answer, the next request has a deadline of its own."""
    clock = Clock()
    spy = Spy()
    root = RootResource()
    root.mount(b"spy", spy, max_body_bytes=1024)
    site = make_site(root, clock=clock)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /spy HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
    clock.advance(50)  # past the head deadline; within Twisted's 60 s idle timeout
    assert not transport.disconnecting
    channel.dataReceived(b"cd")
    assert spy.bodies == [b"abcd"] and b" 200 OK" in transport.value()
    channel.dataReceived(b"GET /spy HTTP/1.1\r\n")
    clock.advance(30)
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 408 ") == 1


def test_each_request_of_a_kept_alive_connection_has_its_full_time() -> None:
    """One timer serves the connection: a request answered at 20 s gives the next head its
    own 30 s (until 50 s), although the connection's first deadline was due at 30 s."""
    clock = Clock()
    spy = Spy()
    root = RootResource()
    root.mount(b"spy", spy, max_body_bytes=1024)
    site = make_site(root, clock=clock)
    channel, transport = connect(site)
    clock.advance(20)
    channel.dataReceived(b"GET /spy HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b" 200 OK" in transport.value()
    clock.advance(25)
    channel.dataReceived(b"GET /spy HTTP/1.1\r\n")
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 408 ") == 1
    assert len(clock.getDelayedCalls()) <= 1  # never a timer per request


def test_the_service_passes_the_option_to_its_site(tmp_path: Path) -> None:
    """--request-head-timeout and --trusted-proxy reach the site twistd runs."""
    service = makeService(options(tmp_path, "--request-head-timeout", "7",
                                  "--trusted-proxy", "10.0.0.0/8"), BindingReactor())
    assert service.site.request_head_timeout == 7.0
    assert service.site.trusted_proxies == ("10.0.0.0/8",)


# --- the access log ---------------------------------------------------------------------------


def test_logged_urls_carry_no_credentials() -> None:
    """Passwords, seat and access tokens and invitation links are redacted; the rest stays."""
    cases = {
        b"/bigbluebutton/api/join?fullName=A&meetingID=m&password=mp&checksum=abc":
            b"/bigbluebutton/api/join?fullName=A&meetingID=m&password=REDACTED&checksum=abc",
        b"/bigbluebutton/api/create?attendeePW=ap&moderatorPW=mp&name=x":
            b"/bigbluebutton/api/create?attendeePW=REDACTED&moderatorPW=REDACTED&name=x",
        b"/client/join?sessionToken=abc123": b"/client/join?sessionToken=REDACTED",
        b"/ws?session%54oken=abc": b"/ws?session%54oken=REDACTED",
        b"/j/mput_secret": b"/j/REDACTED",
        b"/j/anything-else/x": b"/j/REDACTED/x",
        b"/j/": b"/j/",
        b"/api/v2/x?access_token=mpat_1&other=mpua_2": b"/api/v2/x?access_token=REDACTED&other=REDACTED",
        b"/api/v2/x/mpcs_abc": b"/api/v2/x/REDACTED",
        b"/healthz": b"/healthz",
    }
    for uri, expected in cases.items():
        assert redact_uri(uri) == expected, uri


def test_access_log_is_private_redacted_and_never_rotated_here(tmp_path: Path) -> None:
    """The file is created 0600 (an existing world-readable one loses that), grows past
    Twisted's 1 MB rotation size without numbered files appearing, and its lines have
    no credential but the client address behind a trusted proxy."""
    path = tmp_path / "access.log"
    path.write_text("")
    path.chmod(0o644)
    site = make_site(access_log=str(path), trusted_proxies=("127.0.0.1/32",))
    site.doStart()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        exchange(site, b"GET /j/mput_secretsecret HTTP/1.1\r\nHost: t\r\n"
                 b"Referer: http://t/client/join?sessionToken=seat\r\n"
                 b"X-Forwarded-For: 198.51.100.4\r\n\r\n")
        long_uri = b"/healthz?pad=" + b"x" * 3000
        for _ in range(400):
            exchange(site, b"GET " + long_uri + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    finally:
        site.doStop()
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith('"198.51.100.4" ')
    assert '"GET /j/REDACTED HTTP/1.1"' in first
    assert "sessionToken=REDACTED" in first and "seat" not in first
    assert "mput_" not in text
    assert path.stat().st_size > 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["access.log"]
    fresh = tmp_path / "new.log"
    site = make_site(access_log=str(fresh))
    site.doStart()
    site.doStop()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


# --- headers of every answer --------------------------------------------------------------------


def head_of(transport: StringTransport) -> dict[bytes, bytes]:
    head = transport.value().split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return {name.lower(): value for name, _, value in (line.partition(b": ") for line in head)}


def test_no_version_in_any_answer_and_nosniff_everywhere() -> None:
    """Server says meetplatform, without version, on pages, API answers and refusals;
    every answer has nosniff."""
    site = make_site()
    for request in (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
                    b"GET /bigbluebutton/api HTTP/1.1\r\nHost: t\r\n\r\n",
                    b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n",
                    b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nX: " + b"x" * 50_000 + b"\r\n\r\n"):
        transport = exchange(site, request)
        headers = head_of(transport)
        assert headers[b"server"] == b"meetplatform", request[:30]
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert b"Twisted" not in transport.value() and b"Autobahn" not in transport.value()


def test_error_pages_get_a_restrictive_policy_unless_they_have_one() -> None:
    """Twisted's 404 page had no CSP; the pages' own error pages keep theirs."""
    site = make_site()
    not_found = head_of(exchange(site, b"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert not_found[b"content-security-policy"].startswith(b"default-src 'none'")
    page = head_of(exchange(site, b"GET /j/mput_unknown HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert b"frame-ancestors 'self'" in page[b"content-security-policy"]
    ok = head_of(exchange(site, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert b"content-security-policy" not in ok


def test_ws_without_upgrade_is_a_plain_426() -> None:
    """GET /ws is no Autobahn status page with its version: 426 with Upgrade."""
    transport = exchange(make_site(), b"GET /ws HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert head_of(transport)[b"upgrade"] == b"websocket"


def test_hsts_over_tls_or_from_a_trusted_proxy_only() -> None:
    """HSTS on answers over an ssl: listener, or when a trusted proxy says https."""
    site = make_site(trusted_proxies=("127.0.0.1/32",))
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    channel, transport = connect(site)
    directlyProvides(transport, ISSLTransport)
    channel.dataReceived(request)
    assert head_of(transport)[b"strict-transport-security"] == b"max-age=31536000"
    assert b"strict-transport-security" not in head_of(exchange(site, request))
    proxied = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\n\r\n"
    assert b"strict-transport-security" in head_of(exchange(site, proxied))
    assert b"strict-transport-security" not in head_of(
        exchange(site, proxied, peer="203.0.113.5"))


@pytest_twisted.ensureDeferred
async def test_websocket_upgrades_still_reach_the_signalling_over_tcp() -> None:
    """Over real TCP on 127.0.0.1 an upgrade request to /ws is Autobahn's (its handshake
    answer, here a refusal for an unknown seat), not the 426 of a plain GET."""
    from twisted.internet import reactor as global_reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    class Raw(Protocol):
        def __init__(self) -> None:
            self.received = b""
            self.done: Deferred[bytes] = Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.received += data
            if b"\r\n\r\n" in self.received and not self.done.called:
                self.done.callback(self.received)

    reactor: Any = global_reactor
    site = MeetplatformSite(tree(reactor), clock=reactor, max_query_bytes=4096,
                            max_body_bytes=4096)
    port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        raw = await connectProtocol(endpoint, Raw())
        assert raw.transport is not None
        raw.transport.write(
            b"GET /ws?sessionToken=unknown HTTP/1.1\r\nHost: meet.test\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: http://meet.test\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        answer = await raw.done
        raw.transport.loseConnection()
    finally:
        await port.stopListening()
    status = answer.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 403 unknown session token", answer


def test_an_answers_head_is_twisted_webs_bytes_in_one_write() -> None:
    """The status line and headers (repeated ones, odd values sanitised by Headers) are
    byte for byte what twisted.web writes, in a single write to the transport."""
    headers = http.Headers()
    headers.setRawHeaders(b"Content-Type", [b"text/html; charset=utf-8"])
    headers.addRawHeader(b"Set-Cookie", b"a=1; HttpOnly")
    headers.addRawHeader(b"Set-Cookie", b"b=2")
    headers.setRawHeaders("X-Name", ["line\r\nbreak"])
    headers.setRawHeaders(b"Location", [b"/client/join?sessionToken=abc"])

    class Counting(StringTransport):
        writes = 0

        def write(self, data: bytes) -> None:
            self.writes += 1
            super().write(data)

        def writeSequence(self, data: Any) -> None:
            self.writes += 1
            super().writeSequence(data)

    ours, theirs = Counting(), StringTransport()
    channel = make_site().buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    assert channel is not None
    channel.makeConnection(ours)
    channel.writeHeaders(b"HTTP/1.1", b"303", b"See Other", headers)  # type: ignore[attr-defined]
    plain = http.HTTPChannel()
    plain.makeConnection(theirs)
    plain.setTimeout(None)  # no idle timer left on the global reactor
    plain.writeHeaders(b"HTTP/1.1", b"303", b"See Other", headers)
    assert ours.value() == theirs.value()
    assert ours.value().startswith(b"HTTP/1.1 303 See Other\r\n")
    assert ours.value().count(b"Set-Cookie: ") == 2 and ours.writes == 1
