"""The live meeting model: meetings, seats, participants, chat, and the registry's refusals.

These are the types every surface reads and the events of :mod:`meetplatform.events` carry.
They hold state and derive values from it; every change to them is made by
:class:`meetplatform.registry.Registry`, which owns them.
"""

from __future__ import annotations

import datetime
import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from twisted.internet.interfaces import IDelayedCall


class Role(str, Enum):
    MODERATOR = "MODERATOR"
    VIEWER = "VIEWER"


class GuestPolicy(str, Enum):
    ALWAYS_ACCEPT = "ALWAYS_ACCEPT"
    ALWAYS_DENY = "ALWAYS_DENY"
    ASK_MODERATOR = "ASK_MODERATOR"
    ALWAYS_ACCEPT_AUTH = "ALWAYS_ACCEPT_AUTH"


class GuestStatus(str, Enum):
    ALLOW = "ALLOW"
    WAIT = "WAIT"
    DENY = "DENY"


class EndReason(str, Enum):
    """Why a meeting ended, in BigBlueButton's own words."""

    ENDED_FROM_API = "ENDED_FROM_API"
    ENDED_BY_MODERATOR = "ENDED_BY_MODERATOR"
    ENDED_WHEN_NOT_JOINED = "ENDED_WHEN_NOT_JOINED"
    ENDED_WHEN_LAST_USER_LEFT = "ENDED_WHEN_LAST_USER_LEFT"
    ENDED_AFTER_EXCEEDING_DURATION = "ENDED_AFTER_EXCEEDING_DURATION"
    ENDED_DUE_TO_NO_MODERATOR = "ENDED_DUE_TO_NO_MODERATOR"
    ENDED_BY_PARENT = "ENDED_BY_PARENT"
    ENDED_DUE_TO_SERVICE_INTERRUPTION = "ENDED_DUE_TO_SERVICE_INTERRUPTION"


# --- domain errors: each surface maps these to its own format ---------------------------


class RegistryError(Exception):
    """Base class of the registry's refusals."""


class IdNotUnique(RegistryError):
    """A running meeting has this meetingID and the passwords given differ."""


class NonUniqueVoiceBridge(RegistryError):
    """Another running meeting uses the requested voice bridge."""


class ParentMeetingNotFound(RegistryError):
    """A breakout's parent is not a running meeting (or is the breakout itself)."""


class MeetingForciblyEnded(RegistryError):
    """The meeting was ended (by the API or a moderator) and cannot be joined."""


class MaxParticipantsReached(RegistryError):
    """The meeting is full."""


class GuestDeniedAccess(RegistryError):
    """The guest policy refuses this user."""


class NotAllowed(RegistryError):
    """The acting participant may not do this (not a moderator, not waiting, ...)."""


class RecordingUnavailable(NotAllowed):
    """Recording was asked for in a meeting that cannot record: recordings are made on
    media nodes, and this meeting's media go browser to browser (mesh). The signalling
    answers it with its own code (``recordingUnavailable``), not ``notAllowed``."""


class SeatNotUsable(RegistryError):
    """The seat cannot connect now (still waiting, denied, removed, meeting over)."""


# --- the data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A presentation handed over on ``create`` or ``insertDocument`` (by URL or inline)."""

    filename: str
    url: str | None = None
    content: bytes | None = None
    current: bool = False
    downloadable: bool = False
    removable: bool = True


@dataclass
class MeetingSpec:
    """Validated ``create`` parameters; the XML and REST surfaces both build one."""

    meeting_id: str
    name: str
    attendee_pw: str = ""
    moderator_pw: str = ""
    #: True when the caller passed at least one password (decides duplicate handling).
    passwords_given: bool = False
    voice_bridge: str | None = None
    dial_number: str = ""
    web_voice: str | None = None
    max_participants: int = 0
    duration: int = 0
    welcome: str = ""
    moderator_only_message: str = ""
    logout_url: str = ""
    record: bool = False
    auto_start_recording: bool = False
    allow_start_stop_recording: bool = True
    mute_on_start: bool = False
    webcams_only_for_moderator: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    guest_policy: GuestPolicy = GuestPolicy.ALWAYS_ACCEPT
    allow_promote_guest_to_moderator: bool = False
    expire_if_no_user_joined_minutes: int = 5
    expire_when_last_user_left_minutes: int = 1
    end_when_no_moderator: bool = False
    end_when_no_moderator_delay_minutes: int = 1
    is_breakout: bool = False
    parent_meeting_id: str | None = None
    sequence: int | None = None
    free_join: bool = False
    #: Every parameter as received (documented or not), kept for read-back and history.
    params: dict[str, str] = field(default_factory=dict)
    documents: list[Document] = field(default_factory=list)


