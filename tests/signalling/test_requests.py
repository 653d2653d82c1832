"""Every request type: acks, typed errors, permission checks and what others see."""

from __future__ import annotations

import json

from meetplatform.model import Role
from tests.signalling.harness import Client, World, card, pair


def room(world: World) -> tuple[Client, Client, Client]:
    """A moderator and two viewers in meeting m1, with their inboxes emptied."""
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    ben = world.join(meeting, "Ben")
    for c in (mod, ann, ben):
        c.take()
    return mod, ann, ben


def test_media_state_is_fanned_out_to_everyone(world: World) -> None:
    """`media` updates the participant and everyone (itself included) gets it."""
    mod, ann, ben = room(world)
    assert ann.ok("media", {"joinedVoice": True, "muted": False, "video": True}) == {}
    for c in (mod, ann, ben):
        [update] = c.of_type("participantUpdated")
        p = card(update["data"]["participant"])
        assert (p["id"], p["joinedVoice"], p["muted"], p["video"]) == (ann.user_id, True,
                                                                       False, True)
    participant = world.registry.get_meeting("m1").participants[ann.user_id]  # type: ignore
    assert participant.video_streams == 1 and participant.joined_voice


def test_chat_reaches_everyone_including_the_sender(world: World) -> None:
    """`chat` is acked with the message id and arrives as a `chat` event for all."""
    mod, ann, ben = room(world)
    ack = ann.ok("chat", {"text": "  hello  "})
    for c in (mod, ann, ben):
        [chat] = c.of_type("chat")
        assert chat["data"] == {"id": ack["id"], "from": ann.user_id, "name": "Ann",
                                "text": "hello", "at": world.registry.now()}
    assert ann.fails("chat", {"text": " "}) == "invalid"
    assert ann.fails("chat", {"text": "x" * 501}) == "invalid"


def test_broken_text_in_chat_is_an_error_frame_and_nobody_else_notices(world: World) -> None:
    """A chat text holding a lone surrogate (valid JSON, not valid Unicode) gets a typed
    `invalid` error naming the field; nothing is fanned out, the sender's socket stays
    open, and everyone (a later joiner included) goes on as before."""
    mod, ann, ben = room(world)
    rid = ann.request("chat", {"text": "hi \ud800"})
    answer = ann.reply(rid)
    assert (answer["type"], answer["code"], answer["request"]) == ("error", "invalid", "chat")
    assert "/data/text" in answer["message"]
    assert not any(c.of_type("chat") for c in (mod, ann, ben))
    late = world.join(world.registry.get_meeting("m1"), "Late")  # type: ignore[arg-type]
    assert late.open and sorted(p["name"] for p in late.joined["participants"]) == [
        "Ann", "Ben", "Late", "Mod"]
    ack = ann.ok("chat", {"text": "hello"})
    for c in (mod, ann, ben, late):
        assert [m["data"]["id"] for m in c.of_type("chat")] == [ack["id"]]
        assert c.open


def test_chat_sent_through_the_api_arrives_as_a_chat_event(world: World) -> None:
    """sendChatMessage (registry.send_chat without a sender) arrives with from=null."""
    _, ann, _ = room(world)
    world.registry.send_chat(world.registry.get_meeting("m1"), "from the LMS",  # type: ignore
                             "Teacher")
    world.flush()
    [chat] = ann.of_type("chat")
    assert chat["data"]["from"] is None and chat["data"]["name"] == "Teacher"


def test_hands_are_raised_by_owners_and_lowered_by_moderators(world: World) -> None:
    """Anyone raises/lowers their own hand; only moderators lower someone else's."""
    mod, ann, ben = room(world)
    ann.ok("raiseHand", {"raised": True})
    assert ben.of_type("participantUpdated")[-1]["data"]["participant"]["raisedHand"]
    assert ben.fails("lowerHand", {"userId": ann.user_id}) == "notAllowed"
    mod.ok("lowerHand", {"userId": ann.user_id})
    lowered = ben.of_type("participantUpdated")[-1]["data"]["participant"]
    assert lowered["id"] == ann.user_id and "raisedHand" not in lowered  # false: left out
    ann.ok("raiseHand", {"raised": True})
    ann.ok("lowerHand", {"userId": ann.user_id})
    assert mod.fails("lowerHand", {"userId": "w_nobody"}) == "notFound"


