"""The BigBlueButton XML API surface: one Klein class, mounted at ``/bigbluebutton``.

Every call goes through one pipeline (:meth:`XmlApi._dispatch`): bound the query and body,
decode the parameters once, verify the checksum on the raw query string (or, for a POST form
with an empty query, on the form as bbb-web does), run the call's handler, and render its
node tree as XML, JSON or JSONP. Handlers raise :class:`~meetplatform.xmlapi.errors.ApiError`;
registry refusals are mapped to BBB's messageKeys here, at the edge.
"""

from __future__ import annotations

import json
import secrets
import string
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union
from urllib.parse import quote, unquote_plus

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

import meetplatform
from meetplatform import checksum as bbb_checksum
from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.model import (
    EndReason,
    GuestDeniedAccess,
    GuestStatus,
    IdNotUnique,
    MaxParticipantsReached,
    Meeting,
    MeetingForciblyEnded,
    NonUniqueVoiceBridge,
    ParentMeetingNotFound,
    Participant,
    Role,
)
from meetplatform.recordings import (
    InMemoryRecordings,
    PlaybackFormat,
    Recording,
    RecordingCatalogue,
    RecordingQuery,
)
from meetplatform.registry import Registry
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.errors import ApiError
from meetplatform.xmlapi.render import (
    JSON_CONTENT_TYPE,
    JSONP_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    Attrs,
    Fragment,
    Items,
    Node,
    Raw,
    escape,
    json_body,
    valid_callback,
    xml_body,
)

_log = Logger()

#: Registry events after which a meeting's participant section must be rendered again.
_PARTICIPANT_EVENTS = (ev.ParticipantJoined, ev.ParticipantLeft, ev.ParticipantUpdated,
                       ev.ParticipantReplaced)

API_VERSION = "2.0"
_FORM = b"application/x-www-form-urlencoded"
_MULTIPART = b"multipart/form-data"
_XML_TYPES = (b"application/xml", b"text/xml")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
_MAX_CONFIGS_PER_MEETING = 100
_TF = ("false", "true")
_ROLE_NAMES = {Role.MODERATOR: "MODERATOR", Role.VIEWER: "VIEWER"}

Nodes = list[Node]
Answer = Union[Nodes, "Redirect", "RawXml"]
Handler = Callable[["CallContext"], Answer | Awaitable[Answer]]
#: What a request's checksum covers: the split raw query (``(checksum, rest)``, or ``None``
#: when the query has no single checksum) and, for a form-signed POST, the form's pairs.
_Signature = tuple[tuple[bytes, bytes] | None, list[tuple[str, str]] | None]


@dataclass
class Redirect:
    """Answer with a 302 to ``url``."""

    url: str


@dataclass
class RawXml:
    """Answer with a whole XML document that is not a ``<response>`` (``config.xml``)."""

    xml: str
    #: The name of the document in a JSON answer.
    json_name: str


@dataclass(slots=True)
class CallContext:
    """What a call handler gets: the request, its decoded parameters and its XML body."""

    request: Request
    call: str
    params: P.Params
    #: The body of a POST sent as ``application/xml`` or ``text/xml``, else ``None``.
    xml_body: bytes | None
    #: ``"xml"``, ``"json"`` or ``"jsonp"``.
    fmt: str
    callback: str | None


@dataclass(frozen=True)
class _Call:
    name: bytes
    handler: Handler
    checksum_error: Callable[[], ApiError]
    #: A redirecting ``join``: errors become redirects carrying ``errors=[...]``.
    redirects_errors: bool = False


class _ApiResource(Resource):
    """The leaf mounted at ``/bigbluebutton``: registered calls skip Werkzeug routing.

    ``/api/<call>`` for a registered call goes straight to :meth:`XmlApi._dispatch` (which
    the Klein route would call too); any other path is rendered by the Klein resource, so
    both serve exactly the same answers.
    """

    isLeaf = True

    def __init__(self, api: XmlApi, klein_resource: Resource) -> None:
        super().__init__()
        self._api = api
        self._klein = klein_resource

    def render(self, request: Request) -> Any:  # type: ignore[override]
        path = request.postpath or []
        if len(path) >= 2 and path[0] == b"api" and path[-1]:
            try:
                name = b"/".join(path[1:]).decode("utf-8")
            except UnicodeDecodeError:
                name = ""
            if name in self._api._calls:
                return self._write(request, self._api._dispatch(request, name))
        return self._klein.render(request)

    @staticmethod
    def _write(request: Request, result: Any) -> Any:
        if not isinstance(result, Deferred):
            return result
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)

        def write(body: bytes) -> None:
            if not gone:
                request.write(body)
                request.finish()

        result.addCallback(write)
        result.addErrback(lambda failure: _log.failure(
            "writing an XML API answer failed", failure))
        return NOT_DONE_YET


