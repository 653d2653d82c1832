"""The conference page in real headless Chromium, against the real service.

Run inside a loopback-only network namespace (see tests/browser/conftest.py).
"""

from __future__ import annotations

import base64
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Bbb, Service, http_status
from tests.browser.helpers import (
    browser_errors,
    choose_audio,
    current_path,
    enter,
    meeting_id,
    participant,
    participant_ids,
    prejoin,
    start_camera,
    wait_for,
    wait_joined,
    wait_media_flowing,
)

pytestmark = pytest.mark.browser

Browser = Callable[..., Any]


def _text(driver: Any, element_id: str) -> str:
    result: str = driver.find_element(By.ID, element_id).text
    return result


def state(driver: Any, user_id: str, key: str) -> Any:
    """One field of a participant as the page knows it (None if it does not)."""
    return (participant(driver, user_id) or {}).get(key)


def _click_action(driver: Any, user_id: str, action: str) -> None:
    driver.find_element(By.ID, "tab-people").click()
    wait_for(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, f'#people-list li[data-user-id="{user_id}"] '
                         f'button[data-action="{action}"]').is_displayed(),
        f"the {action} button for {user_id}")
    driver.find_element(
        By.CSS_SELECTOR,
        f'#people-list li[data-user-id="{user_id}"] button[data-action="{action}"]').click()


def test_two_participants_exchange_audio_and_video(
        bbb: Bbb, new_browser: Browser) -> None:
    """Two people joining through BBB join URLs each receive the other's audio and video."""
    mid = meeting_id("media")
    bbb.create(mid, "Media check", welcome="Welcome to <b>%%CONFNAME%%</b>!")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    start_camera(ada)
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    start_camera(bob)

    # the page shows the meeting and has taken the token out of the address bar
    assert _text(ada, "meeting-name") == "Media check"
    assert "Welcome to Media check!" in _text(ada, "welcome")
    assert ada.find_element(By.CSS_SELECTOR, "#welcome b").text == "Media check"
    assert "sessionToken" not in current_path(bob)

    wait_media_flowing(bob, ada_id)
    wait_media_flowing(ada, bob_id)
    # remote audio is attached to an <audio> element per peer
    assert ada.execute_script(
        "return document.querySelector(`#audio-sink audio[data-user-id='${arguments[0]}']`)"
        ".srcObject.getAudioTracks().length", bob_id) == 1
    # the grid shows both, with names and roles
    wait_for(ada, lambda d: set(participant_ids(d)) == {ada_id, bob_id}, "both in the grid")
    tile = ada.find_element(By.CSS_SELECTOR, f'#grid .tile[data-user-id="{bob_id}"]')
    assert "Bob" in tile.text
    own = bob.find_element(By.CSS_SELECTOR, f'#grid .tile[data-user-id="{ada_id}"]')
    assert "Moderator" in own.text and "Presenter" in own.text
    assert not browser_errors(ada), browser_errors(ada)


def test_chat_crosses_including_api_messages(bbb: Bbb, new_browser: Browser) -> None:
    """Chat typed on one page appears on the other, and sendChatMessage reaches both."""
    mid = meeting_id("chat")
    bbb.create(mid, "Chat check")
    ada, bob = new_browser(), new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-audio-later")

    bob.find_element(By.ID, "chat-input").send_keys("hello <b>Ada</b>")
    bob.find_element(By.ID, "chat-send").click()
    wait_for(ada, lambda d: "hello <b>Ada</b>" in _text(d, "chat-messages"),
             "Bob's message on Ada's page, as text")
    assert not ada.find_elements(By.CSS_SELECTOR, ".chat-text b")
    ada.find_element(By.ID, "chat-input").send_keys("hi Bob")
    ada.find_element(By.ID, "chat-send").click()
    wait_for(bob, lambda d: "hi Bob" in _text(d, "chat-messages"), "Ada's reply")

    bbb.send_chat(mid, "Announcement from the LMS")
    for driver in (ada, bob):
        wait_for(driver, lambda d: "Announcement from the LMS" in _text(d, "chat-messages"),
                 "the API message")
    # each message appears once on each page
    for driver in (ada, bob):
        texts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".chat-text")]
        assert texts == ["hello <b>Ada</b>", "hi Bob", "Announcement from the LMS"]


