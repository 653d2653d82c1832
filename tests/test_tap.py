"""The twistd plugin's service: binding, startup log, resource tree, input limits, shutdown."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.application.service import IServiceMaker
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, RaisingMemoryReactor, StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.web.resource import Resource
from zope.interface import provider

from meetplatform import __version__
from meetplatform import events as ev
from meetplatform.build import build_site
from meetplatform.config import ConfigOptions, load_config
from meetplatform.model import MeetingSpec
from meetplatform.registry import Registry
from meetplatform.site import SMALL_BODY_BYTES, MeetplatformSite
from meetplatform.store import Store
from meetplatform.tap import MeetplatformService, Options, makeService, secret_command
from tests.support import make_clock, make_settings


class BindingReactor(MemoryReactorClock):
    """A memory reactor that, like the kernel, picks a free port for port 0."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        if port == 0:
            port = 40000 + len(self.tcpServers)
        return super().listenTCP(port, factory, backlog, interface)


@pytest.fixture(autouse=True)
def inline_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's store runs its queries inline: a memory reactor has no thread to hand
    results back (history and webhooks write as soon as a meeting is created)."""
    monkeypatch.setattr(Store, "open", classmethod(
        lambda cls, reactor, data_dir: cls.open_inline(data_dir)))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log message emitted during the test, formatted."""
    lines: list[str] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def options(tmp_path: Path, *argv: str, environ: dict[str, str] | None = None) -> Options:
    parsed = Options(environ=environ or {}, cwd=tmp_path)
    parsed.parseOptions(list(argv))
    return parsed


def start(service: MeetplatformService) -> None:
    """Start as twistd does: privileged part first, then the rest."""
    service.privilegedStartService()
    service.startService()


# --- the plugin and the options -------------------------------------------------------------


def test_twistd_finds_the_plugin() -> None:
    """`twistd meetplatform` is a registered service maker using meetplatform.tap's Options."""
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    maker = makers["meetplatform"]
    assert maker.options is Options
    assert issubclass(Options, ConfigOptions)


def test_no_options_means_the_embedded_defaults(tmp_path: Path, log_lines: list[str]) -> None:
    """`twistd -n meetplatform` alone listens on tcp:8080 and generates the secret into the data dir."""
    reactor = BindingReactor()
    service = makeService(options(tmp_path), reactor)
    start(service)
    assert [entry[0] for entry in reactor.tcpServers] == [8080]
    assert reactor.tcpServers[0][1] is service.site
    assert service.settings is not None and service.registry is not None
    assert service.settings.public_url == "http://127.0.0.1:8080"
    secret_file = tmp_path / "meetplatform-data" / "secret"
    assert service.settings.secret == secret_file.read_text().strip()
    assert service.settings.data_dir == tmp_path / "meetplatform-data"
    assert "listening on http://0.0.0.0:8080" in log_lines
    assert "BBB API URL: http://127.0.0.1:8080/bigbluebutton/api/" in log_lines
    assert (
        f"Shared secret: stored in {secret_file} (show it with `meetplatform secret`)"
        in log_lines
    )
    assert (
        f"Generated a new shared secret (shown only this once): {service.settings.secret}"
        in log_lines
    )


def test_a_started_service_keeps_its_start_up_heap_out_of_garbage_collections(
        tmp_path: Path) -> None:
    """Once started, what start-up built is frozen (full collections, which stall every
    socket, walk only what came later) and young collections run less often."""
    import gc

    from meetplatform.tap import GC_THRESHOLDS

    gc.unfreeze()
    start(makeService(options(tmp_path), BindingReactor()))
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold() == GC_THRESHOLDS


def test_secret_is_shown_only_when_generated(tmp_path: Path, log_lines: list[str]) -> None:
    """A restart with an existing secret says where it is but does not print it."""
    makeService(options(tmp_path), BindingReactor())
    start(makeService(options(tmp_path), BindingReactor()))
    assert not any("Generated a new shared secret" in line for line in log_lines)
    assert any(line.startswith("Shared secret: stored in") for line in log_lines)


