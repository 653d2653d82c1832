"""The signalling protocol's messages: decoding, validation and encoding, as pure functions.

Nothing here touches Twisted or Autobahn, so all of it is tested directly. The wire format
is described in ``docs/signalling-protocol.md``; this module is its executable half.

Why one module of this size: it is the executable half of ``docs/signalling-protocol.md``,
one parser or encoder per message in the document's order; keeping them together keeps the
two halves easy to compare.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meetplatform.sanitize import sanitize_html
from meetplatform.text import BadText, check_value, is_valid

if TYPE_CHECKING:
    from meetplatform.model import ChatMessage, Meeting, Participant, Seat

#: Largest message the server reads, in bytes of UTF-8 (an SDP with many codecs fits).
MAX_MESSAGE_BYTES = 64 * 1024
#: Largest chat message, in characters after trimming.
CHAT_MAX_CHARS = 500
#: Request ids: strings up to this many characters, or integers up to 2**53.
MAX_ID_CHARS = 64
MAX_INT_ID = 2**53
#: Every number in a frame must be an I-JSON number (RFC 7493): an integer of magnitude at
#: most 2**53 or a finite float. Larger literals are refused while decoding, so no field's
#: validator ever sees one (``math.isfinite(10**300)`` raises ``OverflowError``).
MAX_JSON_INT = 2**53
#: Longest session token accepted in the handshake.
MAX_TOKEN_CHARS = 256
MAX_SDP_CHARS = MAX_MESSAGE_BYTES
MAX_CANDIDATE_CHARS = 4096
MAX_SHORT_CHARS = 256
#: Chat messages handed to a newcomer in ``joined``.
RECENT_CHAT = 100
SUBPROTOCOL = "meetplatform.signal.v1"

_TOKEN_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_CHARS}}}")

Json = dict[str, Any]


class MessageError(Exception):
    """A request that can't be carried out; the surface answers with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> MessageError:
    return MessageError("invalid", message)


@dataclass(frozen=True)
class Request:
    """One decoded client envelope; ``data`` is still unvalidated."""

    type: str
    id: str | int | None
    data: Mapping[str, Any]


