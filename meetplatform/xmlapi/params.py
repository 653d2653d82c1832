"""Pure parameter parsing and validation for the XML API (no Twisted, no I/O).

Parameters are decoded from the raw query string (or form body) exactly once per request;
each call then reads what it needs through :class:`Params`. Validation failures raise
:class:`~meetplatform.xmlapi.errors.ApiError` with BigBlueButton's messageKey and message.

Why one module of this size: every parameter rule of BBB's ``create`` and ``join`` (the
same rules bbb-web keeps in one ``ParamsProcessorUtil``) in one place, pure and tested
directly; a rule and its BBB counterpart are easy to find side by side.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from lxml import etree

from meetplatform import text
from meetplatform.model import Document, GuestPolicy, MeetingSpec, Role
from meetplatform.xmlapi import errors

#: Java's ``\p{Cntrl}``: what bbb-web strips from parameter values.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: ``meta_<name>``: bbb-web keeps only these (the name is stored lower-cased).
_META = re.compile(r"meta_([a-zA-Z][a-zA-Z0-9-]*)")
#: ``userdata-<name>``: names that are safe as XML element names in ``<customdata>``.
_USERDATA = re.compile(r"userdata-([A-Za-z_][A-Za-z0-9_.-]{0,127})")
_DIGITS = re.compile(r"-?[0-9]{1,10}")
#: A voice bridge: ASCII digits (``str.isdigit`` also takes "²" and Arabic-Indic digits),
#: at most 10 of them and at most Java's ``Integer.MAX_VALUE`` (bbb-web and FreeSWITCH
#: treat it as a number; BBB generates 5 digits).
_VOICE_BRIDGE = re.compile(r"[0-9]{1,10}")
MAX_VOICE_BRIDGE = 2**31 - 1
#: Unicode categories no identifier may contain: controls (C0, DEL and C1, with NEL),
#: format characters (bidi overrides, zero-width ones, BOM), line and paragraph
#: separators (U+2028, U+2029), lone surrogates. bbb-web strips only C0 and DEL; the
#: rest would pass it and break logs, URLs and terminals, so they are refused too.
_NOT_IN_IDS = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_PASSWORD_ALPHABET = string.ascii_lowercase + string.digits

#: Metadata names the Mconf load balancer reserves for itself (``meta_mconflb-*``).
RESERVED_META_PREFIX = "mconflb-"
#: Parameters that are about the request, not the call; never stored with a meeting.
TRANSPORT_PARAMS = frozenset({"checksum", "callback"})

DEFAULT_WELCOME = "Welcome to <b>%%CONFNAME%%</b>!"
MAX_DOCUMENTS = 100


def clean(value: str) -> str:
    """Strip control characters, as bbb-web's ``sanitizeString`` does."""
    if _CONTROL.search(value) is None:
        return value
    return _CONTROL.sub("", value)


def _decode(part: bytes) -> str:
    if b"%" not in part and b"+" not in part:
        return part.decode("utf-8")
    return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")


