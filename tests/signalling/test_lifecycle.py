"""Participants over time: resume, duplicate identity, the lobby, timers, shutdown."""

from __future__ import annotations

import pytest

from meetplatform.model import EndReason, GuestPolicy, Role
from tests.signalling.harness import Refused, World, card, pair


def test_a_reload_within_the_grace_resumes_the_same_participant(world: World) -> None:
    """Reconnecting with the same token within the grace keeps the participant: others
    see it reconnecting, then participantUpdated and peerReset, never left/joined."""
    mod, ann = pair(world)
    ann_id = ann.user_id
    token = world.server_of(ann).seat.token
    ann.ok("raiseHand", {"raised": True})
    mod.take()
    world.drop(ann)
    [update] = mod.of_type("participantUpdated")
    assert update["data"]["participant"]["reconnecting"] is True
    world.advance(19)
    meeting = world.registry.get_meeting("m1")
    assert meeting is not None and ann_id in meeting.participants and meeting.running
    again = world.open_socket(token)
    assert again.joined["resumed"] is True and again.joined["polite"] is True
    assert again.user_id == ann_id and again.joined["self"]["raisedHand"] is True
    assert mod.types() == ["participantUpdated", "participantUpdated", "peerReset"]
    assert card(mod.received[1]["data"]["participant"])["reconnecting"] is False
    assert mod.received[2]["data"] == {"id": ann_id, "polite": False}
    world.advance(60)
    assert not mod.of_type("participantLeft") and ann_id in meeting.participants


def test_after_the_grace_the_participant_leaves(world: World) -> None:
    """A dropped participant that doesn't come back leaves after the grace."""
    mod, ann = pair(world)
    ann_id = ann.user_id
    world.drop(ann)
    world.advance(19.9)
    assert not mod.of_type("participantLeft")
    world.advance(0.2)
    assert mod.of_type("participantLeft")[0]["data"] == {"id": ann_id,
                                                         "reason": "disconnected"}
    meeting = world.registry.get_meeting("m1")
    assert meeting is not None and ann_id not in meeting.participants
    assert meeting.participant_count == 1


def test_a_link_used_after_the_grace_joins_afresh(world: World) -> None:
    """The same link after the grace is a new join: others get participantJoined."""
    mod, ann = pair(world)
    token = world.server_of(ann).seat.token
    world.drop(ann)
    world.advance(21)
    mod.take()
    again = world.open_socket(token)
    assert again.joined["resumed"] is False
    assert [m["type"] for m in mod.received] == ["participantJoined"]


def test_a_second_socket_for_the_same_link_replaces_the_first(world: World) -> None:
    """Opening the same link twice closes the older socket with 4008; no double count."""
    mod, ann = pair(world)
    token = world.server_of(ann).seat.token
    second = world.open_socket(token)
    assert ann.types()[-1] == "replaced" and ann.closed == (4008,
                                                            "replaced by a newer connection")
    assert second.user_id == ann.user_id and second.joined["resumed"] is True
    assert mod.types() == ["participantUpdated", "peerReset"]
    assert world.registry.get_meeting("m1").participant_count == 2  # type: ignore
    world.advance(60)
    assert not mod.of_type("participantLeft")


def test_duplicate_identity_replaces_the_older_connection(world: World) -> None:
    """The same userID joining twice (two seats) closes the old socket with 4008 and is
    counted once; the newcomer takes over the participant."""
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    first = world.join(meeting, "Ann", external_user_id="ann")
    first_id = first.user_id
    old_token = world.server_of(first).seat.token
    mod.take()
    second = world.join(meeting, "Ann (phone)", external_user_id="ann")
    assert first.closed == (4008, "replaced by a newer connection")
    assert first.of_type("replaced")
    assert second.user_id == first_id and second.joined["self"]["name"] == "Ann (phone)"
    assert meeting.participant_count == 2
    assert mod.types() == ["participantUpdated", "peerReset"]
    assert not mod.of_type("participantJoined")
    stale = world.open_socket(old_token)
    assert stale.types() == ["replaced"] and stale.closed[0] == 4008  # type: ignore[index]
    assert meeting.participant_count == 2 and second.open


