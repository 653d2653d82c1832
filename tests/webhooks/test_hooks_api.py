"""bbb-webhooks on the XML API: hooks/create, list, destroy, and what the hooks receive."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from meetplatform.model import EndReason, Role
from tests.support import SECRET
from tests.webhooks.harness import FakeSender, Sent, World


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def bbb_events(sent: list[Sent], path: str = "/hook") -> list[dict[str, Any]]:
    """The events hook callbacks carried, after checking each checksum as a receiver
    does (sha1 of the callback URL, the body and the shared secret)."""
    out = []
    for request in sent:
        if request.path != path:
            continue
        url, _, checksum = request.url.rpartition("checksum=")
        callback_url = url[:-1]
        expected = hashlib.sha1((callback_url + request.body.decode() + SECRET).encode())
        assert checksum == expected.hexdigest(), request.url
        assert request.method == "POST" and not request.guarded
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = request.form
        assert form["domain"] == "meet.example.test" and form["timestamp"].isdigit()
        out.extend(json.loads(form["event"]))
    return out


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["id"] for e in events]


def test_create_answers_like_bbb_webhooks(w: World) -> None:
    """hooks/create answers hookID, permanentHook and rawData; the same URL again answers
    the existing hook with duplicateWarning."""
    answer = w.call("hooks/create", {"callbackURL": "http://127.0.0.1:9/hook",
                                     "getRaw": "TRUE"})
    assert answer.returncode == "SUCCESS"
    hook_id = answer.text("hookID")
    assert hook_id and len(hook_id) == 36
    assert answer.text("permanentHook") == "false" and answer.text("rawData") == "true"
    again = w.call("hooks/create", {"callbackURL": "http://127.0.0.1:9/hook"})
    assert again.returncode == "SUCCESS" and again.text("hookID") == hook_id
    assert again.key == "duplicateWarning"
    assert again.text("message") == "There is already a hook for this callback URL."


@pytest.mark.parametrize(("params", "key"), [
    ({}, "missingParamCallbackURL"),
    ({"callbackURL": "javascript:alert(1)"}, "createHookError"),
    ({"callbackURL": "http://x/", "getRaw": "maybe"}, "createHookError"),
    ({"callbackURL": "http://x/", "eventID": "user joined"}, "createHookError"),
    ({"callbackURL": "http://x/", "meetingID": "m" * 300}, "createHookError"),
])
def test_create_refuses_bad_parameters(w: World, params: dict[str, str], key: str) -> None:
    """Missing or malformed parameters answer bbb-webhooks' messageKeys."""
    answer = w.call("hooks/create", params)
    assert answer.returncode == "FAILED" and answer.key == key


def test_hooks_calls_need_their_checksum(w: World) -> None:
    """The checksum covers the call name hooks/create (a create checksum does not fit)."""
    from meetplatform.checksum import checksum

    query = "callbackURL=http%3A%2F%2Fx%2F"
    wrong = checksum("create", query, SECRET, "sha1")
    answer = w.xml.request("GET", "http://meet.example.test/bigbluebutton/api/hooks/create?"
                                  f"{query}&checksum={wrong}")
    assert answer.key == "checksumError"
    assert w.call("hooks/list").text("hooks") == ""


def test_list_and_destroy(w: World) -> None:
    """hooks/list shows every hook (meetingID and eventID when set); with a meetingID,
    the global hooks and that meeting's; hooks/destroy removes one."""
    global_id = w.hook("http://127.0.0.1:9/all")
    mine = w.hook("http://127.0.0.1:9/mine", meetingID="m1", eventID="user-joined,MEETING-ENDED")
    w.hook("http://127.0.0.1:9/other", meetingID="m2")
    listed = w.call("hooks/list")
    hooks = {h.findtext("hookID"): h for h in listed.xml.iterfind("hooks/hook")}
    assert len(hooks) == 3
    assert hooks[global_id].find("meetingID") is None
    assert hooks[mine].findtext("meetingID") == "m1"
    assert hooks[mine].findtext("eventID") == "user-joined,meeting-ended"
    assert hooks[mine].findtext("callbackURL") == "http://127.0.0.1:9/mine"
    for_m1 = w.call("hooks/list", {"meetingID": "m1"})
    assert sorted(h.findtext("hookID") for h in for_m1.xml.iterfind("hooks/hook")) == sorted(
        [global_id, mine])
    removed = w.call("hooks/destroy", {"hookID": mine})
    assert removed.returncode == "SUCCESS" and removed.text("removed") == "true"
    again = w.call("hooks/destroy", {"hookID": mine})
    assert again.key == "destroyMissingHook"
    assert again.text("message") == "The hook informed was not found."
    assert w.call("hooks/destroy").key == "missingParamHookID"
    assert len(w.call("hooks/list").xml.findall("hooks/hook")) == 2