def test_moderator_removes_a_participant(bbb: Bbb, service: Service,
                                         new_browser: Browser) -> None:
    """A moderator removes a viewer, whose browser lands on the removed page for good."""
    mid = meeting_id("remove")
    bbb.create(mid, "Removal check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"))
    wait_for(ada, lambda d: participant(d, bob_id) is not None, "Bob on Ada's page")

    _click_action(ada, bob_id, "remove")
    wait_for(ada, lambda d: d.find_element(By.ID, "confirm-dialog").is_displayed(),
             "the confirmation")
    ada.find_element(By.ID, "confirm-ok").click()

    wait_for(bob, lambda d: current_path(d).startswith("/client/ended?reason=removed"),
             "Bob's removed page")
    assert "You were removed from the meeting" in bob.find_element(By.TAG_NAME, "h1").text
    wait_for(ada, lambda d: participant(d, bob_id) is None, "Bob gone from Ada's page")
    assert participant_ids(ada) == [ada_id]
    # the link does not work any more
    assert bob.execute_script("return sessionStorage.length") == 0


def test_end_through_the_api_ends_both_pages(bbb: Bbb, new_browser: Browser) -> None:
    """`end` through the BBB API takes every participant's page to the ended page."""
    mid = meeting_id("end")
    bbb.create(mid, "End check")
    ada, bob = new_browser(), new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"))
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"))

    bbb.end(mid)
    for driver in (ada, bob):
        wait_for(driver, lambda d: current_path(d).startswith("/client/ended?reason="),
                 "the ended page")
        assert "The meeting has ended" in driver.find_element(By.TAG_NAME, "h1").text
        assert "organiser" in driver.find_element(By.ID, "message-text").text


def test_guest_waits_in_the_lobby_and_is_admitted(bbb: Bbb, new_browser: Browser) -> None:
    """A guest waits in the lobby until the moderator admits it, then sees the meeting."""
    mid = meeting_id("lobby")
    bbb.create(mid, "Lobby check", guestPolicy="ASK_MODERATOR")
    ada, guest = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")

    guest.get(bbb.join_url(mid, "Gina Guest", "VIEWER", guest="true"))
    prejoin(guest)
    wait_for(guest, lambda d: d.find_element(By.ID, "lobby-screen").is_displayed(),
             "the lobby screen")
    assert _text(guest, "lobby-meeting-name") == "Lobby check"
    assert not guest.find_element(By.ID, "meeting-screen").is_displayed()

    wait_for(ada, lambda d: d.execute_script(
        "return window.meetplatform.waitingGuests.length") == 1, "the waiting guest")
    assert "1 waiting" in _text(ada, "waiting-count")
    ada.find_element(By.ID, "tab-people").click()
    ada.find_element(By.CSS_SELECTOR, '#waiting-list button[data-action="admit"]').click()

    guest_id = wait_joined(guest)
    assert _text(guest, "meeting-name") == "Lobby check"
    wait_for(ada, lambda d: participant(d, guest_id) is not None, "the guest in the meeting")
    assert ada_id in participant_ids(guest)
    wait_for(ada, lambda d: not d.find_element(By.ID, "waiting-section").is_displayed(),
             "the waiting list emptied")


def test_guest_denied_sees_access_denied(bbb: Bbb, new_browser: Browser) -> None:
    """A guest the moderator denies lands on the access-denied page."""
    mid = meeting_id("deny")
    bbb.create(mid, "Deny check", guestPolicy="ASK_MODERATOR")
    ada, guest = new_browser(), new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    guest.get(bbb.join_url(mid, "Gus", "VIEWER", guest="true"))
    prejoin(guest)
    wait_for(guest, lambda d: d.find_element(By.ID, "lobby-screen").is_displayed(), "lobby")
    wait_for(ada, lambda d: d.execute_script(
        "return window.meetplatform.waitingGuests.length") == 1, "the waiting guest")
    ada.find_element(By.ID, "tab-people").click()
    ada.find_element(By.CSS_SELECTOR, '#waiting-list button[data-action="deny"]').click()
    wait_for(guest, lambda d: current_path(d) == "/client/ended?reason=denied", "denied page")
    assert "Access denied" in guest.find_element(By.TAG_NAME, "h1").text


