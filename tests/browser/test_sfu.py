"""Meetings through Janus media nodes (issue 11): real Janus, real Chromium.

Janus never offers loopback candidates, so this module adds a veth pair *inside* the
suite's isolated network namespace (``unshare --net``; the fixture refuses any namespace
with an interface besides ``lo``) and runs two Janus nodes with ``ice_enforce_list`` on
it. Signalling stays on 127.0.0.1. The service runs as ``twistd -n meetplatform`` in a
subprocess, with the nodes added through ``meetplatform nodes add`` as an operator does.
Fake cameras play a 320x240 file (two cores are shared with other work).

Every wait is bounded and on a condition; only the issue's bounds (offline within 10 s,
video back within 20 s after ``kill -9``) are asserted on time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException

from tests.browser.conftest import WAIT
from tests.browser.helpers import (
    enter,
    meeting_id,
    start_camera,
    wait_for,
    wait_media_flowing,
)
from tests.browser.sfu_env import (
    Env,
    chromium,
    loud_voice,
    room_exists,
    room_participants,
    running_env,
    sfu_stats,
)
from tests.media.janus_process import JANUS, JanusProcess
from tests.netns import skip_unless_only_loopback

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(JANUS).exists(), reason="needs Janus (apt-get install janus)"),
]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    skip_unless_only_loopback()
    with running_env() as environment:
        yield environment


@pytest.fixture
def browser(env: Env, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Headless Chromium with a 320x240 fake camera (``video=False``: Chromium's own),
    host candidates not hidden behind mDNS (Janus must see them), the WebSocket frames in
    the performance log and ``flags`` added to its command line."""
    drivers: list[Any] = []
    profiles: list[str] = []

    def make(video: bool = True, flags: Sequence[str] = ()) -> Any:
        profile = tempfile.mkdtemp(prefix="mp-sfu-chromium-")
        profiles.append(profile)
        driver = chromium(env.video if video else None, profile, flags)
        drivers.append(driver)
        return driver

    yield make
    failed = getattr(request.node, "rep_call_failed", False)
    for index, driver in enumerate(drivers):
        if failed:
            out = Path(tempfile.gettempdir()) / "meetplatform-browser-failures"
            out.mkdir(exist_ok=True)
            try:
                lines = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
                (out / f"{request.node.name}-{index}.log").write_text("\n".join(lines))
            except WebDriverException:
                pass
        try:
            driver.quit()
        except WebDriverException as error:
            sys.stderr.write(f"could not quit chromedriver: {error}\n")
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)
    if failed:
        sys.stderr.write(env.log()[-20000:])


def decoded_from(stats: dict[str, Any]) -> dict[str, int]:
    """Decoded video frames per sending participant."""
    out: dict[str, int] = {}
    for stream in stats["streams"]:
        inbound = stats["inbound"].get(stream["mid"])
        if stream["type"] == "video" and stream["source"] == "camera" and inbound:
            out[stream["userId"]] = out.get(stream["userId"], 0) + inbound["frames"]
    return out


def wait_videos(driver: Any, senders: set[str], timeout: float = WAIT) -> None:
    """Wait until decoded frames from every one of ``senders`` are rising."""
    first: dict[str, int] = {}

    def rising(d: Any) -> bool:
        frames = decoded_from(sfu_stats(d))
        if not senders <= {u for u, n in frames.items() if n > 0}:
            return False
        if not first:
            first.update(frames)
            return False
        return all(frames.get(u, 0) > first.get(u, 0) for u in senders)

    wait_for(driver, rising, f"decoded video from {sorted(senders)} to rise", timeout)


def sending_cameras(driver: Any) -> list[str]:
    """Mids of the publisher's video streams that send bytes (one per camera)."""
    stats = sfu_stats(driver)
    return [mid for mid, o in stats["outbound"].items() if o["kind"] == "video" and o["bytes"]]


def frames_received(driver: Any) -> list[str]:
    """Payloads of every WebSocket frame the page received so far (performance log)."""
    payloads = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.webSocketFrameReceived":
            payloads.append(message["params"]["response"]["payloadData"])
    return payloads