def test_port_zero_public_url_uses_the_bound_port(tmp_path: Path, log_lines: list[str]) -> None:
    """With tcp:0 the public URL, API URL and log carry the port the listener really got."""
    reactor = BindingReactor()
    service = makeService(
        options(tmp_path, "--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0"),
        reactor,
    )
    start(service)
    assert service.settings is not None
    assert service.settings.public_url == "http://127.0.0.1:40000"
    assert "listening on http://0.0.0.0:40000" in log_lines
    assert "listening on http://0.0.0.0:40001" in log_lines
    assert "BBB API URL: http://127.0.0.1:40000/bigbluebutton/api/" in log_lines


def test_explicit_public_url_wins(tmp_path: Path) -> None:
    """--public-url is used as given, whatever the listeners."""
    service = makeService(
        options(tmp_path, "--listen", "tcp:0", "--public-url", "https://meet.example.org/"),
        BindingReactor(),
    )
    start(service)
    assert service.settings is not None
    assert service.settings.api_url == "https://meet.example.org/bigbluebutton/api/"


def test_twist_runner_binds_in_start_service(tmp_path: Path) -> None:
    """`twist meetplatform` (which skips privilegedStartService) still binds and serves."""
    reactor = BindingReactor()
    service = makeService(options(tmp_path), reactor)
    service.startService()
    assert len(reactor.tcpServers) == 1
    assert service.registry is not None


def test_listeners_queue_a_crowd_of_connections(tmp_path: Path) -> None:
    """A thousand sockets opened in the same second are queued, not refused: the listen
    backlog is 1024 unless the endpoint description sets its own."""
    reactor = BindingReactor()
    service = makeService(
        options(tmp_path, "--listen", "tcp:0", "--listen", "tcp:0:backlog=64"), reactor)
    start(service)
    assert [server[2] for server in reactor.tcpServers] == [1024, 64]


def test_settings_carry_every_option(tmp_path: Path) -> None:
    """Options given to twistd reach the Settings every surface receives."""
    service = makeService(options(
        tmp_path, "--server-name", "Example", "--checksum-algorithms", "sha256",
        "--max-body-bytes", "4096", "--ice-server", "stun:stun.example.org",
        "--extra-origin", "https://www.example.org",
    ), BindingReactor())
    start(service)
    settings = service.settings
    assert settings is not None
    assert settings.server_name == "Example"
    assert settings.checksum_algorithms == ("sha256",)
    assert settings.max_body_bytes == 4096
    assert settings.ice_servers[0].urls == ("stun:stun.example.org",)
    assert settings.extra_origins == ("https://www.example.org",)


def test_listen_failure_stops_with_a_clear_message(tmp_path: Path, log_lines: list[str]) -> None:
    """A port in use ends twistd with status 1 and one line saying which listener failed."""
    reactor = RaisingMemoryReactor(
        listenException=CannotListenError("", 8080, OSError(98, "Address already in use"))
    )
    service = makeService(options(tmp_path), reactor)
    with pytest.raises(SystemExit) as caught:
        service.privilegedStartService()
    assert caught.value.code == 1
    assert any(
        line.startswith("cannot listen on tcp:8080: Couldn't listen on any:8080")
        for line in log_lines
    )


def test_unreadable_secret_stops_with_a_clear_message(tmp_path: Path) -> None:
    """An empty --secret-file ends twistd with a message naming the file, not a traceback."""
    (tmp_path / "secret").write_text("")
    with pytest.raises(SystemExit) as caught:
        makeService(options(tmp_path, "--secret-file", "secret"), BindingReactor())
    assert caught.value.code == f"meetplatform: secret file {tmp_path / 'secret'} is empty; " \
        "put the shared secret in it"


def test_stop_ends_every_meeting_and_closes_listeners(tmp_path: Path) -> None:
    """Stopping the service ends live meetings (service interruption) and stops listening."""
    reactor = BindingReactor()
    service = makeService(options(tmp_path), reactor)
    start(service)
    registry = service.registry
    assert registry is not None
    ended: list[ev.MeetingEnded] = []
    registry.subscribe(lambda e: ended.append(e) if isinstance(e, ev.MeetingEnded) else None)
    registry.create_meeting(MeetingSpec("m1", "One"))
    registry.create_meeting(MeetingSpec("m2", "Two"))
    port = service.ports[0]
    stopped = service.stopService()
    assert [e.reason for e in ended] == ["ENDED_DUE_TO_SERVICE_INTERRUPTION"] * 2
    assert list(registry.meetings()) == []
    assert service.ports == [] and port is not None
    results: list[object] = []
    stopped.addBoth(results.append)
    assert results == [None]


