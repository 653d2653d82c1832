"""A live meeting as getMeetingInfo and getMeetings show it, with the caches that make
getMeetings cost little more than writing its bytes.

:meth:`MeetingRenderer.nodes` is the generic node tree (the reference rendering, used by
the tests); :meth:`MeetingRenderer.xml` writes the same thing straight to XML, byte for byte
equal. Neither is on the hot path any more: a dashboard polling getMeetings over 1,000
meetings used to re-render all of them per request (issue 14), so the renderer keeps

- each live meeting's rendered body as bytes, XML (:meth:`MeetingRenderer.xml_bytes`) and
  JSON (:meth:`MeetingRenderer.json_bytes`), until a registry event changes what it shows;
- the whole getMeetings answer per format, until any such event;
- the fixed parts (name, ids, passwords, metadata...) of a live meeting, until it ends, so
  that a meeting whose participants changed is rendered again cheaply.

What invalidates: every registry change a meeting's rendering shows (participants, their
media, roles and presenter flag, ``running``, ``hasUserJoined``, start and end, a new
breakout room) is followed by one of :data:`_CHANGING_EVENTS`, naming the meeting or one of
its participants; a breakout's creation also changes its parent (``<breakoutRooms>``). The
registry mutates before it emits, so an entry rendered at any point is never older than the
last event. Ended meetings are never cached (their entries are dropped on
``MeetingEnded``), so the caches hold live meetings only; the tests compare every cached
answer with the uncached rendering after each kind of change.
"""

from __future__ import annotations

import json
import weakref
from typing import Any, Protocol

from meetplatform import events as ev
from meetplatform.model import Meeting, Participant, Role
from meetplatform.registry import Registry
from meetplatform.xmlapi.pipeline import Nodes
from meetplatform.xmlapi.render import Fragment, Items, escape, to_json

#: Registry events after which the rendering of the meeting they name has changed.
_CHANGING_EVENTS = (ev.MeetingCreated, ev.MeetingStarted, ev.MeetingEnded,
                    ev.ParticipantJoined, ev.ParticipantLeft, ev.ParticipantUpdated,
                    ev.ParticipantReplaced, ev.RecordingAvailabilityChanged)
_TF = ("false", "true")


def _records(meeting: Meeting) -> bool:
    """``<recording>``: as bbb-web, whether the meeting was created to record
    (``record``), except that a meeting known to run without a media node (mesh) says
    false: it cannot record (docs/recordings.md). The registry learns that on the first
    join and announces changes (``RecordingAvailabilityChanged``)."""
    return meeting.spec.record and meeting.recording_available is not False
ROLE_NAMES = {Role.MODERATOR: "MODERATOR", Role.VIEWER: "VIEWER"}

_XML_SUCCESS = b"<response><returncode>SUCCESS</returncode>"
_JSON_SUCCESS = b'{"response":{"returncode":"SUCCESS",'


class ServerBlock(Protocol):
    """A meeting's ``<server>`` block, as nodes and as XML (byte for byte the same)."""

    def nodes(self, meeting: Meeting) -> Nodes: ...

    def xml(self, meeting: Meeting) -> str: ...


