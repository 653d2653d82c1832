"""The in-process meeting registry: the single owner of live state.

Meetings, seats (what a ``join`` hands out), connected participants, the guest lobby and
the meeting timers live here. The registry takes the reactor's clock in its constructor and
never reads global time; it knows nothing of HTTP, XML, JSON or WebSockets. Every change is
announced to subscribers as a typed event from :mod:`meetplatform.events`; the types it
owns live in :mod:`meetplatform.model`.

Why one module of this size: the registry is the single owner of live state, and its
invariants (a seat and its participant, the lobby, the timers, the presenter, the end of a
meeting) span its methods; they stay readable as one class. The types it owns live in
:mod:`meetplatform.model`, the events in :mod:`meetplatform.events`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.classroom import Classroom
from meetplatform.model import (
    Attendance,
    ChatMessage,
    Document,
    EndReason,
    GuestDeniedAccess,
    GuestPolicy,
    GuestStatus,
    IdNotUnique,
    MaxParticipantsReached,
    Meeting,
    MeetingForciblyEnded,
    MeetingSpec,
    NonUniqueVoiceBridge,
    NotAllowed,
    ParentMeetingNotFound,
    Participant,
    RecordingUnavailable,
    Role,
    Seat,
    SeatNotUsable,
)

_log = Logger()

Subscriber = Callable[[ev.Event], None]


def substitute_keywords(text: str, meeting: Meeting, server_url: str) -> str:
    """Replace BBB's ``%%CONFNAME%%``-style keywords in welcome messages."""
    return (
        text.replace("%%CONFNAME%%", meeting.spec.name)
        .replace("%%DIALNUM%%", meeting.spec.dial_number)
        .replace("%%CONFNUM%%", meeting.voice_bridge)
        .replace("%%SERVERURL%%", server_url)
    )


def compute_guest_status(policy: GuestPolicy, *, guest: bool, role: Role) -> GuestStatus:
    """BBB's ``calcGuestStatus`` with ``authenticatedGuest=false`` (its default)."""
    if role is Role.MODERATOR or not guest:
        return GuestStatus.ALLOW
    if policy is GuestPolicy.ALWAYS_DENY:
        return GuestStatus.DENY
    if policy is GuestPolicy.ASK_MODERATOR:
        return GuestStatus.WAIT
    return GuestStatus.ALLOW


