"""The classroom's history: pages shown, the annotation log and polls, kept durably."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred

from meetplatform.model import PollKind, Role, SlideDocument
from meetplatform.store.history_db import ClassroomRecord
from tests.support import result
from tests.webhooks.harness import World


def test_the_classroom_log_keeps_pages_shapes_and_polls(tmp_path: Path) -> None:
    w = World(tmp_path)
    registry = w.registry
    meeting = w.meeting("m1")
    teacher = w.join(meeting, "Teacher", Role.MODERATOR)
    pupil = w.join(meeting, "Pupil")
    registry.document_changed(meeting, SlideDocument(id="d1", filename="a.pdf",
                                                      state="converting", pages_total=2))
    registry.document_changed(meeting, SlideDocument(id="d1", filename="a.pdf",
                                                      state="ready", pages_total=2,
                                                      pages_done=2))
    registry.set_page(meeting, "d1", 2, by=teacher)
    registry.draw(meeting, teacher, "s1", kind="pen", points=[0.1, 0.1])
    registry.draw(meeting, teacher, "s1", points=[0.2, 0.2])  # increments: not logged
    registry.draw(meeting, teacher, "s1", points=[0.3, 0.3], done=True)
    registry.clear_page(meeting, by=teacher)
    named = registry.start_poll(meeting, PollKind.YES_NO, by=teacher)
    registry.answer_poll(meeting, pupil, named.id, 0)
    registry.publish_poll(meeting, by=teacher)
    secret = registry.start_poll(meeting, PollKind.LETTERS, anonymous=True, by=teacher)
    registry.answer_poll(meeting, pupil, secret.id, 3)
    w.turn()
    log: list[ClassroomRecord] = result(Deferred.fromCoroutine(w.history.reader.classroom(meeting.internal_id)))
    assert [(e.kind, e.user_id) for e in log] == [
        ("document", None),  # the outcome only, not every step
        ("page", None),  # the first ready document is shown by the server
        ("page", teacher.user_id),
        ("shape", teacher.user_id),
        ("shapes-removed", teacher.user_id),
        ("poll-started", teacher.user_id),
        ("poll-answered", pupil.user_id),
        ("poll-stopped", None),
        ("poll-published", None),
        ("poll-started", teacher.user_id),
        ("poll-answered", None),  # anonymous: nobody's
    ]
    assert log[2].data == {"documentId": "d1", "page": 2}
    assert log[3].data["points"] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    assert log[3].data["page"] == "d1/2"
    assert log[4].data == {"page": "d1/2", "ids": ["s1"], "cleared": True}
    assert log[8].data["counts"] == [1, 0]
    assert log[10].data == {"id": secret.id, "answer": 3}
    later: list[ClassroomRecord] = result(Deferred.fromCoroutine(w.history.reader.classroom(
        meeting.internal_id, after=log[8].id)))
    assert [e.id for e in later] == [log[9].id, log[10].id]