def parse_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decode ``a=1&b=2`` into ``[("a", "1"), ("b", "2")]`` in order; empty parts skipped.

    The service-wide text rule (:mod:`meetplatform.text`): a name or value that is not
    UTF-8 once percent-decoded (``%FF``, an encoded surrogate ``%ED%A0%80``) is refused,
    never repaired, with a ``validationError`` naming the parameter. This is the one
    decoding of query strings and urlencoded bodies (multipart forms:
    :func:`decode_form_pairs`); it is on every call's path, so the field is only looked
    for once decoding has failed.
    """
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    try:
        for part in raw.split(b"&"):
            if not part:
                continue
            name, _, value = part.partition(b"=")
            if b"%" in part or b"+" in part:
                append((_decode(name), _decode(value)))
            else:
                append((name.decode("utf-8"), value.decode("utf-8")))
    except UnicodeDecodeError:
        raise errors.bad_text(_first_bad_text(raw)) from None
    return pairs


def _first_bad_text(raw: bytes) -> text.BadText:
    """The :class:`~meetplatform.text.BadText` of the first broken name or value."""
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        try:
            key = _decode(name)
        except UnicodeDecodeError:
            return text.BadText("bad parameter name")
        try:
            _decode(value)
        except UnicodeDecodeError:
            return text.BadText("bad parameter value", key)
    return text.BadText("bad parameter")


def decode_form_pairs(fields: dict[bytes, list[bytes]]) -> list[tuple[str, str]]:
    """Multipart form fields (already split by Twisted) under the rule of :func:`parse_pairs`."""
    try:
        pairs: list[tuple[str, str]] = []
        for name, values in fields.items():
            key = text.decode(name)
            pairs.extend((key, text.decode(value, key)) for value in values)
    except text.BadText as bad:
        raise errors.bad_text(bad) from None
    return pairs


class Params:
    """The decoded parameters of one call. The first value of a repeated name wins."""

    __slots__ = ("pairs", "values")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        # Later duplicates are overwritten by earlier ones: the first value wins.
        self.values = dict(reversed(pairs)) if len(pairs) > 1 else dict(pairs)

    def raw(self, name: str) -> str | None:
        """The value as received (control characters included), or ``None``."""
        return self.values.get(name)

    def text(self, name: str, default: str = "") -> str:
        """The value without control characters; ``default`` when absent."""
        value = self.values.get(name)
        return default if value is None else clean(value)

    def present(self, name: str) -> bool:
        """True when the parameter was given with a non-empty value."""
        return bool(self.values.get(name))

    def flag(self, name: str, default: bool = False) -> bool:
        """Java's ``Boolean.parseBoolean``: true only for ``true`` (any case)."""
        value = self.values.get(name)
        if not value:
            return default
        return value.strip().lower() == "true"

    def strict_flag(self, name: str, default: bool, message: str) -> bool:
        """A boolean that must be ``true`` or ``false`` when given."""
        value = self.values.get(name)
        if not value:
            return default
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise errors.validation(message)

    def number(self, name: str, default: int) -> int:
        """An integer; like bbb-web, anything that isn't one falls back to ``default``."""
        value = self.values.get(name)
        if value is None:
            return default
        value = value.strip()
        if _DIGITS.fullmatch(value) is None:
            return default
        return int(value)

    def minutes(self, name: str, default: int) -> int:
        """A number of minutes: like :meth:`number`, and a negative one is not a number of
        minutes either, so it takes the default too (``-1`` must not mean "never")."""
        value = self.number(name, default)
        return default if value < 0 else value

    def id_list(self, name: str) -> list[str]:
        """A comma-separated list (``meetingID=a,b``), empty entries dropped."""
        value = self.values.get(name)
        if not value:
            return []
        return [item for item in (clean(v).strip() for v in value.split(",")) if item]

    def metadata(self) -> dict[str, str]:
        """``meta_*`` parameters with valid names, lower-cased, without the prefix."""
        return dict(self._metadata())

    def _metadata(self) -> Iterator[tuple[str, str]]:
        seen: set[str] = set()
        for name, value in self.pairs:
            if not name.startswith("meta_"):
                continue
            match = _META.fullmatch(name)
            if match is None:
                continue
            key = match.group(1).lower()
            if key in seen:
                continue
            seen.add(key)
            yield key, clean(value)

    def userdata(self) -> dict[str, str]:
        """``userdata-*`` parameters whose names can be XML element names."""
        out: dict[str, str] = {}
        for name, value in self.pairs:
            if name.startswith("userdata-"):
                match = _USERDATA.fullmatch(name)
                if match is not None and match.group(1) not in out:
                    out[match.group(1)] = clean(value)
        return out

    def stored(self) -> dict[str, str]:
        """Every parameter of the call (first values), without checksum and callback."""
        stored: dict[str, str] = {}
        for name, value in self.pairs:
            if name not in stored and name not in TRANSPORT_PARAMS:
                stored[name] = clean(value)
        return stored


# --- meeting IDs ----------------------------------------------------------------------------


def require_meeting_id(params: Params, *, legacy: bool = False) -> str:
    """The ``meetingID`` of a call that needs one."""
    value = params.raw("meetingID")
    if not value:
        raise errors.missing_meeting_id_legacy() if legacy else errors.missing_meeting_id()
    return value


def has_invisible_characters(text: str) -> bool:
    """True if ``text`` holds a control, format, line/paragraph separator or surrogate
    character (see ``_NOT_IN_IDS``)."""
    if text.isascii():
        return _CONTROL.search(text) is not None
    return any(unicodedata.category(ch) in _NOT_IN_IDS for ch in text)


