"""Polls reach bbb-webhooks: ``poll-started`` and ``poll-responded`` (anonymous answers
without their voter)."""

from __future__ import annotations

from pathlib import Path

from meetplatform.model import PollKind, Role
from tests.webhooks.harness import World
from tests.webhooks.test_join_path import hook_events


def test_poll_events_as_bbb_webhooks_sends_them(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.hook("http://127.0.0.1:9/hook")
    meeting = w.meeting("m1")
    teacher = w.join(meeting, "Teacher", Role.MODERATOR)
    pupil = w.join(meeting, "Pupil")
    poll = w.registry.start_poll(meeting, PollKind.YES_NO, question="Ready?", by=teacher)
    w.registry.answer_poll(meeting, pupil, poll.id, 1)
    secret = w.registry.start_poll(meeting, PollKind.FREE_TEXT, anonymous=True, by=teacher)
    w.registry.answer_poll(meeting, pupil, secret.id, "no idea")
    w.turn()
    events = [e for e in hook_events(w.sender.sent) if e["id"].startswith("poll-")]
    assert [e["id"] for e in events] == ["poll-started", "poll-responded"] * 2
    started, responded, secret_started, secret_responded = (e["attributes"] for e in events)
    meeting_attrs = {"internal-meeting-id": meeting.internal_id, "external-meeting-id": "m1"}
    assert started == {
        "meeting": meeting_attrs,
        "user": {"internal-user-id": teacher.user_id,
                 "external-user-id": teacher.external_user_id},
        "poll": {"id": poll.id, "type": "YN", "question": "Ready?", "anonymous": False,
                 "answers": [{"id": 0, "key": "Yes"}, {"id": 1, "key": "No"}]}}
    assert responded == {
        "meeting": meeting_attrs,
        "user": {"internal-user-id": pupil.user_id, "external-user-id": pupil.external_user_id},
        "poll": {"id": poll.id, "answerIds": [1]}}
    assert secret_started["poll"]["anonymous"] is True
    assert secret_responded == {"meeting": meeting_attrs,
                                "poll": {"id": secret.id, "answer": "no idea"}}
