"""The JSON:API resources: spaces, rooms, userTokens, participants, meetings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from meetplatform.model import GuestStatus
from meetplatform.store import Store
from meetplatform.tenancy import room_meeting_id
from tests.restapi.harness import PUBLIC_URL, Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def doc(type_: str, attributes: dict[str, Any], id_: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type_, "attributes": attributes}
    if id_ is not None:
        data["id"] = id_
    return {"data": data}


# --- spaces ----------------------------------------------------------------------------------


def test_each_client_sees_exactly_its_own_space(h: Harness) -> None:
    """GET /spaces lists the client's one space; another client's space is a 404."""
    alice, bob = h.new_client("alice"), h.new_client("bob")
    r = h.request("GET", "/spaces", token=alice.token)
    assert [s["id"] for s in r.json["data"]] == [alice.space.id]
    assert r.json["links"]["next"] is None
    assert h.request("GET", f"/spaces/{alice.space.id}", token=alice.token).status == 200
    r = h.request("GET", f"/spaces/{bob.space.id}", token=alice.token)
    assert r.status == 404 and r.error_codes == ["space.notFound"]
    r = h.request("PATCH", f"/spaces/{bob.space.id}", token=alice.token,
                  json=doc("spaces", {"name": "mine"}, bob.space.id))
    assert r.status == 404


def test_update_space_returns_the_resource(h: Harness) -> None:
    """PATCH changes only what is sent and returns the updated space; origins normalised."""
    client = h.new_client()
    r = h.request("PATCH", f"/spaces/{client.space.id}", token=client.token,
                  json=doc("spaces", {"visibility": "public", "embedOrigins": [
                      "https://LMS.example.com:443", "http://localhost:8000"]},
                      client.space.id))
    assert r.status == 200, r.body
    attributes = r.json["data"]["attributes"]
    assert attributes["visibility"] == "public" and attributes["name"] == "acme"
    assert attributes["embedOrigins"] == ["https://lms.example.com", "http://localhost:8000"]


@pytest.mark.parametrize("attributes,pointer", [
    ({"visibility": "secret"}, "/data/attributes/visibility"),
    ({"embedOrigins": ["javascript:alert(1)"]}, "/data/attributes/embedOrigins/0"),
    ({"embedOrigins": ["https://a.example", "https://a.example"]},
     "/data/attributes/embedOrigins/1"),
    ({"name": ""}, "/data/attributes/name"),
    ({"createdAt": "2020-01-01T00:00:00.000Z"}, "/data/attributes/createdAt"),
    ({"colour": "red"}, "/data/attributes/colour"),
])
def test_invalid_space_attributes_are_422_with_a_pointer(h: Harness, attributes: dict[str, Any],
                                                         pointer: str) -> None:
    """Each invalid attribute is refused with 422 and a JSON pointer to it."""
    client = h.new_client()
    r = h.request("PATCH", f"/spaces/{client.space.id}", token=client.token,
                  json=doc("spaces", attributes, client.space.id))
    assert r.status == 422
    assert r.json["errors"][0]["source"]["pointer"] == pointer


def test_document_type_and_id_mismatches_are_409(h: Harness) -> None:
    """A document of the wrong type, or whose id is not the URL's, is a 409 conflict."""
    client = h.new_client()
    r = h.request("PATCH", f"/spaces/{client.space.id}", token=client.token,
                  json=doc("rooms", {}, client.space.id))
    assert r.status == 409 and r.json["errors"][0]["source"]["pointer"] == "/data/type"
    r = h.request("PATCH", f"/spaces/{client.space.id}", token=client.token,
                  json=doc("spaces", {}, "sp_other"))
    assert r.status == 409


# --- rooms -----------------------------------------------------------------------------------


def test_create_room_returns_it_with_defaults_and_location(h: Harness) -> None:
    """POST returns 201, a Location and the room with every default filled in."""
    client = h.new_client()
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token,
                  json=doc("rooms", {"name": "Webinar", "type": "webinar",
                                     "metadata": {"course": "101"}}))
    assert r.status == 201, r.body
    room = r.json["data"]
    assert r.header("location") == f"{PUBLIC_URL}/api/v2/rooms/{room['id']}"
    a = room["attributes"]
    assert a["type"] == "webinar" and a["visibility"] == "private" and a["lobby"] is False
    assert a["defaultPermissions"] == {"camera": False, "microphone": False,
                                       "screenshare": False}
    assert len(a["alias"]) == 12 and a["metadata"] == {"course": "101"}
    assert a["createdAt"].endswith("Z") and len(a["createdAt"]) == 24
    assert room["links"]["embed"] == f"{PUBLIC_URL}/embed/{a['alias']}"
    again = h.request("GET", f"/rooms/{room['id']}", token=client.token)
    assert again.json["data"] == room