def room_secret(node: JanusProcess, room: int) -> str:
    return hmac.new(node.config.admin_key.encode(), f"meetplatform room {room}".encode(),
                    hashlib.sha256).hexdigest()


def join(driver: Any, url: str, camera: bool = True) -> str:
    user = enter(driver, url, "join-microphone")
    if camera:
        start_camera(driver)
    wait_for(driver, lambda d: d.execute_script("return window.meetplatform.sfu.mode")
             == "sfu", "the SFU media path")
    return user


def _two_see_each_other(env: Env, browser: Callable[..., Any], mid: str, name: str,
                        server: str) -> tuple[Any, Any, str, str]:
    """A meeting placed on ``server`` (its ``preferredServer``), a moderator A and a viewer
    B in it, each receiving the other's video: ``(a, b, a_id, b_id)``."""
    env.bbb.create(mid, name, preferredServer=server)
    assert env.server_of(mid) == server
    a, b = browser(), browser()
    a_id = join(a, env.bbb.join_url(mid, "A", "MODERATOR"))
    b_id = join(b, env.bbb.join_url(mid, "B", "VIEWER"))
    wait_videos(a, {b_id})
    wait_videos(b, {a_id})
    return a, b, a_id, b_id


def _only_node_b_usable(env: Env) -> JanusProcess:
    """node-b running and online, node-a disabled (once getServers shows the service has
    read it); the caller enables node-a again."""
    node_b = env.nodes["node-b"]
    if node_b.process is None or node_b.process.poll() is not None:
        node_b.start()
    env.wait_online("node-b")
    env.cli("nodes", "disable", "node-a")
    deadline = time.monotonic() + WAIT
    while env.servers()["node-a"]["state"] != "disabled":  # the service read it
        assert time.monotonic() < deadline, "node-a not disabled in getServers"
        time.sleep(0.3)
    return node_b


def _forge(env: Env, token: str, requests: list[dict[str, Any]]) -> dict[str, str]:
    """Send ``requests`` over a socket of the seat ``token`` (as a crafted client would);
    each request id -> the error code (or "ack")."""
    import websocket

    url = env.base_url.replace("http://", "ws://") + f"/ws?sessionToken={token}"
    ws = websocket.create_connection(url, timeout=WAIT, origin=env.base_url)
    answers: dict[str, str] = {}
    try:
        while True:
            message = json.loads(ws.recv())
            if message["type"] == "joined":
                for request in requests:
                    ws.send(json.dumps(request))
            if message["type"] in ("ack", "error") and message.get("id") in {
                    r["id"] for r in requests}:
                answers[message["id"]] = message.get("code", "ack")
                if len(answers) == len(requests):
                    return answers
    finally:
        ws.close()


def click_person_action(driver: Any, user: str, action: str) -> None:
    driver.execute_script(
        "document.querySelector(`#people-list li[data-user-id=\"${arguments[0]}\"] "
        "button[data-action=\"${arguments[1]}\"]`).click()", user, action)


# --- the tests ----------------------------------------------------------------------------


