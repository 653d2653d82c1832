"""The classroom over the socket: pages, the whiteboard, polls, limits and permissions."""

from __future__ import annotations

from typing import Any

from meetplatform.model import Meeting, Role, SlideDocument
from tests.signalling.harness import Client, World


def classroom(world: World) -> tuple[Meeting, Client, Client, Client]:
    """A meeting with a ready 3-page document; a moderator (presenter) and two viewers."""
    meeting = world.meeting()
    world.registry.document_changed(meeting, SlideDocument(
        id="d1", filename="slides.pdf", state="ready", pages_total=3, pages_done=3))
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    ben = world.join(meeting, "Ben")
    for c in (mod, ann, ben):
        c.take()
    return meeting, mod, ann, ben


def stroke(points: list[float], **extra: Any) -> dict[str, Any]:
    return {"shapeId": "s1", "kind": "pen", "points": points, **extra}


def test_the_snapshot_shows_the_default_page_without_documents(world: World) -> None:
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    p = mod.joined["presentation"]
    assert (p["documentId"], p["page"], p["documents"], p["annotations"]) == (
        "default", 1, [], [])
    assert p["poll"] is None and p["multiUser"] is False


def test_a_ready_document_becomes_current_and_everyone_follows(world: World) -> None:
    meeting = world.meeting()
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    mod.take()
    doc = SlideDocument(id="d1", filename="slides.pdf", state="converting", pages_total=3,
                        pages_done=1)
    world.registry.document_changed(meeting, doc)
    world.flush()
    [progress] = mod.of_type("document")
    assert progress["data"]["pagesDone"] == 1 and progress["data"]["state"] == "converting"
    assert progress["data"]["pageUrl"] == (
        f"/presentations/{meeting.internal_id}/d1/page-{{page}}.png")
    assert not mod.of_type("presentation")
    doc.state, doc.pages_done = "ready", 3
    world.registry.document_changed(meeting, doc)
    world.flush()
    [shown] = mod.of_type("presentation")
    assert (shown["data"]["documentId"], shown["data"]["page"]) == ("d1", 1)


def test_the_presenter_turns_pages_and_viewers_follow(world: World) -> None:
    _, mod, ann, ben = classroom(world)
    assert mod.ok("setPage", {"page": 2}) == {}
    for c in (mod, ann, ben):
        [event] = c.of_type("presentation")
        assert (event["data"]["documentId"], event["data"]["page"]) == ("d1", 2)
        assert event["data"]["by"] == mod.user_id
    assert mod.fails("setPage", {"page": 4}) == "notFound"
    assert mod.fails("setPage", {"documentId": "nope", "page": 1}) == "notFound"
    assert mod.fails("setPage", {"page": 0}) == "invalid"
    assert ann.fails("setPage", {"page": 1}) == "notAllowed"
    mod.ok("setPage", {"documentId": "default", "page": 1})
    assert ann.of_type("presentation")[-1]["data"]["documentId"] == "default"


def test_the_presenter_role_moves_with_make_presenter(world: World) -> None:
    _, mod, ann, _ = classroom(world)
    mod.ok("presenter", {"userId": ann.user_id})
    assert mod.fails("setPage", {"page": 2}) == "notAllowed"
    assert ann.ok("setPage", {"page": 2}) == {}


def test_zoom_and_pan_reach_everyone_and_reset_on_a_page_turn(world: World) -> None:
    _meeting, mod, ann, _ = classroom(world)
    mod.ok("viewport", {"zoom": 2, "x": 0.3, "y": 0.9})
    [view] = ann.of_type("viewport")
    assert view["data"] == {"zoom": 2.0, "x": 0.3, "y": 0.5}  # kept within the page
    assert mod.fails("viewport", {"zoom": 9}) == "invalid"
    assert ann.fails("viewport", {"zoom": 2}) == "notAllowed"
    mod.ok("setPage", {"page": 3})
    assert ann.of_type("presentation")[-1]["data"]["viewport"] == {"zoom": 1.0, "x": 0.0,
                                                                    "y": 0.0}