def test_secret_command_points_at_the_configuration(tmp_path: Path) -> None:
    """The startup hint names --config/--data-dir when the secret is not in the default place."""
    assert secret_command(load_config({}, {}, cwd=tmp_path)) == "meetplatform secret"
    (tmp_path / "m.toml").write_text('data_dir = "d"\n')
    from_file = load_config({"config": "m.toml"}, {}, cwd=tmp_path)
    assert secret_command(from_file) == f"meetplatform secret --config {tmp_path / 'm.toml'}"
    spaced = load_config({"data_dir": "my data"}, {}, cwd=tmp_path)
    assert secret_command(spaced) == f"meetplatform secret --data-dir '{tmp_path / 'my data'}'"


# --- the resource tree ----------------------------------------------------------------------


def stub(root: Resource) -> Any:
    return StubTreq(root)


def tree(clock: Clock) -> tuple[Resource, Registry]:
    settings = make_settings(public_url="http://meet.test")
    registry = Registry(clock, settings.public_url)
    store = Store.open_inline(Path(tempfile.mkdtemp(prefix="mp-tap-")))
    return build_site(clock, settings, registry, store), registry


@pytest_twisted.ensureDeferred
async def test_healthz_reports_status_meetings_and_uptime() -> None:
    """GET /healthz answers 200 JSON with status, version, live meeting count and uptime."""
    clock = make_clock()
    root, registry = tree(clock)
    registry.create_meeting(MeetingSpec("m1", "One"))
    clock.advance(42)
    http = stub(root)
    response = await http.get("http://meet.test/healthz")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]
    body = json.loads(await response.text())
    assert body.pop("recordings")["status"] == "ok"  # the recordings directory (issue 12)
    assert body == {
        "status": "ok", "version": __version__, "meetings": 1, "uptime": 42,
    }
    head = await http.head("http://meet.test/healthz")
    assert head.code == 200
    assert await head.content() == b""


@pytest_twisted.ensureDeferred
async def test_healthz_refuses_other_methods_and_paths() -> None:
    """POST /healthz is 405 with Allow, /healthz/x is 404, both as JSON."""
    root, _ = tree(Clock())
    http = stub(root)
    posted = await http.post("http://meet.test/healthz", data=b"")
    assert posted.code == 405
    assert posted.headers.getRawHeaders("allow") == ["GET, HEAD"]
    assert json.loads(await posted.text())["status"] == "error"
    deeper = await http.get("http://meet.test/healthz/deeper")
    assert deeper.code == 404


@pytest_twisted.ensureDeferred
async def test_root_says_where_the_api_is() -> None:
    """GET / names the server and its BigBlueButton API URL."""
    root, _ = tree(Clock())
    response = await stub(root).get("http://meet.test/")
    assert response.code == 200
    text = await response.text()
    assert "BigBlueButton API: http://meet.test/bigbluebutton/api/" in text


@pytest_twisted.ensureDeferred
async def test_bigbluebutton_api_is_mounted() -> None:
    """/bigbluebutton/api answers the BBB root call with SUCCESS."""
    root, _ = tree(Clock())
    response = await stub(root).get("http://meet.test/bigbluebutton/api")
    assert response.code == 200
    assert "<returncode>SUCCESS</returncode>" in await response.text()


@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_not_found() -> None:
    """A path no surface serves is a plain 404."""
    root, _ = tree(Clock())
    response = await stub(root).get("http://meet.test/nothing-here")
    assert response.code == 404


# --- the site: raw HTTP on a memory transport ---------------------------------------------


def make_site(tmp_path: Path | None = None, *, access_log: bool = False,
              max_body_bytes: int = 4096, max_query_bytes: int = 1024) -> MeetplatformSite:
    clock = Clock()
    root, _ = tree(clock)
    return MeetplatformSite(
        root, clock=clock, max_query_bytes=max_query_bytes, max_body_bytes=max_body_bytes,
        access_log=str(tmp_path / "access.log") if access_log and tmp_path else None,
    )