class Registry(Classroom):
    """Live meetings. All times are read from the injected clock, in milliseconds."""

    #: A seat handed out by ``join`` holds its place against ``maxParticipants`` this long
    #: before its browser connects.
    SEAT_RESERVATION_SECONDS = 60.0
    #: Ended meetings kept for ``getStats`` and for refusing joins to forcibly ended ones.
    HISTORY_LIMIT = 10_000
    #: Session tokens that stopped working (ended, removed, replaced, denied) are remembered
    #: this many at most, so that a browser using one learns why instead of "unknown".
    VOID_SEATS_LIMIT = 50_000

    def __init__(self, clock: IReactorTime, server_url: str = "") -> None:
        self._clock = clock
        self._server_url = server_url
        self._meetings: dict[str, Meeting] = {}
        self._by_internal: dict[str, Meeting] = {}
        self._seats: dict[str, Seat] = {}
        self._void_seats: OrderedDict[str, Seat] = OrderedDict()
        self._subscribers: list[Subscriber] = []
        #: Meetings that ended since the process started, oldest first.
        self.history: deque[Meeting] = deque(maxlen=self.HISTORY_LIMIT)
        self._ended_by_id: dict[str, Meeting] = {}
        #: (internal meeting id, external user id) -> the connected participant with that
        #: identity (at most one: :meth:`connect` replaces a second), so that a join into
        #: a big meeting does not scan every participant.
        self._by_external: dict[tuple[str, str], Participant] = {}
        #: Whether a meeting can record now. Recordings are made on media nodes, which
        #: this floor knows nothing of: the composition root (``build.build_parts``) sets
        #: this to ask the media layer (a meeting whose media go through a node can, a
        #: mesh meeting cannot). The default, "every meeting can", is the registry alone
        #: with BigBlueButton's semantics, as its unit tests and the recording service's
        #: use it; a test of the mesh case sets it to answer no.
        self.can_record: Callable[[Meeting], bool] = lambda meeting: True
        #: Meetings whose recording stopped because they lost their media node: it starts
        #: again when they can record again (internal ids).
        self._resume_recording: set[str] = set()

    # --- plumbing ---------------------------------------------------------------------

    def now(self) -> int:
        """Milliseconds since the epoch, from the injected clock."""
        return int(self._clock.seconds() * 1000)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def _emit(self, event: ev.Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - logged; one subscriber must not stop the others
                _log.failure("event subscriber {subscriber!r} failed on {event!r}",
                             subscriber=subscriber, event=type(event).__name__)

    def _set_timer(self, meeting: Meeting, name: str, seconds: float,
                   action: Callable[[], None]) -> None:
        self._cancel_timer(meeting, name)

        def fire() -> None:
            meeting._timers.pop(name, None)
            try:
                action()
            except Exception:  # noqa: BLE001 - logged; a timer must not break the reactor turn
                _log.failure("timer {name} of meeting {meeting_id} failed",
                             name=name, meeting_id=meeting.meeting_id)

        meeting._timers[name] = self._clock.callLater(seconds, fire)

    def _cancel_timer(self, meeting: Meeting, name: str) -> None:
        call = meeting._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    # --- meetings ---------------------------------------------------------------------

    def meetings(self) -> Iterator[Meeting]:
        """Live meetings in creation order."""
        return iter(list(self._meetings.values()))

    def get_meeting(self, meeting_id: str) -> Meeting | None:
        return self._meetings.get(meeting_id)

    def get_by_internal_id(self, internal_id: str) -> Meeting | None:
        return self._by_internal.get(internal_id)

    def recently_ended(self, meeting_id: str) -> Meeting | None:
        """The last ended meeting with this external id, if it ended since start-up."""
        return self._ended_by_id.get(meeting_id)

    def create_meeting(self, spec: MeetingSpec) -> tuple[Meeting, bool]:
        """Create a meeting, or return the running one with the same id.

        Returns ``(meeting, created)``. Raises :class:`IdNotUnique` when a meeting with this
        id runs and the passwords given differ, :class:`NonUniqueVoiceBridge` when the
        requested bridge is taken.
        """
        existing = self._meetings.get(spec.meeting_id)
        parent: Meeting | None = None
        if spec.is_breakout:
            # A breakout belongs to a running meeting (by external or internal id), as in
            # bbb-web; it is never its own parent.
            wanted = spec.parent_meeting_id or ""
            parent = self._meetings.get(wanted) or self._by_internal.get(wanted)
            if parent is None or parent.ended or parent is existing or (
                    wanted == spec.meeting_id):
                raise ParentMeetingNotFound(wanted)
        if existing is not None:
            same = (not spec.passwords_given) or (
                secrets.compare_digest(spec.attendee_pw, existing.spec.attendee_pw)
                and secrets.compare_digest(spec.moderator_pw, existing.spec.moderator_pw)
            )
            if not same:
                raise IdNotUnique(spec.meeting_id)
            return existing, False

        bridges = {m.voice_bridge for m in self._meetings.values()}
        if spec.voice_bridge:
            if spec.voice_bridge in bridges:
                raise NonUniqueVoiceBridge(spec.voice_bridge)
            bridge = spec.voice_bridge
        else:
            bridge = self._free_voice_bridge(bridges)

        now = self.now()
        if parent is not None:
            digest = hashlib.sha1(
                f"{parent.internal_id}-{now}-{spec.sequence or 0}".encode()).hexdigest()
            internal_id = f"{digest}-{now}"
        else:
            internal_id = f"{hashlib.sha1(spec.meeting_id.encode()).hexdigest()}-{now}"
        while internal_id in self._by_internal:  # two creates in one millisecond
            now += 1
            internal_id = f"{internal_id.rsplit('-', 1)[0]}-{now}"

        meeting = Meeting(
            spec=spec,
            internal_id=internal_id,
            create_time=now,
            voice_bridge=bridge,
            welcome="",
            moderator_only_message="",
            documents=list(spec.documents),
        )
        meeting.welcome = substitute_keywords(spec.welcome, meeting, self._server_url)
        meeting.moderator_only_message = substitute_keywords(
            spec.moderator_only_message, meeting, self._server_url)
        self._meetings[spec.meeting_id] = meeting
        self._by_internal[internal_id] = meeting
        if parent is not None:
            parent.breakout_ids.append(internal_id)

        if spec.expire_if_no_user_joined_minutes > 0:
            self._set_timer(meeting, "not-joined", spec.expire_if_no_user_joined_minutes * 60,
                            lambda: self._expire_unjoined(meeting))
        if spec.duration > 0:
            self._set_timer(meeting, "duration", spec.duration * 60,
                            lambda: self.end_meeting(
                                meeting, EndReason.ENDED_AFTER_EXCEEDING_DURATION))
        _log.info("meeting {meeting_id} created ({internal_id})",
                  meeting_id=spec.meeting_id, internal_id=internal_id)
        self._emit(ev.MeetingCreated(at=now, meeting=meeting))
        return meeting, True

    def _free_voice_bridge(self, used: set[str]) -> str:
        for _ in range(1000):
            candidate = str(10000 + secrets.randbelow(90000))
            if candidate not in used:
                return candidate
        raise NonUniqueVoiceBridge("no free voice bridge")

    def _expire_unjoined(self, meeting: Meeting) -> None:
        if not meeting.has_user_joined and not meeting.ended:
            self.end_meeting(meeting, EndReason.ENDED_WHEN_NOT_JOINED)

    def end_meeting(self, meeting: Meeting, reason: EndReason | str,
                    forcibly: bool | None = None, by: Participant | None = None) -> None:
        """End a meeting: every participant leaves, every seat is void, timers stop.

        With ``by`` (a participant ending it from the conference), only moderators may.
        """
        self.require_moderator(by)
        if meeting.ended:
            return
        reason = EndReason(reason)
        now = self.now()
        meeting.ended = True
        meeting.end_reason = reason.value
        meeting.end_time = now
        if forcibly is None:
            forcibly = reason in (EndReason.ENDED_FROM_API, EndReason.ENDED_BY_MODERATOR,
                                  EndReason.ENDED_BY_PARENT)
        meeting.forcibly_ended = forcibly
        for name in list(meeting._timers):
            self._cancel_timer(meeting, name)
        for participant in list(meeting.participants.values()):
            self._drop(participant, "ended", now, react=False)
        for seat in meeting.seats.values():
            seat.in_lobby = False
            self._forget_seat(seat)
        self._meetings.pop(meeting.meeting_id, None)
        self._by_internal.pop(meeting.internal_id, None)
        self._resume_recording.discard(meeting.internal_id)
        self.history.append(meeting)
        self._ended_by_id[meeting.meeting_id] = meeting
        while len(self._ended_by_id) > self.HISTORY_LIMIT:
            self._ended_by_id.pop(next(iter(self._ended_by_id)))
        _log.info("meeting {meeting_id} ended: {reason}", meeting_id=meeting.meeting_id,
                  reason=reason.value)
        self._emit(ev.MeetingEnded(at=now, meeting=meeting, reason=reason.value))
        self.classroom_ended(meeting)
        for breakout_id in list(meeting.breakout_ids):
            breakout = self._by_internal.get(breakout_id)
            if breakout is not None:
                self.end_meeting(breakout, EndReason.ENDED_BY_PARENT)

    def end_all(self, reason: EndReason = EndReason.ENDED_DUE_TO_SERVICE_INTERRUPTION) -> None:
        """End every meeting (service shutdown)."""
        for meeting in list(self._meetings.values()):
            self.end_meeting(meeting, reason, forcibly=False)

    # --- seats and the lobby ----------------------------------------------------------

    def issue_seat(
        self,
        meeting: Meeting,
        *,
        full_name: str,
        role: Role,
        external_user_id: str | None = None,
        guest: bool = False,
        avatar_url: str = "",
        userdata: dict[str, str] | None = None,
        client_type: str = "HTML5",
    ) -> Seat:
        """Hand out a seat (BBB ``join``). The user counts as joined once it connects.

        Raises :class:`MeetingForciblyEnded`, :class:`MaxParticipantsReached` or
        :class:`GuestDeniedAccess`.
        """
        if meeting.ended:
            raise MeetingForciblyEnded(meeting.meeting_id)
        now = self.now()
        user_id = "w_" + secrets.token_hex(6)
        ext = external_user_id or user_id
        limit = meeting.spec.max_participants
        if limit > 0:
            holders = self._holders(meeting, now)
            if ext not in holders and len(holders) >= limit:
                raise MaxParticipantsReached(meeting.meeting_id)
        status = compute_guest_status(meeting.spec.guest_policy, guest=guest, role=role)
        if status is GuestStatus.DENY:
            raise GuestDeniedAccess(meeting.meeting_id)
        seat = Seat(
            token=secrets.token_urlsafe(24),
            meeting=meeting,
            user_id=user_id,
            external_user_id=ext,
            full_name=full_name,
            role=role,
            guest=guest,
            guest_status=status,
            auth_token=secrets.token_urlsafe(12),
            created_at=now,
            avatar_url=avatar_url,
            userdata=dict(userdata or {}),
            client_type=client_type,
        )
        meeting.seats[seat.token] = seat
        self._seats[seat.token] = seat
        self._emit(ev.SeatIssued(at=now, seat=seat))
        return seat

    def withdraw_seat(self, seat: Seat) -> None:
        """Take back a seat that was never handed to anyone: the invitation activation it
        was issued for lost (its use could not be recorded), so its token must not work."""
        if seat.participant is not None:  # pragma: no cover - its token was never given out
            return
        seat.meeting.seats.pop(seat.token, None)
        self._forget_seat(seat, "withdrawn")

    def _holders(self, meeting: Meeting, now: int) -> set[str]:
        """External ids holding a place: connected, or seated recently and not yet in."""
        horizon = now - int(self.SEAT_RESERVATION_SECONDS * 1000)
        held = {p.external_user_id for p in meeting.participants.values()}
        for seat in meeting.seats.values():
            if (seat.participant is None and not seat.revoked and seat.created_at >= horizon
                    and seat.guest_status is not GuestStatus.DENY):
                held.add(seat.external_user_id)
        return held

    def _forget_seat(self, seat: Seat, reason: str | None = None) -> None:
        """The seat's token stops working; remember it a while to say why."""
        if reason is not None:
            seat.revoked = True
            seat.revoked_reason = reason
        self._seats.pop(seat.token, None)
        self._void_seats[seat.token] = seat
        self._void_seats.move_to_end(seat.token)
        while len(self._void_seats) > self.VOID_SEATS_LIMIT:
            self._void_seats.popitem(last=False)

    def lookup_seat(self, token: str) -> Seat | None:
        """The seat with this token, live or recently made void (``None`` if unknown).

        Unlike :meth:`seat_for_token`, this also returns seats that can no longer be used
        (their meeting ended, the user was removed, replaced or denied) so that the
        conference can tell the browser why; check ``revoked``/``meeting.ended``.
        """
        seat = self._seats.get(token)
        if seat is None:
            seat = self._void_seats.get(token)
        return seat

    def seat_for_token(self, token: str) -> Seat | None:
        """The live seat with this session token (``None`` for unknown or ended ones)."""
        seat = self._seats.get(token)
        if seat is None or seat.meeting.ended:
            return None
        return seat

    def sessions(self) -> Iterable[Seat]:
        """Every live seat (``getSessions``)."""
        return list(self._seats.values())

    def guest_waiting(self, seat: Seat) -> None:
        """A waiting guest's browser arrived in the lobby: tell the moderators."""
        if seat.guest_status is GuestStatus.WAIT and not seat.in_lobby:
            seat.in_lobby = True
            self._emit(ev.GuestWaiting(at=self.now(), seat=seat))

    def guest_left(self, seat: Seat) -> None:
        """A waiting guest's browser left the lobby (its seat still waits)."""
        if seat.in_lobby:
            seat.in_lobby = False
            if seat.guest_status is GuestStatus.WAIT and not seat.meeting.ended:
                self._emit(ev.GuestLeft(at=self.now(), seat=seat))

    def admit_guest(self, seat: Seat, by: Participant | None = None) -> None:
        self.require_moderator(by)
        if seat.guest_status is not GuestStatus.WAIT:
            raise NotAllowed("guest is not waiting")
        seat.guest_status = GuestStatus.ALLOW
        seat.in_lobby = False
        self._emit(ev.GuestAdmitted(at=self.now(), seat=seat))

    def deny_guest(self, seat: Seat, by: Participant | None = None) -> None:
        self.require_moderator(by)
        if seat.guest_status is not GuestStatus.WAIT:
            raise NotAllowed("guest is not waiting")
        seat.guest_status = GuestStatus.DENY
        seat.in_lobby = False
        self._forget_seat(seat, "denied")
        self._emit(ev.GuestDenied(at=self.now(), seat=seat))

    @staticmethod
    def require_moderator(by: Participant | None) -> None:
        """Raise :class:`NotAllowed` unless ``by`` is ``None`` (the API) or a moderator."""
        if by is not None and not by.is_moderator:
            raise NotAllowed("only moderators may do this")


    # --- recording ----------------------------------------------------------------------

    def recording_available(self, meeting: Meeting) -> bool:
        """Whether ``meeting`` can record now: created with ``record=true`` and able to
        (:attr:`can_record`: its media go through a media node). Notes the answer on the
        meeting, so that :meth:`recording_availability_changed` announces only changes."""
        available = meeting.spec.record and not meeting.ended and self.can_record(meeting)
        meeting.recording_available = available
        return available

    def set_recording(self, meeting: Meeting, recording: bool,
                      by: Participant | None = None) -> bool:
        """Start or stop recording (BigBlueButton's recording marks); False if it was so.

        Only a meeting created with ``record=true`` records. A moderator (``by``) may start
        and stop it only with ``allowStartStopRecording``; ``autoStartRecording`` starts it
        when the first participant joins (``by`` is None: the service itself). Starting
        is refused with :class:`RecordingUnavailable` in a meeting that cannot record
        (no media node: :attr:`can_record`); stopping always works.
        """
        self.require_moderator(by)
        if meeting.ended:
            raise NotAllowed("the meeting is over")
        if not meeting.spec.record:
            raise NotAllowed("this meeting is not recorded (record=false)")
        if by is not None and not meeting.spec.allow_start_stop_recording:
            raise NotAllowed("recording cannot be started or stopped in this meeting")
        if recording and not meeting.recording and not self.recording_available(meeting):
            raise RecordingUnavailable(
                "recording needs a media node; this meeting runs without one")
        if not recording:
            self._resume_recording.discard(meeting.internal_id)
        return self._set_recording(meeting, recording, by)

    def _set_recording(self, meeting: Meeting, recording: bool,
                       by: Participant | None) -> bool:
        if meeting.recording == recording:
            return False
        meeting.recording = recording
        meeting.recorded = meeting.recorded or recording
        _log.info("meeting {meeting_id}: recording {what}", meeting_id=meeting.meeting_id,
                  what="started" if recording else "stopped")
        self._emit(ev.RecordingChanged(at=self.now(), meeting=meeting, recording=recording,
                                       by=by))
        return True

    def recording_availability_changed(self, meeting: Meeting) -> None:
        """The media layer moved ``meeting`` (off its node to mesh, or onto a node again):
        ask again whether it can record and, when that changed, announce it
        (:class:`~meetplatform.events.RecordingAvailabilityChanged`).

        A meeting that was recording when it lost its node stops recording (nothing
        would be recorded, and the page must not say otherwise); it starts again when
        it can record again, as ``autoStartRecording`` would, unless a moderator
        stopped it meanwhile."""
        if meeting.ended or not meeting.spec.record:
            return
        before = meeting.recording_available
        available = self.recording_available(meeting)
        if before is None or before == available:
            return
        _log.info("meeting {meeting_id}: recording {what}", meeting_id=meeting.meeting_id,
                  what="available again" if available else
                  "unavailable: the meeting runs without a media node now")
        self._emit(ev.RecordingAvailabilityChanged(at=self.now(), meeting=meeting,
                                                   available=available))
        if not available and meeting.recording:
            self._resume_recording.add(meeting.internal_id)
            self._set_recording(meeting, False, None)
        elif available and meeting.internal_id in self._resume_recording:
            self._resume_recording.discard(meeting.internal_id)
            self._set_recording(meeting, True, None)

    # --- participants -----------------------------------------------------------------

    def connect(self, seat: Seat) -> Participant:
        """The seat's browser connected: it is now a participant of the meeting.

        A seat that is connected already (reload, resume) keeps its participant. Another
        participant with the same external user id is replaced: it is not counted twice,
        and a :class:`~meetplatform.events.ParticipantReplaced` event asks its connection
        to close.
        """
        meeting = seat.meeting
        if meeting.ended or seat.revoked:
            raise SeatNotUsable("this seat can no longer be used")
        if seat.guest_status is not GuestStatus.ALLOW:
            raise SeatNotUsable("waiting for a moderator" if
                                seat.guest_status is GuestStatus.WAIT else "denied")
        if seat.participant is not None and seat.participant.user_id in meeting.participants:
            return seat.participant
        now = self.now()
        other = self._by_external.get((meeting.internal_id, seat.external_user_id))
        if other is not None and other.seat is not seat:
            return self._replace(other, seat, now)
        limit = meeting.spec.max_participants
        if limit > 0 and len(meeting.participants) >= limit:
            raise MaxParticipantsReached(meeting.meeting_id)
        participant = Participant(seat=seat, joined_at=now)
        seat.participant = participant
        self._add(participant, now)
        return participant

    def _add(self, participant: Participant, now: int) -> None:
        meeting = participant.meeting
        first = not meeting.has_user_joined
        meeting.participants[participant.user_id] = participant
        self._by_external[(meeting.internal_id, participant.external_user_id)] = participant
        meeting.has_user_joined = True
        if not meeting.start_time:
            meeting.start_time = now
        attendance = Attendance(
            user_id=participant.user_id,
            external_user_id=participant.external_user_id,
            full_name=participant.full_name,
            role=participant.role,
            join_time=now,
        )
        meeting.attendance.append(attendance)
        participant.attendance = attendance
        self._cancel_timer(meeting, "not-joined")
        self._cancel_timer(meeting, "last-left")
        if participant.is_moderator:
            self._cancel_timer(meeting, "no-moderator")
        if meeting.presenter() is None and participant.is_moderator:
            participant.presenter = True
        if first:
            self._emit(ev.MeetingStarted(at=now, meeting=meeting))
        self._emit(ev.ParticipantJoined(at=now, participant=participant))
        if first and meeting.spec.record and meeting.spec.auto_start_recording:
            if self.recording_available(meeting):
                self.set_recording(meeting, True)
            else:
                _log.info("meeting {meeting_id}: autoStartRecording not honoured: "
                          "recording needs a media node; this meeting runs without one",
                          meeting_id=meeting.meeting_id)
        if meeting.spec.end_when_no_moderator and not meeting.moderators():
            self._arm_no_moderator(meeting)

    def _replace(self, old: Participant, seat: Seat, now: int) -> Participant:
        meeting = old.meeting
        old_seat = old.seat
        old_seat.participant = None
        self._forget_seat(old_seat, "replaced")
        meeting.seats.pop(old_seat.token, None)
        # the participant keeps its place (and internal id) but takes the new seat's details
        seat.user_id = old_seat.user_id
        old.seat = seat
        seat.participant = old
        if old.attendance is not None:
            old.attendance.full_name = seat.full_name
            old.attendance.role = seat.role
        self._emit(ev.ParticipantReplaced(at=now, participant=old, old_seat=old_seat))
        return old

    def disconnect(self, participant: Participant, reason: str = "left") -> None:
        """The participant is gone for good (socket closed and the resume grace is over)."""
        if participant.user_id not in participant.meeting.participants:
            return
        if participant.meeting.participants[participant.user_id] is not participant:
            return
        self._drop(participant, reason, self.now(), react=True)

    def remove(self, meeting: Meeting, user_id: str, by: Participant | None = None) -> None:
        """A moderator removes a participant; its seat can't be used again."""
        self.require_moderator(by)
        participant = meeting.participants.get(user_id)
        if participant is None:
            raise NotAllowed("no such participant")
        self._forget_seat(participant.seat, "removed")
        self._drop(participant, "removed", self.now(), react=True)

    def _drop(self, participant: Participant, reason: str, now: int, react: bool) -> None:
        meeting = participant.meeting
        meeting.participants.pop(participant.user_id, None)
        key = (meeting.internal_id, participant.external_user_id)
        if self._by_external.get(key) is participant:
            del self._by_external[key]
        participant.seat.participant = None
        if participant.attendance is not None and participant.attendance.left_time is None:
            participant.attendance.left_time = now
        was_presenter = participant.presenter
        participant.presenter = False
        self._emit(ev.ParticipantLeft(at=now, participant=participant, reason=reason))
        if not react or meeting.ended:
            return
        if was_presenter:
            successor = next(iter(meeting.moderators()), None)
            if successor is not None:
                successor.presenter = True
                self._emit(ev.ParticipantUpdated(at=now, participant=successor,
                                                 changed=("presenter",)))
        if not meeting.participants:
            minutes = meeting.spec.expire_when_last_user_left_minutes
            if minutes > 0:
                self._set_timer(meeting, "last-left", minutes * 60,
                                lambda: self._expire_empty(meeting))
        elif meeting.spec.end_when_no_moderator and not meeting.moderators():
            self._arm_no_moderator(meeting)

    def _arm_no_moderator(self, meeting: Meeting) -> None:
        if "no-moderator" in meeting._timers:
            return
        minutes = max(meeting.spec.end_when_no_moderator_delay_minutes, 0)

        def check() -> None:
            if not meeting.ended and not meeting.moderators():
                self.end_meeting(meeting, EndReason.ENDED_DUE_TO_NO_MODERATOR, forcibly=False)

        self._set_timer(meeting, "no-moderator", minutes * 60, check)

    def _expire_empty(self, meeting: Meeting) -> None:
        if not meeting.participants and not meeting.ended:
            self.end_meeting(meeting, EndReason.ENDED_WHEN_LAST_USER_LEFT)

    def update_media(
        self,
        participant: Participant,
        *,
        joined_voice: bool | None = None,
        listen_only: bool | None = None,
        muted: bool | None = None,
        video_streams: int | None = None,
        screen_sharing: bool | None = None,
    ) -> None:
        """The participant's browser reports its media state."""
        changed = []
        for name, value in (("joined_voice", joined_voice), ("listen_only", listen_only),
                            ("muted", muted), ("video_streams", video_streams),
                            ("screen_sharing", screen_sharing)):
            if value is not None and getattr(participant, name) != value:
                setattr(participant, name, value)
                changed.append(name)
        if changed:
            self._emit(ev.ParticipantUpdated(at=self.now(), participant=participant,
                                             changed=tuple(changed)))

    def set_raised_hand(self, participant: Participant, raised: bool,
                        by: Participant | None = None) -> None:
        """Raise or lower a hand; moderators may lower anyone's."""
        if by is not None and by is not participant and (raised or not by.is_moderator):
            raise NotAllowed("only moderators may lower another participant's hand")
        if participant.raised_hand != raised:
            participant.raised_hand = raised
            self._emit(ev.ParticipantUpdated(at=self.now(), participant=participant,
                                             changed=("raised_hand",)))

    def set_presenter(self, meeting: Meeting, user_id: str,
                      by: Participant | None = None) -> None:
        self.require_moderator(by)
        target = meeting.participants.get(user_id)
        if target is None:
            raise NotAllowed("no such participant")
        now = self.now()
        for p in meeting.participants.values():
            if p.presenter and p is not target:
                p.presenter = False
                self._emit(ev.ParticipantUpdated(at=now, participant=p, changed=("presenter",)))
        if not target.presenter:
            target.presenter = True
            self._emit(ev.ParticipantUpdated(at=now, participant=target, changed=("presenter",)))

    def set_role(self, meeting: Meeting, user_id: str, role: Role,
                 by: Participant | None = None) -> None:
        """Promote to moderator or demote to viewer."""
        self.require_moderator(by)
        target = meeting.participants.get(user_id)
        if target is None:
            raise NotAllowed("no such participant")
        if target.seat.guest and role is Role.MODERATOR and not (
                meeting.spec.allow_promote_guest_to_moderator):
            raise NotAllowed("guests may not be promoted in this meeting")
        if target.role is role:
            return
        target.seat.role = role
        if target.attendance is not None:
            target.attendance.role = role
        self._emit(ev.ParticipantUpdated(at=self.now(), participant=target, changed=("role",)))
        if meeting.spec.end_when_no_moderator and not meeting.moderators():
            self._arm_no_moderator(meeting)
        elif role is Role.MODERATOR:
            self._cancel_timer(meeting, "no-moderator")

    def request_mute(self, meeting: Meeting, user_id: str | None,
                     by: Participant | None = None) -> list[Participant]:
        """Ask one participant (or, with ``user_id=None``, everyone but ``by``) to mute."""
        self.require_moderator(by)
        if user_id is None:
            targets = [p for p in meeting.participants.values() if p is not by]
        else:
            target = meeting.participants.get(user_id)
            if target is None:
                raise NotAllowed("no such participant")
            targets = [target]
        now = self.now()
        for target in targets:
            self._emit(ev.MuteRequested(at=now, participant=target, by=by))
        return targets

    # --- chat and documents ---------------------------------------------------------------

    def send_chat(self, meeting: Meeting, text: str, sender_name: str,
                  sender: Participant | None = None) -> ChatMessage:
        message = ChatMessage(meeting=meeting, sender_name=sender_name, text=text,
                              at=self.now(),
                              sender_user_id=sender.user_id if sender else None)
        meeting.chat.append(message)
        self._emit(ev.ChatMessageSent(at=message.at, message=message))
        return message

    def insert_documents(self, meeting: Meeting, documents: list[Document]) -> None:
        meeting.documents.extend(documents)
        self._emit(ev.DocumentsInserted(at=self.now(), meeting=meeting, count=len(documents),
                                        documents=tuple(documents)))
