"""The first minute in real Chromium (fake devices): the pre-join screen, devices during
the meeting, phones, languages (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Bbb
from tests.browser.helpers import (
    browser_errors,
    enter,
    inbound_bytes,
    meeting_id,
    participant,
    prejoin,
    wait_for,
    wait_joined,
    wait_media_flowing,
)

pytestmark = pytest.mark.browser

Browser = Callable[..., Any]

PREVIEW_FRAMES = """
const v = document.getElementById('prejoin-video');
if (!v || !v.srcObject) return 0;
return v.getVideoPlaybackQuality().totalVideoFrames;
"""

OPTIONS = "return [...document.getElementById(arguments[0]).options].map(o => o.textContent)"

#: Every action of the meeting's toolbar (the moderator's End meeting included).
TOOLBAR = ("audio-btn", "mic-btn", "camera-btn", "screen-btn", "hand-btn", "settings-btn",
           "chat-btn", "people-btn", "end-btn", "leave-btn")

#: No sideways scrolling, and no zooming out either: a phone's browser widens its layout
#: viewport to the content, so the window must keep the device's width.
#: Controls of the pre-join screen, the toolbar and the devices panel without an
#: accessible name (label, aria-label or text).
UNNAMED = """
return [...document.querySelectorAll(
    '#prejoin-screen button, #prejoin-screen select, #prejoin-screen input, #prejoin-screen meter,'
    + ' .toolbar button, #settings-dialog button, #settings-dialog select')]
  .filter(e => !([...(e.labels || [])].some(l => l.textContent.trim()))
               && !(e.getAttribute('aria-label') || '').trim() && !e.textContent.trim())
  .map(e => e.id || e.outerHTML.slice(0, 80));
"""

NO_OVERFLOW = ("return document.documentElement.scrollWidth <= window.innerWidth"
               " && window.innerWidth === arguments[0]")

#: The presenter's classroom controls (the presentation's toolbar, the whiteboard tools, the
#: poll form when open) that are not within the screen's width or smaller than a 44 px touch
#: target (the stage scrolls vertically; a checkbox's target is its label).
CLASSROOM_OUT_OF_REACH = """
const wanted = ['doc-select', 'prev-page', 'next-page', 'zoom-out', 'zoom-in', 'zoom-fit',
                'multi-user-btn', 'upload-btn', 'poll-start', 'wb-color', 'wb-undo', 'wb-clear'];
const form = '#poll-form:not([hidden])';
const controls = [...wanted.map(id => document.getElementById(id)),
  ...document.querySelectorAll(`#wb-tools [data-tool], ${form} button, ${form} textarea,`
                               + ` ${form} input[type="text"], ${form} label.check`)];
return controls.map(e => [e.id || e.dataset.tool || e.dataset.pollType || e.className,
                          e.getBoundingClientRect()])
  .filter(([, r]) => !(r.left >= 0 && r.right <= innerWidth && r.width >= 44 && r.height >= 44))
  .map(([name, r]) => [name, Math.round(r.left), Math.round(r.right), Math.round(r.width),
                       Math.round(r.height)]);
