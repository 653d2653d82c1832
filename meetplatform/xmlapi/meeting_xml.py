"""A live meeting as getMeetingInfo and getMeetings show it, with the caches that keep
getMeetings cheap.

:meth:`MeetingRenderer.nodes` is the generic node tree (for JSON and the renderer's tests);
:meth:`MeetingRenderer.xml` writes the same thing straight to XML, byte for byte equal,
because getMeetings renders thousands of meetings per call. Two caches, both keyed weakly by
the :class:`~meetplatform.model.Meeting`:

- the fixed parts (name, ids, passwords, metadata...) of a live meeting, kept until it ends;
- its participant counts and ``<attendees>`` as XML, dropped on every registry event that
  changes its participants (the renderer subscribes to the registry for that).
"""

from __future__ import annotations

import weakref

from meetplatform import events as ev
from meetplatform.model import Meeting, Participant, Role
from meetplatform.registry import Registry
from meetplatform.xmlapi.pipeline import Nodes
from meetplatform.xmlapi.render import Fragment, Items, escape

#: Registry events after which a meeting's participant section must be rendered again.
_PARTICIPANT_EVENTS = (ev.ParticipantJoined, ev.ParticipantLeft, ev.ParticipantUpdated,
                       ev.ParticipantReplaced)
_TF = ("false", "true")
ROLE_NAMES = {Role.MODERATOR: "MODERATOR", Role.VIEWER: "VIEWER"}


