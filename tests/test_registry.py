"""Behaviour of the live meeting registry, driven by a fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from meetplatform import events as ev
from meetplatform.model import (
    EndReason,
    GuestDeniedAccess,
    GuestPolicy,
    GuestStatus,
    IdNotUnique,
    MaxParticipantsReached,
    Meeting,
    MeetingSpec,
    NonUniqueVoiceBridge,
    NotAllowed,
    ParentMeetingNotFound,
    RecordingUnavailable,
    Role,
    SeatNotUsable,
)
from meetplatform.registry import Registry
from tests.support import make_clock


def make() -> tuple[Registry, Clock, list[ev.Event]]:
    clock = make_clock()
    registry = Registry(clock, server_url="http://example.test")
    seen: list[ev.Event] = []
    registry.subscribe(seen.append)
    return registry, clock, seen


def test_create_is_idempotent_without_passwords() -> None:
    """Creating the same meetingID twice returns the first meeting, not a second one."""
    registry, _, _ = make()
    first, created = registry.create_meeting(MeetingSpec("m1", "Meeting"))
    again, created_again = registry.create_meeting(MeetingSpec("m1", "Meeting"))
    assert created and not created_again and again is first


def test_create_with_other_passwords_is_refused() -> None:
    """A second create with different passwords is refused as idNotUnique."""
    registry, _, _ = make()
    registry.create_meeting(MeetingSpec("m1", "M", "ap", "mp", passwords_given=True))
    with pytest.raises(IdNotUnique):
        registry.create_meeting(MeetingSpec("m1", "M", "x", "mp", passwords_given=True))


def test_internal_id_is_sha1_of_external_id_and_create_time() -> None:
    """internalMeetingID is formed as BBB forms it."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("abc", "M"))
    assert meeting.internal_id == (
        "a9993e364706816aba3e25717850c26c9cd0d89d-" + str(meeting.create_time))


def test_voice_bridges_are_unique_among_running_meetings() -> None:
    """A voice bridge in use by another meeting is refused."""
    registry, _, _ = make()
    registry.create_meeting(MeetingSpec("a", "A", voice_bridge="71000"))
    with pytest.raises(NonUniqueVoiceBridge):
        registry.create_meeting(MeetingSpec("b", "B", voice_bridge="71000"))
    generated, _ = registry.create_meeting(MeetingSpec("c", "C"))
    assert generated.voice_bridge.isdigit() and len(generated.voice_bridge) == 5


def test_welcome_keywords_are_substituted() -> None:
    """%%CONFNAME%% and friends are replaced in the welcome message."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec(
        "a", "Math", voice_bridge="70001", dial_number="555",
        welcome="Welcome to %%CONFNAME%% (%%CONFNUM%%, %%DIALNUM%%) on %%SERVERURL%%"))
    assert meeting.welcome == "Welcome to Math (70001, 555) on http://example.test"


def test_join_then_connect_makes_the_meeting_run() -> None:
    """A seat counts as joined only once it connects; then the meeting is running."""
    registry, _, seen = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    seat = registry.issue_seat(meeting, full_name="Ann", role=Role.MODERATOR)
    assert not meeting.running and meeting.participant_count == 0
    participant = registry.connect(seat)
    assert meeting.running and meeting.participant_count == 1 and participant.presenter
    assert any(isinstance(e, ev.ParticipantJoined) for e in seen)


def test_max_participants_counts_pending_seats_and_allows_rejoin() -> None:
    """A full meeting refuses a new user but lets an already seated userID join again."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A", max_participants=1))
    registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER, external_user_id="u1")
    registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER, external_user_id="u1")
    with pytest.raises(MaxParticipantsReached):
        registry.issue_seat(meeting, full_name="Bob", role=Role.VIEWER, external_user_id="u2")


def test_duplicate_identity_replaces_the_older_connection() -> None:
    """The same userID connecting twice is one participant; the older seat is revoked."""
    registry, _, seen = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    s1 = registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER, external_user_id="u")
    s2 = registry.issue_seat(meeting, full_name="Ann 2", role=Role.VIEWER, external_user_id="u")
    p1 = registry.connect(s1)
    p2 = registry.connect(s2)
    assert p1 is p2 and meeting.participant_count == 1 and p2.full_name == "Ann 2"
    assert s1.revoked
    assert any(isinstance(e, ev.ParticipantReplaced) and e.old_seat is s1 for e in seen)
    with pytest.raises(SeatNotUsable):
        registry.connect(s1)


