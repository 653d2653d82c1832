"""Typed events the registry emits to its subscribers.

Subscribers (signalling fan-out, history, webhooks) receive these objects synchronously,
in the order things happened. A subscriber must not raise; the registry logs and goes on
if one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meetplatform.model import (
        ChatMessage,
        Document,
        Meeting,
        Participant,
        Poll,
        Seat,
        Shape,
        SlideDocument,
    )


@dataclass(frozen=True)
class Event:
    """Base class of every registry event; ``at`` is milliseconds since the epoch."""

    at: int


@dataclass(frozen=True)
class MeetingCreated(Event):
    meeting: Meeting


@dataclass(frozen=True)
class MeetingStarted(Event):
    """The first participant connected."""

    meeting: Meeting


@dataclass(frozen=True)
class MeetingEnded(Event):
    """The meeting is over; ``reason`` is one of :class:`meetplatform.registry.EndReason`."""

    meeting: Meeting
    reason: str


@dataclass(frozen=True)
class SeatIssued(Event):
    """A join (or an invitation activation) handed out a seat; nobody is connected yet."""

    seat: Seat


@dataclass(frozen=True)
class GuestWaiting(Event):
    """A guest's browser is waiting in the lobby for a moderator's decision."""

    seat: Seat


@dataclass(frozen=True)
class GuestLeft(Event):
    """A waiting guest's browser left the lobby before a decision (its seat still waits)."""

    seat: Seat


@dataclass(frozen=True)
class GuestAdmitted(Event):
    seat: Seat


@dataclass(frozen=True)
class GuestDenied(Event):
    seat: Seat


@dataclass(frozen=True)
class ParticipantJoined(Event):
    participant: Participant


@dataclass(frozen=True)
class ParticipantReplaced(Event):
    """The same identity joined again: ``old_seat``'s connection must be closed."""

    participant: Participant
    old_seat: Seat


@dataclass(frozen=True)
class ParticipantUpdated(Event):
    """Media, hand, role or presenter state changed; ``changed`` names the fields."""

    participant: Participant
    changed: tuple[str, ...]


@dataclass(frozen=True)
class MuteRequested(Event):
    """A moderator asked this participant's browser to mute its microphone."""

    participant: Participant
    by: Participant | None


@dataclass(frozen=True)
class ParticipantLeft(Event):
    """The participant is gone.

    ``reason`` is ``left`` (a clean exit), ``disconnected`` (its connection dropped and it
    did not come back within the resume grace), ``removed`` (by a moderator) or ``ended``
    (the meeting ended; subscribers fanning out presence may skip these, a
    :class:`MeetingEnded` follows).
    """

    participant: Participant
    reason: str


@dataclass(frozen=True)
class ChatMessageSent(Event):
    message: ChatMessage


@dataclass(frozen=True)
class DocumentsInserted(Event):
    meeting: Meeting
    count: int
    #: The documents inserted (the document service converts them).
    documents: tuple[Document, ...] = ()


# --- the classroom (presentation, whiteboard, polls) --------------------------------------


@dataclass(frozen=True)
class DocumentChanged(Event):
    """A document was added, progressed in its conversion, became ready or failed."""

    meeting: Meeting
    document: SlideDocument


@dataclass(frozen=True)
class DocumentRemoved(Event):
    meeting: Meeting
    document_id: str


@dataclass(frozen=True)
class PresentationChanged(Event):
    """The current document or page changed (the viewport is reset with it)."""

    meeting: Meeting
    by: Participant | None


@dataclass(frozen=True)
class ViewportChanged(Event):
    meeting: Meeting


@dataclass(frozen=True)
class ShapeDrawn(Event):
    """A shape was started (``created``) or grew: ``points_from`` is the index in its
    flat ``points`` of the first value this event added."""

    meeting: Meeting
    page_key: str
    shape: Shape
    points_from: int
    created: bool


@dataclass(frozen=True)
class ShapesRemoved(Event):
    """Shapes erased, undone or cleared from a page (``cleared``: the whole page)."""

    meeting: Meeting
    page_key: str
    shape_ids: tuple[str, ...]
    by: Participant | None
    cleared: bool = False


@dataclass(frozen=True)
class MultiUserChanged(Event):
    meeting: Meeting
    enabled: bool


@dataclass(frozen=True)
class PollStarted(Event):
    meeting: Meeting
    poll: Poll


@dataclass(frozen=True)
class PollAnswered(Event):
    """One answer; ``participant`` is ``None`` for anonymous polls (nobody learns who
    answered what, not even the server's APIs)."""

    meeting: Meeting
    poll: Poll
    participant: Participant | None
    answer: int | str


@dataclass(frozen=True)
class PollStopped(Event):
    meeting: Meeting
    poll: Poll


@dataclass(frozen=True)
class PollPublished(Event):
    meeting: Meeting
    poll: Poll


@dataclass(frozen=True)
class RecordingChanged(Event):
    """Recording started (``recording``) or stopped; ``by`` is the moderator who asked, or
    None (``autoStartRecording``, the API). Between a start and a stop is one segment."""

    meeting: Meeting
    recording: bool
    by: Participant | None = None


@dataclass(frozen=True)
class RecordingAvailabilityChanged(Event):
    """The meeting can record now (``available``: its media go through a media node) or
    can no longer (it runs browser to browser, mesh, after its node failed), or again."""

    meeting: Meeting
    available: bool