def test_update_room_merges_and_checks(h: Harness) -> None:
    """PATCH merges attributes (permissions one by one) and checks times and aliases."""
    client = h.new_client()
    room = h.create_room(client, alias="physics-101")
    other = h.create_room(client, alias="chemistry")
    path = f"/rooms/{room['id']}"
    r = h.request("PATCH", path, token=client.token, json=doc("rooms", {
        "lobby": True, "maxParticipants": 25, "defaultPermissions": {"camera": False},
        "expiresAt": "2030-01-31T12:00:00.000+01:00"}, room["id"]))
    assert r.status == 200, r.body
    a = r.json["data"]["attributes"]
    assert a["lobby"] is True and a["maxParticipants"] == 25
    assert a["defaultPermissions"] == {"camera": False, "microphone": True, "screenshare": True}
    assert a["expiresAt"] == "2030-01-31T11:00:00.000Z"
    r = h.request("PATCH", path, token=client.token,
                  json=doc("rooms", {"notBefore": "2030-02-01T00:00:00Z"}, room["id"]))
    assert r.status == 422 and r.json["errors"][0]["source"]["pointer"].endswith("expiresAt")
    r = h.request("PATCH", path, token=client.token,
                  json=doc("rooms", {"alias": other["attributes"]["alias"]}, room["id"]))
    assert r.status == 409 and r.error_codes == ["room.aliasTaken"]
    r = h.request("PATCH", path, token=client.token,
                  json=doc("rooms", {"expiresAt": "yesterday"}, room["id"]))
    assert r.status == 422


def test_rooms_are_paginated_with_cursors(h: Harness) -> None:
    """page[size] and the cursor in links.next walk through every room once."""
    client = h.new_client()
    created = []
    for i in range(5):
        created.append(h.create_room(client, name=f"Room {i}")["id"])
        h.clock.advance(1)
    seen: list[str] = []
    url: str | None = f"/spaces/{client.space.id}/rooms?page[size]=2"
    pages = 0
    while url:
        r = h.request("GET", url, token=client.token)
        assert r.status == 200, r.body
        seen += [room["id"] for room in r.json["data"]]
        url = r.json["links"]["next"]
        pages += 1
    assert seen == created and pages == 3
    r = h.request("GET", f"/spaces/{client.space.id}/rooms?page[after]=bogus",
                  token=client.token)
    assert r.status == 400 and r.json["errors"][0]["source"] == {"parameter": "page[after]"}
    r = h.request("GET", f"/spaces/{client.space.id}/rooms?page[size]=1000",
                  token=client.token)
    assert r.status == 400


def test_delete_room_ends_its_meeting_and_invitations(h: Harness) -> None:
    """Deleting a room ends its live meeting; its invitations no longer exist."""
    client = h.new_client()
    room = h.create_room(client)
    secret = h.invite(client, room["id"], maxUses=2)["attributes"]["token"]
    assert h.activate(secret).status == 200
    meeting = h.registry.get_meeting(f"{client.space.id}/{room['id']}")
    assert meeting is not None
    assert h.request("DELETE", f"/rooms/{room['id']}", token=client.token).status == 204
    assert meeting.ended
    assert h.request("GET", f"/rooms/{room['id']}", token=client.token).status == 404
    assert h.activate(secret).status == 404


def test_other_clients_rooms_do_not_exist_for_you(h: Harness) -> None:
    """Every room route answers 404 for a room of another client's space."""
    alice, bob = h.new_client("alice"), h.new_client("bob")
    room = h.create_room(bob)["id"]
    for method, path in (("GET", f"/rooms/{room}"), ("DELETE", f"/rooms/{room}"),
                         ("GET", f"/rooms/{room}/participants"),
                         ("GET", f"/rooms/{room}/userTokens"),
                         ("POST", f"/rooms/{room}/join")):
        r = h.request(method, path, token=alice.token)
        assert r.status == 404, (method, path)
    r = h.request("POST", f"/rooms/{room}/userTokens", token=alice.token,
                  json=doc("userTokens", {}))
    assert r.status == 404


# --- userTokens ------------------------------------------------------------------------------