def test_strokes_stream_in_small_increments_to_the_others(world: World) -> None:
    meeting, mod, ann, ben = classroom(world)
    mod.request("draw", stroke([0.1, 0.1, 0.2, 0.2], color="#00ff00"), id=None)
    mod.request("draw", {"shapeId": "s1", "points": [0.3, 0.3]}, id=None)
    mod.request("draw", {"shapeId": "s1", "points": [0.4, 0.4], "done": True}, id=None)
    assert not mod.of_type("draw") and not mod.of_type("error")  # not echoed to the drawer
    for c in (ann, ben):
        first, second, third = (m["data"] for m in c.of_type("draw"))
        assert first == {"page": "d1/1", "shapeId": "s1", "by": mod.user_id, "from": 0,
                         "points": [0.1, 0.1, 0.2, 0.2], "done": False, "kind": "pen",
                         "color": "#00ff00", "width": 0.004}
        assert (second["from"], second["points"], "kind" in second) == (4, [0.3, 0.3], False)
        assert (third["from"], third["done"]) == (6, True)
    [shape] = meeting.presentation.shapes()
    assert shape.points == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4]
    assert mod.fails("draw", {"shapeId": "s1", "points": [0.5, 0.5]}) == "invalid"  # done


def test_a_late_joiner_lands_on_the_current_page_with_its_annotations(world: World) -> None:
    meeting, mod, _, _ = classroom(world)
    mod.ok("setPage", {"page": 2})
    mod.ok("draw", {"shapeId": "r1", "kind": "rectangle", "points": [0.1, 0.1, 0.5, 0.5],
                    "done": True})
    late = world.join(meeting, "Late")
    p = late.joined["presentation"]
    assert (p["documentId"], p["page"]) == ("d1", 2)
    assert [(s["id"], s["kind"], s["points"]) for s in p["annotations"]] == [
        ("r1", "rectangle", [0.1, 0.1, 0.5, 0.5])]
    assert [d["id"] for d in p["documents"]] == ["d1"]
    # each page keeps its own annotations
    mod.ok("setPage", {"page": 1})
    assert late.of_type("presentation")[-1]["data"]["annotations"] == []
    mod.ok("setPage", {"page": 2})
    assert len(late.of_type("presentation")[-1]["data"]["annotations"]) == 1


def test_only_the_presenter_draws_unless_the_whiteboard_is_multi_user(world: World) -> None:
    _, mod, ann, ben = classroom(world)
    assert ann.fails("draw", stroke([0.1, 0.1])) == "notAllowed"
    assert ann.fails("multiUser", {"enabled": True}) == "notAllowed"
    mod.ok("multiUser", {"enabled": True})
    assert ben.of_type("multiUser")[-1]["data"] == {"enabled": True}
    ann.ok("draw", {"shapeId": "a1", "kind": "line", "points": [0.1, 0.1, 0.9, 0.9]})
    mod.ok("draw", {"shapeId": "m1", "kind": "ellipse", "points": [0.2, 0.2, 0.3, 0.3]})
    # a viewer may not grow, erase or clear someone else's shape
    assert ann.fails("draw", {"shapeId": "m1", "points": [0.4, 0.4]}) == "notAllowed"
    assert ann.fails("erase", {"shapeIds": ["m1"]}) == "notAllowed"
    assert ann.ok("clearPage") == {"removed": ["a1"]}
    ann.ok("draw", {"shapeId": "a2", "kind": "text", "points": [0.5, 0.5], "text": "hi"})
    assert ben.of_type("draw")[-1]["data"]["text"] == "hi"
    assert ann.ok("undo") == {"removed": ["a2"]}
    assert ann.ok("undo") == {"removed": []}
    mod.ok("multiUser", {"enabled": False})
    assert ann.fails("draw", stroke([0.1, 0.1])) == "notAllowed"


def test_eraser_undo_and_clear_reach_everyone(world: World) -> None:
    meeting, mod, ann, _ = classroom(world)
    for n in range(3):
        mod.ok("draw", {"shapeId": f"s{n}", "kind": "pen", "points": [0.1, 0.1]})
    assert mod.ok("erase", {"shapeIds": ["s0", "nope"]}) == {"removed": ["s0"]}
    assert mod.ok("undo") == {"removed": ["s2"]}
    assert mod.ok("clearPage") == {"removed": ["s1"]}
    removed = [m["data"] for m in ann.of_type("shapesRemoved")]
    assert [(r["ids"], r["cleared"]) for r in removed] == [
        (["s0"], False), (["s2"], False), (["s1"], True)]
    assert meeting.presentation.shapes() == []


