"""The history in the JSON:API: a client app's own sessions and attendances only."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetplatform.model import EndReason
from tests.webhooks.harness import World, enter


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_rooms_sessions_and_attendances(w: World) -> None:
    """A room's meetings are listed newest first with their times, counts, node and end
    reason; a session's attendances in join order with join and leave times."""
    client = w.rest.new_client()
    room = w.rest.create_room(client, name="Standup")
    ann = enter(w, client.token, room["id"], "Ann")
    w.advance(60)
    bob = enter(w, client.token, room["id"], "Bob")
    w.advance(60)
    w.registry.disconnect(bob)
    w.registry.end_meeting(ann.meeting, EndReason.ENDED_FROM_API)
    w.advance(600)
    enter(w, client.token, room["id"], "Cid")
    r = w.rest.request("GET", f"/rooms/{room['id']}/sessions", token=client.token)
    assert r.status == 200
    running, ended = r.json["data"]
    assert running["attributes"]["running"] is True
    assert running["attributes"]["endedAt"] is None
    attributes = ended["attributes"]
    assert attributes["meetingId"] == room["id"] and attributes["roomId"] == room["id"]
    assert attributes["endReason"] == "ENDED_FROM_API"
    assert attributes["createdAt"] == "2023-11-14T22:13:20.000Z"
    assert attributes["endedAt"] == "2023-11-14T22:15:20.000Z"
    assert (attributes["participantCount"], attributes["joinCount"]) == (2, 2)
    assert attributes["node"] == {"name": "meetplatform", "url": "https://meet.example.test"}
    assert ended["id"] == ann.meeting.internal_id
    one = w.rest.request("GET", f"/sessions/{ended['id']}", token=client.token)
    assert one.status == 200 and one.json["data"]["attributes"] == attributes
    people = w.rest.request("GET", f"/sessions/{ended['id']}/attendances?page[size]=1",
                            token=client.token)
    assert people.status == 200
    (first,) = people.json["data"]
    assert first["attributes"]["displayName"] == "Ann"
    assert first["attributes"]["role"] == "viewer"
    assert first["attributes"]["leftReason"] == "ended"
    following = w.rest.request("GET", people.json["links"]["next"], token=client.token)
    (second,) = following.json["data"]
    assert second["attributes"]["displayName"] == "Bob"
    assert second["attributes"]["joinedAt"] == "2023-11-14T22:14:20.000Z"
    assert second["attributes"]["leftAt"] == "2023-11-14T22:15:20.000Z"
    assert second["attributes"]["leftReason"] == "left"
    assert following.json["links"]["next"] is None


def test_space_sessions_include_api_meetings_and_page_newest_first(w: World) -> None:
    """The space's list has rooms' sessions and POST /meetings ones, newest first, with a
    cursor to the next page."""
    client = w.rest.new_client()
    room = w.rest.create_room(client)
    enter(w, client.token, room["id"], "Ann")
    w.advance(1)
    r = w.rest.request("POST", "/meetings", token=client.token, json={"data": {
        "type": "meetings", "id": "weekly", "attributes": {"name": "Weekly"}}})
    assert r.status == 201
    page = w.rest.request("GET", f"/spaces/{client.space.id}/sessions?page[size]=1",
                          token=client.token)
    (newest,) = page.json["data"]
    assert newest["attributes"]["meetingId"] == "weekly"
    assert newest["attributes"]["roomId"] is None
    rest = w.rest.request("GET", page.json["links"]["next"], token=client.token)
    assert [s["attributes"]["meetingId"] for s in rest.json["data"]] == [room["id"]]


def test_other_spaces_sessions_do_not_exist_for_you(w: World) -> None:
    """Another client's sessions answer 404; the BBB API's meetings are nobody's."""
    owner = w.rest.new_client("owner")
    other = w.rest.new_client("other")
    room = w.rest.create_room(owner)
    participant = enter(w, owner.token, room["id"], "Ann")
    w.meeting("bbb-meeting")
    session_id = participant.meeting.internal_id
    for path in (f"/sessions/{session_id}", f"/sessions/{session_id}/attendances"):
        r = w.rest.request("GET", path, token=other.token)
        assert r.status == 404 and r.error_codes == ["session.notFound"]
    listed = w.rest.request("GET", f"/spaces/{other.space.id}/sessions", token=other.token)
    assert listed.json["data"] == []
    r = w.rest.request("GET", f"/rooms/{room['id']}/sessions", token=other.token)
    assert r.status == 404
    bbb = w.registry.get_meeting("bbb-meeting")
    assert bbb is not None
    r = w.rest.request("GET", f"/sessions/{bbb.internal_id}", token=owner.token)
    assert r.status == 404


def test_sessions_need_the_meetings_read_scope(w: World) -> None:
    """A token without meetings:read cannot read the history."""
    client = w.rest.new_client()
    token = w.rest.token_for(client, scope="rooms:read")
    r = w.rest.request("GET", f"/spaces/{client.space.id}/sessions", token=token)
    assert r.status == 403 and r.error_codes == ["auth.insufficientScope"]


def test_a_foreign_attendance_cursor_is_refused(w: World) -> None:
    """A page[after] that is not an attendance cursor is a clear 400."""
    client = w.rest.new_client()
    room = w.rest.create_room(client)
    participant = enter(w, client.token, room["id"], "Ann")
    from meetplatform.restapi.jsonapi import encode_cursor

    cursor = encode_cursor((1, "not-a-number"))
    r = w.rest.request("GET", f"/sessions/{participant.meeting.internal_id}/attendances"
                              f"?page[after]={cursor}", token=client.token)
    assert r.status == 400 and r.error_codes == ["page.invalidCursor"]