def test_invitation_secret_is_shown_once(h: Harness) -> None:
    """The creation response carries the secret and the /j/ link; reads never do."""
    client = h.new_client()
    room = h.create_room(client)
    r = h.request("POST", f"/rooms/{room['id']}/userTokens", token=client.token,
                  json=doc("userTokens", {"role": "moderator", "displayName": "Ada",
                                          "externalUserId": "ada-1", "maxUses": 1}))
    assert r.status == 201
    assert r.header("content-encoding") is None
    token = r.json["data"]
    secret = token["attributes"]["token"]
    assert token["attributes"]["inviteUrl"] == f"{PUBLIC_URL}/j/{secret}"
    assert token["attributes"]["status"] == "pending"
    read = h.request("GET", f"/userTokens/{token['id']}", token=client.token)
    assert "token" not in read.json["data"]["attributes"]
    assert secret.encode() not in read.body
    listed = h.request("GET", f"/rooms/{room['id']}/userTokens", token=client.token)
    assert secret.encode() not in listed.body and len(listed.json["data"]) == 1
    everything = h.request("GET", f"/spaces/{client.space.id}/userTokens", token=client.token)
    assert [t["id"] for t in everything.json["data"]] == [token["id"]]


def test_activation_returns_urls_not_redirects(h: Harness) -> None:
    """Activation answers 200 with the conference URL and a user token in JSON."""
    client = h.new_client()
    room = h.create_room(client, lobby=True)
    secret = h.invite(client, room["id"], role="participant")["attributes"]["token"]
    r = h.activate(secret, display_name="Grace")
    assert r.status == 200 and r.header("location") is None
    a = r.json["data"]["attributes"]
    assert a["conferenceUrl"].startswith(f"{PUBLIC_URL}/client/join?sessionToken=")
    assert a["waitingForModerator"] is True and a["role"] == "participant"
    seat = h.registry.seat_for_token(a["sessionToken"])
    assert seat is not None and seat.guest_status is GuestStatus.WAIT
    assert "token" not in a


@pytest.mark.parametrize("case,status,code", [
    ("unknown", 404, "userToken.notFound"),
    ("used", 409, "userToken.alreadyActivated"),
    ("expired", 410, "userToken.expired"),
    ("revoked", 410, "userToken.revoked"),
    ("noname", 422, "userToken.displayNameRequired"),
])
def test_activation_refusals(h: Harness, case: str, status: int, code: str) -> None:
    """Each refused activation has its own status and code."""
    client = h.new_client()
    room = h.create_room(client)
    invitation = h.invite(client, room["id"])
    secret = invitation["attributes"]["token"]
    name: str | None = "User"
    if case == "unknown":
        secret = "mput_" + "A" * 43
    elif case == "used":
        assert h.activate(secret).status == 200
    elif case == "expired":
        h.clock.advance(24 * 3600)
    elif case == "revoked":
        h.request("DELETE", f"/userTokens/{invitation['id']}", token=client.token)
    elif case == "noname":
        name = None
    r = h.activate(secret, display_name=name)
    assert r.status == status and r.error_codes == [code]


def test_invitation_validation(h: Harness) -> None:
    """Expiry in the past, too far away, or after notBefore, and unknown roles are 422."""
    client = h.new_client()
    room = h.create_room(client)["id"]
    for attributes in ({"expiresAt": "2000-01-01T00:00:00.000Z"},
                       {"expiresAt": "2099-01-01T00:00:00.000Z"},
                       {"role": "owner"}, {"maxUses": 0},
                       {"notBefore": "2099-01-01T00:00:00.000Z"},
                       {"permissions": {"camera": "yes"}}):
        r = h.request("POST", f"/rooms/{room}/userTokens", token=client.token,
                      json=doc("userTokens", attributes))
        assert r.status == 422, attributes
        assert r.json["errors"][0]["source"]["pointer"].startswith("/data/attributes/")
    r = h.request("POST", f"/rooms/{room}/userTokens", token=client.token,
                  json={"data": {"type": "userTokens", "id": "ut_mine", "attributes": {}}})
    assert r.status == 403 and r.error_codes == ["document.clientIdRefused"]


