"""What happened, as webhooks tell it: registry and store events become :class:`Occurrence`.

An occurrence names the event in BigBlueButton's words for bbb-webhooks (``user-joined``
with its ``attributes``), in the JSON:API's words for per-space endpoints
(``participant.joined`` with its ``data``), and lists the end callbacks
(``meta_endCallbackUrl``) a meeting end triggers. Every occurrence gets an id (``evt_...``)
once, when it is built (before it is written to the outbox, in the order the events
happened): every delivery and every retry of it carries that id.

Building occurrences (dicts, ids, formatted times) is kept off the moment of the event:
:meth:`Translator.capture` only copies, on the reactor thread when the event is emitted,
the values that may change afterwards (a participant's name, role, presenter and media
state: :class:`Who`); :meth:`Translator.build` makes the occurrences from that copy later,
in the order the events were captured. So an occurrence tells the state of the moment its
event happened, with that moment's time, even when it is built a little later.

:class:`Translator` keeps the little state needed to turn ``ParticipantUpdated`` (which
names the changed fields) into BBB's events (``user-audio-muted``,
``user-cam-broadcast-start``...), which need the previous values.

Why one module of this size: it is the one translation table from registry events to what
bbb-webhooks and the JSON:API's endpoints receive (meetings, participants, chat, the
lobby, polls); each event's two shapes sit next to each other, which is what a reviewer
compares with BBB's payloads.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from meetplatform import events as ev
from meetplatform.model import ChatMessage, Meeting, Participant, Role, Seat
from meetplatform.tenancy import tenant_of

#: BBB's mapped event names this platform sends, with their raw (akka-apps style) names.
BBB_EVENTS: dict[str, str] = {
    "meeting-created": "MeetingCreatedEvtMsg",
    "meeting-ended": "MeetingEndedEvtMsg",
    "user-joined": "UserJoinedMeetingEvtMsg",
    "user-left": "UserLeftMeetingEvtMsg",
    "user-audio-voice-enabled": "UserJoinedVoiceConfToClientEvtMsg",
    "user-audio-voice-disabled": "UserLeftVoiceConfToClientEvtMsg",
    "user-audio-muted": "UserMutedVoiceEvtMsg",
    "user-audio-unmuted": "UserMutedVoiceEvtMsg",
    "user-cam-broadcast-start": "UserBroadcastCamStartedEvtMsg",
    "user-cam-broadcast-end": "UserBroadcastCamStoppedEvtMsg",
    "meeting-screenshare-started": "ScreenshareRtmpBroadcastStartedEvtMsg",
    "meeting-screenshare-stopped": "ScreenshareRtmpBroadcastStoppedEvtMsg",
    "user-presenter-assigned": "PresenterAssignedEvtMsg",
    "user-presenter-unassigned": "PresenterUnassignedEvtMsg",
    "user-raise-hand-changed": "UserRaiseHandChangedEvtMsg",
    "user-role-changed": "UserRoleChangedEvtMsg",
    "chat-group-message-sent": "GroupChatMessageBroadcastEvtMsg",
    "guest-waiting": "GuestsWaitingForApprovalEvtMsg",
    "guest-admitted": "GuestsWaitingApprovedEvtMsg",
    "guest-denied": "GuestsWaitingApprovedEvtMsg",
    "poll-started": "PollStartedEvtMsg",
    "poll-responded": "UserRespondedToPollRecordMsg",
    # Recording processing (bbb-webhooks' rap-* events; issue 12).
    **{f"rap-{stage}-{edge}": "RecordingStatusEvtMsg"
       for stage in ("archive", "sanity", "process", "publish", "post-publish")
       for edge in ("started", "ended")},
}

#: The JSON:API's event types for per-space endpoints.
REST_EVENT_TYPES: tuple[str, ...] = (
    "room.created", "room.updated", "room.deleted",
    "session.started", "session.ended",
    "participant.joined", "participant.left", "participant.knocked",
    "lobby.admitted", "lobby.denied",
    "userToken.created", "userToken.activated", "userToken.revoked",
    "recording.ready",
)


#: Random per process: ids of different processes never collide, and making one is cheap
#: (no system call per event on the join path).
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def new_event_id() -> str:
    """``evt_`` + 16 random hex digits (per process) + a counter: unique, unguessable
    enough for ids that are not secrets, and cheap."""
    return f"evt_{_ID_PREFIX}{next(_id_counter):08x}"


def format_time(ms: int | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, as the JSON:API writes times."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class MeetingRef:
    internal_id: str
    meeting_id: str
    space_id: str | None
    local_id: str
    room_id: str | None


@dataclass(frozen=True)
class Occurrence:
    """One event, ready to be fanned out to hooks, endpoints and callbacks."""

    id: str
    at: int
    #: Events with the same key reach each receiver in the order they happened.
    ordering_key: str
    meeting: MeetingRef | None = None
    #: BigBlueButton's event name (``None``: not a BBB event).
    bbb_name: str | None = None
    #: ``data.attributes`` of the BBB event (``meeting``, ``user``, ...).
    bbb_attributes: Mapping[str, Any] = field(default_factory=dict)
    #: The JSON:API event type (``None``: not sent to per-space endpoints).
    rest_type: str | None = None
    space_id: str | None = None
    rest_data: Mapping[str, Any] = field(default_factory=dict)
    #: URLs to GET because a meeting ended (``meta_endCallbackUrl``, ``meetingEndedURL``).
    callbacks: tuple[str, ...] = ()
    #: (URL, form body) pairs to POST once each (``meta_bbb-recording-ready-url``).
    posts: tuple[tuple[str, str], ...] = ()


def meeting_ref(meeting: Meeting) -> MeetingRef:
    space_id, local_id, room_id = tenant_of(meeting.meeting_id)
    return MeetingRef(meeting.internal_id, meeting.meeting_id, space_id, local_id, room_id)


def _bbb_meeting(ref: MeetingRef) -> dict[str, Any]:
    return {"internal-meeting-id": ref.internal_id, "external-meeting-id": ref.meeting_id}


def _rest_session(ref: MeetingRef) -> dict[str, Any]:
    return {"spaceId": ref.space_id, "roomId": ref.room_id, "meetingId": ref.local_id,
            "sessionId": ref.internal_id}


def end_callbacks(metadata: Mapping[str, str], params: Mapping[str, str],
                  recording_marks: bool) -> tuple[str, ...]:
    """The URLs a meeting's end calls: ``meta_endCallbackUrl`` (with ``recordingmarks``
    added, as BigBlueButton does) and ``meetingEndedURL``; only http(s) ones."""
    urls = []
    end_callback = metadata.get("endcallbackurl", "").strip()
    if end_callback:
        glue = "&" if "?" in end_callback else "?"
        urls.append(f"{end_callback}{glue}recordingmarks={'true' if recording_marks else 'false'}")
    ended_url = params.get("meetingEndedURL", "").strip()
    if ended_url:
        urls.append(ended_url)
    return tuple(u for u in urls if urlsplit(u).scheme in ("http", "https") and len(u) <= 4096)


class Who(NamedTuple):
    """A participant (or a waiting guest's seat) as it was when an event happened.

    Everything here can change after the event (a role change, a replacing seat with
    another name, media toggles), so it is copied when the event is captured and the
    occurrence is built from the copy later.
    """

    user_id: str
    external_user_id: str
    full_name: str
    role: Role
    guest: bool
    presenter: bool = False
    joined_at: int | None = None
    joined_voice: bool = False
    listen_only: bool = False
    muted: bool = True
    video_streams: int = 0
    screen_sharing: bool = False
    raised_hand: bool = False


def who(p: Participant) -> Who:
    """The participant's state now (cheap: attribute reads and one tuple)."""
    s = p.seat
    return Who(s.user_id, s.external_user_id, s.full_name, s.role, s.guest, p.presenter,
               p.joined_at, p.joined_voice, p.listen_only, p.muted, p.video_streams,
               p.screen_sharing, p.raised_hand)


def seat_who(s: Seat) -> Who:
    return Who(s.user_id, s.external_user_id, s.full_name, s.role, s.guest)


def _bbb_user(p: Who, **extra: Any) -> dict[str, Any]:
    return {"internal-user-id": p.user_id, "external-user-id": p.external_user_id, **extra}


def _role(p: Who) -> str:
    return "moderator" if p.role.value == "MODERATOR" else "viewer"


def _rest_participant(p: Who, joined_at: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"participantId": p.user_id, "displayName": p.full_name,
                           "externalUserId": p.external_user_id, "role": _role(p),
                           "guest": p.guest}
    if joined_at is not None:
        out["joinedAt"] = format_time(joined_at)
    return out


@dataclass
class _Media:
    in_audio: bool
    listen_only: bool
    muted: bool
    video_streams: int
    screen_sharing: bool


#: A captured event: a builder and the values it needs, copied when the event happened.
Captured = tuple[Callable[..., list[Occurrence]], tuple[Any, ...]]


class Translator:
    """Turns registry events into occurrences (zero, one or several per event), in two
    steps so that the moment of the event costs next to nothing:

    - :meth:`capture`, synchronously when the event is emitted: copies the values that
      may change afterwards (the participant's name, role, presenter and media state, the
      meeting's recording flag) into a tuple; no dicts, ids, time formatting or lookups;
    - :meth:`build`, later (the next turn of the reactor), **in the order of capture**:
      makes the occurrences with their ids. The media state ``ParticipantUpdated`` is
      compared with lives here, so it sees the events in the order they happened.
    """

    def __init__(self) -> None:
        self._media: dict[tuple[str, str], _Media] = {}

    @staticmethod
    def build(captured: Captured) -> list[Occurrence]:
        fn, args = captured
        return fn(*args)

    def skip(self, captured: Captured) -> bool:
        """With no hook and no endpoint anywhere: keep what later events are compared
        with (a participant's media state) and return True when the event needs nothing
        else; False when it must still be built (a meeting's end may carry end callbacks;
        an occurrence built elsewhere is handed over as it is)."""
        fn, args = captured
        fn = getattr(fn, "__func__", fn)
        if fn is Translator._joined or fn is Translator._updated:
            _, meeting, p = args[:3]
            self._media[(meeting.internal_id, p.user_id)] = self._snapshot(p)
            return True
        if fn is Translator._left:
            _, meeting, p = args[:3]
            self._media.pop((meeting.internal_id, p.user_id), None)
            return True
        return fn in _RECEIVERS_ONLY

    def capture(self, event: ev.Event) -> Captured | None:
        """What :meth:`build` needs later, or ``None`` if webhooks ignore the event."""
        if isinstance(event, ev.ParticipantJoined):
            p = event.participant
            return self._joined, (event.at, p.seat.meeting, who(p))
        if isinstance(event, ev.ParticipantLeft):
            p = event.participant
            return self._left, (event.at, p.seat.meeting, who(p), event.reason)
        if isinstance(event, ev.ParticipantUpdated):
            p = event.participant
            return self._updated, (event.at, p.seat.meeting, who(p), event.changed)
        if isinstance(event, ev.MeetingStarted):
            return self._started, (event.at, event.meeting)
        if isinstance(event, ev.MeetingCreated):
            m = event.meeting
            return self._created, (event.at, m, dict(m.spec.metadata))
        if isinstance(event, ev.MeetingEnded):
            m = event.meeting
            return self._ended, (event.at, m, event.reason, m.spec.record and m.recorded,
                                 dict(m.spec.metadata))
        if isinstance(event, ev.ChatMessageSent):
            return self._chat, (event.at, event.message)
        if isinstance(event, (ev.GuestWaiting, ev.GuestAdmitted, ev.GuestDenied)):
            seat = event.seat
            return self._guest, (event.at, type(event), seat.meeting, seat_who(seat))
        if isinstance(event, ev.PollStarted):
            poll = event.poll
            starter = event.meeting.participants.get(poll.started_by)
            return self._poll_started, (event.at, event.meeting, poll.id, poll.kind.value,
                                        poll.question, tuple(poll.answers), poll.anonymous,
                                        who(starter) if starter else None)
        if isinstance(event, ev.PollAnswered):
            voter = event.participant
            return self._poll_responded, (event.at, event.meeting, event.poll.id, event.answer,
                                          who(voter) if voter is not None else None)
        return None

    # --- meetings ------------------------------------------------------------------------

    @staticmethod
    def _started(at: int, meeting: Meeting) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        if ref.space_id is None:
            return []
        return [Occurrence(new_event_id(), at, ref.internal_id, ref,
                           rest_type="session.started", space_id=ref.space_id,
                           rest_data={**_rest_session(ref), "name": meeting.name,
                                      "startedAt": format_time(at)})]

    @staticmethod
    def _created(at: int, m: Meeting, metadata: dict[str, str]) -> list[Occurrence]:
        spec = m.spec
        ref = meeting_ref(m)
        details = {
            **_bbb_meeting(ref),
            "name": spec.name,
            "is-breakout": spec.is_breakout,
            "parent-id": spec.parent_meeting_id or "bbb-none",
            "duration": spec.duration,
            "create-time": m.create_time,
            "create-date": m.create_date,
            "moderator-pass": spec.moderator_pw,
            "viewer-pass": spec.attendee_pw,
            "record": spec.record,
            "voice-conf": m.voice_bridge,
            "dial-number": spec.dial_number,
            "max-users": spec.max_participants,
            "metadata": metadata,
        }
        return [Occurrence(new_event_id(), at, ref.internal_id, ref,
                           bbb_name="meeting-created", bbb_attributes={"meeting": details})]

    def _ended(self, at: int, m: Meeting, reason: str, recorded: bool,
               metadata: dict[str, str]) -> list[Occurrence]:
        ref = meeting_ref(m)
        for key in [k for k in self._media if k[0] == ref.internal_id]:
            del self._media[key]
        rest_type = rest_data = None
        if ref.space_id is not None:
            rest_type = "session.ended"
            rest_data = {**_rest_session(ref), "name": m.name, "reason": reason,
                         "endedAt": format_time(at)}
        return [Occurrence(
            new_event_id(), at, ref.internal_id, ref, bbb_name="meeting-ended",
            bbb_attributes={"meeting": {**_bbb_meeting(ref), "end-reason": reason}},
            rest_type=rest_type, space_id=ref.space_id, rest_data=rest_data or {},
            callbacks=end_callbacks(metadata, m.spec.params, recorded))]

    # --- participants --------------------------------------------------------------------

    def _joined(self, at: int, meeting: Meeting, p: Who) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        self._media[(ref.internal_id, p.user_id)] = self._snapshot(p)
        user = _bbb_user(p, name=p.full_name, role=p.role.value,
                         presenter="true" if p.presenter else "false", guest=p.guest)
        return [Occurrence(
            new_event_id(), at, ref.internal_id, ref, bbb_name="user-joined",
            bbb_attributes={"meeting": _bbb_meeting(ref), "user": user},
            rest_type="participant.joined" if ref.space_id else None, space_id=ref.space_id,
            rest_data={**_rest_session(ref), "participant": _rest_participant(p, p.joined_at),
                       "externalUserId": p.external_user_id})]

    def _left(self, at: int, meeting: Meeting, p: Who, reason: str) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        self._media.pop((ref.internal_id, p.user_id), None)
        return [Occurrence(
            new_event_id(), at, ref.internal_id, ref, bbb_name="user-left",
            bbb_attributes={"meeting": _bbb_meeting(ref),
                            "user": _bbb_user(p, reason=reason)},
            rest_type="participant.left" if ref.space_id else None, space_id=ref.space_id,
            rest_data={**_rest_session(ref), "participant": _rest_participant(p),
                       "externalUserId": p.external_user_id, "reason": reason})]

    @staticmethod
    def _snapshot(p: Who) -> _Media:
        return _Media(in_audio=p.joined_voice or p.listen_only, listen_only=p.listen_only,
                      muted=p.muted, video_streams=p.video_streams,
                      screen_sharing=p.screen_sharing)

    def _updated(self, at: int, meeting: Meeting, p: Who,
                 changed_fields: tuple[str, ...]) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        key = (ref.internal_id, p.user_id)
        before = self._media.get(key) or _Media(False, False, True, 0, False)
        now = self._snapshot(p)
        self._media[key] = now
        bbb_meeting = _bbb_meeting(ref)
        out: list[Occurrence] = []

        def bbb(name: str, **user: Any) -> None:
            out.append(Occurrence(new_event_id(), at, ref.internal_id, ref, bbb_name=name,
                                  bbb_attributes={"meeting": bbb_meeting,
                                                  "user": _bbb_user(p, **user)}))

        changed = set(changed_fields)
        if changed & {"joined_voice", "listen_only"}:
            if now.in_audio and (not before.in_audio or now.listen_only != before.listen_only):
                bbb("user-audio-voice-enabled", **{
                    "listening-only": now.listen_only, "sharing-mic": p.joined_voice})
            elif before.in_audio and not now.in_audio:
                bbb("user-audio-voice-disabled", **{
                    "listening-only": False, "sharing-mic": False})
        if "muted" in changed and now.muted != before.muted:
            bbb("user-audio-muted" if now.muted else "user-audio-unmuted", muted=now.muted)
        if "video_streams" in changed:
            for n in range(before.video_streams + 1, now.video_streams + 1):
                bbb("user-cam-broadcast-start", stream=f"{p.user_id}-{n}")
            for n in range(before.video_streams, now.video_streams, -1):
                bbb("user-cam-broadcast-end", stream=f"{p.user_id}-{n}")
        if "screen_sharing" in changed and now.screen_sharing != before.screen_sharing:
            bbb("meeting-screenshare-started" if now.screen_sharing
                else "meeting-screenshare-stopped")
        if "presenter" in changed:
            bbb("user-presenter-assigned" if p.presenter else "user-presenter-unassigned")
        if "raised_hand" in changed:
            bbb("user-raise-hand-changed", **{"raise-hand": p.raised_hand})
        if "role" in changed:
            bbb("user-role-changed", role=p.role.value)
        return out

    # --- chat and the lobby --------------------------------------------------------------

    @staticmethod
    def _chat(at: int, message: ChatMessage) -> list[Occurrence]:
        ref = meeting_ref(message.meeting)
        sender: dict[str, Any] = {"name": message.sender_name, "time": message.at}
        if message.sender_user_id is not None:
            sender["internal-user-id"] = message.sender_user_id
        return [Occurrence(
            new_event_id(), at, ref.internal_id, ref, bbb_name="chat-group-message-sent",
            bbb_attributes={"meeting": _bbb_meeting(ref),
                            "chat-message": {"id": message.id, "message": message.text,
                                             "sender": sender},
                            "chat-id": "MAIN-PUBLIC-GROUP-CHAT"})]

    @staticmethod
    def _guest(at: int, kind: type[ev.Event], meeting: Meeting, seat: Who
               ) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        name, rest_type = {
            ev.GuestWaiting: ("guest-waiting", "participant.knocked"),
            ev.GuestAdmitted: ("guest-admitted", "lobby.admitted"),
            ev.GuestDenied: ("guest-denied", "lobby.denied"),
        }[kind]
        return [Occurrence(
            new_event_id(), at, ref.internal_id, ref, bbb_name=name,
            bbb_attributes={"meeting": _bbb_meeting(ref),
                            "user": _bbb_user(seat, name=seat.full_name,
                                              role=seat.role.value, guest=seat.guest)},
            rest_type=rest_type if ref.space_id else None, space_id=ref.space_id,
            rest_data={**_rest_session(ref), "participant": _rest_participant(seat),
                       "externalUserId": seat.external_user_id})]


    # --- polls ----------------------------------------------------------------------------

    @staticmethod
    def _poll_started(at: int, meeting: Meeting, poll_id: str, kind: str, question: str,
                      answers: tuple[str, ...], anonymous: bool, starter: Who | None
                      ) -> list[Occurrence]:
        ref = meeting_ref(meeting)
        attributes: dict[str, Any] = {
            "meeting": _bbb_meeting(ref),
            "poll": {"id": poll_id, "type": kind, "question": question,
                     "anonymous": anonymous,
                     "answers": [{"id": i, "key": answer} for i, answer in enumerate(answers)]},
        }
        if starter is not None:
            attributes["user"] = _bbb_user(starter)
        return [Occurrence(new_event_id(), at, ref.internal_id, ref, bbb_name="poll-started",
                           bbb_attributes=attributes)]

    @staticmethod
    def _poll_responded(at: int, meeting: Meeting, poll_id: str, answer: int | str,
                        voter: Who | None) -> list[Occurrence]:
        """An answer; for an anonymous poll without the voter (the registry never told
        who it was)."""
        ref = meeting_ref(meeting)
        poll: dict[str, Any] = {"id": poll_id}
        if isinstance(answer, int):
            poll["answerIds"] = [answer]
        else:
            poll["answer"] = answer
        attributes: dict[str, Any] = {"meeting": _bbb_meeting(ref), "poll": poll}
        if voter is not None:
            attributes["user"] = _bbb_user(voter)
        return [Occurrence(new_event_id(), at, ref.internal_id, ref, bbb_name="poll-responded",
                           bbb_attributes=attributes)]


# --- the store's events (rooms, invitations) ---------------------------------------------------


def store_occurrence(kind: str, record: Any, at: int) -> Occurrence | None:
    """An occurrence for a change the JSON:API made in the store (see ``Store.observe``)."""
    if kind.startswith("room."):
        data = {"spaceId": record.space_id, "roomId": record.id,
                "room": {"name": record.name, "alias": record.alias, "type": record.type,
                         "visibility": record.visibility,
                         "metadata": dict(record.metadata)}}
        return Occurrence(new_event_id(), at, f"room:{record.id}", rest_type=kind,
                          space_id=record.space_id, rest_data=data)
    if kind.startswith("userToken."):
        data = {"spaceId": record.space_id, "roomId": record.room_id,
                "userToken": {"id": record.id, "role": record.role,
                              "displayName": record.display_name,
                              "externalUserId": record.external_user_id,
                              "uses": record.uses, "maxUses": record.max_uses,
                              "expiresAt": format_time(record.expires_at)}}
        key = f"room:{record.room_id}" if record.room_id else f"space:{record.space_id}"
        return Occurrence(new_event_id(), at, key, rest_type=kind, space_id=record.space_id,
                          rest_data=data)
    return None


def interrupted_occurrence(meeting: Any) -> Occurrence:
    """``meeting-ended`` for a meeting a killed process left open (see History.recover)."""
    space_id, local_id, room_id = tenant_of(meeting.meeting_id)
    ref = MeetingRef(meeting.internal_id, meeting.meeting_id, space_id, local_id, room_id)
    reason = "ENDED_DUE_TO_SERVICE_INTERRUPTION"
    rest_data: dict[str, Any] = {}
    if space_id is not None:
        rest_data = {**_rest_session(ref), "name": meeting.name, "reason": reason,
                     "endedAt": format_time(meeting.end_time)}
    return Occurrence(
        new_event_id(), meeting.end_time, ref.internal_id, ref, bbb_name="meeting-ended",
        bbb_attributes={"meeting": {**_bbb_meeting(ref), "end-reason": reason}},
        rest_type="session.ended" if space_id else None, space_id=space_id,
        rest_data=rest_data, callbacks=end_callbacks(meeting.metadata, meeting.query, False))


#: Builders whose occurrences go only to hooks and endpoints (no callback, no post).
_RECEIVERS_ONLY = frozenset({
    Translator._started, Translator._created, Translator._chat, Translator._guest,
    Translator._poll_started, Translator._poll_responded})
