"""Recording without a media node, in real headless Chromium against the real service.

The browser tests' service has no media node: meetings run browser to browser (mesh),
and recording needs a node (docs/recordings.md). A meeting created with ``record=true``
and ``autoStartRecording=true`` must not pretend: no REC badge, no "being recorded"
notice, the moderator's Start button marked unavailable with the reason, a start refused.

Run inside a loopback-only network namespace (see tests/browser/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Bbb
from tests.browser.helpers import browser_errors, enter, meeting_id, wait_for

pytestmark = pytest.mark.browser

Browser = Callable[..., Any]

UNAVAILABLE = "recording needs a media node and this meeting runs without one"
REASON = "Recording is not available: it needs a media node"


def notices(driver: Any) -> list[str]:
    result: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#notices .notice-text')]"
        ".map(n => n.textContent)")
    return result


def meeting(driver: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_script("return window.meetplatform.meeting")
    return result


def clear_notices(driver: Any) -> None:
    """Dismiss the notices shown so far (they also time out by themselves)."""
    driver.execute_script("document.getElementById('notices').replaceChildren()")


def sent(driver: Any, kind: str) -> int:
    result: int = driver.execute_script(
        "return window.meetplatform.counters.sent[arguments[0]] || 0", kind)
    return result


def test_a_mesh_meeting_created_with_recording_says_it_cannot_record(
        bbb: Bbb, new_browser: Browser) -> None:
    mid = meeting_id("recmesh")
    bbb.create(mid, "Mesh recording", record="true", autoStartRecording="true")
    mod = new_browser()
    enter(mod, bbb.join_url(mid, "Mod", role="MODERATOR"))
    ann = new_browser()
    enter(ann, bbb.join_url(mid, "Ann"))

    # The moderator is told once, on joining; nobody is told they are being recorded.
    wait_for(mod, lambda d: any(UNAVAILABLE in n for n in notices(d)),
             "the moderator's notice that recording is unavailable")
    m = meeting(mod)
    assert (m["record"], m["recording"], m["recordingAvailable"]) == (True, False, False)
    for driver in (mod, ann):
        assert not driver.find_element(By.ID, "recording-badge").is_displayed()
        assert not driver.find_elements(By.CSS_SELECTOR, "#recording-badge.live")
        assert not any("being recorded" in n for n in notices(driver))
    assert not any(UNAVAILABLE in n for n in notices(ann))
    assert not ann.find_element(By.ID, "recording-btn").is_displayed()

    # The Start button says why it cannot (focusable, aria-disabled, title and name).
    button = mod.find_element(By.ID, "recording-btn")
    assert button.is_displayed() and button.is_enabled()
    assert button.get_attribute("aria-disabled") == "true"
    assert (button.get_attribute("title") or "").startswith(REASON)
    label = button.get_attribute("aria-label") or ""
    assert label.startswith("Start recording: ") and REASON in label
    assert button.text == "Start recording"
    clear_notices(mod)
    button.click()  # explains again, asks nothing of the server
    wait_for(mod, lambda d: any(UNAVAILABLE in n for n in notices(d)),
             "the explanation on clicking")
    assert sent(mod, "recording") == 0

    # A page that believes it could (as after a move): the server refuses the start with
    # recordingUnavailable, and the page goes back to saying so.
    mod.execute_script("window.meetplatform.meeting.recordingAvailable = true")
    clear_notices(mod)
    mod.find_element(By.ID, "recording-btn").click()
    wait_for(mod, lambda d: sent(d, "recording") == 1 and any(
        UNAVAILABLE in n for n in notices(d)), "the server's refusal")
    wait_for(mod, lambda d: meeting(d)["recordingAvailable"] is False,
             "the page to take the refusal")
    assert mod.find_element(By.ID, "recording-btn").get_attribute("aria-disabled") == "true"
    assert not any("Could not" in n for n in notices(mod))  # not a generic failure
    for driver in (mod, ann):
        assert meeting(driver)["recording"] is False
        assert not driver.find_element(By.ID, "recording-badge").is_displayed()
        assert not any("being recorded" in n for n in notices(driver))
    assert bbb.meeting_info(mid).findtext("recording") == "false"
    for driver in (mod, ann):
        assert browser_errors(driver) == []