def test_an_identity_that_left_joins_afresh_and_is_told_apart_per_meeting() -> None:
    """The same userID after leaving is a new participant (not a replacement), and the
    same userID in another meeting is another participant."""
    registry, _, seen = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    other, _ = registry.create_meeting(MeetingSpec("b", "B"))
    first = registry.connect(registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER,
                                                 external_user_id="u"))
    elsewhere = registry.connect(registry.issue_seat(other, full_name="Ann",
                                                     role=Role.VIEWER, external_user_id="u"))
    assert elsewhere is not first and other.participant_count == 1
    registry.disconnect(first, "left")
    again = registry.connect(registry.issue_seat(meeting, full_name="Ann", role=Role.VIEWER,
                                                 external_user_id="u"))
    assert again is not first and meeting.participant_count == 1
    assert not any(isinstance(e, ev.ParticipantReplaced) for e in seen)
    newer = registry.connect(registry.issue_seat(meeting, full_name="Ann 3", role=Role.VIEWER,
                                                 external_user_id="u"))
    assert newer is again and again.full_name == "Ann 3"


def test_guest_waits_until_admitted() -> None:
    """Under ASK_MODERATOR a guest's seat waits and connects only once admitted."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(
        MeetingSpec("a", "A", guest_policy=GuestPolicy.ASK_MODERATOR))
    seat = registry.issue_seat(meeting, full_name="G", role=Role.VIEWER, guest=True)
    assert seat.guest_status is GuestStatus.WAIT
    with pytest.raises(SeatNotUsable):
        registry.connect(seat)
    registry.admit_guest(seat)
    assert registry.connect(seat).meeting is meeting


def test_always_deny_refuses_guests() -> None:
    """ALWAYS_DENY refuses guests at join."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(
        MeetingSpec("a", "A", guest_policy=GuestPolicy.ALWAYS_DENY))
    with pytest.raises(GuestDeniedAccess):
        registry.issue_seat(meeting, full_name="G", role=Role.VIEWER, guest=True)


def test_meeting_expires_when_nobody_joined() -> None:
    """With nobody joining, the meeting ends after meetingExpireIfNoUserJoinedInMinutes."""
    registry, clock, seen = make()
    meeting, _ = registry.create_meeting(
        MeetingSpec("a", "A", expire_if_no_user_joined_minutes=2))
    clock.advance(119)
    assert not meeting.ended
    clock.advance(1)
    assert meeting.ended and meeting.end_reason == EndReason.ENDED_WHEN_NOT_JOINED.value
    assert registry.get_meeting("a") is None and registry.history[-1] is meeting
    assert isinstance(seen[-1], ev.MeetingEnded)


def test_meeting_ends_after_last_user_left() -> None:
    """The meeting ends a configured time after its last participant left."""
    registry, clock, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    p = registry.connect(registry.issue_seat(meeting, full_name="A", role=Role.VIEWER))
    registry.disconnect(p)
    clock.advance(59)
    assert not meeting.ended
    clock.advance(1)
    assert meeting.end_reason == EndReason.ENDED_WHEN_LAST_USER_LEFT.value


def test_duration_ends_the_meeting() -> None:
    """A meeting with a duration ends when it is exceeded, even with people in it."""
    registry, clock, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A", duration=10))
    registry.connect(registry.issue_seat(meeting, full_name="A", role=Role.VIEWER))
    clock.advance(600)
    assert meeting.end_reason == EndReason.ENDED_AFTER_EXCEEDING_DURATION.value
    assert meeting.participant_count == 0


def test_end_when_no_moderator() -> None:
    """With endWhenNoModerator the meeting ends once no moderator has been in for the delay."""
    registry, clock, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec(
        "a", "A", end_when_no_moderator=True, end_when_no_moderator_delay_minutes=1))
    mod = registry.connect(registry.issue_seat(meeting, full_name="M", role=Role.MODERATOR))
    registry.connect(registry.issue_seat(meeting, full_name="V", role=Role.VIEWER))
    registry.disconnect(mod)
    clock.advance(60)
    assert meeting.end_reason == EndReason.ENDED_DUE_TO_NO_MODERATOR.value


