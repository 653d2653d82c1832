"""The roster a newcomer gets in ``joined``: complete and current in a big room.

The hub keeps every participant's JSON encoded and the whole roster encoded between
changes (so a join into a room of 1,000 does not encode 1,000 participants again); these
tests check that what a newcomer receives is exactly what encoding the meeting afresh
would give, after every kind of change.
"""

from __future__ import annotations

from typing import Any

from meetplatform.model import Meeting, Role
from meetplatform.signalling import messages as msg
from tests.signalling.harness import World, card, ids


def fresh_roster(world: World, meeting: Meeting) -> list[dict[str, Any]]:
    """The participants as the hub would encode them without any cache."""
    grace = world.service.hub.grace
    return [msg.participant_json(p, p in grace) for p in meeting.participants.values()]


def connect_many(world: World, meeting: Meeting, count: int, start: int) -> list[Any]:
    """``count`` participants connected through the registry (no socket: the hub sees
    their events, which is what a big room's joins are to the others)."""
    out = []
    for i in range(start, start + count):
        seat = world.seat(meeting, f"P{i}", external_user_id=f"ext-{i}")
        out.append(world.registry.connect(seat))
    return out


def test_a_joiner_in_a_1000_room_receives_every_participant_exactly_once(
        world: World) -> None:
    """A room filled to 1,000 (sockets and registry joins mixed, with changes between
    them): the next joiner's roster lists every participant once, in the meeting's order,
    each as it is now."""
    meeting = world.meeting()
    sockets = [world.join(meeting, f"S{i}", Role.MODERATOR if i == 0 else Role.VIEWER)
               for i in range(10)]
    assert len(sockets[-1].joined["participants"]) == 10
    others = connect_many(world, meeting, 400, 10)
    world.registry.set_raised_hand(others[5], True)          # a change: card dropped
    world.registry.update_media(others[7], muted=False, joined_voice=True)
    middle = world.join(meeting, "Middle")                   # roster rebuilt, then cached
    assert ids(middle.joined["participants"]) == list(meeting.participants)
    assert middle.joined["participants"] == fresh_roster(world, meeting)
    others += connect_many(world, meeting, 400, 410)         # appended to the cached roster
    world.registry.disconnect(others[100], "left")           # one leaves
    world.registry.set_presenter(meeting, others[200].user_id)
    world.drop(sockets[3])                                   # reconnecting (grace)
    replacement = world.seat(meeting, "P9 again", external_user_id="ext-9")
    world.registry.connect(replacement)                      # ext-9 replaced: same place
    others += connect_many(world, meeting, 1000 - len(meeting.participants) - 1, 810)
    assert len(meeting.participants) == 999
    last = world.join(meeting, "Last")
    roster = last.joined["participants"]
    assert len(roster) == 1000 == len(meeting.participants)
    assert len(set(ids(roster))) == 1000
    assert ids(roster) == list(meeting.participants)
    assert roster == fresh_roster(world, meeting)
    assert last.user_id in ids(roster)
    by_id = {p["id"]: p for p in roster}
    assert by_id[others[5].user_id]["raisedHand"] is True
    assert by_id[others[200].user_id]["presenter"] is True
    assert by_id[world.server_of(sockets[3]).participant.user_id]["reconnecting"] is True
    assert others[100].user_id not in by_id
    # every socket saw every later joiner once, and the replaced identity not twice
    joined_later = [m["data"]["participant"]["id"]
                    for m in sockets[0].received if m["type"] == "participantJoined"]
    assert len(joined_later) == len(set(joined_later))