class MeetingRenderer:
    """Renders live meetings; subscribes to ``registry`` to keep its caches current."""

    def __init__(self, registry: Registry) -> None:
        #: Fixed parts of each live meeting's getMeetings/getMeetingInfo answer.
        self._fixed: weakref.WeakKeyDictionary[Meeting, tuple[Fragment, Fragment]] = (
            weakref.WeakKeyDictionary())
        #: Each live meeting's participant counts and ``<attendees>`` as XML, rebuilt only
        #: after a registry event changed its participants (getMeetings renders thousands).
        self._people_xml: weakref.WeakKeyDictionary[Meeting, str] = weakref.WeakKeyDictionary()
        registry.subscribe(self._on_event)

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MeetingEnded):
            self._fixed.pop(event.meeting, None)
            self._people_xml.pop(event.meeting, None)
        elif isinstance(event, _PARTICIPANT_EVENTS):
            self._people_xml.pop(event.participant.meeting, None)

    def _fixed_parts(self, meeting: Meeting) -> tuple[Fragment, Fragment]:
        parts = self._fixed.get(meeting)
        if parts is None:
            spec = meeting.spec
            head: Nodes = [
                ("meetingName", spec.name),
                ("meetingID", spec.meeting_id),
                ("internalMeetingID", meeting.internal_id),
                ("createTime", meeting.create_time),
                ("createDate", meeting.create_date),
                ("voiceBridge", meeting.voice_bridge),
                ("dialNumber", spec.dial_number),
                ("attendeePW", spec.attendee_pw),
                ("moderatorPW", spec.moderator_pw),
            ]
            tail: Nodes = [
                ("metadata", list(spec.metadata.items())),
                ("isBreakout", spec.is_breakout),
            ]
            if spec.is_breakout:
                tail += [("parentMeetingID", spec.parent_meeting_id or ""),
                         ("sequence", spec.sequence or 0),
                         ("freeJoin", spec.free_join)]
            parts = (Fragment(head), Fragment(tail))
            if not meeting.ended:
                self._fixed[meeting] = parts
        return parts

    @staticmethod
    def _attendee(participant: Participant) -> Nodes:
        seat = participant.seat
        streams = participant.video_streams
        return [
            ("userID", seat.external_user_id),
            ("fullName", seat.full_name),
            ("role", ROLE_NAMES[seat.role]),
            ("isPresenter", participant.presenter),
            ("isListeningOnly", participant.listen_only),
            ("hasJoinedVoice", participant.joined_voice),
            ("hasVideo", streams > 0),
            ("videoStreams", Items("streamName", [
                f"{seat.user_id}-{n}" for n in range(1, streams + 1)])),
            ("clientType", seat.client_type),
            ("customdata", list(seat.userdata.items())),
        ]

    def nodes(self, meeting: Meeting) -> Nodes:
        """The meeting's fields as a node tree (getMeetingInfo's body, one getMeetings item)."""
        head, tail = self._fixed_parts(meeting)
        spec = meeting.spec
        participants = list(meeting.participants.values())
        nodes: Nodes = [
            ("", head),
            ("running", meeting.running),
            ("duration", spec.duration),
            ("hasUserJoined", meeting.has_user_joined),
            ("recording", spec.record),
            ("hasBeenForciblyEnded", meeting.forcibly_ended),
            ("startTime", meeting.start_time),
            ("endTime", meeting.end_time),
        ]
        if participants:
            nodes += [
                ("participantCount", len(participants)),
                ("listenerCount", sum(1 for p in participants if p.listen_only)),
                ("voiceParticipantCount", sum(1 for p in participants if p.joined_voice)),
                ("videoCount", sum(p.video_streams for p in participants)),
                ("maxUsers", spec.max_participants),
                ("moderatorCount", sum(1 for p in participants if p.seat.role is Role.MODERATOR)),
                ("attendees", Items("attendee", [self._attendee(p) for p in participants])),
            ]
        else:
            nodes += [("participantCount", 0), ("listenerCount", 0),
                      ("voiceParticipantCount", 0), ("videoCount", 0),
                      ("maxUsers", spec.max_participants), ("moderatorCount", 0),
                      ("attendees", Items("attendee", []))]
        nodes.append(("", tail))
        if meeting.breakout_ids:
            nodes.append(("breakoutRooms", Items("breakout", list(meeting.breakout_ids))))
        return nodes

    @staticmethod
    def _attendee_xml(participant: Participant) -> str:
        """:meth:`_attendee` written straight to XML (getMeetings is a hot path)."""
        seat = participant.seat
        streams = participant.video_streams
        if streams:
            video = "<videoStreams>" + "".join(
                f"<streamName>{escape(seat.user_id)}-{n}</streamName>"
                for n in range(1, streams + 1)) + "</videoStreams>"
        else:
            video = "<videoStreams/>"
        if seat.userdata:
            custom = "<customdata>" + "".join(
                f"<{k}>{escape(v)}</{k}>" for k, v in seat.userdata.items()) + "</customdata>"
        else:
            custom = "<customdata/>"
        return (
            f"<attendee><userID>{escape(seat.external_user_id)}</userID>"
            f"<fullName>{escape(seat.full_name)}</fullName>"
            f"<role>{ROLE_NAMES[seat.role]}</role>"
            f"<isPresenter>{_TF[participant.presenter]}</isPresenter>"
            f"<isListeningOnly>{_TF[participant.listen_only]}</isListeningOnly>"
            f"<hasJoinedVoice>{_TF[participant.joined_voice]}</hasJoinedVoice>"
            f"<hasVideo>{_TF[streams > 0]}</hasVideo>{video}"
            f"<clientType>{escape(seat.client_type)}</clientType>{custom}</attendee>"
        )

    def xml(self, meeting: Meeting) -> str:
        """:meth:`nodes` written straight to XML, byte for byte the same."""
        head, tail = self._fixed_parts(meeting)
        spec = meeting.spec
        counts = self._people_xml.get(meeting)
        if counts is None:
            counts = self._people_xml[meeting] = self._participants_xml(meeting)
        breakouts = ""
        if meeting.breakout_ids:
            breakouts = "<breakoutRooms>" + "".join(
                f"<breakout>{escape(b)}</breakout>" for b in meeting.breakout_ids
            ) + "</breakoutRooms>"
        return (
            f"{head.xml}<running>{_TF[meeting.running]}</running>"
            f"<duration>{spec.duration}</duration>"
            f"<hasUserJoined>{_TF[meeting.has_user_joined]}</hasUserJoined>"
            f"<recording>{_TF[spec.record]}</recording>"
            f"<hasBeenForciblyEnded>{_TF[meeting.forcibly_ended]}</hasBeenForciblyEnded>"
            f"<startTime>{meeting.start_time}</startTime><endTime>{meeting.end_time}</endTime>"
            f"{counts}{tail.xml}{breakouts}"
        )

    @staticmethod
    def presentation_nodes(meeting: Meeting) -> Nodes:
        """The extension getMeetingInfo adds after BBB's fields (BBB has no element for
        documents): ``<meetplatform><presentation>`` with the page shown and every
        document with its conversion state (docs/xml-api.md). Only for a meeting that has
        documents: without, the answer is exactly BBB's."""
        p = meeting.presentation
        if not p.documents:
            return []
        documents = [[
            ("id", doc.id), ("filename", doc.filename), ("state", doc.state),
            ("pagesDone", doc.pages_done), ("pagesTotal", doc.pages_total),
            ("current", doc.id == p.current_document), ("downloadable", doc.downloadable),
            ("removable", doc.removable), ("error", doc.error or ""),
        ] for doc in p.documents.values()]
        return [("meetplatform", [("presentation", [
            ("currentDocument", p.current_document),
            ("currentPage", p.current_page),
            ("multiUserWhiteboard", p.multi_user),
            ("documents", Items("document", documents)),
        ])])]

    def _participants_xml(self, meeting: Meeting) -> str:
        """Counts and ``<attendees>`` of a meeting (cached by :meth:`xml`)."""
        spec = meeting.spec
        participants = meeting.participants
        if participants:
            people = list(participants.values())
            counts = (
                f"<participantCount>{len(people)}</participantCount>"
                f"<listenerCount>{sum(1 for p in people if p.listen_only)}</listenerCount>"
                "<voiceParticipantCount>"
                f"{sum(1 for p in people if p.joined_voice)}</voiceParticipantCount>"
                f"<videoCount>{sum(p.video_streams for p in people)}</videoCount>"
                f"<maxUsers>{spec.max_participants}</maxUsers><moderatorCount>"
                f"{sum(1 for p in people if p.seat.role is Role.MODERATOR)}</moderatorCount>"
                "<attendees>" + "".join(self._attendee_xml(p) for p in people) + "</attendees>"
            )
        else:
            counts = (
                "<participantCount>0</participantCount><listenerCount>0</listenerCount>"
                "<voiceParticipantCount>0</voiceParticipantCount><videoCount>0</videoCount>"
                f"<maxUsers>{spec.max_participants}</maxUsers><moderatorCount>0</moderatorCount>"
                "<attendees/>"
            )
        return counts
