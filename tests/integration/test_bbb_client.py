"""Third-party BBB client libraries against the real running service: bbbctl (PyPI) and
bigbluebutton-js (npm, axios underneath; installed from tests/integration/js's lock file by
scripts/test before the tests run offline)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import bbbctl
import pytest

from tests.integration.conftest import ServiceProcess

pytestmark = pytest.mark.integration

SECRET = "5b1f0c8e2d7a4f6b9c3e1a0d8f7b6c5e4d3c2b1a0f9e8d7c"
JS_DIR = Path(__file__).resolve().parent / "js"
Start = Callable[..., ServiceProcess]


def _start(run_service: Start, tmp_path: Path) -> ServiceProcess:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    os.chmod(secret_file, 0o600)
    return run_service("--listen", "tcp:0:interface=127.0.0.1", "--data-dir",
                       str(tmp_path / "data"), "--secret-file", str(secret_file)).started()


def _get_without_following(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("location") or ""
    finally:
        connection.close()


def test_bbbctl_creates_joins_inspects_and_ends(run_service: Start, tmp_path: Path) -> None:
    """bbbctl's client creates a meeting, joins it, reads its info and ends it."""
    service = _start(run_service, tmp_path)
    client = bbbctl.BBBApiClient(service.url, SECRET)

    created = client.createMeeting("lms-room-1", "Physics 101", attendeePW="ap",
                                   moderatorPW="mp", record="false",
                                   meta_origin="bbbctl-test")
    assert created.findtext("returncode") == "SUCCESS"
    assert created.findtext("meetingID") == "lms-room-1"
    internal_id = created.findtext("internalMeetingID")

    joined = client.call("join", meetingID="lms-room-1", fullName="Alice",
                         role="MODERATOR", redirect="false")
    assert joined.findtext("messageKey") == "successfullyJoined"
    assert joined.findtext("meeting_id") == internal_id
    assert joined.findtext("url") == (
        f"{service.url}/client/join?sessionToken={joined.findtext('session_token')}")

    status, location = _get_without_following(
        client.getJoinLink("lms-room-1", "Bob", password="ap"))
    assert status == 302
    assert location.startswith(f"{service.url}/client/join?sessionToken=")
    assert parse_qs(urlsplit(location).query)["sessionToken"][0]

    info = client.getMeetingInfo("lms-room-1")
    assert info.findtext("meetingName") == "Physics 101"
    assert info.findtext("internalMeetingID") == internal_id
    assert info.findtext("metadata/origin") == "bbbctl-test"
    assert info.findtext("running") == "false"  # nobody's browser has connected yet

    meetings = client.getMeetings()
    assert [m.findtext("meetingID") for m in meetings] == ["lms-room-1"]
    assert client.sendChatMessage("lms-room-1", "Hello from the LMS").findtext(
        "returncode") == "SUCCESS"

    ended = client.end("lms-room-1", password="mp")
    assert ended.findtext("messageKey") == "sentEndMeetingRequest"
    assert client.call("isMeetingRunning", meetingID="lms-room-1").findtext("running") == (
        "false")
    with pytest.raises(bbbctl.ApiError) as refused:
        client.getMeetingInfo("lms-room-1")
    assert refused.value.tree.findtext("messageKey") == "notFound"
    assert client.getRecordings() == []


def test_bbbctl_with_a_wrong_secret_is_refused(run_service: Start, tmp_path: Path) -> None:
    """A client configured with another secret gets BBB's checksumError."""
    service = _start(run_service, tmp_path)
    client = bbbctl.BBBApiClient(service.url, "not-the-secret")
    with pytest.raises(bbbctl.ApiError) as refused:
        client.getMeetings()
    assert refused.value.tree.findtext("messageKey") == "checksumError"


def test_keep_alive_survives_a_get_with_a_body(run_service: Start, tmp_path: Path) -> None:
    """A GET carrying a body is answered and the same connection serves the next call."""
    service = _start(run_service, tmp_path)
    client = bbbctl.BBBApiClient(service.url, SECRET)
    parts = urlsplit(client.makeurl("getMeetings"))
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        for body in (b"ignored=1&x=" + b"y" * 1000, None):
            connection.request("GET", f"{parts.path}?{parts.query}", body=body)
            response = connection.getresponse()
            assert response.status == 200
            assert b"<messageKey>noMeetings</messageKey>" in response.read()
            assert not response.will_close
    finally:
        connection.close()


def test_bigbluebutton_js_with_axios_creates_joins_inspects_and_ends(
        run_service: Start, tmp_path: Path) -> None:
    """bigbluebutton-js 0.2.0 drives create, join, isMeetingRunning, getMeetingInfo,
    getMeetings and end. Its axios client sends ``Accept: text/xml, application/json,
    text/plain, */*`` and parses the answer as XML: every call failed with ``xmlData.replace
    is not a function`` while the service answered JSON to any Accept naming JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the bigbluebutton-js client needs Node.js")
    assert (JS_DIR / "node_modules" / "bigbluebutton-js").is_dir(), (
        "bigbluebutton-js is not installed: scripts/test runs `npm ci` in tests/integration/js "
        "(or run it there by hand)")
    service = _start(run_service, tmp_path)
    done = subprocess.run(
        [node, str(JS_DIR / "bbb_js_client.js")], cwd=JS_DIR, capture_output=True, text=True,
        timeout=120, check=False,
        env={**os.environ, "BBB_URL": f"{service.url}/bigbluebutton",
             "BBB_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)

    created = out["create"]
    assert created["returncode"] == "SUCCESS" and created["meetingID"] == "js-room-1"
    internal_id = created["internalMeetingID"]

    joined = out["join"]
    assert joined["returncode"] == "SUCCESS" and joined["messageKey"] == "successfullyJoined"
    assert joined["meeting_id"] == internal_id
    assert joined["url"] == f"{service.url}/client/join?sessionToken={joined['session_token']}"
    assert out["joinRedirect"]["status"] == 302
    assert out["joinRedirect"]["location"].startswith(
        f"{service.url}/client/join?sessionToken=")

    assert out["isMeetingRunning"] == {"returncode": "SUCCESS", "running": False}
    info = out["getMeetingInfo"]
    assert info["returncode"] == "SUCCESS" and info["meetingName"] == "JS room"
    assert info["internalMeetingID"] == internal_id
    assert info["metadata"] == {"origin": "bigbluebutton-js"}
    assert info["attendeePW"] == "ap" and info["moderatorPW"] == "mp"
    meetings = out["getMeetings"]["meetings"]
    assert [m["meetingID"] for m in meetings] == ["js-room-1"]
    assert meetings[0]["internalMeetingID"] == internal_id

    assert out["end"]["messageKey"] == "sentEndMeetingRequest"
    assert out["isMeetingRunningAfterEnd"]["running"] is False
    assert out["getMeetingInfoAfterEnd"]["returncode"] == "FAILED"
    assert out["getMeetingInfoAfterEnd"]["messageKey"] == "notFound"
    assert out["wrongSecret"]["messageKey"] == "checksumError"