def test_resume_and_updates_reach_the_next_roster(world: World) -> None:
    """A participant that resumes is no longer reconnecting in the next newcomer's roster;
    a role change shows too."""
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    token = world.server_of(ann).seat.token
    world.drop(ann)
    first = world.join(meeting, "First")
    assert {p["name"]: card(p)["reconnecting"]
            for p in first.joined["participants"]}["Ann"] is True
    again = world.open_socket(token)
    world.registry.set_role(meeting, again.user_id, Role.MODERATOR, by=None)
    second = world.join(meeting, "Second")
    ann_card = {p["name"]: p for p in second.joined["participants"]}["Ann"]
    assert card(ann_card)["reconnecting"] is False and ann_card["role"] == "MODERATOR"
    assert second.joined["participants"] == fresh_roster(world, meeting)
    assert mod.open


class _Recorder:
    """A socket that records the frames written to it."""

    def __init__(self) -> None:
        self.data = b""

    def write_frame(self, data: bytes) -> None:
        self.data += data


def test_a_turns_join_announcements_go_out_together_and_in_order(world: World) -> None:
    """Joins of one turn are written as one write per socket at the end of the turn, or
    before anything else is written to the room; a socket that arrived during the turn
    gets only the announcements after its own join. A big room's window is one
    participantsJoined listing the joiners."""
    from meetplatform.signalling.hub import Room, frame

    def joined_frame(card: bytes) -> bytes:
        return frame(b'{"type":"participantJoined","data":{"participant":' + card
                     + b',"polite":false}}')

    for batched in (False, True):
        room = Room(world.meeting(f"m-{batched}"))
        early, late = _Recorder(), _Recorder()
        room.conns["early"] = early  # type: ignore[assignment]
        room.batched = batched
        room.pending.append(b'{"id":"a"}')
        room.conns["late"] = late  # type: ignore[assignment]
        room.marks["late"] = 1
        room.pending.append(b'{"id":"b"}')
        update = frame(b'{"n":3}')
        room.broadcast(update)
        if batched:
            assert early.data == frame(
                b'{"type":"participantsJoined","data":{"participants":[{"id":"a"},{"id":"b"}]'
                b',"polite":false}}') + update
        else:
            assert early.data == joined_frame(b'{"id":"a"}') + joined_frame(b'{"id":"b"}') \
                + update
        assert late.data == joined_frame(b'{"id":"b"}') + update  # one join: on its own
        assert room.pending == [] and room.marks == {} and not room.batched


def test_join_announcements_precede_later_messages_on_the_wire(world: World) -> None:
    """Participants joining in the same turn as a chat message and a hand raised: every
    socket sees each participantJoined once, before anything about that participant."""
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    mod.take()
    ann.take()
    newcomers = connect_many(world, meeting, 3, 0)          # no pumping: one turn
    world.registry.set_raised_hand(newcomers[1], True)
    world.registry.send_chat(meeting, "hello", "Mod")
    world.flush()
    for client in (mod, ann):
        kinds = [(m["type"], m["data"].get("participant", {}).get("id"))
                 for m in client.take()]
        assert kinds == [*(("participantJoined", p.user_id) for p in newcomers),
                         ("participantUpdated", newcomers[1].user_id), ("chat", None)]