class EnvelopeError(MessageError):
    """The frame itself is unreadable; ``request_id``/``request_type`` when they could be read."""

    def __init__(self, code: str, message: str, request_id: str | int | None = None,
                 request_type: str | None = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id
        self.request_type = request_type


def _read_id(value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, _OutOfRange):
        raise invalid("id out of range")
    if isinstance(value, bool):
        raise invalid("id must be a string or an integer")
    if isinstance(value, int):
        if abs(value) > MAX_INT_ID:
            raise invalid("id out of range")
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT_ID:
        return int(value)
    if isinstance(value, str) and 1 <= len(value) <= MAX_ID_CHARS:
        return value
    raise invalid(f"id must be a string of 1..{MAX_ID_CHARS} characters or an integer")


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


class _OutOfRange:
    """Stands in for a number literal outside the I-JSON range while a frame is decoded."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _NumberReader:
    """``json.loads`` hooks that replace out-of-range numbers by :class:`_OutOfRange`.

    The frame is still decoded to the end so that the error can carry the request's
    ``id`` and ``type``; :func:`decode_request` then refuses the whole frame.
    """

    __slots__ = ("bad",)

    def __init__(self) -> None:
        self.bad: str | None = None

    def read_int(self, literal: str) -> int | _OutOfRange:
        # The literal is at most MAX_MESSAGE_BYTES long, but int() of a huge literal
        # is quadratic and Python refuses > 4300 digits: decide on the length first.
        if len(literal.lstrip("-")) <= 16 and abs(value := int(literal)) <= MAX_JSON_INT:
            return value
        return self._out_of_range(literal)

    def read_float(self, literal: str) -> float | _OutOfRange:
        value = float(literal)
        if math.isfinite(value):
            return value
        return self._out_of_range(literal)

    def _out_of_range(self, literal: str) -> _OutOfRange:
        if self.bad is None:
            self.bad = literal if len(literal) <= 20 else literal[:17] + "..."
        return _OutOfRange(literal)


def decode_request(payload: bytes, is_binary: bool = False,
                   max_bytes: int = MAX_MESSAGE_BYTES) -> Request:
    """Decode one client frame into a :class:`Request` or raise :class:`EnvelopeError`."""
    if is_binary:
        raise EnvelopeError("invalid", "binary frames are not supported; send JSON text")
    if len(payload) > max_bytes:
        raise EnvelopeError("tooLarge", f"message larger than {max_bytes} bytes")
    numbers = _NumberReader()
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constants,
                         parse_int=numbers.read_int, parse_float=numbers.read_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("invalid", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise EnvelopeError("invalid", "frame must be a JSON object")
    # Lone surrogates are refused, not repaired (meetplatform.text). As text.loads_json
    # does, nothing is walked unless the frame holds a \u escape (the only way one gets
    # in once the payload decoded as UTF-8); walked here, after parsing, so that the
    # error can carry the request's id and type. The socket stays open.
    if b"\\u" in payload:
        try:
            check_value(obj)
        except BadText as e:
            raise EnvelopeError("invalid", e.message, *_valid_envelope(obj)) from None
    try:
        request_id = _read_id(obj.get("id"))
    except MessageError as e:
        raise EnvelopeError("invalid", e.message) from None
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise EnvelopeError("invalid", "frame needs a string 'type'", request_id)
    if numbers.bad is not None:
        raise EnvelopeError(
            "invalid", f"number {numbers.bad} out of range: integers must lie within "
            "-2**53..2**53 and numbers must be finite", request_id, kind)
    data = obj.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EnvelopeError("invalid", "'data' must be an object", request_id, kind)
    return Request(kind, request_id, data)


def _valid_envelope(obj: Mapping[str, Any]) -> tuple[str | int | None, str | None]:
    """The id and type of a frame refused for broken text, when they are valid themselves
    (an error frame holding a broken one could not be encoded)."""
    try:
        request_id = _read_id(obj.get("id"))
    except MessageError:
        request_id = None
    if isinstance(request_id, str) and not is_valid(request_id):
        request_id = None
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 64 or not is_valid(kind):
        kind = None
    return request_id, kind


# --- per-type validation ------------------------------------------------------------------


def _bool(data: Mapping[str, Any], name: str, required: bool = True) -> bool | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise invalid(f"'{name}' must be true or false")
    return value


def _user_id(data: Mapping[str, Any], name: str = "userId") -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_SHORT_CHARS:
        raise invalid(f"'{name}' must be a participant id")
    return value


def _optional_str(data: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(f"'{name}' must be a string of at most {limit} characters or null")
    return value


@dataclass(frozen=True)
class Media:
    joined_voice: bool | None = None
    listen_only: bool | None = None
    muted: bool | None = None
    video: bool | None = None
    screen: bool | None = None


def parse_media(data: Mapping[str, Any]) -> Media:
    return Media(
        joined_voice=_bool(data, "joinedVoice", False),
        listen_only=_bool(data, "listenOnly", False),
        muted=_bool(data, "muted", False),
        video=_bool(data, "video", False),
        screen=_bool(data, "screen", False),
    )


def parse_chat(data: Mapping[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise invalid("'text' must be a string")
    text = text.strip()
    if not text or len(text) > CHAT_MAX_CHARS:
        raise invalid(f"'text' must have 1..{CHAT_MAX_CHARS} characters")
    if "\x00" in text:
        raise invalid("'text' must not contain NUL characters")
    return text


def parse_raise_hand(data: Mapping[str, Any]) -> bool:
    raised = _bool(data, "raised", False)
    return True if raised is None else raised


def parse_recording(data: Mapping[str, Any]) -> bool:
    """``recording {recording: true|false}``: a moderator starts or stops recording."""
    return bool(_bool(data, "recording"))


def parse_target(data: Mapping[str, Any]) -> str:
    return _user_id(data)


def parse_role(data: Mapping[str, Any]) -> tuple[str, str]:
    role = data.get("role")
    if role not in ("MODERATOR", "VIEWER"):
        raise invalid("'role' must be MODERATOR or VIEWER")
    return _user_id(data), role


def parse_empty(data: Mapping[str, Any]) -> None:
    return None


def parse_ping(data: Mapping[str, Any]) -> float | int | None:
    ts = data.get("ts")
    if ts is None:
        return None
    # A Python int converts to float for isfinite and overflows past ~1e308: check the
    # range on ints themselves (decode_request already refuses them; this is for callers
    # that build ``data`` some other way).
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or (
            abs(ts) > MAX_JSON_INT if isinstance(ts, int) else not math.isfinite(ts)):
        raise invalid("'ts' must be a finite number")
    return ts


_DESCRIPTION_TYPES = ("offer", "answer", "pranswer", "rollback")
_ABSENT = object()


@dataclass(frozen=True)
class Signal:
    """A validated ``signal``; ``relay`` is the exact ``data`` of the event to the peer
    (without ``from``)."""

    to: str
    relay: Json


def parse_signal(data: Mapping[str, Any]) -> Signal:
    to = _user_id(data, "to")
    relay: Json = {}
    description = data.get("description", _ABSENT)
    if description is not _ABSENT and description is not None:
        if not isinstance(description, dict):
            raise invalid("'description' must be an object {type, sdp}")
        kind = description.get("type")
        if kind not in _DESCRIPTION_TYPES:
            raise invalid("'description.type' must be offer, answer, pranswer or rollback")
        sdp = description.get("sdp", "")
        if not isinstance(sdp, str) or len(sdp) > MAX_SDP_CHARS:
            raise invalid("'description.sdp' must be a string")
        if not sdp and kind != "rollback":
            raise invalid("'description.sdp' must not be empty")
        relay["description"] = {"type": kind, "sdp": sdp}
    candidate = data.get("candidate", _ABSENT)
    if candidate is not _ABSENT:
        if candidate is None:
            relay["candidate"] = None
        elif isinstance(candidate, dict):
            text = candidate.get("candidate", "")
            if not isinstance(text, str) or len(text) > MAX_CANDIDATE_CHARS:
                raise invalid("'candidate.candidate' must be a string")
            index = candidate.get("sdpMLineIndex")
            if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                                      or not 0 <= index <= 65535):
                raise invalid("'candidate.sdpMLineIndex' must be an integer or null")
            relay["candidate"] = {
                "candidate": text,
                "sdpMid": _optional_str(candidate, "sdpMid", MAX_SHORT_CHARS),
                "sdpMLineIndex": index,
                "usernameFragment": _optional_str(candidate, "usernameFragment",
                                                  MAX_SHORT_CHARS),
            }
        else:
            raise invalid("'candidate' must be an RTCIceCandidateInit object or null")
    if not relay:
        raise invalid("'signal' needs a 'description' or a 'candidate'")
    return Signal(to, relay)


#: Request type -> validator of its ``data``.
PARSERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "media": parse_media,
    "chat": parse_chat,
    "raiseHand": parse_raise_hand,
    "lowerHand": parse_target,
    "mute": parse_target,
    "muteAll": parse_empty,
    "remove": parse_target,
    "presenter": parse_target,
    "role": parse_role,
    "admit": parse_target,
    "deny": parse_target,
    "end": parse_empty,
    "leave": parse_empty,
    "signal": parse_signal,
    "ping": parse_ping,
    "iceRefresh": parse_empty,
    "recording": parse_recording,
}

#: Requests a guest may send while it waits in the lobby.
LOBBY_REQUESTS = frozenset({"ping", "leave"})


def parse(request: Request) -> Any:
    """Validate ``request.data`` for its type; raises :class:`MessageError`."""
    parser = PARSERS.get(request.type)
    if parser is None:
        raise MessageError("unknownType", f"unknown request type {request.type!r}")
    return parser(request.data)


# --- encoding -----------------------------------------------------------------------------

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(obj: Json) -> bytes:
    """One JSON text frame's payload."""
    return _encoder.encode(obj).encode("utf-8")


def encode_value(value: Any) -> bytes:
    """Any JSON value (a member of a message, encoded on its own), as :func:`encode`."""
    return _encoder.encode(value).encode("utf-8")


def event(kind: str, data: Json | None = None) -> bytes:
    return encode({"type": kind, "data": {} if data is None else data})


def event_of_parts(kind: str, parts: Sequence[tuple[str, bytes | bytearray]]) -> bytes:
    """``event(kind, data)`` for a ``data`` whose members come already encoded, as
    ``(name, JSON bytes)`` in order: the same text as encoding the dict, but a large member
    kept encoded (a room's roster of 1,000 participants) is copied, not encoded again."""
    return b"".join(event_parts(kind, parts))


def event_parts(kind: str,
                parts: Sequence[tuple[str, bytes | bytearray]]) -> list[bytes | bytearray]:
    """:func:`event_of_parts` as the pieces to join (a caller that frames the message
    joins them once, with the frame's header)."""
    text = _encoder.encode
    out: list[bytes | bytearray] = [b'{"type":', text(kind).encode("utf-8"), b',"data":{']
    for i, (name, value) in enumerate(parts):
        out.append((b"," if i else b"") + text(name).encode("utf-8") + b":")
        out.append(value)
    out.append(b"}}")
    return out


def ack(request_id: str | int, data: Json | None = None) -> bytes:
    return encode({"type": "ack", "id": request_id, "data": {} if data is None else data})


def error(code: str, message: str, request_id: str | int | None = None,
          request_type: str | None = None) -> bytes:
    out: Json = {"type": "error"}
    if request_id is not None:
        out["id"] = request_id
    out["code"] = code
    out["message"] = message
    if request_type is not None:
        out["request"] = request_type
    return encode(out)


def participant_json(p: Participant, reconnecting: bool = False) -> Json:
    """A participant card (docs/signalling-protocol.md §3.3). ``id``, ``name`` and ``role``
    are always there; every other member only when it is true or not empty, and a client
    reads a missing one as ``false`` (or ``""`` for ``externalId`` and ``avatarUrl``). Each
    joiner of a room of 1,000 gets a roster of 1,000 cards: most flags are false, and
    leaving them out halves the roster's bytes, which the server sends and every page
    parses (server CPU per join in such a room 610 → 500 µs)."""
    seat = p.seat
    out: Json = {"id": seat.user_id, "name": seat.full_name, "role": seat.role.value}
    for name, value in (
        ("externalId", seat.external_user_id),
        ("guest", seat.guest),
        ("presenter", p.presenter),
        ("muted", p.muted),
        ("listenOnly", p.listen_only),
        ("joinedVoice", p.joined_voice),
        ("video", p.video_streams > 0),
        ("screen", p.screen_sharing),
        ("raisedHand", p.raised_hand),
        ("avatarUrl", seat.avatar_url),
        ("reconnecting", reconnecting),
    ):
        if value:
            out[name] = value
    return out


def chat_json(message: ChatMessage) -> Json:
    return {
        "id": message.id,
        "from": message.sender_user_id,
        "name": message.sender_name,
        "text": message.text,
        "at": message.at,
    }


def guest_json(seat: Seat) -> Json:
    return {"id": seat.user_id, "name": seat.full_name}


def meeting_json(meeting: Meeting, moderator: bool, welcome_html: str, *,
                 recording_available: bool = False) -> Json:
    """``joined``'s meeting object; ``recording_available``: the meeting can record now
    (``record=true`` and its media go through a media node, see docs/recordings.md)."""
    spec = meeting.spec
    out: Json = {
        "id": meeting.meeting_id,
        "internalId": meeting.internal_id,
        "name": meeting.name,
        "welcome": welcome_html,
        "logoutUrl": spec.logout_url,
        "record": spec.record,
        "recording": meeting.recording,
        "allowStartStopRecording": spec.allow_start_stop_recording,
        "recordingAvailable": recording_available,
        "guestPolicy": spec.guest_policy.value,
    }
    if moderator:
        out["moderatorOnlyMessage"] = sanitize_html(meeting.moderator_only_message)
    return out


_END_MESSAGES = {
    "ENDED_FROM_API": "The meeting has been ended.",
    "ENDED_BY_MODERATOR": "A moderator ended the meeting.",
    "ENDED_WHEN_NOT_JOINED": "The meeting ended because nobody joined.",
    "ENDED_WHEN_LAST_USER_LEFT": "The meeting ended after everybody left.",
    "ENDED_AFTER_EXCEEDING_DURATION": "The meeting reached its time limit.",
    "ENDED_DUE_TO_NO_MODERATOR": "The meeting ended because no moderator was present.",
    "ENDED_BY_PARENT": "The main meeting has ended.",
    "ENDED_DUE_TO_SERVICE_INTERRUPTION": "The meeting ended because the service stopped.",
}


def ended_json(meeting: Meeting) -> Json:
    reason = meeting.end_reason or "ENDED_FROM_API"
    return {
        "reason": reason,
        "message": _END_MESSAGES.get(reason, "The meeting has ended."),
        "logoutUrl": meeting.spec.logout_url,
    }


# --- handshake helpers --------------------------------------------------------------------


def valid_token(token: str) -> bool:
    return _TOKEN_RE.fullmatch(token) is not None


# --- rate limiting ------------------------------------------------------------------------


class TokenBucket:
    """Messages per second with a burst; a rejected message still costs a token.

    :meth:`take` returns ``"ok"``, ``"limited"`` (drop it and say so) or ``"abuse"``
    (the debt passed ``abuse_after`` messages: close the connection).
    """

    __slots__ = ("burst", "floor", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float,
                 abuse_after: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.floor = -(burst if abuse_after is None else abuse_after)
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> str:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        self.tokens -= 1
        if self.tokens >= 0:
            return "ok"
        if self.tokens <= self.floor:
            return "abuse"
        return "limited"

    def refund(self) -> None:
        """Give back the token of a message charged to another budget."""
        self.tokens = min(self.burst, self.tokens + 1)


# --- the classroom: presentation, whiteboard, polls (docs §4.1, §8.1) ------------------------

#: Coordinates one ``draw`` message may add (x and y count one each).
MAX_DRAW_POINTS = 512
#: Shape ids one ``erase`` may name.
MAX_ERASE_IDS = 100
#: Whiteboard requests charged to the whiteboard's own budget (the registry's
#: ``Classroom.DRAW_RATE``) instead of the connection's general one: a presenter streams
#: strokes at 60 updates per second, more than the general 50.
STREAM_REQUESTS = frozenset({"draw"})


def _number(data: Mapping[str, Any], name: str, low: float, high: float,
            default: float | None = None) -> float:
    value = data.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low <= value <= high):
        raise invalid(f"'{name}' must be a number between {low:g} and {high:g}")
    return float(value)


def _string(data: Mapping[str, Any], name: str, limit: int, required: bool = True
            ) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise invalid(f"'{name}' must be a string of at most {limit} characters")
    return value


@dataclass(frozen=True)
class PageRequest:
    document_id: str | None
    page: int


def parse_set_page(data: Mapping[str, Any]) -> PageRequest:
    page = data.get("page")
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 100_000:
        raise invalid("'page' must be a page number (1, 2, ...)")
    return PageRequest(_string(data, "documentId", MAX_SHORT_CHARS, required=False), page)


@dataclass(frozen=True)
class ViewportRequest:
    zoom: float
    x: float
    y: float


def parse_viewport(data: Mapping[str, Any]) -> ViewportRequest:
    return ViewportRequest(_number(data, "zoom", 1.0, 8.0, 1.0), _number(data, "x", 0.0, 1.0, 0.0),
                           _number(data, "y", 0.0, 1.0, 0.0))


@dataclass(frozen=True)
class DrawRequest:
    shape_id: str
    points: list[float]
    kind: str | None
    color: str | None
    width: float | None
    text: str | None
    done: bool


def parse_draw(data: Mapping[str, Any]) -> DrawRequest:
    shape_id = _string(data, "shapeId", 64)
    assert shape_id is not None
    raw = data.get("points", [])
    if not isinstance(raw, list) or len(raw) > MAX_DRAW_POINTS:
        raise invalid(f"'points' must be a list of at most {MAX_DRAW_POINTS} numbers")
    points = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and -1.0 <= value <= 2.0):
            raise invalid("'points' must hold numbers between -1 and 2 (page units)")
        points.append(round(float(value), 5))
    width = data.get("width")
    return DrawRequest(
        shape_id=shape_id, points=points,
        kind=_string(data, "kind", 16, required=False),
        color=_string(data, "color", 7, required=False),
        width=None if width is None else _number(data, "width", 0.0005, 0.1),
        text=_string(data, "text", 500, required=False),
        done=bool(_bool(data, "done", False)))