def test_moderators_ask_one_participant_to_mute(world: World) -> None:
    """`mute` sends `muteRequested` to the target only; viewers may not."""
    mod, ann, ben = room(world)
    mod.ok("mute", {"userId": ann.user_id})
    assert ann.of_type("muteRequested") == [{"type": "muteRequested", "data": {"by": "Mod"}}]
    assert not ben.of_type("muteRequested") and not mod.of_type("muteRequested")
    assert ben.fails("mute", {"userId": ann.user_id}) == "notAllowed"
    assert mod.fails("mute", {"userId": "w_nobody"}) == "notFound"
    assert mod.fails("mute", {}) == "invalid"


def test_mute_all_asks_everyone_but_the_moderator(world: World) -> None:
    """`muteAll` reaches every other participant and the ack counts them."""
    mod, ann, ben = room(world)
    assert mod.ok("muteAll") == {"count": 2}
    assert ann.of_type("muteRequested") and ben.of_type("muteRequested")
    assert not mod.of_type("muteRequested")
    assert ann.fails("muteAll") == "notAllowed"


def test_remove_closes_the_target_with_4009_and_voids_its_link(world: World) -> None:
    """A removed participant gets `removed` and 4009, others `participantLeft`; its link
    no longer works."""
    mod, ann, ben = room(world)
    assert ben.fails("remove", {"userId": ann.user_id}) == "notAllowed"
    assert mod.fails("remove", {"userId": mod.user_id}) == "notAllowed"
    token = world.server_of(ann).seat.token
    mod.ok("remove", {"userId": ann.user_id})
    assert ann.types()[-1] == "removed" and ann.closed == (4009, "removed by a moderator")
    for c in (mod, ben):
        assert c.of_type("participantLeft")[0]["data"] == {"id": ann.user_id,
                                                           "reason": "removed"}
    again = world.open_socket(token)
    assert again.types() == ["removed"] and again.closed == (4009, "removed")


def test_presenter_moves_to_the_chosen_participant(world: World) -> None:
    """`presenter` makes the target presenter and unmakes the previous one."""
    mod, ann, ben = room(world)
    mod.ok("presenter", {"userId": ben.user_id})
    updates = {u["data"]["participant"]["id"]: card(u["data"]["participant"])["presenter"]
               for u in ann.of_type("participantUpdated")}
    assert updates == {mod.user_id: False, ben.user_id: True}
    assert ann.fails("presenter", {"userId": ann.user_id}) == "notAllowed"


def test_role_changes_promote_and_demote(world: World) -> None:
    """`role` promotes a viewer; guests can't be promoted unless the meeting allows it."""
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    guest = world.join(meeting, "Gus", guest=True)
    mod.ok("role", {"userId": ann.user_id, "role": "MODERATOR"})
    assert ann.of_type("participantUpdated")[-1]["data"]["participant"]["role"] == "MODERATOR"
    assert guest.fails("role", {"userId": guest.user_id, "role": "MODERATOR"}) == "notAllowed"
    assert mod.fails("role", {"userId": guest.user_id, "role": "MODERATOR"}) == "notAllowed"
    assert ann.ok("mute", {"userId": mod.user_id}) == {}  # Ann is a moderator now


def test_end_by_a_moderator_closes_every_socket_with_4010(world: World) -> None:
    """`end` is acked, then everyone gets `ended` and close 4010; viewers may not end."""
    mod, ann, ben = room(world)
    assert ann.fails("end") == "notAllowed"
    rid = mod.request("end")
    assert mod.received[0] == {"type": "ack", "id": rid, "data": {}}
    for c in (mod, ann, ben):
        assert c.of_type("ended")[0]["data"]["reason"] == "ENDED_BY_MODERATOR"
        assert c.closed == (4010, "meeting ended")
        assert not c.of_type("participantLeft")
    assert world.registry.get_meeting("m1") is None