def test_four_participants_through_one_node(env: Env, browser: Callable[..., Any]) -> None:
    """4 participants each receive the 3 others' video through the node and send one
    camera stream upstream; a moderator's mute and remove reach the media (VideoRoom
    ``moderate``/``kick``); no frame a browser receives holds a Janus secret."""
    mid = meeting_id("sfu4")
    env.bbb.create(mid, "Through a node")
    drivers = [browser() for _ in range(4)]
    users = [join(d, env.bbb.join_url(mid, f"P{i}", "MODERATOR" if i == 0 else "VIEWER"))
             for i, d in enumerate(drivers)]
    for driver, user in zip(drivers, users, strict=True):
        wait_videos(driver, set(users) - {user})
    for driver in drivers:
        assert sending_cameras(driver) and len(sending_cameras(driver)) == 1
        assert sfu_stats(driver)["meshPeers"] == 0
    node = env.nodes[env.server_of(mid)]
    (room, janus_participants), = [(r, p) for r, p in room_participants(node).items()
                                   if {x.get("display") for x in p} == set(users)]
    assert all(p["publisher"] for p in janus_participants)

    # mute P1: Janus moderates its microphone and tells its page
    click_person_action(drivers[0], users[1], "mute")
    wait_for(drivers[1], lambda d: sfu_stats(d)["moderated"] > 0, "Janus's moderation event")
    wait_for(drivers[1], lambda d: d.execute_script("return window.meetplatform.media.muted"),
             "P1's microphone muted")
    assert f"{users[1]} muted on media node" in env.log()

    # remove P3: kicked from the room on Janus, gone from everyone's page
    click_person_action(drivers[0], users[3], "remove")
    drivers[0].execute_script("document.getElementById('confirm-ok').click()")
    wait_for(drivers[0], lambda d: users[3] not in d.execute_script(
        "return window.meetplatform.participants.map(p => p.id)"), "P3 removed")

    def p3_gone_from_janus() -> bool:
        return users[3] not in {x.get("display") for x in room_participants(node).get(room, [])}

    deadline = time.monotonic() + WAIT
    while not p3_gone_from_janus():
        assert time.monotonic() < deadline, "P3 still in the Janus room"
        time.sleep(0.3)
    assert f"kicked {users[3]} from room {room}" in env.log()

    secrets_ = [node.config.api_secret, node.config.admin_secret, node.config.admin_key,
                room_secret(node, room)]
    for driver in drivers[:3]:
        frames = frames_received(driver)
        assert any('"media.offer"' in f for f in frames)
        for frame in frames:
            for secret in secrets_:
                assert secret not in frame
    env.bbb.end(mid)


def test_viewer_cannot_publish_under_webcams_only_for_moderator(
        env: Env, browser: Callable[..., Any]) -> None:
    """A viewer of a ``webcamsOnlyForModerator`` meeting is told it cannot share its
    camera, and a crafted ``media.publish`` with video is refused (``notAllowed``): Janus
    never has a publisher for it."""
    mid = meeting_id("sfuwebcam")
    env.bbb.create(mid, "Webcams for moderators", webcamsOnlyForModerator="true")
    moderator, viewer = browser(), browser()
    mod_id = join(moderator, env.bbb.join_url(mid, "Mod", "MODERATOR"))
    viewer_id = join(viewer, env.bbb.join_url(mid, "Viewer", "VIEWER"), camera=False)
    wait_videos(viewer, {mod_id})
    viewer.find_element("id", "camera-btn").click()
    wait_for(viewer, lambda d: "only moderators may share a camera" in d.find_element(
        "tag name", "body").text, "the notice")
    assert not viewer.execute_script("return window.meetplatform.media.camera")

    # A crafted client: the viewer's own session token, a real offer with audio and
    # video from its browser, and publish requests that lie about what the video is.
    offer = viewer.execute_async_script("""
const done = arguments[arguments.length - 1];
navigator.mediaDevices.getUserMedia({video: true, audio: true}).then(async (stream) => {
  const pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTransceiver(t, {direction: 'sendonly'});
  done((await pc.createOffer()).sdp);
}, (e) => done(String(e)));
""")
    assert "m=video" in offer
    token = viewer.execute_script("return sessionStorage.getItem('meetplatform.sessionToken')")
    forged = _forge(env, token, [
        {"type": "media.publish", "id": "f1",
         "data": {"sdp": offer, "sources": {"0": "mic", "1": "mic"}}},
        {"type": "media.publish", "id": "f2",
         "data": {"sdp": offer, "sources": {"0": "mic", "1": "screen"}}},
        {"type": "media.publish", "id": "f3", "data": {"sdp": offer}},
        {"type": "media", "id": "f4", "data": {"video": True}},
    ])
    assert forged == {"f1": "notAllowed", "f2": "notAllowed", "f3": "notAllowed",
                      "f4": "notAllowed"}
    node = env.nodes[env.server_of(mid)]
    publishers = {p["display"] for participants in room_participants(node).values()
                  for p in participants if p.get("publisher")}
    assert mod_id in publishers
    assert viewer_id not in publishers
    env.bbb.end(mid)


