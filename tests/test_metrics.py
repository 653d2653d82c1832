"""``/metrics``: off by default, behind a bearer token, values after some activity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from meetplatform.metrics import RestRoutes, RouteTemplate
from meetplatform.site import MeetplatformSite
from meetplatform.stats import JobStats
from meetplatform.store import Store
from meetplatform.tap import MeetplatformService, makeService
from tests.support import result
from tests.test_tap import BindingReactor, exchange, options, start

TOKEN = "s3cret-metrics-token-0123456789"
LOOPBACK = "tcp:0:interface=127.0.0.1"


@pytest.fixture(autouse=True)
def inline_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store queries run inline (a memory reactor has no thread to hand results back)."""
    monkeypatch.setattr(Store, "open", classmethod(
        lambda cls, reactor, data_dir: cls.open_inline(data_dir)))


def service_with(tmp_path: Path, *argv: str) -> tuple[MeetplatformService, BindingReactor]:
    reactor = BindingReactor()
    service = makeService(options(tmp_path, "--listen", LOOPBACK, *argv), reactor)
    start(service)
    return service, reactor


def with_token(tmp_path: Path) -> tuple[MeetplatformService, BindingReactor]:
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    return service_with(tmp_path, "--metrics-token-file", str(token_file))


def get(site: MeetplatformSite, target: str, *headers: str) -> tuple[int, bytes, bytes]:
    """Status, head and body of one request through the site's real HTTP channel."""
    lines = "".join(f"{header}\r\n" for header in headers)
    transport: StringTransport = exchange(
        site, f"GET {target} HTTP/1.1\r\nHost: meet.test\r\n{lines}\r\n".encode())
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def scrape(service: MeetplatformService) -> dict[str, list[Sample]]:
    status, head, body = get(service.site, "/metrics", f"Authorization: Bearer {TOKEN}")
    assert status == 200, body
    assert b"text/plain; version=0.0.4" in head
    return {family.name: family.samples
            for family in text_string_to_metric_families(body.decode())}


def value(samples: dict[str, list[Sample]], family: str, name: str | None = None,
          **labels: str) -> float:
    found = [s.value for s in samples[family]
             if s.name == (name or family) and all(s.labels.get(k) == v
                                                   for k, v in labels.items())]
    assert len(found) == 1, (family, labels, samples[family])
    return found[0]


def signed(service: MeetplatformService, call: str, query: str) -> str:
    assert service.settings is not None
    checksum = hashlib.sha256((call + query + service.settings.secret).encode()).hexdigest()
    return f"/bigbluebutton/api/{call}?{query}&checksum={checksum}"


def test_without_a_listener_or_token_there_is_no_metrics_page(tmp_path: Path) -> None:
    """The default public listener answers 404 at /metrics, and nothing is counted."""
    service, _ = service_with(tmp_path)
    status, _, _ = get(service.site, "/metrics")
    assert status == 404
    assert service.metrics is None and service.site.request_hook is None


@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-token-wrong-token-00", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
])
def test_the_token_mode_refuses_a_missing_or_wrong_token(
        tmp_path: Path, authorization: str | None) -> None:
    """Without the exact bearer token the public /metrics answers 401 and shows nothing."""
    service, _ = with_token(tmp_path)
    headers = [f"Authorization: {authorization}"] if authorization else []
    status, head, body = get(service.site, "/metrics", *headers)
    assert status == 401
    assert b'WWW-Authenticate: Bearer realm="metrics"' in head
    assert b"meetplatform_" not in body


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("abc")
    with pytest.raises(SystemExit, match="at least 16"):
        makeService(options(tmp_path, "--metrics-token-file", "short"), BindingReactor())


