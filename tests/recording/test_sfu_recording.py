"""The issue's browser test through the product's own media path: two participants on the
conference page publish through the service to the meeting's VideoRoom (the SFU path),
``record=true&autoStartRecording=true``, ~20 s, end; one recording whose video lasts the
recorded span (±2 s) with audio and video, served with ranges.

It needs the browser media path through Janus (``meetplatform/media/sfu.py``: the page's
media relayed to the node's VideoRoom); a checkout without it skips the test.
``test_end_to_end.py`` covers the rest of the pipeline (stop/start, kill -9, protected
playback, callbacks, delete) with test pages publishing to Janus directly.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import enter
from tests.integration.test_service import LOOPBACK, Start, signed
from tests.media.janus_process import JANUS
from tests.recording.media import chromium, needs_tools, private_link
from tests.recording.test_end_to_end import recordings, status_of, xml

SFU_PATH = importlib.util.find_spec("meetplatform.media.sfu") is not None

pytestmark = [
    pytest.mark.integration, needs_tools,
    pytest.mark.skipif(not SFU_PATH, reason=(
        "needs the browser media path through Janus (meetplatform/media/sfu.py: the "
        "conference page publishing to the meeting's VideoRoom through the service), "
        "which is not on main yet")),
]


def test_two_participants_on_the_conference_page_are_recorded(
        run_service: Start, tmp_path: Path) -> None:
    private_link()
    data = tmp_path / "meetplatform-data"
    drivers: list[Any] = []
    try:
        service = run_service("--listen", LOOPBACK, "--janus-local", JANUS).started()
        secret = (data / "secret").read_text().strip()
        service.wait_for("media node local is online")
        assert xml(signed(service, "create", "meetingID=sfu-rec&name=SFU&record=true"
                          "&autoStartRecording=true", secret)).findtext("returncode") \
            == "SUCCESS"
        for name, role in (("Mod", "MODERATOR"), ("Ann", "VIEWER")):
            join = xml(signed(service, "join", f"meetingID=sfu-rec&fullName={name}"
                              f"&role={role}&redirect=false", secret))
            driver = chromium()
            drivers.append(driver)
            enter(driver, join.findtext("url"), audio="join-microphone", camera=True)
        service.wait_for("recording started")
        time.sleep(20)
        assert xml(signed(service, "end", "meetingID=sfu-rec", secret)).findtext(
            "returncode") == "SUCCESS"
        service.wait_for(": ready (")
        [recording] = recordings(service, secret, "meetingID=sfu-rec")
        span = (int(recording.findtext("endTime")) - int(recording.findtext("startTime")))
        video_url = recording.findtext("playback/format/url") + "video.webm"
        target = tmp_path / "video.webm"
        with urllib.request.urlopen(video_url, timeout=30) as response:
            assert response.status == 200
            target.write_bytes(response.read())
        info = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
             "-of", "json", str(target)], capture_output=True, text=True, check=True).stdout)
        assert sorted(s["codec_type"] for s in info["streams"]) == ["audio", "video"]
        assert abs(float(info["format"]["duration"]) - span / 1000) <= 2.0
        code, _headers, body = status_of(video_url, {"Range": "bytes=0-99"})
        assert code == 206 and len(body) == 100
    finally:
        for driver in drivers:
            driver.quit()