def test_a_frame_made_of_parts_is_the_frame_of_their_join() -> None:
    """frame_of gives the bytes of frame() for every length class of RFC 6455 headers."""
    from meetplatform.signalling.hub import frame, frame_of

    for length in (0, 1, 125, 126, 127, 65_535, 65_536, 300_000):
        payload = bytes(i % 251 for i in range(length))
        parts = [payload[:length // 3], payload[length // 3:]]
        assert frame_of(parts) == frame(payload)
    assert msg.event_of_parts("joined", [("self", b'{"a":1}'), ("n", b"[1]")]) == msg.event(
        "joined", {"self": {"a": 1}, "n": [1]})


def announced(messages: list[dict[str, Any]]) -> list[list[str]]:
    """The ids each join announcement names, one list per message."""
    out = []
    for m in messages:
        if m["type"] == "participantJoined":
            out.append([m["data"]["participant"]["id"]])
        elif m["type"] == "participantsJoined":
            assert m["data"]["polite"] is False
            out.append(ids(m["data"]["participants"]))
    return out


def test_a_big_rooms_joins_are_announced_together_within_the_window(
        world: World, monkeypatch: Any) -> None:
    """In a big room joins are gathered for ``JOIN_WINDOW`` and written as one
    participantsJoined; anything written to the room meanwhile comes after them, and a
    socket that arrives in the window finds the gathered joiners in its roster and is not
    told about them again."""
    from meetplatform.signalling import hub

    monkeypatch.setattr(hub, "BIG_ROOM", 3)
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    bob = world.join(meeting, "Bob")                         # three sockets: a big room
    for client in (mod, ann, bob):
        client.take()
    first, second = connect_many(world, meeting, 2, 900)
    world.flush()                                            # the turn is over ...
    assert announced(mod.received) == []                     # ... the window is not
    world.advance(hub.JOIN_WINDOW)
    for client in (mod, ann, bob):
        messages = client.take()
        assert [m["type"] for m in messages] == ["participantsJoined"]
        assert announced(messages) == [[first.user_id, second.user_id]]
        assert [card(p)["muted"] for p in messages[0]["data"]["participants"]] == [True] * 2
    (third,) = connect_many(world, meeting, 1, 910)
    late = world.join(meeting, "Late")                       # in the window
    assert third.user_id in ids(late.joined["participants"])
    mod.ok("chat", {"text": "welcome"})                      # written before the window ends
    messages = [m for m in ann.take() if m["type"] != "ack"]
    assert [m["type"] for m in messages] == ["participantsJoined", "chat"]
    assert announced(messages) == [[third.user_id, late.user_id]]
    world.advance(hub.JOIN_WINDOW)
    assert announced(ann.received) == []                     # nothing written twice
    assert announced(late.received) == []


def test_a_hall_gathers_joins_for_longer(world: World, monkeypatch: Any) -> None:
    """From ``HALL`` sockets the window is ``HALL_WINDOW``: a join is not announced after
    ``JOIN_WINDOW``, and is once the longer window has passed."""
    from meetplatform.signalling import hub

    monkeypatch.setattr(hub, "BIG_ROOM", 2)
    monkeypatch.setattr(hub, "HALL", 3)
    meeting = world.meeting()
    clients = [world.join(meeting, name) for name in ("Ann", "Bob", "Cid")]
    world.advance(hub.HALL_WINDOW)                           # Cid's own announcement
    for client in clients:
        client.take()
    (joiner,) = connect_many(world, meeting, 1, 0)
    world.advance(hub.JOIN_WINDOW)
    assert announced(clients[0].received) == []
    world.advance(hub.HALL_WINDOW - hub.JOIN_WINDOW)
    for client in clients:
        assert announced(client.take()) == [[joiner.user_id]]


def test_gathered_items_are_handled_once_in_order_and_a_failure_holds_back_none(
        fail_on_logged_failures: list[Any]) -> None:
    """The gatherer behind the join announcements and the turn sender: items added before
    the delay are handled together, in order, once; one that fails is logged and the
    others are still handled; later items wait for a new delay."""
    from twisted.internet.task import Clock

    from meetplatform.signalling.hub import Gathered

    clock = Clock()
    handled: list[str] = []

    def each(item: str) -> None:
        if item == "bad":
            raise RuntimeError("boom")
        handled.append(item)

    gathered = Gathered(clock, 0.25, each, "announcing joins")
    for item in ("a", "bad", "b"):
        gathered.add(item)
    clock.advance(0.2)
    assert handled == []
    clock.advance(0.05)
    assert handled == ["a", "b"]
    gathered.add("c")
    clock.advance(0.25)
    assert handled == ["a", "b", "c"]
    assert [(e["what"], e["log_failure"].type) for e in fail_on_logged_failures] == [
        ("announcing joins", RuntimeError)]
    fail_on_logged_failures.clear()  # the one expected