def test_placement_drain_and_failover(env: Env, browser: Callable[..., Any]) -> None:
    """preferredServer is honoured, meetings spread over the nodes, a drained node gets
    nothing new; ``kill -9`` of a node: getServers shows it offline within 10 s and the
    moved meeting's participants see video again within 20 s, without reloading and
    without duplicate participants."""
    first, third = meeting_id("pref"), meeting_id("drain")
    env.bbb.create(first, "Preferred", preferredServer="node-b")
    assert env.server_of(first) == "node-b"
    spread = []
    for n in range(2):
        servers = env.servers()
        least = min(servers.values(), key=lambda s: (float(s["load"]), int(s["meetings"]),
                                                     s["name"]))["name"]
        spread.append(meeting_id(f"spread{n}"))
        env.bbb.create(spread[-1], "Spread")
        assert env.server_of(spread[-1]) == least
    assert {env.server_of(m) for m in [first, *spread]} == {"node-a", "node-b"}
    env.cli("nodes", "drain", "node-a")
    try:
        env.wait_online("node-a")
        time.sleep(2.5)  # one reload interval: the service has read the new state
        env.bbb.create(third, "While draining", preferredServer="node-a")
        assert env.server_of(third) == "node-b"
    finally:
        env.cli("nodes", "enable", "node-a")
    for meeting in (first, *spread, third):
        env.bbb.end(meeting)

    mid = meeting_id("failover")
    a, b, a_id, b_id = _two_see_each_other(env, browser, mid, "Failover", "node-b")
    for driver in (a, b):
        driver.execute_script("window.__notReloaded = true")

    env.nodes["node-b"].kill()
    killed = time.monotonic()
    env.wait_online("node-b", online=False, timeout=10)
    assert time.monotonic() - killed <= 10
    wait_videos(a, {b_id}, timeout=20)
    wait_videos(b, {a_id}, timeout=max(1.0, 20 - (time.monotonic() - killed)))
    for driver in (a, b):
        assert driver.execute_script("return window.__notReloaded === true")
        assert sfu_stats(driver)["renegotiations"] >= 1
        ids = driver.execute_script("return window.meetplatform.participants.map(p => p.id)")
        assert sorted(ids) == sorted([a_id, b_id])
    assert env.server_of(mid) == "node-a"
    info = env.bbb.meeting_info(mid)
    assert info.findtext("participantCount") == "2"
    janus_users = [p["display"] for ps in room_participants(env.nodes["node-a"]).values()
                   if {x["display"] for x in ps} & {a_id, b_id} for p in ps]
    assert sorted(janus_users) == sorted([a_id, b_id])
    env.bbb.end(mid)


def test_unusable_nodes_leave_meetings_on_mesh(env: Env, browser: Callable[..., Any]) -> None:
    """With every node disabled and one with a wrong secret, a join completes in mesh
    (never hangs) and the log says why the node is not usable; an unknown node name is a
    clear CLI error."""
    bad = env.cli("nodes", "drain", "no-such-node", check=False)
    assert bad.returncode != 0 and "no-such-node" in (bad.stdout + bad.stderr)
    secrets_file = env.data_dir.parent / "bad.secrets"
    secrets_file.write_text("api_secret = wrong-api-secret-0123456789\n"
                            "admin_secret = wrong-admin-secret-0123456789\n"
                            "admin_key = wrong-admin-key-0123456789\n")
    secrets_file.chmod(0o600)
    node = env.nodes["node-a"]
    env.cli("nodes", "add", "node-bad", "--admin-url", node.admin_url, "--ws-url", node.ws_url,
            "--secret-file", str(secrets_file))
    env.cli("nodes", "disable", "node-a")
    env.cli("nodes", "disable", "node-b")
    try:
        deadline = time.monotonic() + WAIT
        while "media node node-bad is offline" not in env.log():
            assert time.monotonic() < deadline, "no log line about node-bad"
            time.sleep(0.3)
        mid = meeting_id("mesh")
        env.bbb.create(mid, "Mesh")
        driver = browser()
        enter(driver, env.bbb.join_url(mid, "Solo", "MODERATOR"))
        assert driver.execute_script("return window.meetplatform.sfu.mode") == "mesh"
        assert env.server_of(mid) == "meetplatform-test"
    finally:
        env.cli("nodes", "remove", "node-bad")
        env.cli("nodes", "enable", "node-a")
        env.cli("nodes", "enable", "node-b")


