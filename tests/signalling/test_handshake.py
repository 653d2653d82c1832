"""Opening the socket: authentication, Origin, refusals, the joined snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web.resource import Resource
from twisted.web.server import Site

from meetplatform.model import Role
from meetplatform.signalling.protocol import SignallingProtocol
from meetplatform.site import MeetplatformSite, RootResource, UpgradeOnly
from tests.signalling.harness import Client, Refused, World, ids


def test_a_valid_token_joins_and_gets_the_snapshot(world: World) -> None:
    """A seat's token opens the socket and the browser gets `joined` with the meeting."""
    meeting = world.meeting(welcome="Hello <b>%%CONFNAME%%</b><script>x</script>",
                            logout_url="https://lms.example.org/done", record=True)
    world.registry.send_chat(meeting, "earlier", "API")
    ada = world.join(meeting, "Ada", Role.MODERATOR, external_user_id="ada-1",
                     avatar_url="https://img.test/a.png")
    joined = ada.joined
    # A card leaves out what is false or empty (docs/signalling-protocol.md §3.3).
    assert joined["self"] == {
        "id": joined["self"]["id"], "externalId": "ada-1", "name": "Ada",
        "role": "MODERATOR", "presenter": True, "muted": True,
        "avatarUrl": "https://img.test/a.png"}
    assert joined["meeting"] == {
        "id": "m1", "internalId": meeting.internal_id, "name": "Weekly",
        "welcome": "Hello <b>Weekly</b>", "moderatorOnlyMessage": "",
        "logoutUrl": "https://lms.example.org/done", "record": True,
        "recording": False, "allowStartStopRecording": True,
        "recordingAvailable": True, "guestPolicy": "ALWAYS_ACCEPT"}
    assert ids(joined["participants"]) == [joined["self"]["id"]]
    assert [c["text"] for c in joined["chat"]] == ["earlier"]
    assert joined["chat"][0]["from"] is None
    assert joined["iceServers"] == [
        {"urls": ["stun:stun.example.test:3478"]},
        {"urls": ["turn:turn.example.test:3478"], "username": "u", "credential": "p"}]
    assert joined["resumeGraceSeconds"] == 20.0 and joined["waitingGuests"] == []
    assert joined["polite"] is True and joined["resumed"] is False
    assert meeting.running and meeting.participant_count == 1


def test_viewers_do_not_see_moderator_only_fields(world: World) -> None:
    """moderatorOnlyMessage and waitingGuests go to moderators only."""
    meeting = world.meeting(moderator_only_message="secret dial-in")
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    viewer = world.join(meeting, "Vic")
    assert mod.joined["meeting"]["moderatorOnlyMessage"] == "secret dial-in"
    assert "moderatorOnlyMessage" not in viewer.joined["meeting"]
    assert "waitingGuests" not in viewer.joined


def test_participants_list_everyone_in_connection_order(world: World) -> None:
    """A newcomer's `joined` lists every connected participant, itself last."""
    meeting = world.meeting()
    a = world.join(meeting, "A")
    b = world.join(meeting, "B")
    c = world.join(meeting, "C")
    assert ids(c.joined["participants"]) == [a.user_id, b.user_id, c.user_id]


@pytest.mark.parametrize("token, query, status, reason", [
    ("nope", None, 403, "unknown session token"),
    (None, None, 400, "sessionToken missing or malformed"),
    (None, "sessionToken=a%20b", 400, "sessionToken missing or malformed"),
    (None, "sessionToken=a&sessionToken=b", 400, "sessionToken missing or malformed"),
])
def test_bad_tokens_are_refused_with_http_statuses(world: World, token: str | None,
                                                   query: str | None, status: int,
                                                   reason: str) -> None:
    """Missing, malformed and unknown tokens are refused before any WebSocket opens."""
    with pytest.raises(Refused) as refused:
        world.open_socket(token, query=query)
    assert f"[{status}]: {reason}" in str(refused.value)


def test_foreign_origins_are_refused(world: World) -> None:
    """A page on another origin can't open a socket, even with a valid token (403)."""
    seat = world.seat(world.meeting())
    with pytest.raises(Refused) as refused:
        world.open_socket(seat.token, origin="https://evil.example")
    assert "[403]: origin not allowed" in str(refused.value)
    with pytest.raises(Refused):
        world.open_socket(seat.token, origin="null")
    assert world.registry.get_meeting("m1").participant_count == 0  # type: ignore[union-attr]