def validate_new_meeting_id(meeting_id: str) -> None:
    """bbb-web's rules for the ``meetingID`` of a ``create``; beyond them, no Unicode
    control or format character (NEL, U+2028, U+2029, bidi overrides...), with bbb-web's
    answer for a meetingID that sanitizing would change."""
    if clean(meeting_id) != meeting_id or has_invisible_characters(meeting_id):
        raise errors.validation("Invalid meeting ID")
    if not 2 <= len(meeting_id) <= 256:
        raise errors.validation("Meeting ID must be between 2 and 256 characters")
    if "," in meeting_id:
        raise errors.validation("Meeting ID cannot contain ','")


def generate_password() -> str:
    """A random 8-character password, as bbb-web generates for a create without one."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(8))


# --- create -------------------------------------------------------------------------------


_GUEST_POLICIES = {policy.value: policy for policy in GuestPolicy}


def parse_create(params: Params, *, default_logout_url: str,
                 documents: list[Document] | None = None) -> MeetingSpec:
    """Validate a ``create`` call and build the registry's :class:`MeetingSpec`."""
    meeting_id = params.raw("meetingID")
    if not meeting_id:
        raise errors.missing_meeting_id()
    validate_new_meeting_id(meeting_id)

    name = params.text("name").strip()
    if not name:
        raise errors.validation("You must provide a meeting name")
    if not 2 <= len(name) <= 256:
        raise errors.validation("Meeting name must be between 2 and 256 characters")

    metadata = params.metadata()
    if any(key.startswith(RESERVED_META_PREFIX) for key in metadata):
        raise errors.invalid_parameters()

    attendee_pw = params.text("attendeePW")
    moderator_pw = params.text("moderatorPW")
    passwords_given = bool(attendee_pw or moderator_pw)
    if not attendee_pw:
        attendee_pw = generate_password()
    if not moderator_pw:
        moderator_pw = generate_password()

    voice_bridge = params.text("voiceBridge").strip() or None
    if voice_bridge is not None and (_VOICE_BRIDGE.fullmatch(voice_bridge) is None
                                     or int(voice_bridge) > MAX_VOICE_BRIDGE):
        raise errors.validation("Voice bridge must be an integral value")
    web_voice = params.text("webVoice").strip() or None

    record = params.strict_flag("record", False, "Record must be a boolean value (true or false)")

    policy_text = params.text("guestPolicy").strip().upper()
    if policy_text and policy_text not in _GUEST_POLICIES:
        raise errors.validation(
            "guestPolicy must be one of ALWAYS_ACCEPT, ALWAYS_DENY, ASK_MODERATOR, "
            "ALWAYS_ACCEPT_AUTH")
    guest_policy = _GUEST_POLICIES.get(policy_text, GuestPolicy.ALWAYS_ACCEPT)

    is_breakout = params.flag("isBreakout")
    parent_meeting_id = params.text("parentMeetingID").strip() or None
    if is_breakout and not parent_meeting_id:
        raise errors.parent_meeting_id_missing()
    if is_breakout and parent_meeting_id == meeting_id:
        # its own parent: it does not run yet (the registry refuses any parent that does
        # not run; this one never can)
        raise errors.parent_meeting_does_not_exist()
    sequence = params.number("sequence", 0) if is_breakout else None

    logout_url = params.text("logoutURL").strip()
    if not logout_url or logout_url.lower() == "default":
        logout_url = default_logout_url

    welcome = params.text("welcome") if params.raw("welcome") is not None else DEFAULT_WELCOME

    max_participants = params.minutes("maxParticipants", 0)  # a negative count: the same
    duration = params.minutes("duration", 0)

    docs = list(documents or [])
    pre_uploaded = params.text("preUploadedPresentation").strip()
    if pre_uploaded:
        check_document_url(pre_uploaded)
        docs.append(Document(
            filename=params.text("preUploadedPresentationName").strip()
            or filename_from_url(pre_uploaded),
            url=pre_uploaded,
        ))
    docs = order_documents(docs, force_current=True)

    return MeetingSpec(
        meeting_id=meeting_id,
        name=name,
        attendee_pw=attendee_pw,
        moderator_pw=moderator_pw,
        passwords_given=passwords_given,
        voice_bridge=voice_bridge,
        dial_number=params.text("dialNumber"),
        web_voice=web_voice,
        max_participants=max_participants,
        duration=duration,
        welcome=welcome,
        moderator_only_message=params.text("moderatorOnlyMessage"),
        logout_url=logout_url,
        record=record,
        auto_start_recording=params.flag("autoStartRecording"),
        allow_start_stop_recording=params.flag("allowStartStopRecording", True),
        mute_on_start=params.flag("muteOnStart"),
        webcams_only_for_moderator=params.flag("webcamsOnlyForModerator"),
        metadata=metadata,
        guest_policy=guest_policy,
        allow_promote_guest_to_moderator=params.flag("allowPromoteGuestToModerator"),
        expire_if_no_user_joined_minutes=params.minutes(
            "meetingExpireIfNoUserJoinedInMinutes", 5),
        expire_when_last_user_left_minutes=params.minutes(
            "meetingExpireWhenLastUserLeftInMinutes", 1),
        end_when_no_moderator=params.flag("endWhenNoModerator"),
        end_when_no_moderator_delay_minutes=params.minutes(
            "endWhenNoModeratorDelayInMinutes", 1),
        is_breakout=is_breakout,
        parent_meeting_id=parent_meeting_id if is_breakout else None,
        sequence=sequence,
        free_join=params.flag("freeJoin"),
        params=params.stored(),
        documents=docs,
    )