def test_resume_after_a_network_drop_through_a_node(env: Env,
                                                    browser: Callable[..., Any]) -> None:
    """A socket that drops comes back within the resume grace: the participant's Janus
    session is set up again and video flows both ways, with no duplicate participant."""
    mid = meeting_id("sfuresume")
    env.bbb.create(mid, "Resume")
    a, b = browser(), browser()
    a_id = join(a, env.bbb.join_url(mid, "A", "MODERATOR"))
    b_id = join(b, env.bbb.join_url(mid, "B", "VIEWER"))
    wait_videos(a, {b_id})
    wait_videos(b, {a_id})
    assert b.execute_script("return window.meetplatform.dropConnection()")
    wait_for(b, lambda d: d.execute_script("return window.meetplatform.connected"),
             "B reconnected")
    wait_videos(a, {b_id})
    wait_videos(b, {a_id})
    for driver in (a, b):
        ids = driver.execute_script("return window.meetplatform.participants.map(p => p.id)")
        assert sorted(ids) == sorted([a_id, b_id])

    def janus_users() -> list[str]:
        return sorted(p["display"] for ps in room_participants(
            env.nodes[env.server_of(mid)]).values()
            if {x["display"] for x in ps} & {a_id, b_id} for p in ps)

    # The dropped session's publisher leaves Janus when Janus notices (its own timeout
    # or the service's cleanup): wait for that instead of reading one moment.
    deadline = time.monotonic() + WAIT
    while (users := janus_users()) != sorted([a_id, b_id]):
        assert time.monotonic() < deadline, f"Janus still lists {users}"
        time.sleep(0.5)
    env.bbb.end(mid)


def test_without_a_usable_node_a_meeting_goes_mesh_and_comes_back(
        env: Env, browser: Callable[..., Any]) -> None:
    """The only usable node is killed: the meeting falls back to mesh (pages told, video
    flows browser to browser); when the node is back the meeting goes through it again,
    all without reloading."""
    node_b = _only_node_b_usable(env)
    try:
        mid = meeting_id("sfuback")
        env.bbb.create(mid, "Back and forth", preferredServer="node-b")
        assert env.server_of(mid) == "node-b"
        a, b = browser(), browser()
        a_id = join(a, env.bbb.join_url(mid, "A", "MODERATOR"))
        b_id = join(b, env.bbb.join_url(mid, "B", "VIEWER"))
        wait_videos(a, {b_id})
        wait_videos(b, {a_id})
        for driver in (a, b):
            driver.execute_script("window.__notReloaded = true")

        node_b.kill()
        for driver in (a, b):
            wait_for(driver, lambda d: d.execute_script(
                "return window.meetplatform.sfu.mode") == "mesh", "the fall-back to mesh")
        wait_media_flowing(a, b_id)
        wait_media_flowing(b, a_id)
        assert env.server_of(mid) == "meetplatform-test"

        node_b.start()
        for driver in (a, b):
            wait_for(driver, lambda d: d.execute_script(
                "return window.meetplatform.sfu.mode") == "sfu", "back through the node")
        wait_videos(a, {b_id})
        wait_videos(b, {a_id})
        assert env.server_of(mid) == "node-b"
        for driver in (a, b):
            assert driver.execute_script("return window.__notReloaded === true")
            assert sfu_stats(driver)["meshPeers"] == 0
        env.bbb.end(mid)
    finally:
        env.cli("nodes", "enable", "node-a")


