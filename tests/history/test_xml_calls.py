"""getMeetingEvents (Mconf-LB) and getStats (Mconf-Live) over the durable history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from meetplatform.model import EndReason, Role
from tests.webhooks.harness import World


def at(text: str) -> float:
    """Seconds since the epoch of an ISO date-time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.clock.advance(at("2024-01-10T09:00:00") - world.clock.seconds())
    return world


def held(w: World, meeting_id: str, *, users: int = 1, minutes: int = 30,
         **create: Any) -> None:
    """Create ``meeting_id`` through the API, let ``users`` people join, end it."""
    w.xml.create(meeting_id, **create)
    meeting = w.registry.get_meeting(meeting_id)
    assert meeting is not None
    for n in range(users):
        w.join(meeting, f"User {n}", Role.MODERATOR if n == 0 else Role.VIEWER)
    w.advance(minutes * 60)
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)


def events(answer: etree._Element) -> list[str]:
    return [e.findtext("meetingID") or "" for e in answer.iterfind("events/event")]


def test_no_parameters_lists_meetings_with_users_newest_first(w: World) -> None:
    """Without parameters: meetings that had at least one user, newest first, each with
    its server, users (role, join time) and the create parameters."""
    held(w, "first", users=2, attendeePW="ap", moderatorPW="mp", meta_room="7")
    w.advance(3600)
    held(w, "empty", users=0)
    w.advance(3600)
    held(w, "second")
    answer = w.call("getMeetingEvents")
    assert answer.returncode == "SUCCESS"
    assert events(answer.xml) == ["second", "first"]
    first = answer.xml.find("events/event[2]")
    assert first is not None
    created = int(at("2024-01-10T09:00:00") * 1000)
    assert first.findtext("name") == "Meeting first"
    assert first.findtext("createdAt") == str(created)
    assert first.findtext("endedAt") == str(created + 30 * 60_000)
    assert first.findtext("server/name") == "meetplatform"
    assert first.findtext("server/url") == "https://meet.example.test"
    users = [(u.findtext("name"), u.findtext("role"), u.findtext("createdAt"))
             for u in first.iterfind("users/user")]
    assert users == [("User 0", "moderator", str(created)),
                     ("User 1", "attendee", str(created))]
    query = {child.tag: child.text for child in first.find("query")}  # type: ignore[union-attr]
    assert query == {"meetingID": "first", "name": "Meeting first", "meta_room": "7"}
    assert "ap" not in answer.body.decode() and "mp<" not in answer.body.decode()


def test_empty_answer(w: World) -> None:
    """Nothing to list: SUCCESS with an empty <events/>, as the specification shows."""
    answer = w.call("getMeetingEvents")
    assert answer.body == (b"<response><returncode>SUCCESS</returncode><events/></response>")


def test_users_filter_counts_distinct_users_and_zero_includes_empty_meetings(w: World) -> None:
    """users=N keeps meetings with at least N distinct users; users=0 lists those nobody
    joined too, with an empty <users/>."""
    held(w, "one", users=1)
    held(w, "three", users=3)
    held(w, "none", users=0)
    assert events(w.call("getMeetingEvents", "users=2").xml) == ["three"]
    answer = w.call("getMeetingEvents", "users=0")
    assert events(answer.xml) == ["none", "three", "one"]
    assert b"<users/>" in answer.body


def test_a_user_joining_twice_is_one_user_with_two_entries(w: World) -> None:
    """Each join is a <user> block, but a user who came back counts once for ``users``."""
    w.xml.create("mm")
    meeting = w.registry.get_meeting("mm")
    assert meeting is not None
    ann = w.join(meeting, "Ann", external_user_id="ann")
    w.registry.disconnect(ann)
    w.join(meeting, "Ann", external_user_id="ann")
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    assert events(w.call("getMeetingEvents", "users=2").xml) == []
    answer = w.call("getMeetingEvents")
    assert len(answer.xml.findall("events/event/users/user")) == 2


def test_created_and_ended_filters_use_whole_days_in_utc(w: World) -> None:
    """createdAt keeps meetings created on that day or later; endedAt those that ended on
    that day or before (never running ones); a second createdAt is the last day."""
    held(w, "jan10")
    w.clock.advance(at("2024-01-11T23:59:00") - w.clock.seconds())
    held(w, "jan11-to-12", minutes=2)
    w.clock.advance(at("2024-01-13T10:00:00") - w.clock.seconds())
    w.xml.create("running")
    running = w.registry.get_meeting("running")
    assert running is not None
    w.join(running, "Zed")
    assert events(w.call("getMeetingEvents", "createdAt=2024-01-11").xml) == [
        "running", "jan11-to-12"]
    assert events(w.call("getMeetingEvents", "endedAt=2024-01-11").xml) == ["jan10"]
    assert events(w.call("getMeetingEvents", "endedAt=2024-01-12").xml) == [
        "jan11-to-12", "jan10"]
    assert events(w.call(
        "getMeetingEvents", "createdAt=2024-01-10&createdAt=2024-01-11").xml) == [
        "jan11-to-12", "jan10"]
    live = w.call("getMeetingEvents").xml.find("events/event[1]")
    assert live is not None and live.findtext("endedAt") == "0"