def test_whiteboard_limits_answer_with_typed_errors(world: World) -> None:
    _meeting, mod, _, _ = classroom(world)
    registry = world.registry
    assert mod.fails("draw", {"shapeId": "x", "points": [0.1]}) == "invalid"
    assert mod.fails("draw", {"shapeId": "x", "points": [0.1, 0.1]}) == "invalid"  # no kind
    assert mod.fails("draw", {"shapeId": "x", "kind": "blob", "points": []}) == "invalid"
    assert mod.fails("draw", {"shapeId": "x", "kind": "pen", "points": [9, 9]}) == "invalid"
    assert mod.fails("draw", {"shapeId": "x", "kind": "pen", "points": [0.1] * 514}) == "invalid"
    assert mod.fails("draw", {"shapeId": "x", "kind": "pen", "color": "red",
                              "points": []}) == "invalid"
    registry.MAX_POINTS_PER_SHAPE = 6  # type: ignore[misc]
    mod.ok("draw", {"shapeId": "p", "kind": "pen", "points": [0.1] * 6})
    assert mod.fails("draw", {"shapeId": "p", "points": [0.1, 0.1]}) == "tooManyPoints"
    registry.MAX_SHAPES_PER_PAGE = 2  # type: ignore[misc]
    mod.ok("draw", {"shapeId": "q", "kind": "pen", "points": []})
    assert mod.fails("draw", {"shapeId": "r", "kind": "pen", "points": []}) == "tooManyShapes"
    registry.MAX_POINTS_PER_PAGE = 10  # type: ignore[misc]
    mod.ok("draw", {"shapeId": "q", "points": [0.2] * 4})  # 10 on the page now
    error = mod.request("draw", {"shapeId": "q", "points": [0.2, 0.2]})
    assert mod.reply(error)["code"] == "tooManyPoints"
    assert "in all" in mod.reply(error)["message"]
    mod.ok("erase", {"shapeIds": ["p"]})  # frees 6
    mod.ok("draw", {"shapeId": "q", "points": [0.2, 0.2]})


def test_the_whiteboard_has_its_own_message_budget(world: World) -> None:
    """Draws are charged to the whiteboard's rate (120/s, burst 240), not to the
    connection's 50/s: a 60/s stream goes on for ever, a flood gets `rateLimited`."""
    _meeting, mod, _, _ = classroom(world)
    mod.ok("draw", {"shapeId": "s", "kind": "pen", "points": []})
    for _ in range(600):  # 60 per second for 10 seconds
        world.clock.advance(1 / 60)
        mod.request("draw", {"shapeId": "s", "points": [0.5, 0.5]}, id=None)
    assert not mod.of_type("error")
    codes = []
    for _ in range(300):  # all at once
        mod.request("draw", {"shapeId": "s", "points": [0.5, 0.5]}, id=None)
    codes = [m["code"] for m in mod.of_type("error")]
    assert codes and set(codes) == {"rateLimited"}
    assert mod.open  # the socket survives
    mod.take()
    world.clock.advance(1)
    assert mod.ok("chat", {"text": "still here"})  # the general budget was never touched


def test_a_poll_answered_once_by_each_with_live_results_for_the_presenter(
        world: World) -> None:
    _meeting, mod, ann, ben = classroom(world)
    poll_id = mod.ok("pollStart", {"pollType": "YN", "question": "Ready?"})["id"]
    for c in (mod, ann, ben):
        [started] = c.of_type("pollStarted")
        assert started["data"]["answers"] == ["Yes", "No"]
        assert started["data"]["answered"] is False
    [results] = mod.of_type("pollResults")
    assert results["data"]["counts"] == [0, 0]
    ann.ok("pollAnswer", {"pollId": poll_id, "answer": 0})
    assert ann.fails("pollAnswer", {"pollId": poll_id, "answer": 1}) == "alreadyAnswered"
    assert ben.fails("pollAnswer", {"pollId": poll_id, "answer": 2}) == "invalid"
    assert ben.fails("pollAnswer", {"pollId": "other", "answer": 0}) == "notFound"
    results = mod.of_type("pollResults")[-1]["data"]
    assert results["counts"] == [1, 0] and results["responders"] == 1
    assert results["votes"] == [{"userId": ann.user_id, "name": "Ann", "answer": 0}]
    assert not ann.of_type("pollResults")  # only the presenter sees live results
    # a late joiner sees the running poll, and whether it answered
    assert ann.fails("pollStart", {"pollType": "TF"}) == "notAllowed"
    mod.ok("pollPublish")
    for c in (mod, ann, ben):
        assert c.of_type("pollPublished")[-1]["data"]["counts"] == [1, 0]
        chat = c.of_type("chat")[-1]["data"]
        assert chat["name"] == "Poll" and "Yes: 1 (100%)" in chat["text"]
    assert ben.fails("pollAnswer", {"pollId": poll_id, "answer": 0}) == "pollClosed"