@dataclass
class ChatMessage:
    meeting: Meeting
    sender_name: str
    text: str
    at: int
    #: ``None`` for messages sent through the API (``sendChatMessage``).
    sender_user_id: str | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Attendance:
    """One stretch of one participant in a meeting (for ``getStats`` and history)."""

    user_id: str
    external_user_id: str
    full_name: str
    role: Role
    join_time: int
    left_time: int | None = None


@dataclass(eq=False)
class Seat:
    """What ``join`` hands out: a session token that a browser redeems to connect."""

    token: str
    meeting: Meeting
    user_id: str
    external_user_id: str
    full_name: str
    role: Role
    guest: bool
    guest_status: GuestStatus
    auth_token: str
    created_at: int
    avatar_url: str = ""
    userdata: dict[str, str] = field(default_factory=dict)
    client_type: str = "HTML5"
    #: Set when a moderator removed this user or the seat was replaced: it can't reconnect.
    revoked: bool = False
    #: Why the seat was revoked: ``removed``, ``replaced`` or ``denied``.
    revoked_reason: str | None = None
    #: True while a waiting guest's browser sits in the lobby (see ``guest_waiting``).
    in_lobby: bool = False
    participant: Participant | None = None


@dataclass(eq=False)
class Participant:
    """A connected user of a meeting, with live media and moderation state."""

    seat: Seat
    joined_at: int
    presenter: bool = False
    listen_only: bool = False
    joined_voice: bool = False
    muted: bool = True
    video_streams: int = 0
    screen_sharing: bool = False
    raised_hand: bool = False
    attendance: Attendance | None = None

    @property
    def meeting(self) -> Meeting:
        return self.seat.meeting

    @property
    def user_id(self) -> str:
        return self.seat.user_id

    @property
    def external_user_id(self) -> str:
        return self.seat.external_user_id

    @property
    def full_name(self) -> str:
        return self.seat.full_name

    @property
    def role(self) -> Role:
        return self.seat.role

    @property
    def is_moderator(self) -> bool:
        return self.seat.role is Role.MODERATOR

@dataclass(eq=False)
class Meeting:
    spec: MeetingSpec
    internal_id: str
    create_time: int
    voice_bridge: str
    welcome: str
    moderator_only_message: str
    start_time: int = 0
    end_time: int = 0
    ended: bool = False
    end_reason: str | None = None
    forcibly_ended: bool = False
    has_user_joined: bool = False
    #: Seats by session token.
    seats: dict[str, Seat] = field(default_factory=dict)
    #: Connected participants by internal user id, in join order.
    participants: dict[str, Participant] = field(default_factory=dict)
    chat: deque[ChatMessage] = field(default_factory=lambda: deque(maxlen=1000))
    documents: list[Document] = field(default_factory=list)
    attendance: list[Attendance] = field(default_factory=list)
    breakout_ids: list[str] = field(default_factory=list)
    recording: bool = False
    #: Whether the meeting could record when last asked (its media go through a media
    #: node); None until the registry first asked. Kept so that a change is announced once
    #: (:meth:`~meetplatform.registry.Registry.recording_availability_changed`).
    recording_available: bool | None = None
    #: The classroom: documents shown, the whiteboard, polls (see :class:`Presentation`).
    presentation: Presentation = field(default_factory=lambda: Presentation())
    #: Recording ran at some point (BBB's "recording marks": ``recordingmarks=true``).
    recorded: bool = False
    _timers: dict[str, IDelayedCall] = field(default_factory=dict, repr=False)

    # convenient names in the XML API's vocabulary
    @property
    def meeting_id(self) -> str:
        return self.spec.meeting_id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        """True while anyone is connected (BBB's ``running``)."""
        return not self.ended and bool(self.participants)

    @property
    def create_date(self) -> str:
        """``createDate`` as BBB prints it (Java's ``Date.toString()``, in UTC)."""
        return _java_date(self.create_time)

    def waiting_guests(self) -> list[Seat]:
        return [s for s in self.seats.values() if s.guest_status is GuestStatus.WAIT]

    def lobby(self) -> list[Seat]:
        """Waiting guests whose browser is in the lobby now, in arrival order."""
        return [s for s in self.seats.values()
                if s.guest_status is GuestStatus.WAIT and s.in_lobby]

    def moderators(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.is_moderator]

    def presenter(self) -> Participant | None:
        for p in self.participants.values():
            if p.presenter:
                return p
        return None

    @property
    def participant_count(self) -> int:
        return len(self.participants)

    @property
    def moderator_count(self) -> int:
        return sum(1 for p in self.participants.values() if p.is_moderator)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _java_date(ms: int) -> str:
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return (
        f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:02d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} UTC {d.year}"
    )