def test_a_guest_waits_in_the_lobby_until_a_moderator_admits(world: World) -> None:
    """An ASK_MODERATOR guest waits; moderators are told; admit lets it join."""
    meeting = world.meeting(guest_policy=GuestPolicy.ASK_MODERATOR)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    viewer = world.join(meeting, "Vic")
    mod.take()
    viewer.take()
    seat = world.seat(meeting, "Gus", guest=True)
    guest = world.open_socket(seat.token)
    assert guest.received == [{"type": "lobby", "data": {"status": "waiting",
                                                         "meeting": {"name": "Weekly"}}}]
    assert mod.of_type("guestWaiting")[0]["data"] == {"id": seat.user_id, "name": "Gus"}
    assert not viewer.received
    assert meeting.participant_count == 2
    assert guest.fails("chat", {"text": "let me in"}) == "notJoined"
    assert guest.ok("ping")["serverTs"] == world.registry.now()
    late_mod = world.join(meeting, "Mia", Role.MODERATOR)
    assert late_mod.joined["waitingGuests"] == [{"id": seat.user_id, "name": "Gus"}]
    assert viewer.fails("admit", {"userId": seat.user_id}) == "notAllowed"
    assert mod.fails("admit", {"userId": "w_nobody"}) == "notFound"
    mod.ok("admit", {"userId": seat.user_id})
    assert {"id": seat.user_id, "admitted": True} in [
        m["data"] for m in mod.of_type("guestHandled")]
    assert guest.types()[-2:] == ["admitted", "joined"]
    assert guest.joined["self"]["guest"] is True
    assert viewer.of_type("participantJoined")[-1]["data"]["participant"]["id"] == seat.user_id
    assert meeting.participant_count == 4


def test_a_denied_guest_is_told_and_closed_with_4003(world: World) -> None:
    """deny sends `denied` and close 4003; the link keeps saying so."""
    meeting = world.meeting(guest_policy=GuestPolicy.ASK_MODERATOR)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    seat = world.seat(meeting, "Gus", guest=True)
    guest = world.open_socket(seat.token)
    mod.ok("deny", {"userId": seat.user_id})
    assert guest.types() == ["lobby", "denied"] and guest.closed == (4003,
                                                                     "denied by a moderator")
    assert {"id": seat.user_id, "admitted": False} in [
        m["data"] for m in mod.of_type("guestHandled")]
    again = world.open_socket(seat.token)
    assert again.types() == ["denied"] and again.closed == (4003, "denied")
    assert meeting.participant_count == 1


def test_moderators_learn_when_a_waiting_guest_gives_up(world: World) -> None:
    """A guest closing the lobby is reported and no longer listed as waiting."""
    meeting = world.meeting(guest_policy=GuestPolicy.ASK_MODERATOR)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    seat = world.seat(meeting, "Gus", guest=True)
    guest = world.open_socket(seat.token)
    guest.ok("leave")
    assert guest.closed == (1000, "left")
    assert mod.of_type("guestLeft")[0]["data"] == {"id": seat.user_id}
    assert world.join(meeting, "Mia", Role.MODERATOR).joined["waitingGuests"] == []
    back = world.open_socket(seat.token)
    assert back.types() == ["lobby"]
    assert len(mod.of_type("guestWaiting")) == 2


def test_the_duration_timer_ends_the_meeting_for_every_socket(world: World) -> None:
    """A meeting created with duration=1 closes every socket with 4010 after a minute."""
    meeting = world.meeting(duration=1, guest_policy=GuestPolicy.ASK_MODERATOR)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    guest = world.open_socket(world.seat(meeting, "Gus", guest=True).token)
    world.advance(59)
    assert mod.open and guest.open
    world.advance(1)
    for c in (mod, guest):
        assert c.of_type("ended")[0]["data"]["reason"] == "ENDED_AFTER_EXCEEDING_DURATION"
        assert c.closed == (4010, "meeting ended")