def parse_erase(data: Mapping[str, Any]) -> list[str]:
    ids = data.get("shapeIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_ERASE_IDS or not all(
            isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise invalid(f"'shapeIds' must be a list of 1..{MAX_ERASE_IDS} shape ids")
    return list(ids)


def parse_multi_user(data: Mapping[str, Any]) -> bool:
    enabled = _bool(data, "enabled")
    assert enabled is not None
    return enabled


@dataclass(frozen=True)
class PollRequest:
    kind: str
    question: str
    answers: list[str]
    anonymous: bool


POLL_KINDS = ("YN", "TF", "A-D", "CUSTOM", "R-")


def parse_poll_start(data: Mapping[str, Any]) -> PollRequest:
    kind = data.get("pollType")
    if kind not in POLL_KINDS:
        raise invalid("'pollType' must be one of " + ", ".join(POLL_KINDS))
    answers = data.get("answers", [])
    if not isinstance(answers, list) or len(answers) > 10 or not all(
            isinstance(a, str) and len(a) <= 100 for a in answers):
        raise invalid("'answers' must be a list of at most 10 strings of 100 characters")
    return PollRequest(kind, _string(data, "question", 300, required=False) or "",
                       list(answers), bool(_bool(data, "anonymous", False)))


@dataclass(frozen=True)
class PollAnswer:
    poll_id: str
    answer: int | str


def parse_poll_answer(data: Mapping[str, Any]) -> PollAnswer:
    poll_id = _string(data, "pollId", 64)
    assert poll_id is not None
    answer = data.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise invalid("'answer' must be the index of a choice or, for a free-text poll, "
                      "a text")
    if isinstance(answer, str) and len(answer) > 300:
        raise invalid("'answer' must have at most 300 characters")
    return PollAnswer(poll_id, answer)


def parse_document_id(data: Mapping[str, Any]) -> str:
    document_id = _string(data, "documentId", MAX_SHORT_CHARS)
    assert document_id is not None
    return document_id


PARSERS.update({
    "setPage": parse_set_page,
    "removeDocument": parse_document_id,
    "viewport": parse_viewport,
    "draw": parse_draw,
    "erase": parse_erase,
    "undo": parse_empty,
    "clearPage": parse_empty,
    "multiUser": parse_multi_user,
    "pollStart": parse_poll_start,
    "pollAnswer": parse_poll_answer,
    "pollStop": parse_empty,
    "pollPublish": parse_empty,
})