def test_removed_participant_cannot_reconnect() -> None:
    """A participant removed by a moderator cannot use its seat again."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    mod = registry.connect(registry.issue_seat(meeting, full_name="M", role=Role.MODERATOR))
    seat = registry.issue_seat(meeting, full_name="V", role=Role.VIEWER)
    viewer = registry.connect(seat)
    registry.remove(meeting, viewer.user_id, by=mod)
    assert meeting.participant_count == 1
    with pytest.raises(SeatNotUsable):
        registry.connect(seat)


def test_void_seats_are_still_found_with_the_reason() -> None:
    """lookup_seat finds removed, replaced, denied and ended seats and says why."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(
        MeetingSpec("a", "A", guest_policy=GuestPolicy.ASK_MODERATOR))
    mod = registry.connect(registry.issue_seat(meeting, full_name="M", role=Role.MODERATOR))
    removed = registry.issue_seat(meeting, full_name="R", role=Role.VIEWER)
    registry.remove(meeting, registry.connect(removed).user_id, by=mod)
    old = registry.issue_seat(meeting, full_name="D", role=Role.VIEWER, external_user_id="d")
    registry.connect(old)
    registry.connect(registry.issue_seat(meeting, full_name="D", role=Role.VIEWER,
                                         external_user_id="d"))
    denied = registry.issue_seat(meeting, full_name="G", role=Role.VIEWER, guest=True)
    registry.deny_guest(denied, by=mod)
    live = registry.issue_seat(meeting, full_name="L", role=Role.VIEWER)
    assert [registry.lookup_seat(s.token).revoked_reason  # type: ignore[union-attr]
            for s in (removed, old, denied)] == ["removed", "replaced", "denied"]
    assert registry.seat_for_token(removed.token) is None
    assert registry.lookup_seat(live.token) is live and not live.revoked
    registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    assert registry.seat_for_token(live.token) is None
    found = registry.lookup_seat(live.token)
    assert found is live and found.meeting.ended
    assert registry.lookup_seat("never-issued") is None


def test_void_seats_are_forgotten_beyond_the_limit() -> None:
    """Only the most recent VOID_SEATS_LIMIT void tokens are remembered."""
    registry, _, _ = make()
    registry.VOID_SEATS_LIMIT = 2  # type: ignore[misc]
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    seats = [registry.issue_seat(meeting, full_name=str(n), role=Role.VIEWER)
             for n in range(3)]
    registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    assert [registry.lookup_seat(s.token) is s for s in seats] == [False, True, True]


def test_the_lobby_lists_guests_whose_browser_waits() -> None:
    """guest_waiting/guest_left track the lobby and tell subscribers once each."""
    registry, _, seen = make()
    meeting, _ = registry.create_meeting(
        MeetingSpec("a", "A", guest_policy=GuestPolicy.ASK_MODERATOR))
    seat = registry.issue_seat(meeting, full_name="G", role=Role.VIEWER, guest=True)
    assert meeting.lobby() == [] and meeting.waiting_guests() == [seat]
    registry.guest_waiting(seat)
    registry.guest_waiting(seat)
    assert meeting.lobby() == [seat]
    registry.guest_left(seat)
    registry.guest_left(seat)
    assert meeting.lobby() == []
    kinds = [type(e) for e in seen if isinstance(e, (ev.GuestWaiting, ev.GuestLeft))]
    assert kinds == [ev.GuestWaiting, ev.GuestLeft]
    registry.guest_waiting(seat)
    registry.admit_guest(seat)
    assert meeting.lobby() == [] and not seat.in_lobby


def test_only_moderators_end_a_meeting_from_the_conference() -> None:
    """end_meeting with a viewer as `by` is refused; with a moderator it ends."""
    registry, _, _ = make()
    meeting, _ = registry.create_meeting(MeetingSpec("a", "A"))
    mod = registry.connect(registry.issue_seat(meeting, full_name="M", role=Role.MODERATOR))
    viewer = registry.connect(registry.issue_seat(meeting, full_name="V", role=Role.VIEWER))
    with pytest.raises(NotAllowed):
        registry.end_meeting(meeting, EndReason.ENDED_BY_MODERATOR, by=viewer)
    assert not meeting.ended
    registry.end_meeting(meeting, EndReason.ENDED_BY_MODERATOR, by=mod)
    assert meeting.ended and meeting.forcibly_ended


def test_a_breakout_needs_a_running_parent() -> None:
    """A breakout is refused when its parent (external or internal id) does not run, has
    ended, or is the breakout itself; with a running parent it is listed there."""
    registry, _, _ = make()
    for parent_id in ("nobody", "b1"):
        with pytest.raises(ParentMeetingNotFound):
            registry.create_meeting(MeetingSpec(meeting_id="b1", name="B", is_breakout=True,
                                                parent_meeting_id=parent_id))
    parent, _ = registry.create_meeting(MeetingSpec(meeting_id="p", name="P"))
    child, _ = registry.create_meeting(MeetingSpec(
        meeting_id="b1", name="B", is_breakout=True, parent_meeting_id=parent.internal_id))
    assert parent.breakout_ids == [child.internal_id]
    registry.end_meeting(parent, EndReason.ENDED_FROM_API)
    with pytest.raises(ParentMeetingNotFound):
        registry.create_meeting(MeetingSpec(meeting_id="b2", name="B", is_breakout=True,
                                            parent_meeting_id="p"))
    assert registry.get_meeting("b2") is None


