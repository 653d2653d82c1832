"""The real service on a loopback port: startup, health, the API, the secret, shutdown."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import ServiceProcess, service_environment

pytestmark = pytest.mark.integration

LOOPBACK = "tcp:0:interface=127.0.0.1"
Start = Callable[..., ServiceProcess]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def signed(service: ServiceProcess, call: str, query: str, secret: str) -> str:
    checksum = hashlib.sha256((call + query + secret).encode()).hexdigest()
    joiner = "&" if query else ""
    return f"{service.url}/bigbluebutton/api/{call}?{query}{joiner}checksum={checksum}"


def test_fresh_start_serves_health_and_api(run_service: Start, tmp_path: Path) -> None:
    """A first start logs its listener, API URL and secret location, and serves /healthz and the API."""
    service = run_service("--listen", LOOPBACK).started()
    messages = service.messages()
    port = service.url.rsplit(":", 1)[1]
    assert service.url == f"http://127.0.0.1:{port}"
    assert f"listening on http://127.0.0.1:{port}" in messages
    assert f"BBB API URL: http://127.0.0.1:{port}/bigbluebutton/api/" in messages
    secret_file = tmp_path / "meetplatform-data" / "secret"
    assert (
        f"Shared secret: stored in {secret_file} (show it with `meetplatform secret`)"
        in messages
    )
    shown = service.wait_for("Generated a new shared secret (shown only this once): ")
    secret = secret_file.read_text().strip()
    assert shown.endswith(": " + secret)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700

    status, headers, body = get(service.url + "/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok" and health["meetings"] == 0

    status, _, body = get(service.url + "/bigbluebutton/api")
    assert status == 200 and b"<returncode>SUCCESS</returncode>" in body
    assert not any("Traceback" in line for line in service.output)


def test_signed_calls_use_the_generated_secret(run_service: Start, tmp_path: Path) -> None:
    """Calls signed with the generated secret succeed; a wrong checksum is refused."""
    service = run_service("--listen", LOOPBACK).started()
    secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
    status, _, body = get(signed(service, "create", "meetingID=m1&name=One", secret))
    assert status == 200 and b"<returncode>SUCCESS</returncode>" in body
    _, _, health = get(service.url + "/healthz")
    assert json.loads(health)["meetings"] == 1
    _, _, body = get(signed(service, "getMeetings", "", "not-the-secret"))
    assert b"<returncode>FAILED</returncode>" in body and b"checksumError" in body


def test_sigterm_ends_meetings_and_exits_cleanly(run_service: Start, tmp_path: Path) -> None:
    """SIGTERM ends live meetings and shuts down cleanly; a restart keeps the secret."""
    service = run_service("--listen", LOOPBACK).started()
    secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
    get(signed(service, "create", "meetingID=m1&name=One", secret))
    # twistd re-raises the signal after a clean shutdown (systemd counts that as success).
    assert service.stop() == -signal.SIGTERM
    assert "stopping: ending 1 live meeting(s)" in service.messages()
    assert "Server Shut Down." in service.messages()
    assert not any("Traceback" in line for line in service.output)

    again = run_service("--listen", LOOPBACK).started()
    assert (tmp_path / "meetplatform-data" / "secret").read_text().strip() == secret
    assert again.stop() == -signal.SIGTERM
    assert not any("Generated a new shared secret" in line for line in again.output)


def test_meetplatform_secret_prints_what_the_service_uses(
    run_service: Start, tmp_path: Path
) -> None:
    """`meetplatform secret` run where the service runs prints the secret it signs with."""
    run_service("--listen", LOOPBACK).started()
    secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
    result = subprocess.run(
        [sys.executable, "-m", "meetplatform.cli", "secret"], cwd=tmp_path,
        env=service_environment(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"Secret: {secret}\n" in result.stdout
    assert "API URL: http://127.0.0.1:8080/bigbluebutton/api/" in result.stdout


def test_oversized_body_gets_413(run_service: Start) -> None:
    """A request declaring a body over --max-body-bytes is answered 413 without being read."""
    service = run_service("--listen", LOOPBACK, "--max-body-bytes", "2048").started()
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /bigbluebutton/api/create HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        reply = b""
        while chunk := connection.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_port_in_use_fails_with_one_clear_line(run_service: Start) -> None:
    """When the port is taken the service exits with status 1 and says so, without a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = run_service("--listen", f"tcp:{port}:interface=127.0.0.1")
        line = service.wait_for("cannot listen on")
        assert service.finish() == 1
    assert line == (
        f"cannot listen on tcp:{port}:interface=127.0.0.1: Couldn't listen on "
        f"127.0.0.1:{port}: [Errno 98] Address already in use."
    )
    assert not any("Traceback" in line for line in service.output)


def test_bad_configuration_is_refused_before_starting(run_service: Start, tmp_path: Path) -> None:
    """An invalid option value or variable stops twistd with the problem named, status 1."""
    service = run_service("--listen", LOOPBACK, "--checksum-algorithms", "md5",
                          env={"MEETPLATFORM_MAX_BODY_BYTES": "huge"})
    assert service.finish() == 1
    text = "\n".join(service.output)
    assert "--checksum-algorithms: unknown checksum algorithm 'md5'" in text
    assert "MEETPLATFORM_MAX_BODY_BYTES: expected a whole number, got 'huge'" in text
    assert "Traceback" not in text
    assert not (tmp_path / "meetplatform-data").exists()
