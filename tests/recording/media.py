"""Real ``.mjr`` recordings from a real Janus and real Chromium publishers (test only).

Janus never offers loopback ICE candidates, so :func:`private_link` adds a veth pair
inside the test's own network namespace (run the tests under ``unshare --net``, as
``scripts/test`` does), and the Janus of :class:`RecordingJanus` is told to use it
(``nat.ice_enforce_list``). Chromium loads ``publisher.html`` (served on loopback) which
publishes its fake camera (320x240) and microphone straight to the VideoRoom; recording is
switched on and off through :class:`meetplatform.media.recording.RoomRecorder` over the
Admin API, as the service does.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from meetplatform.media.janus import VideoRoom
from meetplatform.media.janus_config import write_config
from meetplatform.media.recording import RoomRecorder
from tests.media.janus_process import JANUS, JanusProcess
from tests.netns import VethPair, interfaces, skip_unless_only_loopback

HERE = Path(__file__).parent
ROOM = 4242
ROOM_SECRET = "room-secret"

T = TypeVar("T")

needs_tools = pytest.mark.skipif(
    not (Path(JANUS).exists() and shutil.which("janus-pp-rec") and shutil.which("ffmpeg")
         and Path("/usr/bin/chromium").exists()),
    reason="needs janus, janus-tools, ffmpeg and chromium (scripts/test installs them)")


#: Janus's ICE address; up from the first :func:`private_link` until the namespace goes.
LINK = VethPair("mprveth0", "mprveth1", "10.98.0.1", "10.98.0.2")


@functools.cache
def _link_up() -> None:
    LINK.up()


def private_link() -> None:
    """The veth pair, once per test process (skips outside a loopback-only namespace)."""
    if LINK.name not in interfaces():
        skip_unless_only_loopback()
    _link_up()


class RecordingJanus(JanusProcess):
    """A Janus whose ICE uses the veth pair and whose recordings go to ``recordings``."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, "rec")
        self.config = dataclasses.replace(self.config, ice_enforce_list=LINK.name)
        write_config(self.config, folder)
        self.recordings = folder / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: the test's output stays readable."""


class PageServer:
    """``publisher.html`` on 127.0.0.1 (getUserMedia needs a secure context: loopback)."""

    def __init__(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(HERE))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/publisher.html"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--disable-features=WebRtcHideLocalIpsWithMdns")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='mp-rec-chromium-')}")
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.set_script_timeout(60)
    return driver


def blocking_rooms(janus: JanusProcess) -> VideoRoom:
    """The service's :class:`VideoRoom` over a blocking Admin API client: each request
    completes before it returns (a test drives Janus without running a reactor)."""

    def send(request: dict[str, Any]) -> Deferred[dict[str, Any]]:
        body = json.dumps({"janus": "message_plugin", "transaction": "t",
                           "admin_secret": janus.config.admin_secret,
                           "plugin": "janus.plugin.videoroom", "request": request}).encode()
        with urllib.request.urlopen(janus.admin_url, body, timeout=10) as response:
            answer = json.loads(response.read())
        data: dict[str, Any] = answer.get("response") or {}
        if answer.get("janus") != "success" or "error_code" in data:
            return fail(RuntimeError(f"Janus refused {request['request']}: {answer}"))
        return succeed(data)

    return VideoRoom(send, janus.config.admin_key)


def now_done(work: Coroutine[Any, Any, T] | Deferred[T]) -> T:
    """The result of a coroutine (or Deferred) that awaits only completed Deferreds."""
    result: list[Any] = []
    d = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
    d.addBoth(result.append)
    assert result, "the request did not complete synchronously"
    if isinstance(result[0], Failure):
        result[0].raiseException()
    return cast(T, result[0])


def record_meeting(janus: RecordingJanus, publishers: int,
                   segments: list[float], gap: float = 3.0) -> list[list[int]]:
    """``publishers`` Chromiums publish to room ROOM while recording runs for each of
    ``segments`` seconds (with ``gap`` seconds off between them); returns the segments'
    [start_ms, end_ms] as the service would note them."""
    rooms = blocking_rooms(janus)
    now_done(rooms.create_room(ROOM, secret=ROOM_SECRET, fir_freq=2,
                               rec_dir=str(janus.recordings)))
    recorder = RoomRecorder(rooms, ROOM, ROOM_SECRET)
    pages = PageServer()
    drivers = []
    marks: list[list[int]] = []
    try:
        for index in range(publishers):
            driver = chromium()
            drivers.append(driver)
            driver.get(pages.url)
            driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "window.publish(arguments[0], arguments[1], arguments[2], arguments[3])"
                ".then(done, (e) => done({error: String(e)}));",
                janus.ws_url, janus.config.api_secret, ROOM, f"user {index}")
        deadline = time.monotonic() + 30
        for driver in drivers:
            while driver.execute_async_script(
                    "window.sentBytes().then(arguments[arguments.length - 1]);") < 20_000:
                if time.monotonic() > deadline:
                    raise AssertionError("a publisher sends no media to Janus")
                time.sleep(0.5)
        for index, seconds in enumerate(segments):
            if index:
                time.sleep(gap)
            start = int(time.time() * 1000)
            now_done(recorder.start())
            time.sleep(seconds)
            now_done(recorder.stop())
            marks.append([start, int(time.time() * 1000)])
        time.sleep(1)
    finally:
        for driver in drivers:
            driver.quit()
        pages.close()
        now_done(rooms.destroy_room(ROOM, secret=ROOM_SECRET))
    return marks


@dataclasses.dataclass
class RecordedMeeting:
    """A node recording directory with one meeting's files, and its segments."""

    node_dir: Path
    segments: list[list[int]]
    publishers: int

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.node_dir, target)
        return target


def make_recording(folder: Path, publishers: int, segments: list[float]) -> RecordedMeeting:
    private_link()
    janus = RecordingJanus(folder / "janus")
    janus.start()
    try:
        marks = record_meeting(janus, publishers, segments)
    finally:
        janus.stop()
    files = sorted(janus.recordings.glob("*.mjr"))
    assert files, (folder / "janus" / "janus.log").read_text()[-3000:]
    return RecordedMeeting(janus.recordings, marks, publishers)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedMeeting]:
    """Two publishers, recorded 12 s, off 3 s, recorded 8 s again: two segments, 20 s."""
    yield make_recording(tmp_path_factory.mktemp("recorded"), 2, [12.0, 8.0])