"""


def _frames_rise(driver: Any, script: str, *args: Any) -> None:
    seen: dict[str, int] = {}

    def rising(d: Any) -> bool:
        frames = int(d.execute_script(script, *args) or 0)
        if frames <= 0:
            return False
        if "first" not in seen:
            seen["first"] = frames
            return False
        return frames > seen["first"]

    wait_for(driver, rising, "video frames to rise")


def test_prejoin_preview_devices_and_camera_off(bbb: Bbb, new_browser: Browser) -> None:
    """The preview plays before anything joins; the device lists show the fake devices;
    "camera off" joins without a camera, "camera on" with one."""
    mid = meeting_id("prejoin")
    bbb.create(mid, "Pre-join check")
    ada, bob = new_browser(), new_browser()
    ada.get(bbb.join_url(mid, "Ada", "MODERATOR"))
    wait_for(ada, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    assert ada.find_element(By.ID, "prejoin-name").get_attribute("value") == "Ada"
    assert ada.find_element(By.ID, "prejoin-name").get_attribute("readonly") is not None
    # the camera preview plays, with the camera on by default
    assert ada.find_element(By.ID, "prejoin-camera").get_attribute("aria-pressed") == "true"
    _frames_rise(ada, PREVIEW_FRAMES)
    # Chromium's fake devices are listed
    wait_for(ada, lambda d: any("fake_device_0" in o for o in d.execute_script(
        OPTIONS, "prejoin-camera-select")), "the fake camera in the list")
    assert any("Fake" in o or "fake" in o for o in ada.execute_script(OPTIONS, "prejoin-mic-select"))
    assert not ada.execute_script(UNNAMED)
    assert ada.find_element(By.ID, "prejoin-level-status").get_attribute("aria-live") == "polite"
    # the microphone meter has a state for screen readers
    wait_for(ada, lambda d: d.find_element(By.ID, "prejoin-level-status").get_attribute(
        "data-state") in ("sound", "silent"), "the level meter's state")
    # nothing joined yet: no socket, nobody in the meeting
    assert ada.execute_script("return window.meetplatform.connected") is False
    assert not ada.execute_script("return window.meetplatform.counters.sent")
    assert bbb.meeting_info(mid).findtext("participantCount") == "0"
    # the speakers test plays a generated sound
    ada.find_element(By.ID, "prejoin-test-speakers").click()

    # Ada joins with the camera off, Bob with it on
    prejoin(ada, "microphone", camera=False)
    ada_id = wait_joined(ada)
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone",
                   camera=True)
    assert ada.execute_script("return window.meetplatform.media.camera") is False
    assert bob.execute_script("return window.meetplatform.media.camera") is True
    wait_media_flowing(ada, bob_id)  # Bob's audio and video reach Ada
    wait_for(bob, lambda d: (inbound_bytes(d, ada_id) or {}).get("audio", 0) > 0,
             "Ada's audio")
    assert (participant(bob, ada_id) or {}).get("video") is False
    assert (inbound_bytes(bob, ada_id) or {}).get("video", 0) == 0
    attendees = {a.findtext("fullName"): a for a in bbb.meeting_info(mid).iter("attendee")}
    assert attendees["Ada"].findtext("hasVideo") == "false"
    assert attendees["Bob"].findtext("hasVideo") == "true"
    # the choice is remembered by this browser
    assert ada.execute_script("return window.meetplatform.devicePrefs.camera") is False
    assert not browser_errors(ada), browser_errors(ada)


SENDER_TRACK = """
const pc = window.meetplatform.peers.get(arguments[0]);
const sender = pc && pc.getSenders().find(s => s.track && s.track.kind === 'audio');
return sender ? sender.track.id : null;
"""


def test_switching_the_microphone_keeps_the_audio_flowing(bbb: Bbb,
                                                          new_browser: Browser) -> None:
    """The settings panel swaps the microphone on every peer without renegotiating; the
    other participant keeps receiving audio."""
    mid = meeting_id("switch")
    bbb.create(mid, "Switch check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    wait_for(bob, lambda d: (inbound_bytes(d, ada_id) or {}).get("audio", 0) > 0,
             "Ada's audio")
    wait_for(ada, lambda d: d.execute_script(SENDER_TRACK, bob_id), "Ada's audio sender")
    before = ada.execute_script(SENDER_TRACK, bob_id)
    offers = ada.execute_script("return window.meetplatform.counters.sent['signal:offer'] || 0")

    ada.find_element(By.ID, "settings-btn").click()
    wait_for(ada, lambda d: len(d.execute_script(OPTIONS, "settings-mic")) > 0,
             "the microphones in the panel")
    options = ada.execute_script(OPTIONS, "settings-mic")
    assert any("Fake" in o or "fake" in o for o in options)
    # the next microphone (Chromium's fake devices have several), else the same one again
    ada.execute_script("""
      const select = document.getElementById('settings-mic');
      select.selectedIndex = (select.selectedIndex + 1) % select.options.length;
      select.dispatchEvent(new Event('change'));""")
    wait_for(ada, lambda d: d.execute_script(SENDER_TRACK, bob_id) not in (None, before),
             "the new microphone track on the sender")
    assert ada.find_element(By.ID, "settings-status").text
    ada.find_element(By.ID, "settings-close").click()

    sample = (inbound_bytes(bob, ada_id) or {}).get("audio", 0)
    wait_for(bob, lambda d: (inbound_bytes(d, ada_id) or {}).get("audio", 0) > sample + 2000,
             "Ada's audio bytes rising after the switch")
    assert ada.execute_script("return window.meetplatform.media.audioMode") == "microphone"
    after = ada.execute_script("return window.meetplatform.counters.sent['signal:offer'] || 0")
    assert after == offers  # replaceTrack: no renegotiation

    # the microphone in use disappears (as if unplugged): the page says so and offers the
    # next one; taking it puts a new track on the sender, and Bob still hears Ada
    switched = ada.execute_script(SENDER_TRACK, bob_id)
    ada.execute_script("""
      const pc = window.meetplatform.peers.get(arguments[0]);
      const track = pc.getSenders().find(s => s.track && s.track.kind === 'audio').track;
      const goneId = track.getSettings().deviceId;
      const real = navigator.mediaDevices.enumerateDevices.bind(navigator.mediaDevices);
      navigator.mediaDevices.enumerateDevices = async () =>
        (await real()).filter(d => d.deviceId !== goneId);
      navigator.mediaDevices.dispatchEvent(new Event('devicechange'));""", bob_id)
    notice = wait_for(ada, lambda d: d.find_element(
        By.CSS_SELECTOR, '#notices .notice[data-device-gone="microphone"]'), "the gone notice")
    assert "disconnected" in notice.text
    notice.find_element(By.CSS_SELECTOR, "button.btn").click()
    wait_for(ada, lambda d: d.execute_script(SENDER_TRACK, bob_id) not in (None, switched),
             "the next microphone on the sender")
    sample = (inbound_bytes(bob, ada_id) or {}).get("audio", 0)
    wait_for(bob, lambda d: (inbound_bytes(d, ada_id) or {}).get("audio", 0) > sample + 2000,
             "Ada's audio bytes rising with the next microphone")


def _reachable(driver: Any) -> dict[str, str]:
    """Where each toolbar action is: "bar" (visible), "menu" (in More), or "missing"."""
    where: dict[str, str] = {}
    driver.find_element(By.ID, "more-btn").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "more-menu").is_displayed(), "More")
    in_menu = set(driver.execute_script(
        "return [...document.querySelectorAll('#more-menu [data-for]')]"
        ".map(b => b.dataset.for)"))
    for ident in TOOLBAR:
        button = driver.find_element(By.ID, ident)
        if button.is_displayed():
            where[ident] = "bar"
        elif ident in in_menu:
            where[ident] = "menu"
        else:
            where[ident] = "missing"
    driver.find_element(By.ID, "more-btn").click()
    return where


def test_phone_layout(bbb: Bbb, new_browser: Browser) -> None:
    """At 390×844 with touch: nothing overflows sideways (meeting, chat, people), every
    toolbar action is on the bar or in More, touch targets are at least 44 px, and names
    stay visible next to their badges."""
    mid = meeting_id("phone")
    bbb.create(mid, "A meeting with a rather long name to see what happens on phones")
    ada, bob = new_browser(phone=True), new_browser()
    ada.get(bbb.join_url(mid, "Ada Lovelace-Byron", "MODERATOR"))
    assert ada.execute_script("return window.innerWidth") == 390
    wait_for(ada, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    assert ada.execute_script(NO_OVERFLOW, 390), "the pre-join screen overflows"
    prejoin(ada, "microphone", camera=True)
    ada_id = wait_joined(ada)
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    assert ada.execute_script("return navigator.maxTouchPoints") > 0
    assert ada.execute_script(NO_OVERFLOW, 390), "the meeting overflows"

    where = _reachable(ada)
    assert "missing" not in where.values(), where
    assert where["leave-btn"] == "bar" and where["mic-btn"] == "bar"
    small = ada.execute_script("""
      return [...document.querySelectorAll('.toolbar .tool, #more-btn')]
        .filter(b => b.offsetParent !== null)
        .map(b => [b.id, b.getBoundingClientRect().width, b.getBoundingClientRect().height])
        .filter(([, w, h]) => w < 44 || h < 44);""")
    assert not small, small
    # the presenter's name is not hidden by the Presenter and Moderator badges
    plate = ada.execute_script("""
      const tile = document.querySelector(`#grid .tile[data-user-id="${arguments[0]}"]`);
      const name = tile.querySelector('.nameplate .name').getBoundingClientRect();
      const box = tile.getBoundingClientRect();
      return {w: name.width, inside: name.left >= box.left && name.right <= box.right};""",
                              ada_id)
    assert plate["w"] > 40 and plate["inside"], plate

    for panel in ("chat-btn", "people-btn"):
        ada.find_element(By.ID, panel).click()
        wait_for(ada, lambda d: d.find_element(By.ID, "sidebar").is_displayed(), panel)
        size = ada.execute_script(
            "const r = document.getElementById('sidebar').getBoundingClientRect();"
            " return [r.width, r.height]")
        assert size == [390, 844], size  # full screen
        assert ada.execute_script(NO_OVERFLOW, 390), f"{panel} overflows"
        ada.find_element(By.ID, "sidebar-close").click()
        wait_for(ada, lambda d: not d.find_element(By.ID, "sidebar").is_displayed(), "closed")
    # the menu's items do what the buttons do
    ada.find_element(By.ID, "more-btn").click()
    ada.find_element(By.CSS_SELECTOR, '#more-menu [data-for="hand-btn"]').click()
    wait_for(ada, lambda d: (participant(d, ada_id) or {}).get("raisedHand"), "the hand up")
    # the presentation area with the empty whiteboard page and the presenter's tools (the
    # first moderator presents): nothing overflows, every classroom action is on screen
    wait_for(ada, lambda d: d.find_element(By.ID, "wb-tools").is_displayed(),
             "the whiteboard tools")
    assert ada.find_element(By.ID, "presentation").is_displayed()
    assert ada.execute_script(NO_OVERFLOW, 390), "the presentation overflows"
    assert ada.execute_script(CLASSROOM_OUT_OF_REACH) == []
    # the poll form too, opened over the slide
    ada.find_element(By.ID, "poll-start").click()
    wait_for(ada, lambda d: d.find_element(By.ID, "poll-form").is_displayed(), "the poll form")
    assert ada.execute_script(NO_OVERFLOW, 390), "the poll form overflows"
    assert ada.execute_script(CLASSROOM_OUT_OF_REACH) == []
    ada.find_element(By.ID, "poll-start").click()

    # landscape works too
    from tests.browser.conftest import emulate_phone

    emulate_phone(ada, landscape=True)
    wait_for(ada, lambda d: d.execute_script("return window.innerWidth") == 844, "landscape")
    assert ada.execute_script(NO_OVERFLOW, 844), "landscape overflows"
    assert "missing" not in _reachable(ada).values()


def test_browser_language_and_the_seat_override(bbb: Bbb, new_browser: Browser) -> None:
    """A browser set to pt-BR gets the pre-join screen in Portuguese; the seat's
    userdata-bbb_override_default_locale=de wins over it."""
    mid = meeting_id("lang")
    bbb.create(mid, "Language check")
    bia = new_browser(lang="pt-BR")
    bia.get(bbb.join_url(mid, "Bia", "VIEWER"))
    wait_for(bia, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    assert bia.find_element(By.ID, "prejoin-title").text == "Pronto para entrar?"
    assert bia.find_element(By.ID, "prejoin-join").text == "Entrar"
    assert bia.execute_script("return document.documentElement.lang") == "pt-BR"
    assert bia.execute_script("return window.meetplatform.locale") == "pt-BR"
    prejoin(bia)
    wait_joined(bia)
    assert bia.find_element(By.CSS_SELECTOR, "#leave-btn .tool-label").text == "Sair"
    # the classroom too: its controls' names and the slide's text alternative
    assert bia.find_element(By.ID, "next-page").get_attribute("aria-label") == "Próxima página"
    wait_for(bia, lambda d: d.find_element(By.ID, "slide-caption").text
             == "Quadro branco, página 1 de 1", "the slide's caption in Portuguese")

    dora = new_browser(lang="pt-BR")
    dora.get(bbb.join_url(mid, "Dora", "VIEWER",
                          **{"userdata-bbb_override_default_locale": "de"}))
    wait_for(dora, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    assert dora.find_element(By.ID, "prejoin-title").text == "Bereit zum Beitreten?"
    assert dora.execute_script("return window.meetplatform.locale") == "de"

    # a right-to-left language lays the page out from the right
    rana = new_browser()
    rana.get(bbb.join_url(mid, "Rana", "VIEWER",
                          **{"userdata-bbb_override_default_locale": "ar"}))
    wait_for(rana, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen")
    assert rana.execute_script("return document.documentElement.dir") == "rtl"
    assert rana.find_element(By.ID, "prejoin-join").text == "انضم"
    prejoin(rana)
    wait_joined(rana)
    assert rana.execute_script("return document.documentElement.scrollWidth <= innerWidth")


def test_skip_check_audio_joins_at_once(bbb: Bbb, new_browser: Browser) -> None:
    """userdata-bbb_skip_check_audio=true skips the pre-join screen: the page joins with
    the microphone (listen only when bbb_force_listen_only is also set)."""
    mid = meeting_id("skip")
    bbb.create(mid, "Skip check")
    eve = new_browser()
    eve.get(bbb.join_url(mid, "Eve", "VIEWER", **{
        "userdata-bbb_skip_check_audio": "true", "userdata-bbb_force_listen_only": "true"}))
    wait_joined(eve)
    wait_for(eve, lambda d: d.execute_script(
        "return window.meetplatform.media.audioMode") == "listen", "listen only")
    assert not eve.find_element(By.ID, "audio-dialog").is_displayed()
