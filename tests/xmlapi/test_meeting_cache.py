"""The cached getMeetings and getMeetingInfo answers (issue 14): after every kind of change a
meeting's rendering shows, every format answers at once what the uncached renderer
renders, byte for byte."""

from __future__ import annotations

import json

from meetplatform.model import EndReason, Meeting, Role
from meetplatform.xmlapi.meeting_xml import MeetingRenderer
from meetplatform.xmlapi.render import Items, json_body, xml_body
from tests.xmlapi.helpers import Env, make_env

JSON = {"Accept": ["application/json"]}


def _uncached(env: Env) -> MeetingRenderer:
    """A renderer with empty caches (its fixed parts depend on the spec only)."""
    return MeetingRenderer(env.registry)


def _assert_current(env: Env) -> None:
    """Every cached answer equals the uncached rendering of the registry as it is now."""
    fresh = _uncached(env)
    meetings = list(env.registry.meetings())
    listed: list = [("returncode", "SUCCESS"),
                    ("meetings", Items("meeting", [fresh.nodes(m) for m in meetings]))]
    if not meetings:
        listed += [("messageKey", "noMeetings"),
                   ("message", "no meetings were found on this server")]
    assert env.call("getMeetings").body == xml_body(listed)
    assert env.call("getMeetings", headers=JSON).body == json_body(listed)
    assert env.call("getMeetings", {"callback": "cb"}).body == json_body(listed, "cb")
    for meeting in meetings:
        info = [("returncode", "SUCCESS"), *fresh.nodes(meeting)]
        query = {"meetingID": meeting.spec.meeting_id}
        assert env.call("getMeetingInfo", query).body == xml_body(info)
        assert env.call("getMeetingInfo", query, headers=JSON).body == json_body(info)
        assert env.call("getMeetingInfo", {**query, "callback": "a.b"}).body == json_body(
            info, "a.b")


def _people(env: Env, meeting: Meeting, count: int) -> list:
    return [env.registry.connect(env.registry.issue_seat(
        meeting, full_name=f"<P{i}> & \u00e9", role=Role.MODERATOR if i == 0 else Role.VIEWER,
        external_user_id=f"ext-{meeting.spec.meeting_id}-{i}", userdata={"k": f"v{i}&"}))
        for i in range(count)]


def test_every_change_shows_at_once_in_every_format() -> None:
    env = make_env()
    env.create("aa", meta_origin="lms", attendeePW="ap", moderatorPW="mp")
    env.create("bb", name="B \u00fcber <b>")
    env.create("cc")
    _assert_current(env)  # fills every cache
    aa, bb = env.meeting("aa"), env.meeting("bb")

    people = _people(env, aa, 3)  # joins (MeetingStarted, presenter to the first moderator)
    _assert_current(env)
    env.registry.connect(env.registry.issue_seat(aa, full_name="Late", role=Role.VIEWER))
    _assert_current(env)  # a join into a running meeting (no MeetingStarted)
    env.registry.update_media(people[1], joined_voice=True, video_streams=2)
    _assert_current(env)
    env.registry.update_media(people[2], listen_only=True)
    _assert_current(env)
    env.registry.set_role(aa, people[2].user_id, Role.MODERATOR)
    _assert_current(env)
    env.registry.set_presenter(aa, people[1].user_id)
    _assert_current(env)
    # The same identity joins again: it replaces the old participant with the new seat.
    again = env.registry.issue_seat(aa, full_name="Renamed", role=Role.VIEWER,
                                    external_user_id="ext-aa-1")
    env.registry.connect(again)
    _assert_current(env)
    env.registry.disconnect(people[1])  # the presenter leaves: another one is chosen
    _assert_current(env)

    env.create("br", isBreakout="true", parentMeetingID=bb.internal_id, sequence="1")
    _assert_current(env)  # bb's <breakoutRooms> names it
    _people(env, env.meeting("br"), 1)
    _assert_current(env)
    env.registry.end_meeting(env.meeting("cc"), EndReason.ENDED_FROM_API)
    _assert_current(env)
    for participant in list(aa.participants.values()):
        env.registry.disconnect(participant)
    _assert_current(env)
    env.clock.advance(24 * 3600)  # timers end the empty meeting (and the others)
    _assert_current(env)
    assert not list(env.registry.meetings())
    env.create("aa")  # a new meeting with an old id
    _assert_current(env)


def test_a_join_and_a_leave_show_in_get_meetings_at_once() -> None:
    """A dashboard polling getMeetings sees a participant arrive and go on its next poll."""
    env = make_env()
    env.create("m1")
    env.create("m2")

    def count(name: str) -> list[str]:
        data = json.loads(env.call("getMeetings", headers=JSON).body)["response"]
        xml = env.call("getMeetings").xml
        from_xml = [m.findtext(name) for m in xml.findall("meetings/meeting")]
        assert from_xml == [str(m[name]).lower() for m in data["meetings"]]
        return from_xml

    assert count("participantCount") == ["0", "0"]
    seat = env.registry.issue_seat(env.meeting("m2"), full_name="Ann", role=Role.MODERATOR)
    assert count("participantCount") == ["0", "0"]  # a seat is not a participant yet
    ann = env.registry.connect(seat)
    assert count("participantCount") == ["0", "1"]
    assert count("running") == ["false", "true"]
    assert count("moderatorCount") == ["0", "1"]
    bob = env.registry.connect(env.registry.issue_seat(env.meeting("m2"), full_name="Bob",
                                                       role=Role.VIEWER))
    assert count("participantCount") == ["0", "2"]
    env.registry.disconnect(bob)
    assert count("participantCount") == ["0", "1"]
    env.registry.set_role(env.meeting("m2"), ann.user_id, Role.VIEWER)
    assert count("moderatorCount") == ["0", "0"]
    env.registry.disconnect(ann)
    assert count("participantCount") == ["0", "0"]
    assert count("running") == ["false", "false"]
    env.registry.end_meeting(env.meeting("m1"), EndReason.ENDED_FROM_API)
    assert count("meetingID") == ["m2"]


def test_ended_meetings_leave_the_caches() -> None:
    """Entries of ended meetings are dropped (the caches hold live meetings only)."""
    env = make_env()
    for i in range(5):
        env.create(f"m{i}")
    env.call("getMeetings")
    env.call("getMeetings", headers=JSON)
    renderer = env.api.renderer
    assert len(renderer._xml) == 5 and len(renderer._json) == 5
    for meeting in list(env.registry.meetings())[:3]:
        env.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    assert len(renderer._xml) == 2 and len(renderer._json) == 2
    assert not renderer._lists