def test_a_large_camera_is_sent_as_simulcast_and_subscribers_pick_a_layer(
        env: Env, browser: Callable[..., Any]) -> None:
    """A camera of 640 pixels or more goes up as simulcast (several encodings of one
    stream); the receiving page asks for a layer per tile (media.configure, VideoRoom
    ``configure`` with ``substream``) and keeps decoding."""
    mid = meeting_id("simulcast")
    env.bbb.create(mid, "Simulcast")
    sender, receiver = browser(video=False), browser()
    sender_id = join(sender, env.bbb.join_url(mid, "Big camera", "MODERATOR"))
    join(receiver, env.bbb.join_url(mid, "Watcher", "VIEWER"), camera=False)
    width = sender.execute_script(
        "return document.querySelector('#grid .tile.self video').videoWidth")
    assert width >= 640
    wait_videos(receiver, {sender_id})
    wait_for(sender, lambda d: max((o["encodings"] for o in sfu_stats(d)["outbound"].values()
                                    if o["kind"] == "video"), default=0) >= 2,
             "several simulcast encodings")
    wait_for(receiver, lambda d: d.execute_script(
        "return window.meetplatform.counters.sent['media.configure'] || 0") >= 1,
        "a layer choice")
    assert not receiver.execute_script(
        "return window.meetplatform.counters.received.error || 0")
    wait_videos(receiver, {sender_id})
    env.bbb.end(mid)


def test_screen_share_through_a_node(env: Env, browser: Callable[..., Any]) -> None:
    """The presenter's screen is its own published stream: the viewer shows it on the
    stage from the subscriber (source ``screen``), apart from the camera."""
    mid = meeting_id("sfuscreen")
    env.bbb.create(mid, "Screen")
    presenter, viewer = browser(), browser()
    presenter_id = join(presenter, env.bbb.join_url(mid, "Presenter", "MODERATOR"))
    join(viewer, env.bbb.join_url(mid, "Viewer", "VIEWER"), camera=False)
    wait_videos(viewer, {presenter_id})
    if not presenter.execute_script(
            "return window.meetplatform.participants.find(p => p.id === arguments[0])"
            ".presenter", presenter_id):
        click_person_action(presenter, presenter_id, "presenter")
    wait_for(presenter, lambda d: d.find_element("id", "screen-btn").is_enabled(),
             "the screen button")
    # (in a narrow window the button sits in the More menu: pressed as the menu would)
    presenter.execute_script("document.getElementById('screen-btn').click()")
    wait_for(presenter, lambda d: d.execute_script("return window.meetplatform.media.screen"),
             "the screen share")
    wait_for(viewer, lambda d: any(s["source"] == "screen" and s["userId"] == presenter_id
                                   for s in sfu_stats(d)["streams"]),
             "a screen stream in the subscription")
    wait_for(viewer, lambda d: d.execute_script(
        "const v = document.querySelector('#screen-stage video');"
        "return Boolean(v && v.videoWidth > 0 && v.getVideoPlaybackQuality()"
        ".totalVideoFrames > 0)"), "the screen on the stage")
    wait_videos(viewer, {presenter_id})  # the camera goes on, in its tile
    env.bbb.end(mid)


def _tile_classes(driver: Any, user: str) -> list[str]:
    classes: str = driver.execute_script(
        "const t = document.querySelector(`#grid .tile[data-user-id=\"${arguments[0]}\"]`);"
        "return t ? t.className : '';", user)
    return classes.split()