def test_reload_resumes_the_same_participant(bbb: Bbb, new_browser: Browser) -> None:
    """Reloading the page within the grace period resumes the same participant, no duplicate."""
    mid = meeting_id("reload")
    bbb.create(mid, "Reload check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    start_camera(ada)
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    wait_media_flowing(bob, ada_id)
    ada.execute_script("window.__counted = []; window.addEventListener('meetplatform:"
                       "participantJoined', (e) => window.__counted.push(e.detail))")

    bob.refresh()
    assert current_path(bob) == "/client/join?resume=1"
    assert wait_joined(bob) == bob_id
    choose_audio(bob)
    wait_media_flowing(bob, ada_id)
    assert sorted(participant_ids(ada)) == sorted([ada_id, bob_id])
    assert ada.execute_script("return window.__counted") == []
    info = bbb.meeting_info(mid)
    assert info.findtext("participantCount") == "2"


def test_network_drop_reconnects_and_resumes(bbb: Bbb, new_browser: Browser) -> None:
    """After the socket drops the page reconnects by itself and stays the same participant."""
    mid = meeting_id("drop")
    bbb.create(mid, "Drop check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    start_camera(ada)
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"))
    bob.execute_script("window.__joined = 0; window.addEventListener('meetplatform:joined',"
                       " () => window.__joined++)")

    assert bob.execute_script("return window.meetplatform.dropConnection()")
    wait_for(bob, lambda d: d.execute_script("return window.__joined") == 1, "the resume")
    assert bob.execute_script("return window.meetplatform.selfId") == bob_id
    wait_for(bob, lambda d: d.execute_script("return window.meetplatform.connected"),
             "connected again")
    wait_media_flowing(bob, ada_id)
    assert sorted(participant_ids(ada)) == sorted([ada_id, bob_id])
    assert bob.find_element(By.ID, "connection-status").is_displayed() is False


def test_leaving_goes_to_the_logout_url(bbb: Bbb, service: Service,
                                        new_browser: Browser) -> None:
    """Leave takes the browser to the meeting's logoutURL and the others see it go."""
    mid = meeting_id("logout")
    logout = f"{service.base_url}/healthz"
    bbb.create(mid, "Logout check", logoutURL=logout)
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"))
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-audio-later")
    wait_for(ada, lambda d: participant(d, bob_id) is not None, "Bob on Ada's page")

    bob.find_element(By.ID, "leave-btn").click()
    wait_for(bob, lambda d: d.current_url == logout, "the logout URL")
    wait_for(ada, lambda d: participant(d, bob_id) is None, "Bob gone at once")
    assert participant_ids(ada) == [ada_id]


def test_leaving_without_logout_url_shows_the_left_page(bbb: Bbb,
                                                        new_browser: Browser) -> None:
    """Without a logoutURL, leaving shows the "you left" page."""
    mid = meeting_id("left")
    bbb.create(mid, "Left check")
    ada = new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    ada.find_element(By.ID, "leave-btn").click()
    wait_for(ada, lambda d: current_path(d) == "/client/ended?reason=left", "the left page")
    assert "You left the meeting" in ada.find_element(By.TAG_NAME, "h1").text


def test_moderator_controls(bbb: Bbb, new_browser: Browser) -> None:
    """Mute, make presenter, promote and demote reach the participant's page."""
    mid = meeting_id("mod")
    bbb.create(mid, "Moderation check")
    ada, bob = new_browser(), new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    wait_for(ada, lambda d: (participant(d, bob_id) or {}).get("muted") is False,
             "Bob unmuted on Ada's page")

    _click_action(ada, bob_id, "mute")
    wait_for(bob, lambda d: d.execute_script("return window.meetplatform.media.muted"),
             "Bob's microphone muted")
    wait_for(ada, lambda d: state(d, bob_id, "muted") is True, "Bob shown muted")
    assert "muted your microphone" in _text(bob, "notices")

    _click_action(ada, bob_id, "presenter")
    wait_for(bob, lambda d: state(d, bob_id, "presenter"), "Bob presenter")
    assert bob.find_element(By.ID, "screen-btn").is_enabled()

    _click_action(ada, bob_id, "promote")
    wait_for(bob, lambda d: d.find_element(By.ID, "end-btn").is_displayed(),
             "moderator controls on Bob's page")
    assert state(ada, bob_id, "role") == "MODERATOR"
    _click_action(ada, bob_id, "demote")
    wait_for(bob, lambda d: not d.find_element(By.ID, "end-btn").is_displayed(),
             "moderator controls gone")

    # raised hands show up and a moderator can lower them
    bob.find_element(By.ID, "hand-btn").click()
    wait_for(ada, lambda d: state(d, bob_id, "raisedHand"), "Bob's hand up")
    _click_action(ada, bob_id, "lower-hand")
    wait_for(bob, lambda d: not state(d, bob_id, "raisedHand"), "Bob's hand down")


def test_moderator_ends_the_meeting_for_all(bbb: Bbb, new_browser: Browser) -> None:
    """The moderator's End meeting button takes everyone to the ended page."""
    mid = meeting_id("endall")
    bbb.create(mid, "End for all")
    ada, bob = new_browser(), new_browser()
    enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"))
    assert not bob.find_element(By.ID, "end-btn").is_displayed()
    ada.find_element(By.ID, "end-btn").click()
    ada.find_element(By.ID, "confirm-ok").click()
    for driver in (ada, bob):
        wait_for(driver, lambda d: current_path(d)
                 == "/client/ended?reason=ENDED_BY_MODERATOR", "the ended page")
        assert "A moderator ended the meeting" in _text(driver, "message-text")


def test_listen_only_join(bbb: Bbb, new_browser: Browser) -> None:
    """Listen only joins the audio without a microphone; others see it and hear nothing."""
    mid = meeting_id("listen")
    bbb.create(mid, "Listen check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-listen-only")
    wait_for(ada, lambda d: (participant(d, bob_id) or {}).get("listenOnly"), "listen only")
    assert not bob.find_element(By.ID, "mic-btn").is_enabled()
    assert bob.execute_script("return navigator.mediaDevices && "
                              "window.meetplatform.media.audioMode") == "listen"
    # Bob hears Ada; Ada receives no audio from Bob
    wait_for(bob, lambda d: (inbound(d, ada_id) or {}).get("audio", 0) > 0, "Ada's audio")
    assert (inbound(ada, bob_id) or {}).get("audio", 0) == 0


def inbound(driver: Any, peer_id: str) -> dict[str, int] | None:
    from tests.browser.helpers import inbound_bytes

    return inbound_bytes(driver, peer_id)


def test_device_errors_are_explained(bbb: Bbb, new_browser: Browser) -> None:
    """A blocked camera and a missing microphone each get a clear message."""
    mid = meeting_id("devices")
    bbb.create(mid, "Devices check")
    blocked = new_browser(block_media=True)
    enter(blocked, bbb.join_url(mid, "Blocked", "MODERATOR"), audio="join-audio-later")
    blocked.find_element(By.ID, "camera-btn").click()
    wait_for(blocked, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#notices .notice.error[data-error="NotAllowedError"]'),
        "the permission error")
    assert "Permission to use your camera was denied" in _text(blocked, "notices")
    assert not blocked.execute_script("return window.meetplatform.media.camera")

    nodevice = new_browser(fake_media=False)
    enter(nodevice, bbb.join_url(mid, "No devices", "VIEWER"))
    nodevice.find_element(By.ID, "audio-btn").click()
    nodevice.find_element(By.ID, "join-microphone").click()
    wait_for(nodevice, lambda d: d.find_elements(By.CSS_SELECTOR, "#notices .notice.error"),
             "the device error")
    assert "No microphone was found" in _text(nodevice, "notices")
    assert nodevice.execute_script("return window.meetplatform.media.audioMode") == "none"


def test_invalid_links_show_clear_pages(service: Service, new_browser: Browser) -> None:
    """A join page with no token or an unknown token explains itself in HTML."""
    assert http_status(f"{service.base_url}/client/join") == 400
    driver = new_browser()
    driver.get(f"{service.base_url}/client/join?sessionToken=AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert "not valid" in driver.find_element(By.TAG_NAME, "h1").text
    # the resume address in a fresh tab has nothing to resume
    driver.get(f"{service.base_url}/client/join?resume=1")
    wait_for(driver, lambda d: d.find_element(By.ID, "error-screen").is_displayed(),
             "the error screen")
    assert "incomplete" in _text(driver, "error-title")
    # a stored token the service does not know (a tab that had joined before, e.g. before
    # a restart): the socket is refused, the page says why
    driver.execute_script("sessionStorage.setItem('meetplatform.sessionToken', arguments[0]);"
                          " sessionStorage.setItem('meetplatform.entered', arguments[0])",
                          "B" * 32)
    driver.refresh()
    wait_for(driver, lambda d: d.find_element(By.ID, "error-screen").is_displayed()
             and "not valid" in _text(d, "error-title"), "the refused-link error")


def test_presenter_shares_the_screen(bbb: Bbb, new_browser: Browser) -> None:
    """The presenter's screen share appears large on the other page, and goes when stopped."""
    mid = meeting_id("screen")
    bbb.create(mid, "Screen check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-audio-later")
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-audio-later")
    assert not bob.find_element(By.ID, "screen-btn").is_enabled()  # not the presenter

    ada.find_element(By.ID, "screen-btn").click()
    wait_for(ada, lambda d: d.execute_script("return window.meetplatform.media.screen"),
             "sharing started")
    frames: dict[str, int] = {}

    def screen_frames(d: Any) -> bool:
        state = d.execute_script(
            "const v = document.querySelector('#screen-stage video');"
            "return v && {w: v.videoWidth, f: v.getVideoPlaybackQuality().totalVideoFrames,"
            " owner: document.getElementById('screen-stage').dataset.userId}")
        if not state or state["w"] <= 0 or state["owner"] != ada_id:
            return False
        frames.setdefault("first", state["f"])
        return bool(state["f"] > frames["first"])

    wait_for(bob, screen_frames, "Ada's screen playing on Bob's stage")
    assert "Ada's screen" in _text(bob, "screen-stage")
    ada.find_element(By.ID, "screen-btn").click()
    wait_for(bob, lambda d: not d.find_element(By.ID, "screen-stage").is_displayed(),
             "the stage gone after sharing stopped")


def test_camera_and_microphone_toggle(bbb: Bbb, new_browser: Browser) -> None:
    """Stopping the camera shows the avatar to others, starting it again shows video; muting
    and unmuting shows on the other page."""
    mid = meeting_id("toggle")
    bbb.create(mid, "Toggle check")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    start_camera(ada)
    enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-audio-later")
    wait_media_flowing(bob, ada_id)
    tile = f'#grid .tile[data-user-id="{ada_id}"]'

    ada.find_element(By.ID, "camera-btn").click()
    wait_for(bob, lambda d: "has-video" not in d.find_element(
        By.CSS_SELECTOR, tile).get_attribute("class"), "Ada's avatar instead of video")
    assert bob.find_element(By.CSS_SELECTOR, f"{tile} .avatar").is_displayed()
    start_camera(ada)
    wait_media_flowing(bob, ada_id)

    ada.find_element(By.ID, "mic-btn").click()
    wait_for(bob, lambda d: state(d, ada_id, "muted"), "Ada shown muted")
    assert bob.find_elements(By.CSS_SELECTOR, f'{tile} .icon[data-icon="mic-off"]')
    ada.find_element(By.ID, "mic-btn").click()
    wait_for(bob, lambda d: not state(d, ada_id, "muted"), "Ada shown unmuted")


class _Crowd:
    """Participants without a browser: a WebSocket each, opened over a raw TCP socket
    with the session token of a BBB join (they never read after the handshake; the
    kernel's buffers hold what the server writes them)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.sockets: list[socket.socket] = []

    def token(self, url: str) -> str:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(url, timeout=30)
        except urllib.error.HTTPError as redirect:
            location = redirect.headers["Location"]
        else:
            raise AssertionError("join did not redirect")
        return parse_qs(urlsplit(location).query)["sessionToken"][0]

    def open(self, tokens: list[str]) -> None:
        """Send every handshake first, then read every 101 (the joins land together)."""
        base = urlsplit(self.service.base_url)
        opened = []
        for token in tokens:
            sock = socket.create_connection((base.hostname, base.port), timeout=30)
            sock.sendall((f"GET /ws?sessionToken={token} HTTP/1.1\r\nHost: {base.netloc}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                          f"Sec-WebSocket-Version: 13\r\nOrigin: {self.service.base_url}\r\n"
                          "\r\n").encode())
            opened.append(sock)
        for sock in opened:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, "the server closed a crowd socket"
                head += chunk
            assert head.startswith(b"HTTP/1.1 101 "), head[:80]
        self.sockets += opened

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_a_page_in_a_big_room_lists_joiners_announced_together(
        bbb: Bbb, service: Service, new_browser: Browser) -> None:
    """In a room of 100 sockets and more, joins are announced several at a time
    (participantsJoined): the page of a participant there lists every one of them, and
    tells its embedding page of each."""
    mid = meeting_id("hall")
    bbb.create(mid, "Lecture hall")
    crowd = _Crowd(service)
    try:
        crowd.open([crowd.token(bbb.join_url(mid, f"Listener {i}")) for i in range(100)])
        ada = new_browser()
        enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"))
        wait_for(ada, lambda d: len(participant_ids(d)) == 101, "the first screen's roster")
        ada.execute_script("window.__told = []; window.addEventListener("
                           "'meetplatform:participantJoined', (e) => window.__told.push("
                           "e.detail.name))")
        late = [f"Latecomer {i}" for i in range(5)]
        crowd.open([crowd.token(bbb.join_url(mid, name)) for name in late])
        wait_for(ada, lambda d: len(participant_ids(d)) == 106, "the five latecomers")
        names = ada.execute_script("return window.meetplatform.participants.map(p => p.name)")
        assert sorted(n for n in names if n.startswith("Latecomer")) == late
        assert sorted(ada.execute_script("return window.__told")) == late
        received = ada.execute_script("return window.meetplatform.counters.received")
        assert received.get("participantsJoined", 0) >= 1, received
        assert browser_errors(ada) == []
    finally:
        crowd.close()