# --- join ---------------------------------------------------------------------------------


_ROLES = {"moderator": Role.MODERATOR, "viewer": Role.VIEWER}


@dataclass
class JoinRequest:
    """A validated ``join`` call (role resolution needs the meeting, so it happens later)."""

    meeting_id: str
    full_name: str
    role: Role | None
    password: str
    create_time: str | None
    user_id: str | None
    guest: bool
    avatar_url: str
    userdata: dict[str, str] = field(default_factory=dict)
    redirect: bool = True
    config_token: str | None = None


def parse_join(params: Params) -> JoinRequest:
    """Validate a ``join`` call."""
    full_name = params.text("fullName").strip()
    if not full_name:
        raise errors.missing_full_name()
    meeting_id = require_meeting_id(params)
    role_text = params.text("role").strip().lower()
    redirect_text = params.raw("redirect")
    return JoinRequest(
        meeting_id=meeting_id,
        full_name=full_name,
        role=_ROLES.get(role_text),
        password=params.text("password"),
        create_time=params.raw("createTime"),
        user_id=params.text("userID").strip() or None,
        guest=params.flag("guest"),
        avatar_url=params.text("avatarURL").strip(),
        userdata=params.userdata(),
        redirect=True if not redirect_text else redirect_text.strip().lower() == "true",
        config_token=params.text("configToken").strip() or None,
    )


def join_error_target(params: Params, default_url: str) -> str:
    """Where a redirecting ``join`` sends the browser on error (BBB 2.7 names, then logoutURL)."""
    for name in ("errorRedirectUrl", "redirectErrorUrl", "logoutURL"):
        value = params.text(name).strip()
        if value and is_http_url(value):
            return value
    return default_url


# --- documents (create <modules>, insertDocument) -------------------------------------------


_XML_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                           "dtd_validation": False, "huge_tree": False, "remove_comments": True,
                           "remove_pis": True}


def safe_xml_parser() -> etree.XMLParser:
    """An lxml parser that expands no entities, loads no DTD and fetches nothing."""
    return etree.XMLParser(**_XML_PARSER_OPTIONS)