def test_every_event_type_reaches_a_global_hook(w: World) -> None:
    """A global hook receives every event the platform has, in order, as bbb-webhooks
    sends them: created, joined, audio, mute, camera, screenshare, presenter, hand, role,
    chat, the lobby, left (the presenter passing on), ended."""
    w.hook("http://127.0.0.1:9/hook")
    w.xml.create("m1", attendeePW="ap", moderatorPW="mp", guestPolicy="ASK_MODERATOR",
                 meta_origin="lms")
    meeting = w.registry.get_meeting("m1")
    assert meeting is not None
    mod = w.join(meeting, "Mod", Role.MODERATOR, external_user_id="mod-1")
    viewer = w.join(meeting, "Vic", Role.VIEWER)
    r = w.registry
    r.update_media(viewer, joined_voice=True)
    r.update_media(viewer, muted=False)
    r.update_media(viewer, muted=True)
    r.update_media(viewer, video_streams=1)
    r.update_media(viewer, video_streams=0)
    r.update_media(viewer, screen_sharing=True)
    r.update_media(viewer, screen_sharing=False)
    r.update_media(viewer, joined_voice=False)
    r.update_media(viewer, listen_only=True)
    r.set_presenter(meeting, viewer.user_id)
    r.set_raised_hand(viewer, True)
    r.set_raised_hand(viewer, False)
    r.set_role(meeting, viewer.user_id, Role.MODERATOR)
    r.send_chat(meeting, "hello", "Mod", mod)
    guest = r.issue_seat(meeting, full_name="Guest", role=Role.VIEWER, guest=True)
    r.guest_waiting(guest)
    r.admit_guest(guest, mod)
    denied = r.issue_seat(meeting, full_name="Nope", role=Role.VIEWER, guest=True)
    r.deny_guest(denied, mod)
    r.disconnect(viewer)
    r.end_meeting(meeting, EndReason.ENDED_FROM_API)
    w.turn()
    events = bbb_events(w.sender.sent)
    assert names(events) == [
        "meeting-created", "user-joined", "user-joined",
        "user-audio-voice-enabled", "user-audio-unmuted", "user-audio-muted",
        "user-cam-broadcast-start", "user-cam-broadcast-end",
        "meeting-screenshare-started", "meeting-screenshare-stopped",
        "user-audio-voice-disabled", "user-audio-voice-enabled",
        "user-presenter-unassigned", "user-presenter-assigned",
        "user-raise-hand-changed", "user-raise-hand-changed", "user-role-changed",
        "chat-group-message-sent", "guest-waiting", "guest-admitted", "guest-denied",
        "user-left", "user-presenter-assigned", "user-left", "meeting-ended",
    ]
    created = events[0]["data"]
    meeting_attrs = created["attributes"]["meeting"]
    assert meeting_attrs["external-meeting-id"] == "m1"
    assert meeting_attrs["internal-meeting-id"] == meeting.internal_id
    assert meeting_attrs["moderator-pass"] == "mp" and meeting_attrs["viewer-pass"] == "ap"
    assert meeting_attrs["metadata"] == {"origin": "lms"}
    assert created["type"] == "event" and created["event"]["ts"] == int(w.clock.seconds() * 1000)
    joined = events[1]["data"]["attributes"]["user"]
    assert joined == {"internal-user-id": mod.user_id, "external-user-id": "mod-1",
                      "name": "Mod", "role": "MODERATOR", "presenter": "true", "guest": False}
    voice = events[3]["data"]["attributes"]["user"]
    assert voice["listening-only"] is False and voice["sharing-mic"] is True
    listen = events[11]["data"]["attributes"]["user"]
    assert listen["listening-only"] is True and listen["sharing-mic"] is False
    assert events[6]["data"]["attributes"]["user"]["stream"] == f"{viewer.user_id}-1"
    assert [e["data"]["attributes"]["user"]["raise-hand"] for e in events[14:16]] == [
        True, False]
    chat = events[17]["data"]["attributes"]["chat-message"]
    assert chat["message"] == "hello" and chat["sender"]["internal-user-id"] == mod.user_id
    assert events[-1]["data"]["attributes"]["meeting"]["end-reason"] == "ENDED_FROM_API"
    ids = [e["data"]["event"]["id"] for e in events]
    assert len(set(ids)) == len(ids) and all(i.startswith("evt_") for i in ids)