def test_space_invitation_then_join_a_room(h: Harness) -> None:
    """A space invitation's user token joins any room of the space with its own role."""
    client = h.new_client()
    room = h.create_room(client)
    secret = h.request("POST", f"/spaces/{client.space.id}/userTokens", token=client.token,
                       json=doc("userTokens", {"role": "moderator", "displayName": "Host"})
                       ).json["data"]["attributes"]["token"]
    activation = h.activate(secret, display_name=None).json["data"]["attributes"]
    assert activation["conferenceUrl"] is None
    access = activation["accessToken"]
    r = h.request("POST", f"/rooms/{room['id']}/join", token=access)
    assert r.status == 200, r.body
    seat = r.json["data"]["attributes"]
    assert seat["role"] == "moderator" and seat["displayName"] == "Host"
    r = h.request("POST", f"/rooms/{room['id']}/join", token=access,
                  json=doc("seats", {"role": "viewer"}))
    assert r.status == 403 and r.error_codes == ["auth.roleNotGranted"]


def test_client_joins_a_room(h: Harness) -> None:
    """A client gets a seat for a named user with a role, as a URL in JSON."""
    client = h.new_client()
    room = h.create_room(client)
    r = h.request("POST", f"/rooms/{room['id']}/join", token=client.token,
                  json=doc("seats", {"displayName": "Teacher", "role": "moderator"}))
    assert r.status == 200
    a = r.json["data"]["attributes"]
    assert a["role"] == "moderator" and a["permissions"]["camera"] is True
    assert h.registry.seat_for_token(a["sessionToken"]) is not None
    r = h.request("POST", f"/rooms/{room['id']}/join", token=client.token)
    assert r.status == 422 and r.json["errors"][0]["source"]["pointer"].endswith(
        "displayName")


def test_room_limits_are_enforced_when_joining(h: Harness) -> None:
    """A full room answers 409, a room not open yet 409, an expired one 410."""
    client = h.new_client()
    full = h.create_room(client, maxParticipants=1)
    join = doc("seats", {"displayName": "A"})
    assert h.request("POST", f"/rooms/{full['id']}/join", token=client.token,
                     json=join).status == 200
    r = h.request("POST", f"/rooms/{full['id']}/join", token=client.token, json=join)
    assert r.status == 409 and r.error_codes == ["meeting.full"]
    later = h.create_room(client, notBefore="2099-01-01T00:00:00.000Z")
    r = h.request("POST", f"/rooms/{later['id']}/join", token=client.token, json=join)
    assert r.status == 409 and r.error_codes == ["room.notYetOpen"]
    soon = h.create_room(client, expiresAt="2023-11-14T22:14:00.000Z")
    h.clock.advance(60)
    r = h.request("POST", f"/rooms/{soon['id']}/join", token=client.token, json=join)
    assert r.status == 410 and r.error_codes == ["room.expired"]


# --- participants ----------------------------------------------------------------------------


def connect(h: Harness, session_token: str) -> Any:
    seat = h.registry.seat_for_token(session_token)
    assert seat is not None
    return h.registry.connect(seat)


def test_participants_are_listed_muted_and_removed(h: Harness) -> None:
    """Live participants are listed; a moderator token mutes and removes them."""
    client = h.new_client()
    room = h.create_room(client)
    host = h.invite(client, room["id"], role="moderator", displayName="Host")
    guest = h.invite(client, room["id"], role="participant")
    host_act = h.activate(host["attributes"]["token"]).json["data"]["attributes"]
    guest_act = h.activate(guest["attributes"]["token"], "Guest").json["data"]["attributes"]
    connect(h, host_act["sessionToken"])
    h.clock.advance(1)
    participant = connect(h, guest_act["sessionToken"])
    r = h.request("GET", f"/rooms/{room['id']}/participants", token=client.token)
    assert [p["attributes"]["displayName"] for p in r.json["data"]] == ["Host", "Guest"]
    events: list[Any] = []
    h.registry.subscribe(events.append)
    base = f"/rooms/{room['id']}/participants/{participant.user_id}"
    r = h.request("POST", base + "/mute", token=host_act["accessToken"])
    assert r.status == 200 and r.json["meta"] == {"muteRequested": True}
    assert [type(e).__name__ for e in events] == ["MuteRequested"]
    r = h.request("POST", base + "/mute", token=guest_act["accessToken"])
    assert r.status == 403 and r.error_codes == ["auth.insufficientScope"]
    assert h.request("GET", base, token=guest_act["accessToken"]).status == 200
    assert h.request("DELETE", base, token=client.token).status == 204
    assert h.request("GET", base, token=client.token).status == 404
    meeting = h.registry.get_meeting(room_meeting_id(
        type("R", (), {"space_id": client.space.id, "id": room["id"]})()))  # type: ignore
    assert meeting is not None and participant.user_id not in meeting.participants