def test_limit_defaults_to_50_and_is_capped_at_100(w: World) -> None:
    """Default 50 meetings; limit=N gives N; values above 100 give 100."""
    for n in range(105):
        held(w, f"m{n:03d}", minutes=1)
    assert len(events(w.call("getMeetingEvents").xml)) == 50
    assert events(w.call("getMeetingEvents", "limit=3").xml) == ["m104", "m103", "m102"]
    assert len(events(w.call("getMeetingEvents", "limit=500").xml)) == 100


@pytest.mark.parametrize("query", [
    "createdAt=2024-1-10", "createdAt=2024-02-30", "endedAt=yesterday", "users=-1",
    "users=many", "limit=0", "limit=ten", "limit=1e3",
])
def test_malformed_parameters_are_invalid_parameters(w: World, query: str) -> None:
    """A malformed date or number answers the specification's invalidParameters."""
    answer = w.call("getMeetingEvents", query)
    assert answer.returncode == "FAILED" and answer.key == "invalidParameters"
    assert answer.text("message") == "The URL you supplied has parameters that are not accepted."


def test_meeting_events_need_the_checksum(w: World) -> None:
    """An unsigned or wrongly signed call gets the standard checksumError."""
    answer = w.xml.request("GET", "http://meet.example.test/bigbluebutton/api/"
                                  "getMeetingEvents?checksum=00")
    assert answer.returncode == "FAILED" and answer.key == "checksumError"


def test_query_block_keeps_only_names_that_are_xml_elements(w: World) -> None:
    """Create parameters whose names cannot be XML element names are left out of <query>
    (never written as markup)."""
    extra: dict[str, Any] = {"weird name": "x", "1st": "y", "ok_name": "z"}
    held(w, "mm", **extra)
    query = w.call("getMeetingEvents").xml.find("events/event/query")
    assert query is not None
    assert {child.tag for child in query} == {"meetingID", "name", "ok_name"}


def test_meeting_events_answer_in_json_too(w: World) -> None:
    """With Accept: application/json the same fields come as JSON arrays and objects."""
    held(w, "mm", users=1)
    answer = w.call("getMeetingEvents", headers={"Accept": ["application/json"]})
    import json

    body = json.loads(answer.body)["response"]
    (event,) = body["events"]
    assert event["meetingID"] == "mm" and event["users"][0]["role"] == "moderator"
    assert event["server"] == {"name": "meetplatform", "url": "https://meet.example.test"}


def test_get_stats_lists_meetings_that_ran_with_every_stretch(w: World) -> None:
    """getStats: meetings someone connected to, with each participant's join and left
    times (0 while present), live ones with endTime 0; one or several meetingIDs."""
    held(w, "ma", users=2)
    held(w, "mb", users=1)
    held(w, "never", users=0)
    w.xml.create("live")
    live = w.registry.get_meeting("live")
    assert live is not None
    w.join(live, "Zed")
    answer = w.call("getStats")
    ids = [m.findtext("meetingID") for m in answer.xml.iterfind("stats/meeting")]
    assert ids == ["ma", "mb", "live"]
    live_stats = answer.xml.find("stats/meeting[3]")
    assert live_stats is not None and live_stats.findtext("endTime") == "0"
    assert live_stats.findtext("participants/participant/leftTime") == "0"
    assert live_stats.findtext("recordID") == live.internal_id
    one = w.call("getStats", "meetingID=mb")
    assert [m.findtext("meetingID") for m in one.xml.iterfind("stats/meeting")] == ["mb"]
    both = w.call("getStats", "meetingID=ma,live")
    assert [m.findtext("meetingID") for m in both.xml.iterfind("stats/meeting")] == [
        "ma", "live"]
    none = w.call("getStats", "meetingID=nope")
    assert none.key == "noStats" and b"<stats/>" in none.body


def test_stats_and_events_survive_a_restart(tmp_path: Path) -> None:
    """After a restart (same data directory), getStats and getMeetingEvents still answer
    with the meetings of the previous process."""
    from tests.support import result

    first = World(tmp_path)
    held(first, "before-restart", users=1)
    result(first.stop())
    first.close()
    second = World(tmp_path)
    stats = second.call("getStats", "meetingID=before-restart")
    assert stats.xml.findtext("stats/meeting/meetingID") == "before-restart"
    assert events(second.call("getMeetingEvents").xml) == ["before-restart"]
