"""A recorded meeting, end to end, with the real service, a real Janus and real browsers.

The service runs as ``twistd -n meetplatform --janus-local /usr/bin/janus`` inside the
test's own network namespace (a veth pair gives Janus an ICE address). A meeting is
created with ``record=true&autoStartRecording=true`` and ``meta_bbb-recording-ready-url``
pointing at a receiver on loopback. Media reaches the meeting's VideoRoom from two
Chromium publishers that talk to Janus directly (``publisher.html``): the browser media
path through the service (the SFU relay) is another part's; these pages stand in for it.
The moderator joins the conference page: recording starts by itself (REC badge, notice),
the moderator stops it and starts it again (two segments), then the meeting is ended.

While the recording is processed the service is killed (``kill -9``); restarted (with
protected playback on), it resumes the job and the recording appears once: its video
format plays (signed links only: unsigned 403, signed 200, expired 403; a Range request
gets 206) and its WebM lasts the recorded time (±2 s) with an audio and a video stream.
The recording-ready callback arrives, signed with the shared secret. Unpublished, it
answers 404; deleted, its files are gone and it is no longer listed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from lxml import etree

from meetplatform.media.local import local_secrets
from tests.browser.helpers import enter
from tests.integration.conftest import ServiceProcess
from tests.integration.test_service import LOOPBACK, Start, get, signed
from tests.media.janus_process import JANUS
from tests.recording.media import PageServer, chromium, needs_tools, private_link

pytestmark = [pytest.mark.integration, needs_tools]

ROOM = 71234
PUBLISHERS = 2


class Receiver:
    """An HTTP receiver on loopback that records every POST (the recording-ready hook)."""

    def __init__(self) -> None:
        received: list[tuple[str, dict[str, str], bytes]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received.append((self.path, dict(self.headers.items()),
                                 self.rfile.read(length)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ready"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(check: Any, what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def xml(url: str) -> Any:
    _, _, body = get(url)
    return etree.fromstring(body)


def recordings(service: ServiceProcess, secret: str, query: str = "") -> list[Any]:
    answer = xml(signed(service, "getRecordings", query, secret))
    assert answer.findtext("returncode") == "SUCCESS"
    return list(answer.findall("recordings/recording"))


def status_of(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                       bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def janus_ws_url(data: Path) -> str:
    text = (data / "janus" / "janus.transport.websockets.jcfg").read_text()
    port = re.search(r"ws_port = (\d+)", text)
    assert port is not None
    return f"ws://127.0.0.1:{port.group(1)}"


def publish(driver: Any, pages: PageServer, ws_url: str, api_secret: str, name: str) -> None:
    driver.get(pages.url)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.publish(arguments[0], arguments[1], arguments[2], arguments[3])"
        ".then(done, (e) => done({error: String(e)}));", ws_url, api_secret, ROOM, name)
    assert "error" not in result, result
    wait_until(lambda: driver.execute_async_script(
        "window.sentBytes().then(arguments[arguments.length - 1]);") > 20_000,
        "media flowing to Janus")


def verify_jwt(token: str, secret: str) -> dict[str, Any]:
    header, payload, signature = token.split(".")
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(),
                        hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["alg"] == "HS256"
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "==="))
    return claims


def ffprobe(path: Path) -> tuple[float, list[str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    return float(info["format"]["duration"]), sorted(s["codec_type"] for s in info["streams"])


def test_a_recorded_meeting_survives_a_kill_and_plays_back(
        run_service: Start, tmp_path: Path) -> None:
    private_link()
    receiver = Receiver()
    pages = PageServer()
    data = tmp_path / "meetplatform-data"
    drivers: list[Any] = []
    try:
        service = run_service("--listen", LOOPBACK, "--janus-local", JANUS).started()
        secret = (data / "secret").read_text().strip()
        service.wait_for("media node local is online")
        query = (f"meetingID=rec-1&name=Recorded&record=true&autoStartRecording=true"
                 f"&voiceBridge={ROOM}&meta_bbb-recording-ready-url={quote(receiver.url)}")
        created = xml(signed(service, "create", query, secret))
        assert created.findtext("returncode") == "SUCCESS"
        service.wait_for(f"(room {ROOM})")
        ws_url = janus_ws_url(data)
        api_secret = local_secrets(data / "janus").api_secret
        wait_until(lambda: (data / "janus" / "recordings").exists(), "the Janus folder")

        # Media first (the stand-in for the SFU path), then the moderator: recording
        # starts when the first participant joins, with every publisher in it.
        for index in range(PUBLISHERS):
            drivers.append(chromium())
            publish(drivers[-1], pages, ws_url, api_secret, f"camera {index}")
        moderator = chromium()
        drivers.append(moderator)
        join = xml(signed(service, "join",
                          "meetingID=rec-1&fullName=Mod&role=MODERATOR&redirect=false",
                          secret))
        enter(moderator, join.findtext("url"))  # through the pre-join screen
        started = time.time()
        service.wait_for("recording started")
        badge = wait_until(lambda: moderator.execute_script(
            "const b = document.getElementById('recording-badge');"
            "return b && !b.hidden && b.classList.contains('live') ? b.title : null;"),
            "the live REC badge")
        assert badge == "This meeting is being recorded"
        assert "This meeting is being recorded." in moderator.execute_script(
            "return document.getElementById('notices').textContent")

        time.sleep(10)
        moderator.execute_script("document.getElementById('recording-btn').click()")
        service.wait_for("recording stopped")
        first = time.time() - started
        wait_until(lambda: not moderator.execute_script(
            "return document.getElementById('recording-badge').classList.contains('live')"),
            "the REC badge off")
        time.sleep(3)
        moderator.execute_script("document.getElementById('recording-btn').click()")
        service.wait_for("recording started")
        restarted = time.time()
        time.sleep(10)
        ended = xml(signed(service, "end", "meetingID=rec-1", secret))
        assert ended.findtext("returncode") == "SUCCESS"
        recorded = first + (time.time() - restarted)
        for driver in drivers:
            driver.quit()
        drivers.clear()

        # Processing runs in a worker process: kill the service while it does.
        service.wait_for("queued for processing (2 segment(s))")
        service.wait_for("processing (attempt ")
        service.process.kill()
        service.process.wait(30)

        service = run_service("--listen", LOOPBACK, "--janus-local", JANUS,
                              "--protected-recordings", "120").started()
        service.wait_for("processing (attempt ")  # the job resumes by itself
        service.wait_for(": ready (")
        listed = recordings(service, secret, "meetingID=rec-1")
        assert len(listed) == 1
        recording = listed[0]
        record_id = recording.findtext("recordID")
        assert recording.findtext("state") == "published"
        # One attendee (the moderator) and two publishers seen in the media (the stand-in
        # pages are no attendees): the larger count.
        assert recording.findtext("participants") == "2"
        assert recording.findtext("metadata/bbb-recording-ready-url") == receiver.url
        assert recording.findtext("playback/format/type") == "video"
        page_url = recording.findtext("playback/format/url")
        preview_url = recording.findtext("playback/format/preview/images/image")
        assert int(recording.findtext("playback/format/size")) > 10_000
        assert int(recording.findtext("playback/format/processingTime")) > 0
        assert recording.findtext("playback/format/length") == "0"  # minutes, as BBB

        # The files moved off the node: nothing left in the node's directory.
        assert list((data / "janus" / "recordings").glob("*.mjr")) == []
        video_file = data / "recordings" / record_id / "video.webm"
        duration, streams = ffprobe(video_file)
        assert streams == ["audio", "video"]
        assert abs(duration - recorded) <= 2.0, (duration, recorded)

        # Protected playback: signed links only.
        page = urlsplit(page_url)
        assert status_of(page_url)[0] == 200
        code, headers, body = status_of(page_url)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert b"<video" in body
        signature = dict(parse_qsl(page.query))
        video_url = f"{service.url}{page.path}video.webm?{page.query}"
        assert status_of(f"{service.url}{page.path}video.webm")[0] == 403
        assert status_of(f"{service.url}{page.path}")[0] == 403
        code, headers, body = status_of(video_url)
        assert code == 200 and headers["Content-Type"] == "video/webm"
        assert headers["Accept-Ranges"] == "bytes"
        code, headers, body = status_of(video_url, {"Range": "bytes=0-99"})
        assert code == 206 and len(body) == 100
        assert headers["Content-Range"].startswith("bytes 0-99/")
        assert status_of(preview_url)[0] == 200
        expired = int(time.time()) - 10
        key = hmac.new(secret.encode(), b"meetplatform playback links v1",
                       hashlib.sha256).digest()
        old_sig = hmac.new(key, f"{record_id}:{expired}".encode(), hashlib.sha256).hexdigest()
        assert status_of(f"{service.url}{page.path}video.webm?expires={expired}"
                         f"&sig={old_sig}")[0] == 403
        assert status_of(f"{service.url}{page.path}video.webm?expires="
                         f"{signature['expires']}&sig={'0' * 64}")[0] == 403

        # The recording-ready callback, signed with the shared secret.
        wait_until(lambda: receiver.received, "the recording-ready callback")
        _path, headers, body = receiver.received[0]
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        claims = verify_jwt(dict(parse_qsl(body.decode()))["signed_parameters"], secret)
        assert claims == {"meeting_id": "rec-1", "record_id": record_id}
        assert len(receiver.received) == 1

        # Unpublished: playback answers 404; published again: 200.
        answer = xml(signed(service, "publishRecordings",
                            f"recordID={record_id}&publish=false", secret))
        assert answer.findtext("published") == "false"
        assert status_of(video_url)[0] == 404
        assert recordings(service, secret, "meetingID=rec-1")[0].findtext("state") \
            == "unpublished"
        xml(signed(service, "publishRecordings", f"recordID={record_id}&publish=true",
                   secret))
        assert status_of(video_url)[0] == 200

        # Deleted: no longer listed, files removed after the answer.
        answer = xml(signed(service, "deleteRecordings", f"recordID={record_id}", secret))
        assert answer.findtext("deleted") == "true"
        assert recordings(service, secret, "meetingID=rec-1") == []
        assert [r.findtext("state") for r in recordings(
            service, secret, "meetingID=rec-1&state=deleted")] == ["deleted"]
        wait_until(lambda: not (data / "recordings" / record_id).exists(),
                   "the files removed")
        assert status_of(video_url)[0] == 404
        assert not any("Traceback" in line for line in service.output)
    finally:
        for driver in drivers:
            driver.quit()
        pages.close()
        receiver.close()