def test_participants_of_a_room_without_meeting(h: Harness) -> None:
    """A room with nobody in it lists no participants (not an error)."""
    client = h.new_client()
    room = h.create_room(client)
    r = h.request("GET", f"/rooms/{room['id']}/participants", token=client.token)
    assert r.status == 200 and r.json["data"] == []


# --- meetings --------------------------------------------------------------------------------


def test_meeting_create_join_info_end(h: Harness) -> None:
    """Meetings mirror the XML API: create (idempotent), join URL, info, end."""
    client = h.new_client()
    body = doc("meetings", {"name": "Standup", "maxParticipants": 10,
                            "guestPolicy": "ASK_MODERATOR", "metadata": {"Team": "core"}},
               "standup")
    r = h.request("POST", "/meetings", token=client.token, json=body)
    assert r.status == 201, r.body
    assert r.json["data"]["id"] == "standup"
    assert r.json["data"]["attributes"]["metadata"] == {"team": "core"}
    again = h.request("POST", "/meetings", token=client.token, json=body)
    assert again.status == 200 and again.json["meta"] == {"duplicate": True}
    r = h.request("POST", "/meetings/standup/join", token=client.token,
                  json=doc("seats", {"displayName": "Guest", "guest": True}))
    assert r.status == 200
    a = r.json["data"]["attributes"]
    assert a["waitingForModerator"] is True and a["conferenceUrl"].startswith(PUBLIC_URL)
    r = h.request("POST", "/meetings/standup/join", token=client.token,
                  json=doc("seats", {"displayName": "Chair", "role": "moderator"}))
    connect(h, r.json["data"]["attributes"]["sessionToken"])
    info = h.request("GET", "/meetings/standup", token=client.token).json["data"]
    assert info["attributes"]["running"] is True
    assert [x["displayName"] for x in info["attributes"]["attendees"]] == ["Chair"]
    listed = h.request("GET", "/meetings", token=client.token).json["data"]
    assert [m["id"] for m in listed] == ["standup"]
    assert h.request("DELETE", "/meetings/standup", token=client.token).status == 204
    r = h.request("GET", "/meetings/standup", token=client.token)
    assert r.status == 410 and r.error_codes == ["meeting.ended"]
    assert h.request("GET", "/meetings/unknown", token=client.token).status == 404


def test_meetings_are_private_to_each_space(h: Harness) -> None:
    """Two clients may use the same meeting id without seeing each other's meeting."""
    alice, bob = h.new_client("alice"), h.new_client("bob")
    for client in (alice, bob):
        r = h.request("POST", "/meetings", token=client.token,
                      json=doc("meetings", {"name": client.record.name}, "weekly"))
        assert r.status == 201
    assert h.request("GET", "/meetings/weekly", token=alice.token).json["data"][
        "attributes"]["name"] == "alice"
    r = h.request("POST", "/meetings", token=alice.token,
                  json=doc("meetings", {"name": "x"}, "rm_sneaky"))
    assert r.status == 422
    r = h.request("POST", "/meetings", token=alice.token, json=doc("meetings", {"name": "x"}))
    assert r.status == 422 and r.json["errors"][0]["source"]["pointer"] == "/data/id"


def test_room_meetings_are_listed_as_meetings(h: Harness) -> None:
    """A room's live meeting shows up in /meetings under the room's id."""
    client = h.new_client()
    room = h.create_room(client)
    h.request("POST", f"/rooms/{room['id']}/join", token=client.token,
              json=doc("seats", {"displayName": "A"}))
    listed = h.request("GET", "/meetings", token=client.token).json["data"]
    assert [(m["id"], m["attributes"]["roomId"]) for m in listed] == [(room["id"], room["id"])]
    r = h.request("POST", f"/meetings/{room['id']}/join", token=client.token,
                  json=doc("seats", {"displayName": "B"}))
    assert r.status == 200


# --- restart ---------------------------------------------------------------------------------