def test_meeting_and_event_filters(w: World) -> None:
    """A hook with a meetingID gets that meeting's events only; one with eventID only
    the events named (any case)."""
    w.hook("http://127.0.0.1:9/m2-only", meetingID="m2")
    w.hook("http://127.0.0.1:9/ends", eventID="MEETING-ENDED,user-left")
    for meeting_id in ("m1", "m2"):
        meeting = w.meeting(meeting_id)
        person = w.join(meeting, "Ann")
        w.registry.disconnect(person)
        w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        w.turn()
    only_m2 = bbb_events(w.sender.sent, "/m2-only")
    assert {e["data"]["attributes"]["meeting"]["external-meeting-id"] for e in only_m2} == {"m2"}
    assert names(only_m2) == ["meeting-created", "user-joined", "user-left", "meeting-ended"]
    ends = bbb_events(w.sender.sent, "/ends")
    assert names(ends) == ["user-left", "meeting-ended"] * 2


def test_raw_hooks_get_the_internal_message_shape(w: World) -> None:
    """getRaw=true hooks get envelope/core messages named like BigBlueButton's."""
    w.hook("http://127.0.0.1:9/raw", getRaw="true")
    meeting = w.meeting("m1")
    w.join(meeting, "Ann")
    sent = [s for s in w.sender.sent if s.path == "/raw"]
    raw = [json.loads(s.form["event"])[0] for s in sent]
    assert [r["envelope"]["name"] for r in raw] == ["MeetingCreatedEvtMsg",
                                                     "UserJoinedMeetingEvtMsg"]
    assert raw[1]["core"]["header"]["meetingId"] == meeting.internal_id
    assert raw[1]["core"]["body"]["user"]["name"] == "Ann"
    assert raw[1]["envelope"]["id"].startswith("evt_")


def test_hooks_are_signed_with_the_algorithm_they_were_created_with(w: World) -> None:
    """A hook created with a sha256 checksum gets sha256 callback checksums."""
    answer = w.call("hooks/create", {"callbackURL": "http://127.0.0.1:9/s256"},
                    algorithm="sha256")
    assert answer.returncode == "SUCCESS"
    w.meeting("m1")
    (request,) = [s for s in w.sender.sent if s.path == "/s256"]
    checksum = request.url.rpartition("checksum=")[2]
    callback_url = "http://127.0.0.1:9/s256"
    assert checksum == hashlib.sha256(
        (callback_url + request.body.decode() + SECRET).encode()).hexdigest()


def test_end_callback_url_is_called_with_recording_marks(w: World) -> None:
    """meta_endCallbackUrl gets a GET when the meeting ends, with recordingmarks added
    (false: nothing was recorded); meetingEndedURL too."""
    w.xml.create("m1", meta_endCallbackUrl="http://127.0.0.1:9/end?meetingID=m1",
                 meetingEndedURL="http://127.0.0.1:9/ended")
    meeting = w.registry.get_meeting("m1")
    assert meeting is not None
    assert w.sender.sent == []
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    w.turn()
    calls = sorted((s.method, s.url) for s in w.sender.sent)
    assert calls == [("GET", "http://127.0.0.1:9/end?meetingID=m1&recordingmarks=false"),
                     ("GET", "http://127.0.0.1:9/ended")]


def test_a_hook_that_answers_401_is_done(tmp_path: Path) -> None:
    """bbb-webhooks counts 401 as delivered (the receiver refused, retrying won't help)."""
    sender = FakeSender(status=lambda sent: 401)
    w = World(tmp_path, sender=sender)
    w.hook("http://127.0.0.1:9/hook")
    w.meeting("m1")
    w.meeting("m2")
    assert len(sender.sent) == 2 and w.webhooks.dispatcher.failed == 0
    assert urlsplit(sender.sent[0].url).path == "/hook"