def parse_safe_xml(body: bytes, what: str) -> etree._Element:
    """Parse an XML body with :func:`safe_xml_parser`; documents with a DTD are refused."""
    try:
        root = etree.fromstring(body, safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise errors.validation(f"The {what} is not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise errors.validation(f"The {what} must not contain a DOCTYPE.")
    return root


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_document_url(url: str) -> None:
    if not is_http_url(url):
        raise errors.validation(f"Param 'url' is not a valid URL: {url[:200]}")


def filename_from_url(url: str) -> str:
    """The file name bbb-web derives from a document URL: its last path segment, decoded."""
    path = urlsplit(url).path
    last = path.rstrip("/").rsplit("/", 1)[-1]
    try:
        return clean(unquote(last, errors="strict")) or "document"
    except UnicodeDecodeError:
        raise errors.ApiError("fileNameError", "Cannot decode the uploaded file name") from None


def _xml_bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() == "true"


def parse_modules(body: bytes) -> list[Document]:
    """The documents of a ``<modules><module name="presentation">`` body, in document order.

    Each ``<document>`` has a ``url`` (with an optional ``filename``) or a ``name`` and
    base64 content. ``current``, ``downloadable`` and ``removable`` are read as bbb-web
    reads them. Raises ``validationError`` for XML that is not such a document.
    """
    root = parse_safe_xml(body, "request body")
    if root.tag != "modules":
        raise errors.validation("The XML body must be a <modules> document.")
    documents: list[Document] = []
    for module in root.iterchildren("module"):
        if module.get("name") != "presentation":
            continue  # clientSettingsOverride and other modules are not documents
        for element in module.iterchildren("document"):
            documents.append(_document(element))
            if len(documents) > MAX_DOCUMENTS:
                raise errors.validation(f"At most {MAX_DOCUMENTS} documents per request.")
    return documents


def _document(element: etree._Element) -> Document:
    current = _xml_bool(element.get("current"), False)
    downloadable = _xml_bool(element.get("downloadable"), False)
    removable = _xml_bool(element.get("removable"), True)
    url = (element.get("url") or "").strip()
    if url:
        check_document_url(url)
        filename = clean((element.get("filename") or "").strip()) or filename_from_url(url)
        return Document(filename=filename, url=url, current=current,
                        downloadable=downloadable, removable=removable)
    name = clean((element.get("name") or "").strip())
    if not name:
        raise errors.validation("A <document> needs a url or a name attribute.")
    text = "".join(element.itertext())
    try:
        content = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise errors.validation(f"The content of document '{name[:100]}' is not valid base64.") \
            from None
    if not content:
        raise errors.validation(f"The document '{name[:100]}' is empty.")
    return Document(filename=name, content=content, current=current,
                    downloadable=downloadable, removable=removable)


def order_documents(documents: list[Document], *, force_current: bool) -> list[Document]:
    """bbb-web's ordering: the first ``current`` document moves to the front and is the only
    current one; on ``create`` the first document is current even if none says so."""
    if not documents:
        return []
    first_current = next((i for i, d in enumerate(documents) if d.current), None)
    ordered = list(documents)
    if first_current is not None:
        ordered.insert(0, ordered.pop(first_current))
    make_current = force_current or first_current is not None
    out = []
    for index, doc in enumerate(ordered):
        wanted = make_current and index == 0
        if doc.current != wanted:
            doc = Document(filename=doc.filename, url=doc.url, content=doc.content,
                           current=wanted, downloadable=doc.downloadable,
                           removable=doc.removable)
        out.append(doc)
    return out


def parse_config_xml(text: str) -> None:
    """Check that a ``setConfigXML`` document is well-formed XML (parsed safely)."""
    try:
        parse_safe_xml(text.encode("utf-8"), "config XML")
    except errors.ApiError:
        raise errors.bad_config_xml() from None


# --- recordings -----------------------------------------------------------------------------


RECORDING_STATES = ("processing", "processed", "published", "unpublished", "deleted")
DEFAULT_RECORDING_STATES = ("published", "unpublished")


def recording_states(params: Params) -> tuple[str, ...]:
    """The ``state`` filter of ``getRecordings``: a list, ``any``, or the default."""
    states = [s.lower() for s in params.id_list("state")]
    if not states:
        return DEFAULT_RECORDING_STATES
    if "any" in states:
        return RECORDING_STATES
    for state in states:
        if state not in RECORDING_STATES:
            raise errors.validation(
                f"Unknown recording state '{state[:40]}': use processing, processed, "
                "published, unpublished, deleted or any")
    return tuple(dict.fromkeys(states))


def bounded_number(params: Params, name: str, low: int, high: int) -> int | None:
    """An optional integer parameter that must lie in ``[low, high]`` when given."""
    value = params.raw(name)
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value) is None or not low <= int(value) <= high:
        raise errors.validation(f"Param '{name}' must be a number between {low} and {high}")
    return int(value)