def _detect_revision() -> str:
    """The git commit this code was built from, read from ``.git`` files (no subprocess)."""
    here = Path(meetplatform.__file__).resolve().parent
    for base in (here.parent, here.parent.parent):
        git = base / ".git"
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head
            ref = head[4:].strip()
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            packed = git / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        except OSError:
            continue
    return "unknown"


def _wants_json(request: Request) -> bool:
    accept = request.getHeader(b"accept")
    return accept is not None and b"application/json" in accept.lower()


def _random_token(length: int = 8) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def _same_secret(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class XmlApi:
    """``/bigbluebutton/api/<call>``: BigBlueButton's API over the live registry."""

    app = Klein()

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 recordings: RecordingCatalogue | None = None, *,
                 revision: str | None = None) -> None:
        self._clock = clock
        self._settings = settings
        self._registry = registry
        self._recordings: RecordingCatalogue = (
            recordings if recordings is not None else InMemoryRecordings())
        self._revision = revision if revision is not None else _detect_revision()
        self._public_url = settings.public_url.rstrip("/")
        self._client_url = self._public_url + "/client/join?sessionToken="
        self._secret = settings.secret
        self._secret_bytes = settings.secret.encode("utf-8")
        self._algorithms = frozenset(settings.checksum_algorithms)
        #: Fixed parts of each live meeting's getMeetings/getMeetingInfo answer.
        #: Each live meeting's participant counts and ``<attendees>`` as XML, rebuilt only
        #: after a registry event changed its participants (getMeetings renders thousands).
        self._people_xml: weakref.WeakKeyDictionary[Meeting, str] = weakref.WeakKeyDictionary()
        self._fixed: weakref.WeakKeyDictionary[Meeting, tuple[Fragment, Fragment]] = (
            weakref.WeakKeyDictionary())
        #: setConfigXML documents: internal meeting id -> token -> config.xml.
        self._configs: dict[str, dict[str, str]] = {}
        self._calls: dict[str, _Call] = {}
        for name, handler in (
            ("create", self._create),
            ("end", self._end),
            ("isMeetingRunning", self._is_meeting_running),
            ("getMeetingInfo", self._get_meeting_info),
            ("getMeetings", self._get_meetings),
            ("getSessions", self._get_sessions),
            ("getRecordings", self._get_recordings),
            ("publishRecordings", self._publish_recordings),
            ("deleteRecordings", self._delete_recordings),
            ("updateRecordings", self._update_recordings),
            ("getDefaultConfigXML", self._get_default_config_xml),
            ("getStats", self._get_stats),
            ("sendChatMessage", self._send_chat_message),
            ("insertDocument", self._insert_document),
        ):
            self.add_call(name, handler)
        self.add_call("setConfigXML", self._set_config_xml,
                      checksum_error=errors.config_checksum_error)
        # A redirecting join answers its errors with a redirect, as bbb-web does.
        self._calls["join"] = _Call(b"join", self._join, errors.checksum_error,
                                    redirects_errors=True)
        registry.subscribe(self._on_event)

    def resource(self) -> Resource:
        """The resource to mount as the ``bigbluebutton`` child of the site's root.

        Registered calls (``/api/<call>``) are served straight by the dispatcher; everything
        else (the API root, unknown calls, other paths) goes through the Klein app. Werkzeug
        routing costs about as much CPU as a whole signed call, and the hot calls don't
        need it: see :class:`_ApiResource`.
        """
        return _ApiResource(self, self.app.resource())

    def add_call(self, name: str, handler: Handler, *,
                 checksum_error: Callable[[], ApiError] | None = None) -> None:
        """Serve ``/api/<name>`` (e.g. ``hooks/create``) with a checksum-verified handler.

        The handler receives a :class:`CallContext` and returns a list of ``(element,
        value)`` pairs to follow ``<returncode>SUCCESS</returncode>`` (or an awaitable of
        one), or raises :class:`~meetplatform.xmlapi.errors.ApiError`.
        """
        self._calls[name] = _Call(name.encode("utf-8"), handler,
                                  checksum_error or errors.checksum_error)

    # --- routes -------------------------------------------------------------------------

    @app.route("/api")
    @app.route("/api/")
    def index(self, request: Request) -> Any:
        return self._dispatch(request, None)

    @app.route("/api/<path:call>")
    def call(self, request: Request, call: str) -> Any:
        return self._dispatch(request, call.rstrip("/"))

    @app.route("/", branch=True)
    def elsewhere(self, request: Request) -> bytes:
        """Anything under ``/bigbluebutton`` that is not the API: a 404 in the API's format."""
        error = ApiError("notFound", "There is nothing at this address; the API is at "
                                     f"{self._settings.api_url}", status=404)
        return self._fail(request, None, None, error, "json" if _wants_json(request) else "xml")

    # --- the pipeline -------------------------------------------------------------------

    def _dispatch(self, request: Request, name: str | None) -> Any:
        ctx: CallContext | None = None
        spec: _Call | None = None
        fmt = "json" if _wants_json(request) else "xml"
        try:
            method = request.method
            if method not in (b"GET", b"POST", b"HEAD"):
                raise errors.method_not_allowed(method.decode("ascii", "replace"))
            uri = request.uri
            mark = uri.find(b"?")
            raw_query = b"" if mark < 0 else uri[mark + 1:]
            if len(raw_query) > self._settings.max_query_bytes:
                raise errors.query_too_large(self._settings.max_query_bytes)
            body, content_type = self._body(request)
            if name is not None:
                spec = self._calls.get(name)
                if spec is None:
                    raise errors.unsupported_request()
            ctx, signature = self._context(request, name or "", raw_query, body,
                                           content_type, fmt)
            fmt = ctx.fmt
            if spec is None:
                return self._finish(request, ctx, self._index())
            self._verify(spec, body, signature, ctx)
            answer = spec.handler(ctx)
        except ApiError as error:
            return self._fail(request, ctx, spec, error, fmt)
        except Exception:  # noqa: BLE001 - a bug must still answer BBB XML (and be logged)
            _log.failure("XML API call {call} failed", call=name)
            return self._fail(request, ctx, spec, ApiError(
                "internalError", "An internal error occurred; it has been logged."), fmt)
        if isinstance(answer, (list, Redirect, RawXml)):
            return self._finish(request, ctx, answer)
        deferred: Deferred[Answer] = Deferred.fromCoroutine(answer)  # type: ignore[arg-type]
        deferred.addCallbacks(
            lambda result: self._finish(request, ctx, result),  # type: ignore[arg-type]
            lambda failure: self._async_failure(request, ctx, spec, failure, fmt))
        return deferred

    def _body(self, request: Request) -> tuple[bytes, bytes]:
        """The request body (``b""`` for GET and HEAD, whose bodies are read and ignored)."""
        if request.method != b"POST":
            return b"", b""
        content = request.content
        if content is None:
            return b"", b""
        limit = self._settings.max_body_bytes
        content.seek(0)
        body = content.read(limit + 1)
        if len(body) > limit:
            raise errors.body_too_large(limit)
        if not body:
            return b"", b""
        header = request.getHeader(b"content-type") or b""
        content_type = header.split(b";", 1)[0].strip().lower()
        if content_type not in (_FORM, _MULTIPART) and content_type not in _XML_TYPES:
            raise errors.unsupported_content_type()
        return body, content_type

    def _context(self, request: Request, name: str, raw_query: bytes, body: bytes,
                 content_type: bytes, fmt: str) -> tuple[CallContext, _Signature]:
        """Decode the parameters once; returns the context and what its checksum covers."""
        signed_form: list[tuple[str, str]] | None = None
        split: tuple[bytes, bytes] | None = None
        if raw_query:
            # The query is what the checksum covers; a form body alongside it is not signed,
            # so its parameters are ignored rather than trusted.
            try:
                split = bbb_checksum.split_checksum(raw_query)
            except bbb_checksum.ChecksumRefused:
                pairs = P.parse_pairs(raw_query)
            else:
                pairs = P.parse_pairs(split[1])
        elif content_type == _FORM:
            pairs = signed_form = P.parse_pairs(body)
        elif content_type == _MULTIPART:
            pairs = signed_form = [
                (key.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
                for key, values in (request.args or {}).items() for value in values]
        else:
            pairs = []
        params = P.Params(pairs)
        callback = params.raw("callback")
        if callback is not None:
            if not valid_callback(callback):
                error = errors.validation(
                    "Param 'callback' must be a JavaScript function name for JSONP.")
                error.fmt = "json"
                raise error
            fmt = "jsonp"
        xml = body if content_type in _XML_TYPES else None
        return CallContext(request, name, params, xml, fmt, callback), (split, signed_form)

    def _verify(self, spec: _Call, body: bytes, signature: _Signature,
                ctx: CallContext) -> None:
        split, signed_form = signature
        try:
            if signed_form is not None:
                raw_body = body if ctx.xml_body is None else b""
                bbb_checksum.verify_form(ctx.call, raw_body, signed_form, self._secret,
                                         self._algorithms)
            elif split is None:
                raise bbb_checksum.ChecksumRefused("no single checksum parameter")
            elif not bbb_checksum.matches(spec.name, split[1], split[0], self._secret_bytes,
                                          self._algorithms):
                raise bbb_checksum.ChecksumRefused("checksum does not match")
        except bbb_checksum.ChecksumRefused as refused:
            _log.info("checksum refused on {call}: {reason}", call=ctx.call, reason=str(refused))
            error = spec.checksum_error()
            # The request's own parameters are not trusted: a redirecting join goes to the
            # default address, never to a URL named by an unsigned parameter.
            error.trusted = False
            raise error from None

    def _finish(self, request: Request, ctx: CallContext, answer: Answer) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        if isinstance(answer, Redirect):
            request.setResponseCode(302)
            request.setHeader(b"location", answer.url.encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain;charset=utf-8")
            return b""
        if isinstance(answer, RawXml):
            if ctx.fmt == "xml":
                request.setHeader(b"content-type", XML_CONTENT_TYPE)
                return answer.xml.encode("utf-8")
            nodes: Nodes = [("returncode", "SUCCESS"), (answer.json_name, answer.xml)]
        else:
            nodes = [("returncode", "SUCCESS"), *answer]
        return self._write(request, ctx.fmt, ctx.callback, nodes)

    @staticmethod
    def _write(request: Request, fmt: str, callback: str | None, nodes: Nodes) -> bytes:
        if fmt == "xml":
            request.setHeader(b"content-type", XML_CONTENT_TYPE)
            return xml_body(nodes)
        if fmt == "jsonp":
            request.setHeader(b"content-type", JSONP_CONTENT_TYPE)
            request.setHeader(b"x-content-type-options", b"nosniff")
            return json_body(nodes, callback)
        request.setHeader(b"content-type", JSON_CONTENT_TYPE)
        return json_body(nodes)

    def _fail(self, request: Request, ctx: CallContext | None, spec: _Call | None,
              error: ApiError, fmt: str) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        if (spec is not None and spec.redirects_errors and error.redirectable
                and self._redirecting(ctx)):
            target = self._public_url + "/"
            if ctx is not None and error.trusted:
                target = P.join_error_target(ctx.params, target)
            request.setResponseCode(302)
            request.setHeader(b"location", self._with_errors(target, error).encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain;charset=utf-8")
            return b""
        if error.status != 200:
            request.setResponseCode(error.status)
        callback = None
        if error.fmt is not None:
            fmt = error.fmt
        elif ctx is not None:
            fmt, callback = ctx.fmt, ctx.callback
        if error.as_list:
            nodes: Nodes = [("returncode", "FAILED"), ("errors", Items("error", [
                [("key", error.key), ("message", error.message)]]))]
        else:
            nodes = [("returncode", "FAILED"), ("messageKey", error.key),
                     ("message", error.message)]
        return self._write(request, fmt, callback, nodes)

    @staticmethod
    def _redirecting(ctx: CallContext | None) -> bool:
        """A join redirects unless it said ``redirect=false`` (or anything but ``true``)."""
        if ctx is None:
            return True
        value = ctx.params.raw("redirect")
        return not value or value.strip().lower() == "true"

    def _async_failure(self, request: Request, ctx: CallContext, spec: _Call | None,
                       failure: Failure, fmt: str) -> bytes:
        if failure.check(ApiError):
            return self._fail(request, ctx, spec, failure.value, fmt)  # type: ignore[arg-type]
        _log.failure("XML API call {call} failed", failure, call=ctx.call)
        return self._fail(request, ctx, spec, ApiError(
            "internalError", "An internal error occurred; it has been logged."), fmt)

    @staticmethod
    def _with_errors(target: str, error: ApiError) -> str:
        payload = json.dumps([{"key": error.key, "message": error.message}],
                             separators=(",", ":"))
        glue = "&" if "?" in target else "?"
        return f"{target}{glue}errors={quote(payload, safe=':,')}"

    # --- events -------------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MeetingEnded):
            self._configs.pop(event.meeting.internal_id, None)
            self._fixed.pop(event.meeting, None)
            self._people_xml.pop(event.meeting, None)
        elif isinstance(event, _PARTICIPANT_EVENTS):
            self._people_xml.pop(event.participant.meeting, None)

    # --- rendering helpers ----------------------------------------------------------------

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
            ("role", _ROLE_NAMES[seat.role]),
            ("isPresenter", participant.presenter),
            ("isListeningOnly", participant.listen_only),
            ("hasJoinedVoice", participant.joined_voice),
            ("hasVideo", streams > 0),
            ("videoStreams", Items("streamName", [
                f"{seat.user_id}-{n}" for n in range(1, streams + 1)])),
            ("clientType", seat.client_type),
            ("customdata", list(seat.userdata.items())),
        ]

    def _meeting_nodes(self, meeting: Meeting) -> Nodes:
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
            f"<role>{_ROLE_NAMES[seat.role]}</role>"
            f"<isPresenter>{_TF[participant.presenter]}</isPresenter>"
            f"<isListeningOnly>{_TF[participant.listen_only]}</isListeningOnly>"
            f"<hasJoinedVoice>{_TF[participant.joined_voice]}</hasJoinedVoice>"
            f"<hasVideo>{_TF[streams > 0]}</hasVideo>{video}"
            f"<clientType>{escape(seat.client_type)}</clientType>{custom}</attendee>"
        )

    def _meeting_xml(self, meeting: Meeting) -> str:
        """:meth:`_meeting_nodes` written straight to XML, byte for byte the same."""
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

    def _participants_xml(self, meeting: Meeting) -> str:
        """Counts and ``<attendees>`` of a meeting (cached by :meth:`_meeting_xml`)."""
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

    # --- calls: meetings ------------------------------------------------------------------

    def _index(self) -> Nodes:
        return [
            ("version", API_VERSION),
            ("apiVersion", API_VERSION),
            ("custom", [
                ("name", self._settings.server_name),
                ("version", meetplatform.__version__),
                ("revision", self._revision),
            ]),
        ]

    def _create(self, ctx: CallContext) -> Answer:
        documents = P.parse_modules(ctx.xml_body) if ctx.xml_body else None
        spec = P.parse_create(ctx.params, default_logout_url=self._public_url + "/",
                              documents=documents)
        try:
            meeting, created = self._registry.create_meeting(spec)
        except IdNotUnique:
            raise errors.id_not_unique() from None
        except NonUniqueVoiceBridge:
            raise errors.non_unique_voice_bridge() from None
        except ParentMeetingNotFound:
            raise errors.parent_meeting_does_not_exist() from None
        mspec = meeting.spec
        nodes: Nodes = [
            ("meetingID", mspec.meeting_id),
            ("internalMeetingID", meeting.internal_id),
            ("parentMeetingID", mspec.parent_meeting_id if mspec.is_breakout and
             mspec.parent_meeting_id else "bbb-none"),
            ("attendeePW", mspec.attendee_pw),
            ("moderatorPW", mspec.moderator_pw),
            ("createTime", meeting.create_time),
            ("voiceBridge", meeting.voice_bridge),
            ("dialNumber", mspec.dial_number),
            ("createDate", meeting.create_date),
            ("hasUserJoined", meeting.has_user_joined),
            ("duration", mspec.duration),
            ("hasBeenForciblyEnded", meeting.forcibly_ended),
        ]
        if created:
            nodes += [("messageKey", None), ("message", None)]
        else:
            nodes += [("messageKey", "duplicateWarning"),
                      ("message", ("This conference was already in existence and may "
                                  "currently be in progress."))]
        return nodes

    def _live_meeting(self, params: P.Params) -> Meeting:
        meeting = self._registry.get_meeting(P.require_meeting_id(params))
        if meeting is None:
            raise errors.not_found_meeting()
        return meeting

    def _join(self, ctx: CallContext) -> Answer:
        request = P.parse_join(ctx.params)
        meeting = self._registry.get_meeting(request.meeting_id)
        if meeting is None:
            ended = self._registry.recently_ended(request.meeting_id)
            if ended is not None and ended.forcibly_ended:
                raise errors.meeting_forcibly_ended()
            raise errors.invalid_meeting_identifier()
        if request.create_time is not None:
            try:
                create_time = int(request.create_time.strip())
            except ValueError:
                create_time = -1
            if create_time != meeting.create_time:
                raise errors.mismatch_create_time()
        role = request.role or self._role_from_password(meeting, request.password)
        if request.config_token is not None and request.config_token not in self._configs.get(
                meeting.internal_id, {}):
            raise errors.no_config_found()
        try:
            seat = self._registry.issue_seat(
                meeting,
                full_name=request.full_name,
                role=role,
                external_user_id=request.user_id,
                guest=request.guest,
                avatar_url=request.avatar_url,
                userdata=request.userdata,
            )
        except MaxParticipantsReached:
            raise errors.max_participants_reached() from None
        except GuestDeniedAccess:
            raise errors.guest_denied_access() from None
        except MeetingForciblyEnded:
            raise errors.meeting_forcibly_ended() from None
        url = self._client_url + quote(seat.token, safe="")
        if request.redirect:
            return Redirect(url)
        if seat.guest_status is GuestStatus.WAIT:
            key, message = "guestWait", "Guest waiting for approval to join meeting."
        else:
            key, message = "successfullyJoined", "You have joined successfully."
        return [
            ("messageKey", key),
            ("message", message),
            ("meeting_id", meeting.internal_id),
            ("user_id", seat.user_id),
            ("auth_token", seat.auth_token),
            ("session_token", seat.token),
            ("guestStatus", seat.guest_status.value),
            ("url", url),
        ]

    @staticmethod
    def _role_from_password(meeting: Meeting, password: str) -> Role:
        if not password:
            raise errors.role_or_password_required()
        spec = meeting.spec
        if not (spec.moderator_pw and spec.attendee_pw):
            raise errors.role_required_without_passwords()
        is_moderator = _same_secret(password, spec.moderator_pw)
        is_viewer = _same_secret(password, spec.attendee_pw)
        if is_moderator:
            return Role.MODERATOR
        if is_viewer:
            return Role.VIEWER
        raise errors.invalid_join_password()

    def _end(self, ctx: CallContext) -> Answer:
        meeting = self._live_meeting(ctx.params)
        password = ctx.params.text("password")
        if password and not _same_secret(password, meeting.spec.moderator_pw):
            raise errors.invalid_moderator_password()
        self._registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        return [
            ("messageKey", "sentEndMeetingRequest"),
            ("message", ("A request to end the meeting was sent.  Please wait a few seconds, "
                        "and then use the getMeetingInfo or isMeetingRunning API calls to "
                        "verify that it was ended.")),
        ]

    def _is_meeting_running(self, ctx: CallContext) -> Answer:
        meeting = self._registry.get_meeting(P.require_meeting_id(ctx.params))
        return [("running", meeting is not None and meeting.running)]

    def _get_meeting_info(self, ctx: CallContext) -> Answer:
        meeting = self._live_meeting(ctx.params)
        if ctx.fmt == "xml":
            return [("", Raw(self._meeting_xml(meeting)))]
        return self._meeting_nodes(meeting)

    def _get_meetings(self, ctx: CallContext) -> Answer:
        meetings = list(self._registry.meetings())
        if not meetings:
            return [("meetings", Items("meeting", [])), ("messageKey", "noMeetings"),
                    ("message", "no meetings were found on this server")]
        if ctx.fmt == "xml":
            fast = self._meeting_xml
            return [("", Raw("<meetings>" + "".join(
                f"<meeting>{fast(m)}</meeting>" for m in meetings) + "</meetings>"))]
        nodes = self._meeting_nodes
        return [("meetings", Items("meeting", [nodes(m) for m in meetings]))]

    def _get_sessions(self, ctx: CallContext) -> Answer:
        seats = list(self._registry.sessions())
        if not seats:
            return [("sessions", Items("meeting", [])), ("messageKey", "noSessions"),
                    ("message", "no sessions were found on this serverr")]
        return [("sessions", Items("meeting", [
            [("meetingID", seat.meeting.internal_id), ("meetingName", seat.meeting.name),
             ("userName", seat.full_name)] for seat in seats]))]

    def _get_stats(self, ctx: CallContext) -> Answer:
        wanted = set(ctx.params.id_list("meetingID"))
        meetings: Iterable[Meeting] = [*self._registry.history, *self._registry.meetings()]
        stats = []
        for meeting in meetings:
            if not meeting.has_user_joined or (wanted and meeting.meeting_id not in wanted):
                continue
            stats.append([
                ("meetingID", meeting.meeting_id),
                ("meetingName", meeting.name),
                ("recordID", meeting.internal_id),
                ("startTime", meeting.start_time),
                ("endTime", meeting.end_time),
                ("participants", Items("participant", [
                    [("userID", a.user_id), ("userName", a.full_name),
                     ("joinTime", a.join_time), ("leftTime", a.left_time or 0)]
                    for a in meeting.attendance])),
            ])
        if not stats:
            return [("stats", Items("meeting", [])), ("messageKey", "noStats"),
                    ("message", "no stats were found on this server")]
        return [("stats", Items("meeting", stats))]

    def _send_chat_message(self, ctx: CallContext) -> Answer:
        meeting_id = P.require_meeting_id(ctx.params)
        message = ctx.params.text("message")
        if not 1 <= len(message) <= 500:
            raise errors.validation("Param message must be between 1 and 500 characters")
        user_name = ctx.params.text("userName").strip()
        if len(user_name) > 255:
            raise errors.validation("Param userName must be at most 255 characters")
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise errors.meeting_not_active()
        self._registry.send_chat(meeting, message, sender_name=user_name or "System")
        return [("messageKey", None), ("message", None)]

    def _insert_document(self, ctx: CallContext) -> Answer:
        meeting_id = P.require_meeting_id(ctx.params)
        if ctx.xml_body is None:
            raise errors.validation(
                "Send the documents as an XML <modules> body (Content-Type: application/xml).")
        documents = P.order_documents(P.parse_modules(ctx.xml_body), force_current=False)
        if not documents:
            raise errors.validation("The <modules> body contains no presentation document.")
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise ApiError("notFound", f"Meeting with id [{meeting_id[:256]}] not found.")
        self._registry.insert_documents(meeting, documents)
        return [("messageKey", "documentInserted"),
                ("message", "Presentation is being uploaded")]

    # --- calls: config.xml -----------------------------------------------------------------

    def _get_default_config_xml(self, ctx: CallContext) -> Answer:
        return RawXml(self.default_config_xml(), "configXML")

    def default_config_xml(self) -> str:
        """The client configuration document ``getDefaultConfigXML`` answers with."""
        ws = "ws" + self._public_url[4:] if self._public_url.startswith("http") else ""
        ice = "".join(
            f'<iceServer urls="{escape(" ".join(server.urls))}"/>'
            for server in self._settings.ice_servers)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<config><version>{escape(meetplatform.__version__)}</version>'
            f'<server name="{escape(self._settings.server_name)}" '
            f'url="{escape(self._public_url)}"/>'
            f'<application uri="{escape(ws)}/ws" host="{escape(self._public_url)}/client/join"/>'
            f'<api url="{escape(self._settings.api_url)}"/>'
            f'<iceServers>{ice}</iceServers>'
            '</config>'
        )

    def _set_config_xml(self, ctx: CallContext) -> Answer:
        config = ctx.params.raw("configXML")
        if not config:
            raise errors.missing_config_xml()
        meeting_id = ctx.params.raw("meetingID")
        if not meeting_id or not meeting_id.strip():
            raise errors.missing_meeting_id_legacy()
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise errors.invalid_meeting_identifier()
        try:
            decoded = unquote_plus(config, errors="strict")
        except UnicodeDecodeError:
            raise errors.bad_config_xml() from None
        P.parse_config_xml(decoded)
        configs = self._configs.setdefault(meeting.internal_id, {})
        if len(configs) >= _MAX_CONFIGS_PER_MEETING:
            configs.pop(next(iter(configs)))
        token = _random_token()
        configs[token] = decoded
        return [("configToken", token)]

    def config_xml(self, meeting: Meeting, token: str) -> str | None:
        """A document stored with ``setConfigXML`` for this meeting, by its token."""
        return self._configs.get(meeting.internal_id, {}).get(token)

    # --- calls: recordings -----------------------------------------------------------------

    @staticmethod
    def _recording_nodes(recording: Recording) -> Nodes:
        return [
            ("recordID", recording.record_id),
            ("meetingID", recording.meeting_id),
            ("internalMeetingID", recording.internal_meeting_id),
            ("name", recording.name),
            ("isBreakout", recording.is_breakout),
            ("published", recording.published),
            ("state", recording.state),
            ("startTime", recording.start_time),
            ("endTime", recording.end_time),
            ("participants", recording.participants),
            ("metadata", list(recording.metadata.items())),
            ("playback", Items("format", [
                XmlApi._format_nodes(f) for f in recording.playback])),
        ]

    @staticmethod
    def _format_nodes(playback: PlaybackFormat) -> Nodes:
        nodes: Nodes = [
            ("type", playback.type),
            ("url", playback.url),
            ("processingTime", playback.processing_time),
            ("length", playback.length),
        ]
        if playback.size is not None:
            nodes.append(("size", playback.size))
        if playback.preview:
            nodes.append(("preview", [("images", Items("image", [
                Attrs([(k, v) for k, v in (
                    ("width", "" if image.width is None else str(image.width)),
                    ("height", "" if image.height is None else str(image.height)),
                    ("alt", image.alt)) if v], image.url)
                for image in playback.preview]))]))
        return nodes

    async def _get_recordings(self, ctx: CallContext) -> Answer:
        params = ctx.params
        offset = P.bounded_number(params, "offset", 0, 1_000_000_000)
        limit = P.bounded_number(params, "limit", 1, 100)
        query = RecordingQuery(
            record_ids=params.id_list("recordID"),
            meeting_ids=params.id_list("meetingID"),
            states=P.recording_states(params),
            metadata=params.metadata(),
            offset=offset or 0,
            limit=limit,
        )
        page = await self._recordings.search(query)
        if not page.recordings:
            return [("messageKey", "noRecordings"), ("message", "No recordings found"),
                    ("recordings", Items("recording", []))]
        nodes: Nodes = [("recordings", Items("recording", [
            self._recording_nodes(r) for r in page.recordings]))]
        if offset is not None or limit is not None:
            nodes.append(("totalElements", page.total))
        return nodes

    @staticmethod
    def _record_ids(params: P.Params) -> list[str]:
        ids = params.id_list("recordID")
        if not ids:
            raise errors.missing_record_id()
        return ids

    async def _publish_recordings(self, ctx: CallContext) -> Answer:
        ids = self._record_ids(ctx.params)
        publish = ctx.params.text("publish").strip().lower()
        if publish not in ("true", "false"):
            raise errors.missing_publish()
        if not await self._recordings.set_published(ids, publish == "true"):
            raise errors.recordings_not_found()
        return [("published", publish == "true")]

    async def _delete_recordings(self, ctx: CallContext) -> Answer:
        ids = self._record_ids(ctx.params)
        if not await self._recordings.delete(ids):
            raise errors.recordings_not_found()
        return [("deleted", True)]

    async def _update_recordings(self, ctx: CallContext) -> Answer:
        ids = self._record_ids(ctx.params)
        if not await self._recordings.update_metadata(ids, ctx.params.metadata()):
            raise errors.recordings_not_found()
        return [("updated", True)]