def test_every_poll_type(world: World) -> None:
    _, mod, ann, _ = classroom(world)
    for kind, answers in (("TF", ["True", "False"]), ("A-D", ["A", "B", "C", "D"]),
                          ("CUSTOM", ["Red", "Blue", "Green"]), ("R-", [])):
        poll_id = mod.ok("pollStart", {"pollType": kind, "answers": answers})["id"]
        assert ann.of_type("pollStarted")[-1]["data"]["answers"] == answers
        answer: Any = "free words" if kind == "R-" else len(answers) - 1
        ann.ok("pollAnswer", {"pollId": poll_id, "answer": answer})
        results = mod.of_type("pollResults")[-1]["data"]
        if kind == "R-":
            assert results["texts"] == ["free words"]
        else:
            assert results["counts"][-1] == 1
    assert mod.fails("pollStart", {"pollType": "CUSTOM", "answers": ["one"]}) == "invalid"
    assert mod.fails("pollStart", {"pollType": "XX"}) == "invalid"


def test_anonymous_polls_keep_no_trace_of_who_answered_what(world: World) -> None:
    meeting, mod, ann, _ = classroom(world)
    poll_id = mod.ok("pollStart", {"pollType": "A-D", "anonymous": True})["id"]
    ann.ok("pollAnswer", {"pollId": poll_id, "answer": 2})
    results = mod.of_type("pollResults")[-1]["data"]
    assert results["counts"] == [0, 0, 1, 0] and "votes" not in results
    poll = meeting.presentation.poll
    assert poll is not None and poll.votes == {} and poll.responders == {ann.user_id}
    assert ann.fails("pollAnswer", {"pollId": poll_id, "answer": 1}) == "alreadyAnswered"


def test_a_late_joiner_sees_the_running_poll(world: World) -> None:
    meeting, mod, ann, _ = classroom(world)
    poll_id = mod.ok("pollStart", {"pollType": "YN"})["id"]
    ann.ok("pollAnswer", {"pollId": poll_id, "answer": 1})
    world.drop(ann)
    again = world.open_socket(next(iter(
        s.token for s in meeting.seats.values() if s.full_name == "Ann")))
    p = again.joined["presentation"]
    assert p["poll"]["id"] == poll_id and p["poll"]["answered"] is True
    assert "pollResults" not in p
    assert mod.joined["presentation"]["poll"] is None  # mod joined before the poll


def test_the_presenter_removes_removable_documents(world: World) -> None:
    meeting, mod, ann, _ = classroom(world)
    world.registry.document_changed(meeting, SlideDocument(
        id="fixed", filename="fixed.pdf", state="ready", pages_total=1, removable=False))
    assert ann.fails("removeDocument", {"documentId": "d1"}) == "notAllowed"
    assert mod.fails("removeDocument", {"documentId": "fixed"}) == "notAllowed"
    assert mod.fails("removeDocument", {"documentId": "nope"}) == "notFound"
    mod.ok("removeDocument", {"documentId": "d1"})
    assert ann.of_type("documentRemoved")[-1]["data"] == {"id": "d1"}
    assert ann.of_type("presentation")[-1]["data"]["documentId"] == "default"
    assert list(meeting.presentation.documents) == ["fixed"]


def test_a_new_presenter_gets_the_running_polls_results(world: World) -> None:
    _, mod, ann, _ = classroom(world)
    poll_id = mod.ok("pollStart", {"pollType": "TF"})["id"]
    ann.ok("pollAnswer", {"pollId": poll_id, "answer": 1})
    ann.take()
    mod.ok("presenter", {"userId": ann.user_id})
    [results] = ann.of_type("pollResults")
    assert results["data"]["counts"] == [0, 1]


def test_an_ended_meeting_keeps_no_annotations(world: World) -> None:
    """Ended meetings stay in the registry for a while; their shapes are history's."""
    meeting, mod, _, _ = classroom(world)
    mod.ok("draw", {"shapeId": "s", "kind": "pen", "points": [0.1, 0.1], "done": True})
    world.registry.end_meeting(meeting, "ENDED_FROM_API")
    world.flush()
    assert meeting.presentation.annotations == {} and meeting.presentation.rates == {}
