"""The conference page in Firefox (ESR, headless), in one meeting with a Chromium page.

Firefox is driven over Marionette, its own remote protocol (``marionette_driver``; no
geckodriver needed). Its fake camera and microphone come from preferences. Firefox gathers
no ICE candidate when loopback is the only interface (Chromium does with
``--allow-loopback-in-peer-connection``), so this test adds a veth pair *inside* the
suite's network namespace, with private addresses and both ends in the namespace: media
still never leaves the namespace. The fixture refuses to touch any namespace that has an
interface besides ``lo`` (the host's, say): run it through ``scripts/test``.

Firefox counts no decoded frames for WebRTC video (``totalVideoFrames`` stays 0), so on the
Firefox side "the video plays" is: it has the sender's size and its clock advances.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import WAIT, Bbb, _free_port, stop_process
from tests.browser.helpers import (
    INBOUND_STATS,
    choose_audio,
    meeting_id,
    prejoin,
    start_camera,
    wait_for,
    wait_joined,
    wait_media_flowing,
)
from tests.netns import VethPair, skip_unless_only_loopback

FIREFOX = os.environ.get("MEETPLATFORM_FIREFOX", "/usr/bin/firefox-esr")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(FIREFOX), reason=f"needs {FIREFOX}"),
]

PREFS = {
    "media.navigator.streams.fake": True,           # fake camera and microphone
    "media.navigator.permission.disabled": True,    # no permission prompt
    "media.autoplay.default": 0,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.enabled": False,
}

VIDEO_CLOCK = """
const v = document.querySelector(`#grid .tile[data-user-id="${arguments[0]}"] video.camera`);
return v && v.videoWidth > 0 && !v.paused ? v.currentTime : 0;
"""


@pytest.fixture
def private_link() -> Iterator[None]:
    """A veth pair (10.99.0.1/24 ↔ 10.99.0.2/24) and a default route to it, inside this
    isolated namespace (nothing beyond it: the route leads to the pair's other end;
    Firefox offers the address of the default route's interface)."""
    skip_unless_only_loopback()
    with VethPair("mpveth0", "mpveth1", "10.99.0.1", "10.99.0.2", default_route=True):
        yield


class Firefox:
    """A headless Firefox and its Marionette session; ``js`` runs in the page itself."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def js(self, script: str, *args: Any) -> Any:
        return self.client.execute_script(script, script_args=args, sandbox=None)

    def js_async(self, script: str, *args: Any) -> Any:
        return self.client.execute_async_script(script, script_args=args, sandbox=None,
                                                script_timeout=WAIT * 1000)

    def wait(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"Firefox: timed out waiting for {what}")
            time.sleep(0.2)


@pytest.fixture
def firefox(private_link: None) -> Iterator[Firefox]:
    from marionette_driver.marionette import Marionette

    profile = Path(tempfile.mkdtemp(prefix="mp-firefox-"))
    port = _free_port()
    prefs = {**PREFS, "marionette.port": port}
    (profile / "user.js").write_text("".join(
        f"user_pref({name!r}, {str(value).lower() if isinstance(value, bool) else value});\n"
        .replace("'", '"') for name, value in prefs.items()))
    process = subprocess.Popen(
        [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Marionette(host="127.0.0.1", port=port)
        client.raise_for_port(timeout=WAIT)
        client.start_session()
        client.timeout.page_load = WAIT
        yield Firefox(client)
        client.delete_session()
    finally:
        stop_process(process)
        shutil.rmtree(profile, ignore_errors=True)


def test_firefox_and_chromium_see_and_hear_each_other(
        bbb: Bbb, new_browser: Callable[..., Any], firefox: Firefox) -> None:
    """A Firefox participant and a Chromium participant joined through BBB join URLs:
    each receives the other's audio and video, and chat crosses both ways."""
    mid = meeting_id("firefox")
    bbb.create(mid, "Firefox and Chromium")
    ada = new_browser()
    ada.get(bbb.join_url(mid, "Ada", "MODERATOR"))
    prejoin(ada)
    ada_id = wait_joined(ada)
    choose_audio(ada)
    start_camera(ada)

    firefox.client.navigate(bbb.join_url(mid, "Fox", "VIEWER"))
    firefox.wait(lambda: firefox.js(
        "return !document.getElementById('prejoin-screen').hidden"), "the pre-join screen")
    firefox.js("const c = document.getElementById('prejoin-camera');"
               " if (c.getAttribute('aria-pressed') === 'true') c.click();"
               " document.getElementById('prejoin-audio-none').click();"
               " document.getElementById('prejoin-join').click()")
    fox_id = firefox.wait(lambda: firefox.js(
        "return window.meetplatform && window.meetplatform.selfId"), "the meeting screen")
    assert firefox.js("return document.getElementById('meeting-name').textContent") == \
        "Firefox and Chromium"
    # the pre-join screen answered "no audio for now": join audio from the toolbar
    firefox.js("document.getElementById('audio-btn').click()")
    firefox.wait(lambda: firefox.js(
        "return getComputedStyle(document.getElementById('audio-dialog')).display"
        " !== 'none'"), "the audio dialog")
    firefox.js("document.getElementById('join-microphone').click()")
    firefox.wait(lambda: firefox.js("return window.meetplatform.media.audioMode")
                 == "microphone", "the microphone")
    firefox.js("document.getElementById('camera-btn').click()")
    firefox.wait(lambda: firefox.js("return window.meetplatform.media.camera"),
                 "the camera")

    # Chromium receives Firefox's audio and video (bytes grow, the <video> shows frames)
    wait_media_flowing(ada, fox_id)

    # Firefox receives Chromium's: bytes grow, the <video> plays at the sender's size
    first = firefox.wait(lambda: firefox.js_async(INBOUND_STATS, ada_id), "inbound stats")

    def bytes_grew() -> bool:
        now = firefox.js_async(INBOUND_STATS, ada_id)
        return bool(now and now["audio"] > first["audio"] and now["video"] > first["video"])

    firefox.wait(bytes_grew, "inbound audio and video bytes to grow")
    started = firefox.wait(lambda: firefox.js(VIDEO_CLOCK, ada_id), "Chromium's video")
    firefox.wait(lambda: firefox.js(VIDEO_CLOCK, ada_id) > started + 1,
                 "Chromium's video to keep playing")

    # chat, both ways
    firefox.js("const i = document.getElementById('chat-input');"
               "i.value = 'hello from Firefox';"
               "document.getElementById('chat-form').requestSubmit();")
    wait_for(ada, lambda d: "hello from Firefox" in d.find_element(
        "id", "chat-messages").text, "Firefox's chat message in Chromium")
    ada.find_element("id", "chat-input").send_keys("hello from Chromium\n")
    firefox.wait(lambda: "hello from Chromium" in firefox.js(
        "return document.getElementById('chat-messages').textContent"),
        "Chromium's chat message in Firefox")