def exchange(site: MeetplatformSite, *chunks: bytes) -> StringTransport:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    channel.makeConnection(transport)
    for chunk in chunks:
        channel.dataReceived(chunk)
    return transport


def test_oversized_body_is_refused_unread() -> None:
    """A Content-Length above max_body_bytes gets 413 and the connection closed at once."""
    transport = exchange(
        make_site(),
        b"POST /bigbluebutton/api/create HTTP/1.1\r\nHost: meet.test\r\n"
        b"Expect: 100-continue\r\nContent-Length: 4097\r\n\r\n",
    )
    response = transport.value()
    assert response.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"100 Continue" not in response
    assert b"request body larger than 4096 bytes" in response
    assert transport.disconnecting


def test_oversized_chunked_body_is_refused() -> None:
    """A chunked body growing past max_body_bytes is cut off with 413."""
    transport = exchange(
        make_site(),
        b"POST /healthz HTTP/1.1\r\nHost: meet.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1000\r\n" + b"x" * 4096 + b"\r\n",
        b"1\r\ny\r\n0\r\n\r\n",
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.value().count(b"HTTP/1.1") == 1
    assert transport.disconnecting


def test_body_within_limit_is_served() -> None:
    """A body of exactly max_body_bytes reaches a surface that reads bodies; a body within
    the small limit of a route that reads none (``/healthz``) reaches it too."""
    transport = exchange(
        make_site(),
        b"POST /bigbluebutton/api/create HTTP/1.1\r\nHost: meet.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\n"
        + b"x" * 4096,
    )
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert b"<returncode>FAILED</returncode>" in transport.value()
    transport = exchange(
        make_site(),
        b"POST /healthz HTTP/1.1\r\nHost: meet.test\r\nContent-Length: %d\r\n\r\n"
        % SMALL_BODY_BYTES + b"x" * SMALL_BODY_BYTES,
    )
    assert transport.value().startswith(b"HTTP/1.1 405 ")


def test_long_query_reaches_the_surface() -> None:
    """A query string up to max_query_bytes is accepted even past Twisted's 16 KiB line limit."""
    site = make_site(max_query_bytes=64 * 1024)
    query = b"x=" + b"a" * (60 * 1024)
    transport = exchange(site, b"GET /healthz?" + query + b" HTTP/1.1\r\nHost: meet.test\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    too_long = b"x=" + b"a" * (80 * 1024)
    refused = exchange(site, b"GET /healthz?" + too_long + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert refused.value().startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert refused.disconnecting


def test_overlong_header_is_refused() -> None:
    """A single header line longer than the limit gets 431 and the connection closed."""
    site = make_site(max_query_bytes=1024)
    transport = exchange(
        site, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * (20 * 1024) + b"\r\n\r\n"
    )
    assert transport.value().startswith(b"HTTP/1.1 431 ")
    assert transport.disconnecting


def test_no_access_log_by_default() -> None:
    """Without --access-log the site formats no access-log lines."""
    site = make_site()
    site.doStart()
    try:
        assert site._logFile is None
        transport = exchange(site, b"GET /healthz HTTP/1.1\r\nHost: meet.test\r\n\r\n")
        assert transport.value().startswith(b"HTTP/1.1 200 ")
    finally:
        site.doStop()


def test_access_log_writes_one_line_per_request(tmp_path: Path) -> None:
    """With --access-log each request adds one combined-format line to the file."""
    site = make_site(tmp_path, access_log=True)
    site.doStart()
    try:
        exchange(site, b"GET /healthz HTTP/1.1\r\nHost: meet.test\r\nUser-Agent: probe\r\n\r\n")
    finally:
        site.doStop()
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 1
    assert '"GET /healthz HTTP/1.1" 200' in lines[0] and '"probe"' in lines[0]


def test_placeholder_answers_until_bound(tmp_path: Path) -> None:
    """Before the first listener is bound the site answers 503 (Retry-After), not a 404."""
    service = makeService(options(tmp_path), BindingReactor())
    transport = exchange(service.site, b"GET /healthz HTTP/1.1\r\nHost: meet.test\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 503 ")
    assert b"Retry-After: 1" in transport.value()