def test_scrape_shows_meetings_requests_and_refusals(tmp_path: Path) -> None:
    """After some activity the library's own parser reads the values that happened."""
    service, _ = with_token(tmp_path)
    site = service.site
    assert get(site, signed(service, "create", "meetingID=m1&name=One"))[0] == 200
    assert get(site, "/api/v2/spaces")[0] == 401
    assert get(site, "/api/v2/nosuch/room_abcdef")[0] == 404
    assert get(site, "/api/v2/rooms/room_abcdef")[0] == 401
    assert get(site, "/bigbluebutton/api/nosuchcall_12345")[0] == 200
    assert get(site, "/j/mput_secret-invitation-token")[0] in (400, 404, 410)
    assert get(site, "/nosuch/thing")[0] == 404
    assert service.parts is not None
    anonymous = service.parts.rest_api.rate_limiters["anonymous"]
    while anonymous.take("ip:192.0.2.1") is None:
        pass
    anonymous.take("ip:192.0.2.1")

    samples = scrape(service)
    assert value(samples, "meetplatform_meetings", state="waiting") == 1
    assert value(samples, "meetplatform_meetings", state="running") == 0
    assert value(samples, "meetplatform_participants", role="moderator") == 0
    requests = "meetplatform_http_requests"
    total = requests + "_total"
    assert value(samples, requests, total, surface="bigbluebutton", call="create",
                 code="200") == 1
    assert value(samples, requests, total, surface="api", call="GET /spaces",
                 code="401") == 1
    assert value(samples, requests, total, surface="api", call="unmatched",
                 code="404") == 1
    assert value(samples, requests, total, surface="api", call="GET /rooms/{roomId}",
                 code="401") == 1
    assert value(samples, requests, total, surface="bigbluebutton", call="unknown") == 1
    assert value(samples, requests, total, surface="other", call="", code="404") == 1
    labels = {v for s in samples[requests] for v in s.labels.values()}
    assert not any("secret" in label or "12345" in label or "room_" in label
                   for label in labels)
    duration = "meetplatform_http_request_duration_seconds"
    assert value(samples, duration, duration + "_count", surface="bigbluebutton",
                 call="create") == 1
    assert value(samples, "meetplatform_rate_limit_refusals",
                 "meetplatform_rate_limit_refusals_total", limiter="rest_anonymous") == 2
    assert value(samples, "meetplatform_store_queue_depth") == 0
    # The inline store of these tests has no clock: durations are tested on JobStats.
    assert "meetplatform_store_job_duration_seconds" in samples
    assert value(samples, "meetplatform_webhook_outbox_rows") == 0
    assert value(samples, "meetplatform_websocket_open_connections") == 0


def test_reactor_lag_is_how_late_the_timer_fired(tmp_path: Path) -> None:
    """A timer due in 1 s that runs at 1.3 s counts 0.3 s of lag."""
    service, reactor = with_token(tmp_path)
    reactor.advance(1.3)
    samples = scrape(service)
    lag = "meetplatform_reactor_lag_seconds"
    assert value(samples, lag, lag + "_count") == 1
    assert value(samples, lag, lag + "_sum") == pytest.approx(0.3)
    assert value(samples, lag, lag + "_bucket", le="0.25") == 0
    assert value(samples, lag, lag + "_bucket", le="0.5") == 1


def test_each_service_has_its_own_registry(tmp_path: Path) -> None:
    """Two services in one process count apart (no global default registry)."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, _ = with_token(tmp_path / "one")
    second, _ = with_token(tmp_path / "two")
    get(first.site, signed(first, "create", "meetingID=m1&name=One"))
    assert first.metrics is not None and second.metrics is not None
    assert first.metrics.registry is not second.metrics.registry
    assert value(scrape(first), "meetplatform_meetings", state="waiting") == 1
    assert value(scrape(second), "meetplatform_meetings", state="waiting") == 0


def test_store_jobs_count_while_pending_and_time_until_done() -> None:
    """The queue depth counts a job until its result arrives; its latency is observed then."""
    clock = Clock()
    stats = JobStats(clock)
    first: Deferred[int] = Deferred()
    assert stats.track(first) is first
    stats.track(Deferred())
    assert stats.pending == 2
    clock.advance(0.02)
    first.callback(7)
    assert stats.pending == 1 and stats.durations.count == 1
    assert stats.durations.sum == pytest.approx(0.02)
    assert result(first) == 7  # the result is handed on untouched


def test_rest_routes_are_labelled_by_template() -> None:
    routes = RestRoutes([RouteTemplate("GET", "/rooms/{roomId}"),
                         RouteTemplate("GET", "/rooms/mine"),
                         RouteTemplate("POST", "/rooms"),
                         RouteTemplate("GET", "/")])
    assert routes.label(b"GET", b"/rooms/r1") == "GET /rooms/{roomId}"
    assert routes.label(b"HEAD", b"/rooms/mine") == "GET /rooms/mine"
    assert routes.label(b"POST", b"/rooms/") == "POST /rooms"
    assert routes.label(b"GET", b"/") == "GET /"
    assert routes.label(b"DELETE", b"/rooms/r1") == "unmatched"
    assert routes.label(b"GET", b"/rooms/r1/x/y") == "unmatched"
