"""The real ``twistd -n meetplatform``: log level and JSON format, and /metrics."""

from __future__ import annotations

import hashlib
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from twisted.logger import LogLevel, eventFromJSON

from tests.integration.conftest import ServiceProcess

pytestmark = pytest.mark.integration

LOOPBACK = "tcp:0:interface=127.0.0.1"
Start = Callable[..., ServiceProcess]
TOKEN = "integration-metrics-token-0123456789"


def request(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def debug_on_request(service: ServiceProcess) -> None:
    """A request the REST API logs at debug level (a method override), answered 401."""
    status, _, _ = request(service.url + "/api/v2/rooms/room1", method="POST", data=b"",
                           headers={"X-HTTP-Method-Override": "DELETE"})
    assert status == 401


def test_the_default_level_writes_no_debug_event(run_service: Start) -> None:
    """By default (info) the debug events of joins, sockets and overrides are not written."""
    service = run_service("--listen", LOOPBACK).started()
    debug_on_request(service)
    assert service.stop() == -signal.SIGTERM
    assert any("#info]" in line for line in service.output)
    assert not any("#debug]" in line for line in service.output), service.output


def test_log_level_debug_for_one_namespace(run_service: Start) -> None:
    """`--log-level meetplatform.restapi=debug` writes that namespace's debug events only."""
    service = run_service("--listen", LOOPBACK,
                          "--log-level", "meetplatform.restapi=debug").started()
    debug_on_request(service)
    line = service.wait_for("method override DELETE")
    assert line.startswith("method override DELETE on ")
    assert service.stop() == -signal.SIGTERM
    debug = [line for line in service.output if "#debug]" in line]
    assert debug and all("[meetplatform.restapi." in line for line in debug)


def test_json_format_writes_one_event_per_line(run_service: Start) -> None:
    """MEETPLATFORM_LOG_FORMAT=json with --log-level debug: every line is an event that
    twisted.logger.eventFromJSON reads, debug ones included."""
    service = run_service("--listen", LOOPBACK, "--log-level", "debug",
                          env={"MEETPLATFORM_LOG_FORMAT": "json"})
    started = eventFromJSON(service.wait_for('"BBB API URL: {url}"'))
    service.url = started["url"].removesuffix("/bigbluebutton/api/")
    debug_on_request(service)
    service.wait_for("method override")
    assert service.stop() == -signal.SIGTERM
    events = [eventFromJSON(line) for line in service.output]
    assert all(line.startswith("{") for line in service.output)
    override = [e for e in events if e.get("log_format", "").startswith("method override")]
    assert override and override[0]["log_level"] is LogLevel.debug
    assert override[0]["log_namespace"] == "meetplatform.restapi.api"
    assert override[0]["log_text"].startswith("method override DELETE on ")
    assert any(e.get("log_text", "").startswith("listening on http://127.0.0.1:")
               for e in events)


def scrape(url: str, token: str | None = None) -> dict[str, list[Sample]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = request(url, headers=headers)
    assert status == 200, body
    return {family.name: family.samples
            for family in text_string_to_metric_families(body.decode())}


def sample(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    family = name.removesuffix("_total")
    values = [s.value for s in families[family]
              if s.name == name and all(s.labels.get(k) == v
                                        for k, v in labels.items())]
    assert len(values) == 1, (name, labels, families[family])
    return float(values[0])


def test_metrics_on_a_separate_listener(run_service: Start, tmp_path: Path) -> None:
    """--metrics-listen serves /metrics apart; the public listener has none."""
    service = run_service("--listen", LOOPBACK, "--metrics-listen", LOOPBACK).started()
    metrics_url = service.wait_for("metrics: http://").split("metrics: ", 1)[1]
    assert metrics_url.startswith("http://127.0.0.1:") and metrics_url.endswith("/metrics")
    assert request(service.url + "/metrics")[0] == 404

    secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
    query = "meetingID=m1&name=One"
    checksum = hashlib.sha256(("create" + query + secret).encode()).hexdigest()
    status, _, body = request(
        f"{service.url}/bigbluebutton/api/create?{query}&checksum={checksum}")
    assert status == 200 and b"SUCCESS" in body
    debug_on_request(service)

    families = scrape(metrics_url)
    assert sample(families, "meetplatform_meetings", state="waiting") == 1
    assert sample(families, "meetplatform_http_requests_total", surface="bigbluebutton",
                  call="create", code="200") == 1
    assert sample(families, "meetplatform_http_requests_total", surface="api",
                  call="DELETE /rooms/{roomId}", code="401") == 1
    assert sample(families, "meetplatform_webhook_outbox_rows") == 0
    assert "meetplatform_reactor_lag_seconds" in families
    assert request(metrics_url.removesuffix("metrics") + "healthz")[0] == 404
    health = json.loads(request(service.url + "/healthz")[2])
    assert health["meetings"] == 1
    assert service.stop() == -signal.SIGTERM
    assert not any("GET /metrics" in line for line in service.output)  # no access log


def test_metrics_behind_a_bearer_token(run_service: Start, tmp_path: Path) -> None:
    """--metrics-token-file opens /metrics on the public listener to that token only."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    service = run_service("--listen", LOOPBACK, "--metrics-token-file",
                          str(token_file)).started()
    url = service.url + "/metrics"
    status, headers, _ = request(url)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert request(url, headers={"Authorization": "Bearer " + "x" * len(TOKEN)})[0] == 401
    families = scrape(url, TOKEN)
    assert sample(families, "meetplatform_meetings", state="running") == 0
    assert service.stop() == -signal.SIGTERM