def test_everything_created_through_the_api_survives_a_restart(tmp_path: Path) -> None:
    """Close the store and start again on the same data directory: clients, tokens, rooms,
    invitations are all there, and a used invitation stays used."""
    h = Harness(tmp_path)
    client = h.new_client()
    room = h.create_room(client, name="Persistent", alias="persistent")
    used = h.invite(client, room["id"])["attributes"]["token"]
    pending = h.invite(client, room["id"])
    assert h.activate(used).status == 200
    from tests.support import run

    run(h.store.close())
    again = Harness(tmp_path, store=Store.open_inline(tmp_path), clock=h.clock)
    r = again.request("GET", f"/rooms/{room['id']}", token=client.token)
    assert r.status == 200 and r.json["data"]["attributes"]["alias"] == "persistent"
    assert again.activate(used).status == 409
    assert again.activate(pending["attributes"]["token"]).status == 200
    assert again.token_for(client)


@pytest.mark.parametrize("bad", ["Room\nB", "Room\rB", "Room\tB", "Room\x85B", "Room\u2028B",
                                 "Room\u2029B", "Room\x7fB", "Room\x9bB", "Room\x00B"])
def test_names_refuse_line_breaks_and_control_characters(h: Harness, bad: str) -> None:
    """Names (spaces, rooms, meetings, invited and joining users' names, external user
    ids) are one line: a line break, tab, DEL, C1 control (NEL) or U+2028/U+2029 is a 422
    pointing at the attribute, and the OpenAPI document states the same rule."""
    client = h.new_client()
    room = h.create_room(client)
    attempts = [
        ("POST", f"/spaces/{client.space.id}/rooms", doc("rooms", {"name": bad}), "name"),
        ("PATCH", f"/spaces/{client.space.id}",
         doc("spaces", {"name": bad}, client.space.id), "name"),
        ("PATCH", f"/rooms/{room['id']}", doc("rooms", {"name": bad}, room["id"]), "name"),
        ("POST", f"/rooms/{room['id']}/userTokens", doc("userTokens", {"displayName": bad}),
         "displayName"),
        ("POST", f"/rooms/{room['id']}/join", doc("seats", {"displayName": bad}),
         "displayName"),
        ("POST", f"/rooms/{room['id']}/join",
         doc("seats", {"displayName": "Ann", "externalUserId": bad}), "externalUserId"),
        ("POST", "/meetings", doc("meetings", {"name": bad}, "m-1"), "name"),
    ]
    for method, path, body, attribute in attempts:
        r = h.request(method, path, token=client.token, json=body)
        assert r.status == 422, (method, path, r.body)
        assert r.error_codes == ["validation.invalidAttribute"]
        assert r.json["errors"][0]["source"] == {"pointer": f"/data/attributes/{attribute}"}
    document = h.request("GET", "/openapi.json", headers={"Accept": "application/json"}).json
    pattern = document["components"]["schemas"]["RoomAttributes"]["properties"]["name"][
        "pattern"]
    assert re.fullmatch(pattern, "Zürich 🎉") and not re.fullmatch(pattern, bad)


def test_one_line_names_may_hold_any_other_character(h: Harness) -> None:
    """Letters of any script, emoji with joiners and spaces stay valid in names."""
    client = h.new_client()
    for name in ("Zürich Raum", "教室", "👩‍👩‍👧 family", "a  b"):
        assert h.create_room(client, name=name)["attributes"]["name"] == name
def test_a_polled_room_shows_every_change(h: Harness) -> None:
    """A room read again and again (its encoded resource is kept between reads) shows at
    once a change of the room, a meeting starting and a participant joining, in the
    single resource and in the space's list alike."""
    client = h.new_client()
    room = h.create_room(client, name="Before")
    path, listing = f"/rooms/{room['id']}", f"/spaces/{client.space.id}/rooms"

    def seen() -> tuple[dict[str, Any], dict[str, Any]]:
        one = h.request("GET", path, token=client.token).json["data"]["attributes"]
        many = h.request("GET", listing, token=client.token).json["data"][0]["attributes"]
        return one, many

    first = seen()
    assert first == seen() and first[0] == first[1]
    assert h.request("PATCH", path, token=client.token, json={"data": {
        "type": "rooms", "id": room["id"], "attributes": {"name": "After"}}}).status == 200
    one, many = seen()
    assert one["name"] == many["name"] == "After" and one == many
    invitation = h.invite(client, room["id"])
    activation = h.activate(invitation["attributes"]["token"]).json["data"]["attributes"]
    seat = h.registry.seat_for_token(activation["sessionToken"])
    assert seat is not None
    h.registry.connect(seat)
    one, many = seen()
    assert one["running"] is True and one["participantCount"] == 1 and one == many
    compact = h.request("GET", path + "?pretty=false", token=client.token)
    assert compact.json["data"]["attributes"] == one and b"\n" not in compact.body