# --- the classroom: presentation, whiteboard, polls ------------------------------------------

#: The id of the page shown when a meeting has no document (BBB's default slide): an
#: empty whiteboard page, one page long.
DEFAULT_DOCUMENT = "default"


class ClassroomError(RegistryError):
    """A classroom request refused for a reason the surfaces report with ``code``
    (``notFound``, ``tooManyShapes``, ``tooManyPoints``, ``rateLimited``, ``pollClosed``,
    ``alreadyAnswered``, ``invalid``, ``notReady``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SlideDocument:
    """A document of the meeting as the classroom shows it: conversion state and pages.

    The document service (floor 2) converts and reports here; files are its business."""

    id: str
    filename: str
    state: str = "queued"  # queued, converting, ready, failed
    pages_total: int = 0
    pages_done: int = 0
    error: str | None = None
    downloadable: bool = False
    removable: bool = True
    #: Asked to be the current document (``current="true"``) once ready.
    current: bool = False
    #: File extension of the page images (``png`` or ``jpg``) once pages exist.
    page_extension: str = "png"

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass
class Shape:
    """One whiteboard annotation. ``points`` are flat ``x, y`` pairs in page units
    (0..1 of the page's width and height), so every screen size draws the same."""

    id: str
    kind: str  # pen, line, rectangle, ellipse, text
    user_id: str
    color: str = "#d32f2f"
    width: float = 0.004
    points: list[float] = field(default_factory=list)
    text: str = ""
    done: bool = False


@dataclass
class Viewport:
    """The presenter's zoom (1 = whole page) and the page point at the view's top left."""

    zoom: float = 1.0
    x: float = 0.0
    y: float = 0.0


class PollKind(str, Enum):
    """BBB's quick poll types."""

    YES_NO = "YN"
    TRUE_FALSE = "TF"
    LETTERS = "A-D"
    CUSTOM = "CUSTOM"
    FREE_TEXT = "R-"


@dataclass(eq=False)
class Poll:
    """A poll. For an anonymous poll only *who* answered (one answer each) is kept,
    never who answered *what*: ``votes`` stays empty and ``texts`` holds bare texts."""

    id: str
    kind: PollKind
    question: str
    answers: list[str]
    anonymous: bool
    started_by: str
    started_at: int
    counts: list[int] = field(default_factory=list)
    #: Participants (user ids) who answered: one answer each.
    responders: set[str] = field(default_factory=set)
    #: user id -> answer index (or free text), named polls only.
    votes: dict[str, int | str] = field(default_factory=dict)
    #: Free-text answers in arrival order.
    texts: list[str] = field(default_factory=list)
    stopped: bool = False
    published: bool = False


@dataclass
class Presentation:
    """The classroom of one meeting: documents, the page shown and its annotations."""

    documents: dict[str, SlideDocument] = field(default_factory=dict)
    current_document: str = DEFAULT_DOCUMENT
    current_page: int = 1
    viewport: Viewport = field(default_factory=Viewport)
    #: ``"<document id>/<page>"`` -> shapes by id, in drawing order.
    annotations: dict[str, dict[str, Shape]] = field(default_factory=dict)
    multi_user: bool = False
    poll: Poll | None = None
    #: Every poll of the meeting, oldest first.
    polls: list[Poll] = field(default_factory=list)
    #: Coordinates held by each page's shapes (bounds what a late joiner receives).
    page_points: dict[str, int] = field(default_factory=dict, repr=False)
    #: Whiteboard message budget per user id: ``[tokens, last refill in ms]``.
    rates: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def page_key(self) -> str:
        return f"{self.current_document}/{self.current_page}"

    def shapes(self, key: str | None = None) -> list[Shape]:
        return list(self.annotations.get(key or self.page_key, {}).values())
