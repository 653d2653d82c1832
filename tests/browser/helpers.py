"""Page-level helpers for the browser tests: join, wait, read the page's state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import WAIT

IGNORED = (NoSuchElementException, StaleElementReferenceException, JavascriptException)


def meeting_id(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(driver: Any, condition: Callable[[Any], Any], message: str = "",
             timeout: float = WAIT) -> Any:
    """Wait until ``condition(driver)`` is truthy; the failure names what was awaited."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=IGNORED).until(condition, message)


def self_id(driver: Any) -> str | None:
    return driver.execute_script("return window.meetplatform && window.meetplatform.selfId")


def wait_joined(driver: Any) -> str:
    """Wait for the meeting screen and return the page's own participant id."""
    wait_for(driver, lambda d: d.find_element(By.ID, "meeting-screen").is_displayed()
             and self_id(d), "the meeting screen")
    ident = self_id(driver)
    assert ident
    return ident


def choose_audio(driver: Any, choice: str = "join-microphone") -> None:
    """Answer the audio dialog (microphone or listen only) and wait until it applies;
    the dialog is opened from the toolbar when it is not open (after the pre-join screen,
    which answered "no audio for now")."""
    expected = "microphone" if choice == "join-microphone" else "listen"
    if driver.execute_script("return window.meetplatform.media.audioMode") == expected:
        return
    if not driver.find_element(By.ID, "audio-dialog").is_displayed():
        driver.find_element(By.ID, "audio-btn").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "audio-dialog").is_displayed(),
             "the audio dialog")
    driver.find_element(By.ID, choice).click()
    wait_for(driver, lambda d: d.execute_script(
        "return window.meetplatform.media.audioMode") == expected, f"audio mode {expected}")


#: The audio dialog's buttons and the pre-join screen's audio choices.
PREJOIN_AUDIO = {"join-microphone": "microphone", "join-listen-only": "listen",
                 "join-audio-later": "none", None: "none"}


def prejoin(driver: Any, audio: str = "none", camera: bool = False) -> None:
    """Answer the pre-join screen: camera on or off, the audio choice, then Join."""
    wait_for(driver, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    toggle = driver.find_element(By.ID, "prejoin-camera")
    if (toggle.get_attribute("aria-pressed") == "true") != camera:
        toggle.click()
    driver.find_element(By.ID, f"prejoin-audio-{audio}").click()
    driver.find_element(By.ID, "prejoin-join").click()


def enter(driver: Any, url: str, audio: str | None = None, camera: bool = False) -> str:
    """Open a join URL, pass the pre-join screen (camera off unless ``camera``; the audio
    as the dialog's button ``audio`` would: ``join-microphone``, ``join-listen-only``, or
    ``join-audio-later``/None for none), wait for the meeting screen and return the page's
    participant id; a microphone or listen-only choice is awaited until it applies."""
    driver.get(url)
    prejoin(driver, PREJOIN_AUDIO[audio], camera)
    user_id = wait_joined(driver)
    if audio in ("join-microphone", "join-listen-only"):
        expected = PREJOIN_AUDIO[audio]
        wait_for(driver, lambda d: d.execute_script(
            "return window.meetplatform.media.audioMode") == expected, f"audio mode {expected}")
    return user_id


def start_camera(driver: Any) -> None:
    driver.find_element(By.ID, "camera-btn").click()
    wait_for(driver, lambda d: d.execute_script("return window.meetplatform.media.camera"),
             "the camera to start")


def participant(driver: Any, user_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = driver.execute_script(
        "return window.meetplatform.participants.find(p => p.id === arguments[0]) || null",
        user_id)
    return result


def participant_ids(driver: Any) -> list[str]:
    result: list[str] = driver.execute_script(
        "return window.meetplatform.participants.map(p => p.id)")
    return result


def current_path(driver: Any) -> str:
    result: str = driver.execute_script("return location.pathname + location.search")
    return result


INBOUND_STATS = """
const done = arguments[arguments.length - 1];
const pc = window.meetplatform.peers.get(arguments[0]);
if (!pc) { done(null); return; }
pc.getStats().then((report) => {
  const out = {audio: 0, video: 0};
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind === 'audio' || s.kind === 'video')) {
      out[s.kind] += s.bytesReceived || 0;
    }
  });
  done(out);
}, () => done(null));
"""

VIDEO_STATE = """
const v = document.querySelector(`#grid .tile[data-user-id="${arguments[0]}"] video.camera`);
if (!v) return null;
const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
return {width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames,
        visible: getComputedStyle(v).display !== 'none'};
"""


def inbound_bytes(driver: Any, peer_id: str) -> dict[str, int] | None:
    result: dict[str, int] | None = driver.execute_async_script(INBOUND_STATS, peer_id)
    return result


def video_state(driver: Any, peer_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = driver.execute_script(VIDEO_STATE, peer_id)
    return result


def wait_media_flowing(driver: Any, peer_id: str) -> None:
    """Wait until audio and video bytes from ``peer_id`` grow and its <video> shows frames."""
    first: dict[str, dict[str, int]] = {}

    def bytes_grow(d: Any) -> bool:
        now = inbound_bytes(d, peer_id)
        if not now or not now["audio"] or not now["video"]:
            return False
        if "sample" not in first:
            first["sample"] = now
            return False
        before = first["sample"]
        return now["audio"] > before["audio"] and now["video"] > before["video"]

    wait_for(driver, bytes_grow, f"inbound audio and video bytes from {peer_id} to grow")

    seen: dict[str, int] = {}

    def frames_grow(d: Any) -> bool:
        state = video_state(d, peer_id)
        if not state or not state["visible"] or state["width"] <= 0:
            return False
        if "frames" not in seen:
            seen["frames"] = state["frames"]
            return False
        return bool(state["frames"] > seen["frames"])

    wait_for(driver, frames_grow, f"the <video> of {peer_id} to show new frames")


def browser_errors(driver: Any) -> list[str]:
    """Severe console messages (uncaught errors, CSP violations) the page produced."""
    try:
        entries = driver.get_log("browser")
    except WebDriverException:
        return []
    return [e["message"] for e in entries if e.get("level") == "SEVERE"]