class MeetingRenderer:
    """Renders live meetings; subscribes to ``registry`` to keep its caches current."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        #: Fixed parts of each live meeting's getMeetings/getMeetingInfo answer.
        self._fixed: weakref.WeakKeyDictionary[Meeting, tuple[Fragment, Fragment]] = (
            weakref.WeakKeyDictionary())
        #: The fixed parts as JSON objects (for :meth:`json_object`).
        self._fixed_json: weakref.WeakKeyDictionary[
            Meeting, tuple[dict[str, Any], dict[str, Any]]] = weakref.WeakKeyDictionary()
        #: Each live meeting's XML body (what is inside ``<meeting>``), UTF-8. Plain dicts:
        #: entries go on ``MeetingEnded``, and a weak dictionary's lookups cost as much as
        #: the rest of getMeetings.
        self._xml: dict[Meeting, bytes] = {}
        #: Each live meeting's JSON object text.
        self._json: dict[Meeting, bytes] = {}
        #: The whole getMeetings answer by format (``"xml"``, ``"json"``), while nothing
        #: changed.
        self._lists: dict[str, bytes] = {}
        #: Renders the ``<server>`` block the Mconf load balancer adds to each meeting (the
        #: node it runs on), last in the meeting; set by the composition root
        #: (:class:`~meetplatform.xmlapi.media_calls.ServerBlock`). None: no block. A
        #: meeting's node is chosen on ``MeetingCreated``; whoever moves it later calls
        #: :meth:`invalidate`.
        self.server: ServerBlock | None = None
        registry.subscribe(self._on_event)

    def _on_event(self, event: ev.Event) -> None:
        if not isinstance(event, _CHANGING_EVENTS):
            return
        self._lists.clear()
        if isinstance(event, (ev.MeetingCreated, ev.MeetingStarted, ev.MeetingEnded,
                              ev.RecordingAvailabilityChanged)):
            meeting = event.meeting
        else:
            meeting = event.participant.meeting
        self._drop(meeting)
        if isinstance(event, ev.MeetingEnded):
            self._fixed.pop(meeting, None)
            self._fixed_json.pop(meeting, None)
        elif isinstance(event, ev.MeetingCreated) and meeting.spec.is_breakout:
            parent_id = meeting.spec.parent_meeting_id or ""
            parent = (self._registry.get_meeting(parent_id)
                      or self._registry.get_by_internal_id(parent_id))
            if parent is not None:
                self._drop(parent)  # its <breakoutRooms> has one more

    def invalidate(self, meeting: Meeting) -> None:
        """Forget what is cached of ``meeting`` (something it shows changed outside the
        registry's events, e.g. the node it runs on)."""
        self._lists.clear()
        self._drop(meeting)

    def _drop(self, meeting: Meeting) -> None:
        self._xml.pop(meeting, None)
        self._json.pop(meeting, None)

    # --- cached answers ---------------------------------------------------------------

    def xml_bytes(self, meeting: Meeting) -> bytes:
        """:meth:`xml` as UTF-8, cached while the meeting is live and unchanged."""
        body = self._xml.get(meeting)
        if body is None:
            body = self.xml(meeting).encode("utf-8")
            if not meeting.ended:
                self._xml[meeting] = body
        return body

    def json_bytes(self, meeting: Meeting) -> bytes:
        """The JSON object of :meth:`nodes` (as :func:`~.render.json_body` writes it)."""
        body = self._json.get(meeting)
        if body is None:
            body = json.dumps(self.json_object(meeting), separators=(",", ":")).encode("ascii")
            if not meeting.ended:
                self._json[meeting] = body
        return body

    def meeting_info(self, meeting: Meeting, fmt: str) -> bytes:
        """getMeetingInfo's whole SUCCESS answer: XML, or JSON text for ``json``/``jsonp``."""
        if fmt == "xml":
            return b"".join((_XML_SUCCESS, self.xml_bytes(meeting), b"</response>"))
        return b"".join((_JSON_SUCCESS, self.json_bytes(meeting)[1:], b"}"))

    def meeting_list(self, meetings: list[Meeting], fmt: str) -> bytes:
        """getMeetings' whole SUCCESS answer over ``meetings`` (the registry's live ones, in
        its order; at least one): XML, or JSON text for ``json``/``jsonp``.

        Cached as a whole until a registry event changes any meeting or the set of
        meetings; rebuilt from the per-meeting bytes, so a change costs one join.
        """
        key = "xml" if fmt == "xml" else "json"
        body = self._lists.get(key)
        if body is not None:
            return body
        if key == "xml":
            render = self.xml_bytes
            body = b"".join((_XML_SUCCESS, b"<meetings><meeting>",
                             b"</meeting><meeting>".join([render(m) for m in meetings]),
                             b"</meeting></meetings></response>"))
        else:
            render = self.json_bytes
            body = b"".join((_JSON_SUCCESS, b'"meetings":[',
                             b",".join([render(m) for m in meetings]), b"]}}"))
        if not any(m.ended for m in meetings):
            self._lists[key] = body
        return body

    # --- rendering --------------------------------------------------------------------

    def json_object(self, meeting: Meeting) -> dict[str, Any]:
        """``to_json(self.nodes(meeting))``, built directly (five times cheaper, and equal:
        the tests compare the bytes after every kind of change)."""
        fixed = self._fixed_json.get(meeting)
        if fixed is None:
            head, tail = self._fixed_parts(meeting)
            fixed = (to_json(head.pairs), to_json(tail.pairs))
            if not meeting.ended:
                self._fixed_json[meeting] = fixed
        spec = meeting.spec
        people = list(meeting.participants.values())
        out = dict(fixed[0])
        out["running"] = meeting.running
        out["duration"] = spec.duration
        out["hasUserJoined"] = meeting.has_user_joined
        out["recording"] = _records(meeting)
        out["hasBeenForciblyEnded"] = meeting.forcibly_ended
        out["startTime"] = meeting.start_time
        out["endTime"] = meeting.end_time
        out["participantCount"] = len(people)
        out["listenerCount"] = sum(1 for p in people if p.listen_only)
        out["voiceParticipantCount"] = sum(1 for p in people if p.joined_voice)
        out["videoCount"] = sum(p.video_streams for p in people)
        out["maxUsers"] = spec.max_participants
        out["moderatorCount"] = sum(1 for p in people if p.seat.role is Role.MODERATOR)
        out["attendees"] = [self._attendee_json(p) for p in people]
        out.update(fixed[1])
        if meeting.breakout_ids:
            out["breakoutRooms"] = list(meeting.breakout_ids)
        if self.server is not None:
            out.update(to_json(self.server.nodes(meeting)))
        return out

    @staticmethod
    def _attendee_json(participant: Participant) -> dict[str, Any]:
        """``to_json(_attendee(participant))``, built directly."""
        seat = participant.seat
        streams = participant.video_streams
        return {
            "userID": seat.external_user_id,
            "fullName": seat.full_name,
            "role": ROLE_NAMES[seat.role],
            "isPresenter": participant.presenter,
            "isListeningOnly": participant.listen_only,
            "hasJoinedVoice": participant.joined_voice,
            "hasVideo": streams > 0,
            "videoStreams": [f"{seat.user_id}-{n}" for n in range(1, streams + 1)],
            "clientType": seat.client_type,
            "customdata": dict(seat.userdata),
        }

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
            ("recording", _records(meeting)),
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
        if self.server is not None:
            nodes += self.server.nodes(meeting)
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
        counts = self._participants_xml(meeting)
        breakouts = ""
        if meeting.breakout_ids:
            breakouts = "<breakoutRooms>" + "".join(
                f"<breakout>{escape(b)}</breakout>" for b in meeting.breakout_ids
            ) + "</breakoutRooms>"
        return (
            f"{head.xml}<running>{_TF[meeting.running]}</running>"
            f"<duration>{spec.duration}</duration>"
            f"<hasUserJoined>{_TF[meeting.has_user_joined]}</hasUserJoined>"
            f"<recording>{_TF[_records(meeting)]}</recording>"
            f"<hasBeenForciblyEnded>{_TF[meeting.forcibly_ended]}</hasBeenForciblyEnded>"
            f"<startTime>{meeting.start_time}</startTime><endTime>{meeting.end_time}</endTime>"
            f"{counts}{tail.xml}{breakouts}"
            f"{self.server.xml(meeting) if self.server is not None else ''}"
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
        """Counts and ``<attendees>`` of a meeting."""
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