def test_a_meeting_that_cannot_record_refuses_to_start_and_ignores_auto_start() -> None:
    """Without a media node (``can_record`` says no: mesh) a ``record=true`` meeting does
    not record: ``autoStartRecording`` is not honoured, a moderator's start is refused
    with its own error, no RecordingChanged is emitted; stopping is never refused."""
    registry, _, seen = make()
    asked: list[str] = []

    def cannot(meeting: Meeting) -> bool:
        asked.append(meeting.meeting_id)
        return False

    registry.can_record = cannot
    meeting, _ = registry.create_meeting(MeetingSpec(
        meeting_id="m1", name="Mesh", record=True, auto_start_recording=True))
    mod = registry.connect(registry.issue_seat(meeting, full_name="Mod",
                                               role=Role.MODERATOR))
    assert asked == ["m1"]
    assert not meeting.recording and not meeting.recorded
    assert meeting.recording_available is False
    with pytest.raises(RecordingUnavailable, match="needs a media node"):
        registry.set_recording(meeting, True, by=mod)
    with pytest.raises(NotAllowed):  # a RecordingUnavailable is a refusal like the others
        registry.set_recording(meeting, True)
    assert registry.set_recording(meeting, False, by=mod) is False
    assert not meeting.recording
    assert not [e for e in seen if isinstance(e, (ev.RecordingChanged,
                                                   ev.RecordingAvailabilityChanged))]
    assert registry.recording_available(meeting) is False


def test_by_default_the_registry_alone_may_record() -> None:
    """The registry alone (no media layer told it otherwise) keeps BBB's semantics."""
    registry, _, seen = make()
    meeting, _ = registry.create_meeting(MeetingSpec(
        meeting_id="m1", name="Rec", record=True, auto_start_recording=True))
    registry.connect(registry.issue_seat(meeting, full_name="Mod", role=Role.MODERATOR))
    assert meeting.recording and registry.recording_available(meeting)
    assert [e.recording for e in seen if isinstance(e, ev.RecordingChanged)] == [True]
    plain, _ = registry.create_meeting(MeetingSpec(meeting_id="m2", name="Plain"))
    assert registry.recording_available(plain) is False  # record=false


def test_losing_the_media_node_stops_recording_and_a_node_back_resumes_it() -> None:
    """A move to mesh (the node failed) makes recording unavailable: it stops and the
    change is announced; back on a node, it is available again and resumes. Asked again
    with no change, nothing is announced; a moderator's stop meanwhile is not undone."""
    registry, _, seen = make()
    on_node = [True]
    registry.can_record = lambda meeting: on_node[0]
    meeting, _ = registry.create_meeting(MeetingSpec(
        meeting_id="m1", name="Rec", record=True, auto_start_recording=True))
    mod = registry.connect(registry.issue_seat(meeting, full_name="Mod",
                                               role=Role.MODERATOR))
    assert meeting.recording
    seen.clear()
    registry.recording_availability_changed(meeting)  # moved to another node: no change
    assert seen == []
    on_node[0] = False
    registry.recording_availability_changed(meeting)
    assert [(type(e).__name__, getattr(e, "available", getattr(e, "recording", None)))
            for e in seen] == [("RecordingAvailabilityChanged", False),
                               ("RecordingChanged", False)]
    assert not meeting.recording and meeting.recorded
    with pytest.raises(RecordingUnavailable):
        registry.set_recording(meeting, True, by=mod)
    seen.clear()
    on_node[0] = True
    registry.recording_availability_changed(meeting)
    assert [(type(e).__name__, getattr(e, "available", getattr(e, "recording", None)))
            for e in seen] == [("RecordingAvailabilityChanged", True),
                               ("RecordingChanged", True)]
    assert meeting.recording
    registry.set_recording(meeting, False, by=mod)
    on_node[0] = False
    registry.recording_availability_changed(meeting)
    on_node[0] = True
    seen.clear()
    registry.recording_availability_changed(meeting)
    assert [type(e).__name__ for e in seen] == ["RecordingAvailabilityChanged"]
    assert not meeting.recording  # the moderator had stopped it