def test_own_extra_and_absent_origins_are_accepted(world: World) -> None:
    """The service's origin, a configured embedding origin, and non-browsers get in."""
    meeting = world.meeting()
    for origin in ("https://MEET.example.test:443", "https://lms.example.org", None):
        client = world.open_socket(world.seat(meeting).token, origin=origin)
        assert client.of_type("joined")


def test_the_subprotocol_is_negotiated_when_offered(world: World) -> None:
    """Offering meetplatform.signal.v1 selects it; offering only others is refused."""
    meeting = world.meeting()
    client = world.open_socket(world.seat(meeting).token,
                               protocols=["other", "meetplatform.signal.v1"])
    assert client.websocket_protocol_in_use == "meetplatform.signal.v1"
    with pytest.raises(Refused) as refused:
        world.open_socket(world.seat(meeting).token, protocols=["other"])
    assert "[400]: unsupported subprotocol" in str(refused.value)


def test_a_token_of_an_ended_meeting_explains_and_closes_4004(world: World) -> None:
    """A link to a meeting that ended gets `ended` with the reason, then close 4004."""
    meeting = world.meeting(logout_url="https://lms.example.org")
    seat = world.seat(meeting)
    world.registry.end_meeting(meeting, "ENDED_FROM_API")
    client = world.open_socket(seat.token)
    assert client.types() == ["ended"]
    assert client.received[0]["data"] == {
        "reason": "ENDED_FROM_API", "message": "The meeting has been ended.",
        "logoutUrl": "https://lms.example.org"}
    assert client.closed == (4004, "meeting ended")


def test_a_full_meeting_refuses_with_meeting_full_and_4003(world: World) -> None:
    """maxParticipants counts connected participants: one more is refused with 4003."""
    meeting = world.meeting(max_participants=2)
    late = world.seat(meeting, "Late")
    world.join(meeting, "A")
    world.clock.advance(61)  # Late's reservation lapses; B takes the second place
    world.join(meeting, "B")
    client = world.open_socket(late.token)
    assert [(m["type"], m.get("code")) for m in client.received] == [("error", "meetingFull")]
    assert client.closed == (4003, "meeting full")
    assert meeting.participant_count == 2


def test_the_site_mount_serves_the_socket_over_http_upgrade(world: World) -> None:
    """Through a twisted.web Site with the resource at /ws, a browser joins as usual."""
    root = Resource()
    root.putChild(b"ws", world.service.resource())  # type: ignore[arg-type]
    site = Site(root, reactor=world.clock)
    world.agent._server_protocol = lambda: site.buildProtocol(None)
    meeting = world.meeting()
    ada = world.join(meeting, "Ada")
    bob = world.join(meeting, "Bob")
    assert ada.of_type("participantJoined")[0]["data"]["participant"]["id"] == bob.user_id
    assert bob.ok("ping", {"ts": 1})["ts"] == 1
    assert isinstance(ada, Client) and ada.open


def test_the_site_hands_upgrades_to_the_signalling_before_twisted_web(world: World) -> None:
    """The product's site with ``/ws`` routed to the factory (as ``build.mount`` does):
    the socket is the signalling protocol on the connection's own transport, joins,
    refusals (Origin, token) and the roster are as behind twisted.web."""
    root = RootResource()
    root.putChild(b"ws", UpgradeOnly(world.service.resource(),  # type: ignore[arg-type]
                                     factory=world.service.factory))
    clock: Any = world.clock
    site = MeetplatformSite(root, clock=clock, max_query_bytes=4096, max_body_bytes=4096)
    world.agent._server_protocol = lambda: site.buildProtocol(None)
    meeting = world.meeting()
    ada = world.join(meeting, "Ada", Role.MODERATOR)
    bob = world.join(meeting, "Bob")
    assert ada.of_type("participantJoined")[0]["data"]["participant"]["id"] == bob.user_id
    assert ids(bob.joined["participants"]) == [ada.user_id, bob.user_id]
    assert bob.ok("ping", {"ts": 1})["ts"] == 1
    server = next(c for c in world.service.hub.conns if c.participant
                  and c.participant.user_id == bob.user_id)
    assert isinstance(server, SignallingProtocol)
    assert server.transport.protocol is server  # type: ignore[union-attr]
    with pytest.raises(Refused) as refused:
        world.open_socket(world.seat(meeting).token, origin="https://evil.example")
    assert "[403]: origin not allowed" in str(refused.value)
    with pytest.raises(Refused) as refused:
        world.open_socket("x" * 43)
    assert "[403]: unknown session token" in str(refused.value)
