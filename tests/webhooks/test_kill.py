"""The real service (``twistd -n meetplatform``) killed with SIGKILL while webhook events wait,
then restarted: every event arrives, none twice with different ids.

The receiver is a small HTTP server in a thread of the test on 127.0.0.1 (the service is
another process; the test waits on conditions with a deadline, never on sleeps). It first
answers 503 so that events pile up in the outbox; the test reads the outbox (the SQLite
file, read-only) until they are there, kills the service, lets the receiver answer 200 and
starts the service again.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.integration.conftest import DEADLINE_SECONDS, ServiceProcess, service_environment

pytestmark = pytest.mark.integration

LOOPBACK = "tcp:0:interface=127.0.0.1"


class Catcher:
    """Thread-safe record of the callbacks the receiver got."""

    def __init__(self) -> None:
        self.status = 503
        self.requests: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()

    def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {DEADLINE_SECONDS}s: "
                                         f"{len(self.requests)} request(s)")
                self.changed.wait(left)


@pytest.fixture
def catcher() -> Iterator[tuple[Catcher, int]]:
    caught = Catcher()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with caught.changed:
                caught.requests.append((self.path, body))
                status = caught.status
                caught.changed.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield caught, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def call(service: ServiceProcess, secret: str, name: str, query: str) -> bytes:
    checksum = hashlib.sha256((name + query + secret).encode()).hexdigest()
    url = f"{service.url}/bigbluebutton/api/{name}?{query}&checksum={checksum}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()  # type: ignore[no-any-return]


def outbox_events(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [row[0] for row in conn.execute("SELECT event_type FROM webhook_outbox")]
    finally:
        conn.close()


def events_of(requests: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    out = []
    for _, body in requests:
        form = dict(parse_qsl(body.decode()))
        out.extend(json.loads(form["event"]))
    return out


def test_sigkill_with_events_pending_then_restart(
        tmp_path: Path, catcher: tuple[Catcher, int]) -> None:
    """SIGKILL while events wait (the receiver was failing): after a restart every event
    arrives, the meeting that was running gets its meeting-ended, and no event comes
    with two different ids."""
    caught, port = catcher
    processes: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        service = ServiceProcess(["--listen", LOOPBACK], tmp_path, service_environment())
        processes.append(service)
        return service.started()

    try:
        service = start()
        secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
        answer = call(service, secret, "hooks/create",
                      f"callbackURL=http%3A%2F%2F127.0.0.1%3A{port}%2Fhook")
        assert b"<returncode>SUCCESS</returncode>" in answer
        call(service, secret, "create", "meetingID=ended-one&name=Ended")
        call(service, secret, "end", "meetingID=ended-one")
        call(service, secret, "create", "meetingID=running-one&name=Running")
        db = tmp_path / "meetplatform-data" / "meetplatform.sqlite"
        # An attempt for the last event created means the outbox holds everything before
        # it too (batches are written in order); the meeting-ended of "ended-one" waits
        # behind its meeting-created, which keeps failing.
        caught.wait_until(lambda: any(
            e["data"]["attributes"]["meeting"]["external-meeting-id"] == "running-one"
            for e in events_of(caught.requests)), "an attempt for the last event")
        assert sorted(outbox_events(db)) == ["meeting-created", "meeting-created",
                                             "meeting-ended"]
        before_kill = events_of(caught.requests)
        service.process.send_signal(signal.SIGKILL)
        assert service.process.wait(timeout=DEADLINE_SECONDS) == -signal.SIGKILL

        with caught.changed:
            caught.status = 200
        again = start()
        caught.wait_until(
            lambda: {(e["data"]["id"], e["data"]["attributes"]["meeting"]["external-meeting-id"])
                     for e in events_of(caught.requests)} >= {
                ("meeting-created", "ended-one"), ("meeting-ended", "ended-one"),
                ("meeting-created", "running-one"), ("meeting-ended", "running-one")},
            "every event after the restart")
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for event in events_of(caught.requests):
            data = event["data"]
            ids[(data["id"], data["attributes"]["meeting"]["external-meeting-id"])].add(
                data["event"]["id"])
        assert all(len(found) == 1 for found in ids.values()), ids
        for event in before_kill:
            key = (event["data"]["id"],
                   event["data"]["attributes"]["meeting"]["external-meeting-id"])
            assert ids[key] == {event["data"]["event"]["id"]}
        ended = [e for e in events_of(caught.requests)
                 if e["data"]["id"] == "meeting-ended"
                 and e["data"]["attributes"]["meeting"]["external-meeting-id"] == "running-one"]
        assert ended[0]["data"]["attributes"]["meeting"]["end-reason"] == (
            "ENDED_DUE_TO_SERVICE_INTERRUPTION")
        history = call(again, secret, "getMeetingEvents", "users=0")
        assert history.count(b"<event>") == 2 and b"<endedAt>0</endedAt>" not in history
        assert again.stop() == -signal.SIGTERM
        assert not any("Traceback" in line for line in again.output)
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait(timeout=DEADLINE_SECONDS)