def test_leave_is_immediate_and_closes_normally(world: World) -> None:
    """`leave` is acked, others see `participantLeft` at once (no grace), close 1000."""
    mod, ann, _ = room(world)
    ann.ok("leave")
    assert ann.closed == (1000, "left")
    assert mod.of_type("participantLeft")[0]["data"] == {"id": ann.user_id, "reason": "left"}
    assert ann.user_id not in world.registry.get_meeting("m1").participants  # type: ignore


def test_ping_is_answered_with_the_server_time(world: World) -> None:
    """`ping` {ts} is acked with the same ts and the server's clock in ms."""
    mod, _, _ = room(world)
    assert mod.ok("ping", {"ts": 123.5}) == {"ts": 123.5, "serverTs": world.registry.now()}
    assert mod.fails("ping", {"ts": "soon"}) == "invalid"


def test_bad_frames_get_typed_errors_and_the_socket_stays_usable(world: World) -> None:
    """Garbage, unknown types and binary frames are answered with errors, not closes."""
    mod, _, _ = room(world)
    mod.send_raw(b"{nope")
    mod.send_raw(b'"just a string"')
    mod.send_raw(b'{"type":"ping"}', binary=True)
    assert [(m["type"], m["code"], "id" in m) for m in mod.take()] == [
        ("error", "invalid", False)] * 3
    assert mod.fails("teleport") == "unknownType"
    assert mod.ok("ping") == {"ts": None, "serverTs": world.registry.now()}
    assert mod.open


def test_a_huge_number_in_a_request_is_a_typed_error_not_a_logged_crash(
        world: World) -> None:
    """`ping` with a 300-digit ts is answered `invalid` with its id; nothing is logged
    as a failure (the autouse fixture fails the test on any) and the socket stays usable."""
    mod, _, _ = room(world)
    mod.take()
    mod.send_raw(b'{"type":"ping","id":"big","data":{"ts":' + b"7" * 300 + b"}}")
    [answer] = mod.take()
    assert (answer["type"], answer["code"], answer["id"], answer["request"]) == (
        "error", "invalid", "big", "ping")
    assert mod.ok("ping", {"ts": 1}) == {"ts": 1, "serverTs": world.registry.now()}


def test_requests_without_id_get_no_ack_but_failures_are_reported(world: World) -> None:
    """Without an id, success is silent and failure still gets an `error` (no id)."""
    mod, ann, _ = room(world)
    ann.request("raiseHand", {"raised": True}, id=None)
    assert not ann.of_type("ack")
    ann.take()
    ann.request("mute", {"userId": mod.user_id}, id=None)
    assert ann.take() == [{"type": "error", "code": "notAllowed",
                           "message": "only moderators may do this", "request": "mute"}]


def test_signals_reach_only_their_addressee(world: World) -> None:
    """An offer from A to B reaches B alone, tagged with A's id; C sees nothing."""
    a, b, c = room(world)
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    assert a.ok("signal", {"to": b.user_id, "description": offer}) == {}
    a.request("signal", {"to": b.user_id, "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u1"}}, id=None)
    a.request("signal", {"to": b.user_id, "candidate": None}, id=None)
    assert [m["data"] for m in b.of_type("signal")] == [
        {"from": a.user_id, "description": offer},
        {"from": a.user_id, "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u1"}},
        {"from": a.user_id, "candidate": None}]
    assert c.received == [] and not a.of_type("signal")
    b.ok("signal", {"to": a.user_id, "description": {"type": "answer", "sdp": "v=0"}})
    assert a.of_type("signal")[0]["data"]["from"] == b.user_id and c.received == []


def test_signals_to_strangers_or_oneself_are_refused(world: World) -> None:
    """A signal to someone not connected in this meeting is notFound; to oneself invalid."""
    a, _, _ = room(world)
    other = world.meeting("m2")
    stranger = world.join(other, "Stranger")
    cand = {"candidate": None}
    assert a.fails("signal", {"to": stranger.user_id, **cand}) == "notFound"
    assert a.fails("signal", {"to": a.user_id, **cand}) == "invalid"
    assert stranger.received[-1]["type"] == "joined"