def test_a_speaker_janus_hears_is_outlined_on_the_listeners_page(
        env: Env, browser: Callable[..., Any], tmp_path: Path) -> None:
    """Janus's talking events feed the page's speaking indicator: the speaker's
    microphone plays a loud voice-like file (Chromium's own fake microphone is too quiet
    for VideoRoom's threshold); the listener's page gets a ``talking`` event for the
    speaker and outlines its tile; once the speaker mutes, the outline goes."""
    voice = tmp_path / "loud.wav"
    loud_voice(voice)
    mid = meeting_id("sfutalk")
    env.bbb.create(mid, "Speaking indicator")
    listener = browser()
    speaker = browser(flags=[f"--use-file-for-fake-audio-capture={voice}"])
    join(listener, env.bbb.join_url(mid, "Listener", "MODERATOR"), camera=False)
    speaker_id = join(speaker, env.bbb.join_url(mid, "Speaker", "VIEWER"))
    wait_videos(listener, {speaker_id})

    wait_for(listener, lambda d: "talking" in _tile_classes(d, speaker_id),
             "the speaker's tile outlined as speaking")
    events: list[dict[str, Any]] = []

    def talking_event(talking: bool) -> Callable[[Any], bool]:
        def seen(driver: Any) -> bool:
            for frame in frames_received(driver):
                message = json.loads(frame)
                if message.get("type") == "talking":
                    events.append(message.get("data") or {})
            return {"id": speaker_id, "talking": talking} in events
        return seen

    wait_for(listener, talking_event(True), "a talking event for the speaker")

    # (in a narrow window the button may sit in the More menu: pressed as the menu would)
    speaker.execute_script("document.getElementById('mic-btn').click()")
    wait_for(speaker, lambda d: d.execute_script("return window.meetplatform.media.muted"),
             "the speaker muted")
    wait_for(listener, lambda d: "talking" not in _tile_classes(d, speaker_id),
             "the outline gone once the speaker is muted")
    wait_for(listener, talking_event(False), "a stopped-talking event for the speaker")
    env.bbb.end(mid)


def _healthz(env: Env) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.base_url}/healthz", timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_a_restarted_janus_is_detected_and_its_meeting_comes_back(
        env: Env, browser: Callable[..., Any]) -> None:
    """The only usable node's Janus is killed and started again at once, on the same
    addresses, ports and configuration: the service sees a Janus that lost its rooms
    (marker room gone: ``Janus restarted`` in the log), reports the node online again
    (getServers, /healthz), the meeting's room exists again on that Janus and both
    pages receive video again, without reloading and without duplicate participants."""
    node_b = _only_node_b_usable(env)
    try:
        mid = meeting_id("restart")
        a, b, a_id, b_id = _two_see_each_other(env, browser, mid, "Janus restart", "node-b")
        renegotiations = {}
        for driver in (a, b):
            driver.execute_script("window.__notReloaded = true")
            renegotiations[driver] = sfu_stats(driver)["renegotiations"]
        logged = len(env.log_lines)

        node_b.kill()
        node_b.start()  # the same folder: the same ports, secrets and configuration
        deadline = time.monotonic() + WAIT
        while "media node node-b: Janus restarted" not in "".join(env.log_lines[logged:]):
            assert time.monotonic() < deadline, "the restart was not detected"
            time.sleep(0.3)
        env.wait_online("node-b")
        assert _healthz(env)["mediaNodes"]["node-b"]["health"] == "online"

        for driver in (a, b):
            wait_for(driver, lambda d: sfu_stats(d)["renegotiations"] > renegotiations[d]
                     and d.execute_script("return window.meetplatform.sfu.mode") == "sfu",
                     "renegotiated back through the node")
        wait_videos(a, {b_id})
        wait_videos(b, {a_id})
        assert env.server_of(mid) == "node-b"
        room = int(env.bbb.meeting_info(mid).findtext("voiceBridge"))
        assert room_exists(node_b, room)
        janus_users = [p["display"] for p in room_participants(node_b).get(room, [])]
        assert sorted(janus_users) == sorted([a_id, b_id])
        for driver in (a, b):
            assert driver.execute_script("return window.__notReloaded === true")
            assert sfu_stats(driver)["meshPeers"] == 0
            ids = driver.execute_script(
                "return window.meetplatform.participants.map(p => p.id)")
            assert sorted(ids) == sorted([a_id, b_id])
        assert env.bbb.meeting_info(mid).findtext("participantCount") == "2"
        env.bbb.end(mid)
    finally:
        env.cli("nodes", "enable", "node-a")