def test_end_through_the_api_closes_every_socket_with_4010(world: World) -> None:
    """`end` from the XML API closes all sockets with a reason and the logout URL."""
    mod, ann = pair(world, logout_url="https://lms.example.org/bye")
    world.registry.end_meeting(world.registry.get_meeting("m1"),  # type: ignore[arg-type]
                               EndReason.ENDED_FROM_API)
    world.flush()
    for c in (mod, ann):
        assert c.received[-1] == {"type": "ended", "data": {
            "reason": "ENDED_FROM_API", "message": "The meeting has been ended.",
            "logoutUrl": "https://lms.example.org/bye"}}
        assert c.closed == (4010, "meeting ended")


def test_a_dropped_socket_in_grace_does_not_survive_the_meeting_end(world: World) -> None:
    """Ending a meeting cancels pending resume timers and voids the link."""
    mod, ann = pair(world)
    token = world.server_of(ann).seat.token
    world.drop(ann)
    mod.ok("end")
    assert world.service.hub.grace == {} and world.clock.getDelayedCalls() == []
    late = world.open_socket(token)
    assert late.closed == (4004, "meeting ended")


def test_end_when_no_moderator_ends_after_the_last_moderator_leaves(world: World) -> None:
    """With endWhenNoModerator the viewers' sockets close once no moderator is left."""
    mod, ann = pair(world, end_when_no_moderator=True, end_when_no_moderator_delay_minutes=1)
    mod.ok("leave")
    world.advance(59)
    assert ann.open
    world.advance(2)
    assert ann.of_type("ended")[0]["data"]["reason"] == "ENDED_DUE_TO_NO_MODERATOR"
    assert ann.closed == (4010, "meeting ended")


def test_the_meeting_runs_while_anyone_is_connected(world: World) -> None:
    """isMeetingRunning follows the sockets: true while someone is in, false after."""
    meeting = world.meeting(expire_when_last_user_left_minutes=5)
    assert not meeting.running
    a = world.join(meeting, "A")
    assert meeting.running and meeting.has_user_joined
    a.ok("leave")
    assert not meeting.running and not meeting.ended
    world.advance(300)
    assert meeting.ended and meeting.end_reason == "ENDED_WHEN_LAST_USER_LEFT"


def test_shutdown_closes_every_socket_with_1001(world: World) -> None:
    """Stopping the service closes all sockets with 1001 and refuses new ones (503)."""
    mod, ann = pair(world)
    world.service.startService()
    done: list[object] = []
    world.service.stopService().addBoth(done.append)
    world.flush()
    assert done == [None]
    assert mod.closed == (1001, "server shutting down") == ann.closed
    assert world.registry.get_meeting("m1") is not None  # ending meetings is tap's call
    with pytest.raises(Refused) as refused:
        world.open_socket(world.seat(world.registry.get_meeting("m1"), "Late").token)  # type: ignore
    assert "[503]: server shutting down" in str(refused.value)
    assert world.clock.getDelayedCalls() == []


def test_shutdown_gives_up_on_peers_that_never_answer(world: World) -> None:
    """A peer that never completes the closing handshake can't hold up shutdown."""
    mod, ann = pair(world)
    for pump in world.pumper.pumps:
        world.pumper.frozen.add(pump)
    done: list[object] = []
    world.service.stopService().addBoth(done.append)
    world.advance(5.9)
    assert done == []
    world.advance(0.2)
    assert done == [None]
    world.pumper.frozen.clear()
    world.flush()
    assert world.service.hub.conns == set()
    assert mod.closed is not None and ann.closed is not None


def test_a_promoted_moderator_learns_about_waiting_guests(world: World) -> None:
    """Promotion to moderator brings the current lobby as `guestWaiting` events."""
    meeting = world.meeting(guest_policy=GuestPolicy.ASK_MODERATOR)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    seat = world.seat(meeting, "Gus", guest=True)
    world.open_socket(seat.token)
    assert not ann.of_type("guestWaiting")
    mod.ok("role", {"userId": ann.user_id, "role": "MODERATOR"})
    assert ann.of_type("guestWaiting")[0]["data"] == {"id": seat.user_id, "name": "Gus"}
    ann.ok("admit", {"userId": seat.user_id})