def test_newcomers_are_polite_and_existing_participants_are_not(world: World) -> None:
    """The later participant of each pair is polite: `joined` says so, others get
    `participantJoined` with polite false."""
    meeting = world.meeting()
    first = world.join(meeting, "First")
    first.take()
    second = world.join(meeting, "Second")
    assert second.joined["polite"] is True
    [joined] = first.of_type("participantJoined")
    assert joined["data"]["polite"] is False
    assert joined["data"]["participant"]["id"] == second.user_id
    assert not second.of_type("participantJoined")


def test_error_frames_are_json_objects_with_the_request_type(world: World) -> None:
    """An error answer names the failed request's id, code, message and type."""
    _, ann, _ = room(world)
    ann.send_raw(json.dumps({"type": "end", "id": 42}).encode())
    assert ann.take() == [{"type": "error", "id": 42, "code": "notAllowed",
                           "message": "only moderators may do this", "request": "end"}]


def test_moderators_start_and_stop_recording_and_everyone_sees_it(world: World) -> None:
    """`recording` (issue 12): a moderator starts and stops it when the meeting may record
    (record=true, allowStartStopRecording); everyone gets `recordingChanged`."""
    mod, ann = pair(world, record=True)
    assert ann.fails("recording", {"recording": True}) == "notAllowed"
    mod.ok("recording", {"recording": True})
    for client in (mod, ann):
        assert client.of_type("recordingChanged")[-1]["data"] == {"recording": True,
                                                                  "by": "Mod"}
    mod.ok("recording", {"recording": False})
    assert ann.of_type("recordingChanged")[-1]["data"]["recording"] is False
    assert mod.fails("recording", {}) == "invalid"


def test_recording_is_refused_without_record_or_start_stop(world: World) -> None:
    mod, _ = pair(world, record=False)
    assert mod.fails("recording", {"recording": True}) == "notAllowed"
    mod2, _ = pair(world, meeting_id="m2", record=True, allow_start_stop_recording=False)
    assert mod2.fails("recording", {"recording": True}) == "notAllowed"


def test_recording_is_unavailable_without_a_media_node(world: World) -> None:
    """A record=true meeting without a media node (mesh) cannot record: `joined` says
    `recordingAvailable: false`, autoStartRecording does nothing, and a moderator's start
    is refused with `recordingUnavailable` (not `notAllowed`); nobody hears of recording."""
    world.registry.can_record = lambda meeting: False
    meeting = world.meeting(record=True, auto_start_recording=True)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    for client in (mod, ann):
        m = client.joined["meeting"]
        assert (m["record"], m["recording"], m["recordingAvailable"]) == (True, False, False)
    mod.take()
    ann.take()
    rid = mod.request("recording", {"recording": True})
    assert mod.reply(rid) == {
        "type": "error", "id": rid, "code": "recordingUnavailable", "request": "recording",
        "message": "recording needs a media node; this meeting runs without one"}
    assert ann.fails("recording", {"recording": True}) == "notAllowed"  # not a moderator
    world.flush()
    assert not meeting.recording
    for client in (mod, ann):
        assert not client.of_type("recordingChanged")


def test_a_meeting_that_loses_its_media_node_tells_everyone(world: World) -> None:
    """When a move changes whether the meeting can record (its node failed: mesh; a node
    is back), everyone gets `recordingAvailability`; recording stops with it and resumes."""
    on_node = [True]
    world.registry.can_record = lambda meeting: on_node[0]
    mod, ann = pair(world, record=True)
    assert mod.joined["meeting"]["recordingAvailable"] is True
    mod.ok("recording", {"recording": True})
    meeting = world.registry.get_meeting("m1")
    assert meeting is not None
    on_node[0] = False
    world.registry.recording_availability_changed(meeting)
    world.flush()
    for client in (mod, ann):
        assert client.of_type("recordingAvailability")[-1]["data"] == {"available": False}
        assert client.of_type("recordingChanged")[-1]["data"] == {"recording": False,
                                                                  "by": None}
    assert mod.fails("recording", {"recording": True}) == "recordingUnavailable"
    on_node[0] = True
    world.registry.recording_availability_changed(meeting)
    world.flush()
    for client in (mod, ann):
        assert client.of_type("recordingAvailability")[-1]["data"] == {"available": True}
        assert client.of_type("recordingChanged")[-1]["data"]["recording"] is True
