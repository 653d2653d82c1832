"""Parameter parsing and validation rules of the XML API (pure functions)."""

from __future__ import annotations

import base64

import pytest

from meetplatform.model import Document, GuestPolicy, MeetingSpec, Role
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.errors import ApiError


def params(**values: str) -> P.Params:
    return P.Params(list(values.items()))


def create(**values: str) -> MeetingSpec:
    base = {"name": "Room", "meetingID": "room-1"}
    base.update(values)
    return P.parse_create(params(**base), default_logout_url="https://x.test/")


def refused(key: str, fn: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert info.value.key == key, info.value.message
    return info.value


def test_pairs_are_decoded_in_order() -> None:
    """Names and values are percent- and plus-decoded as UTF-8, empty parts skipped."""
    assert P.parse_pairs(b"a=1&&name=J%C3%B6rg+M&flag&x=") == [
        ("a", "1"), ("name", "Jörg M"), ("flag", ""), ("x", "")]


def test_invalid_utf8_is_a_validation_error() -> None:
    """A value that is not UTF-8 is refused with a clear message."""
    error = refused("validationError", P.parse_pairs, b"name=%ff%fe")
    assert "UTF-8" in error.message


def test_first_value_of_a_repeated_name_wins() -> None:
    """A parameter given twice counts with its first value."""
    assert P.Params(P.parse_pairs(b"a=1&a=2")).raw("a") == "1"


def test_booleans_follow_java_parse_boolean() -> None:
    """Only 'true' (any case) is true; anything else is false; absent takes the default."""
    p = params(a="TRUE", b="yes", c="")
    assert p.flag("a") and not p.flag("b") and p.flag("c", True) and p.flag("zz", True)


def test_numbers_fall_back_to_default() -> None:
    """Non-numeric numbers fall back to the default, as bbb-web does."""
    p = params(a="12", b="abc", c="-1", d="99999999999999")
    assert (p.number("a", 0), p.number("b", 7), p.number("c", 0), p.number("d", 3)) == (
        12, 7, -1, 3)


def test_control_characters_are_stripped() -> None:
    """Control characters are taken out of text values."""
    assert params(n="a\x00b\x1fc").text("n") == "abc"


def test_metadata_names_are_lower_cased_and_invalid_ones_ignored() -> None:
    """meta_ names are kept lower-cased without the prefix; invalid names are dropped."""
    p = params(**{"meta_Origin-Server": "moodle", "meta_bad_name": "x", "meta_1x": "y",
                  "meta_": "z", "metaX": "w"})
    assert p.metadata() == {"origin-server": "moodle"}


def test_userdata_names_must_be_xml_names() -> None:
    """userdata-* parameters are kept only when their names can be XML element names."""
    p = params(**{"userdata-bbb_color": "red", "userdata-1bad": "x", "userdata-a b": "y"})
    assert p.userdata() == {"bbb_color": "red"}


def test_stored_params_leave_out_checksum_and_callback() -> None:
    """Every parameter is stored with the meeting except the request's transport ones."""
    assert params(a="1", checksum="x", callback="cb").stored() == {"a": "1"}


def test_create_requires_a_meeting_id_and_a_name() -> None:
    """create without meetingID or name answers BBB's errors."""
    refused("missingParamMeetingID", P.parse_create, params(name="Room"),
            default_logout_url="u")
    error = refused("validationError", P.parse_create, params(meetingID="abc"),
                    default_logout_url="u")
    assert error.message == "You must provide a meeting name"


@pytest.mark.parametrize("meeting_id,message", [
    ("a", "Meeting ID must be between 2 and 256 characters"),
    ("x" * 257, "Meeting ID must be between 2 and 256 characters"),
    ("a,b", "Meeting ID cannot contain ','"),
    ("ab\x01", "Invalid meeting ID"),
    ("ab\x85cd", "Invalid meeting ID"),  # NEL
    ("ab\u2028cd", "Invalid meeting ID"),  # line separator
    ("ab\u2029cd", "Invalid meeting ID"),  # paragraph separator
    ("ab\x9bcd", "Invalid meeting ID"),  # C1 CSI
    ("ab\u202ecd", "Invalid meeting ID"),  # right-to-left override
    ("ab\u200bcd", "Invalid meeting ID"),  # zero-width space
    ("\ufeffabc", "Invalid meeting ID"),  # byte order mark
    ("ab\x7fcd", "Invalid meeting ID"),  # DEL
])
def test_meeting_id_rules(meeting_id: str, message: str) -> None:
    """meetingID must be 2-256 characters, without commas or control characters."""
    error = refused("validationError", create, meetingID=meeting_id)
    assert error.message == message


def test_unicode_meeting_ids_without_invisible_characters_are_kept() -> None:
    """Letters, emoji (with their zero-width joiner's neighbours) and spaces stay valid."""
    for meeting_id in ("Zürich Raum 1", "教室-1", "room 🎉", "a b"):
        assert create(meetingID=meeting_id).meeting_id == meeting_id


def test_create_generates_passwords_and_remembers_none_were_given() -> None:
    """Without passwords, create generates two and marks them as not given."""
    spec = create()
    assert len(spec.attendee_pw) == 8 and len(spec.moderator_pw) == 8
    assert spec.attendee_pw != spec.moderator_pw and not spec.passwords_given
    assert create(attendeePW="ap").passwords_given


def test_create_reads_documented_parameters() -> None:
    """Documented create parameters land in the MeetingSpec, and all of them in params."""
    spec = create(voiceBridge="71234", dialNumber="613-555", maxParticipants="5",
                  duration="30", record="true", guestPolicy="ask_moderator",
                  meetingExpireIfNoUserJoinedInMinutes="2",
                  meetingExpireWhenLastUserLeftInMinutes="0", endWhenNoModerator="true",
                  endWhenNoModeratorDelayInMinutes="3", muteOnStart="true",
                  logoutURL="https://lms.test/out", moderatorOnlyMessage="hi mods",
                  bannerText="hello")
    assert (spec.voice_bridge, spec.dial_number, spec.max_participants, spec.duration) == (
        "71234", "613-555", 5, 30)
    assert spec.record and spec.guest_policy is GuestPolicy.ASK_MODERATOR
    assert (spec.expire_if_no_user_joined_minutes, spec.expire_when_last_user_left_minutes) == (
        2, 0)
    assert spec.end_when_no_moderator and spec.end_when_no_moderator_delay_minutes == 3
    assert spec.mute_on_start and spec.logout_url == "https://lms.test/out"
    assert spec.params["bannerText"] == "hello" and spec.moderator_only_message == "hi mods"


def test_create_defaults() -> None:
    """Absent parameters take bbb-web's defaults."""
    spec = create(maxParticipants="lots", logoutURL="default")
    assert spec.max_participants == 0 and spec.logout_url == "https://x.test/"
    assert spec.welcome == P.DEFAULT_WELCOME
    assert spec.expire_if_no_user_joined_minutes == 5
    assert spec.expire_when_last_user_left_minutes == 1
    assert spec.guest_policy is GuestPolicy.ALWAYS_ACCEPT and not spec.record


@pytest.mark.parametrize("name", ["meetingExpireIfNoUserJoinedInMinutes",
                                  "meetingExpireWhenLastUserLeftInMinutes",
                                  "endWhenNoModeratorDelayInMinutes", "duration",
                                  "maxParticipants"])
def test_negative_minutes_take_the_default_instead_of_meaning_never(name: str) -> None:
    """A negative number of minutes (or participants) is no such number: it takes the
    default, as a non-numeric value does; -1 never means "never"."""
    defaults = create()
    spec, negative = create(**{name: "-1"}), create(**{name: "-99999"})
    fields = ("expire_if_no_user_joined_minutes", "expire_when_last_user_left_minutes",
              "end_when_no_moderator_delay_minutes", "duration", "max_participants")
    for field_name in fields:
        assert getattr(spec, field_name) == getattr(defaults, field_name)
        assert getattr(negative, field_name) == getattr(defaults, field_name)
    assert spec.expire_if_no_user_joined_minutes == 5


@pytest.mark.parametrize("bridge", ["1" * 5000, "12345678901", "2147483648", "²", "٣٤٥",
                                    "-5", "12 34"])
def test_voice_bridges_are_bounded_ascii_numbers(bridge: str) -> None:
    """A voice bridge is 1-10 ASCII digits up to 2147483647 (a 5,000-digit one, Unicode
    digits and signs are refused with bbb-web's message)."""
    error = refused("validationError", create, voiceBridge=bridge)
    assert error.message == "Voice bridge must be an integral value"


def test_voice_bridges_within_bounds_are_kept() -> None:
    """Five digits as BBB generates them, and the largest accepted value, pass."""
    assert create(voiceBridge="71234").voice_bridge == "71234"
    assert create(voiceBridge="2147483647").voice_bridge == "2147483647"


def test_create_validations() -> None:
    """Bad voice bridges, record values and guest policies are refused."""
    assert "integral" in refused("validationError", create, voiceBridge="12a").message
    assert "Record" in refused("validationError", create, record="maybe").message
    assert "guestPolicy" in refused("validationError", create, guestPolicy="NOBODY").message


def test_reserved_load_balancer_metadata_is_refused() -> None:
    """meta_mconflb-* keys are refused with invalidParameters."""
    error = refused("invalidParameters", create, **{"meta_mconflb-institution": "x"})
    assert error.message == "The URL you supplied has parameters that are not accepted."


def test_breakout_needs_a_parent() -> None:
    """isBreakout=true without parentMeetingID answers parentMeetingIdMissing."""
    refused("parentMeetingIdMissing", create, isBreakout="true")
    refused("parentMeetingDoesNotExist", create, isBreakout="true", parentMeetingID="room-1")
    spec = create(isBreakout="true", parentMeetingID="parent-1", sequence="2")
    assert spec.is_breakout and spec.parent_meeting_id == "parent-1" and spec.sequence == 2


def test_join_parsing() -> None:
    """join reads name, role (any case), redirect, guest, userID and userdata."""
    request = P.parse_join(params(fullName=" Ann ", meetingID="m", role="Moderator",
                                  redirect="FALSE", guest="true", userID="u-1",
                                  **{"userdata-bbb_x": "1"}))
    assert request.full_name == "Ann" and request.role is Role.MODERATOR
    assert not request.redirect and request.guest and request.user_id == "u-1"
    assert request.userdata == {"bbb_x": "1"}
    assert P.parse_join(params(fullName="A", meetingID="m", role="boss")).role is None
    assert P.parse_join(params(fullName="A", meetingID="m")).redirect


def test_join_requires_name_and_meeting() -> None:
    """join without fullName or meetingID is refused."""
    refused("missingParamFullName", P.parse_join, params(meetingID="m"))
    refused("missingParamMeetingID", P.parse_join, params(fullName="A"))


def test_join_error_target_prefers_bbb_27_names() -> None:
    """A redirecting join's errors go to errorRedirectUrl, then logoutURL, then the default."""
    assert P.join_error_target(params(logoutURL="https://a.test/", errorRedirectUrl=
                                      "https://b.test/"), "d") == "https://b.test/"
    assert P.join_error_target(params(logoutURL="https://a.test/"), "d") == "https://a.test/"
    assert P.join_error_target(params(logoutURL="javascript:alert(1)"), "d") == "d"


MODULES = b"""<?xml version="1.0" encoding="UTF-8"?>
<modules>
  <module name="presentation">
    <document url="https://files.test/a%20deck.pdf" />
    <document url="https://files.test/b.pdf" filename="Slides.pdf" current="true"
              downloadable="true" removable="false"/>
    <document name="notes.txt">""" + base64.b64encode(b"hello") + b"""</document>
  </module>
  <module name="clientSettingsOverride"><![CDATA[{"a": 1}]]></module>
</modules>"""


def test_modules_documents() -> None:
    """A <modules> body yields its documents by URL and by base64 content."""
    docs = P.parse_modules(MODULES)
    assert docs[0] == Document(filename="a deck.pdf", url="https://files.test/a%20deck.pdf")
    assert docs[1] == Document(filename="Slides.pdf", url="https://files.test/b.pdf",
                               current=True, downloadable=True, removable=False)
    assert docs[2] == Document(filename="notes.txt", content=b"hello")


def test_current_document_moves_first() -> None:
    """The first current document is moved to the front; on create the first is current."""
    ordered = P.order_documents(P.parse_modules(MODULES), force_current=True)
    assert [d.filename for d in ordered] == ["Slides.pdf", "a deck.pdf", "notes.txt"]
    assert [d.current for d in ordered] == [True, False, False]
    plain = [Document("x.pdf", url="https://f.test/x.pdf")]
    assert P.order_documents(plain, force_current=True)[0].current
    assert not P.order_documents(plain, force_current=False)[0].current


@pytest.mark.parametrize("body,fragment", [
    ((b"<modules><module name='presentation'><document url='ftp://x/y.pdf'/></module>"
     b"</modules>"), "not a valid URL"),
    ((b"<modules><module name='presentation'><document name='a.pdf'>@@@</document>"
     b"</module></modules>"), "base64"),
    (b"<modules><module name='presentation'><document/></module></modules>", "url or a name"),
    (b"<presentation/>", "<modules>"),
    (b"<modules>", "well-formed"),
])
def test_bad_modules_are_refused(body: bytes, fragment: str) -> None:
    """Malformed module bodies answer validationError saying what is wrong."""
    assert fragment in refused("validationError", P.parse_modules, body).message


@pytest.mark.parametrize("body", [
    (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<modules><module name="presentation"><document url="https://f.test/&x;.pdf"/>'
    b'</module></modules>'),
    (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY y "aaaa"><!ENTITY z "&y;&y;&y;&y;">]>'
    b'<modules><module name="presentation"><document name="&z;.pdf">aGVsbG8=</document>'
    b'</module></modules>'),
    b'<!DOCTYPE modules SYSTEM "http://evil.test/x.dtd"><modules/>',
])
def test_xml_entities_are_never_expanded(body: bytes) -> None:
    """Documents with a DTD (XXE, entity bombs, remote DTDs) are refused, nothing fetched."""
    error = refused("validationError", P.parse_modules, body)
    assert "DOCTYPE" in error.message or "entity" in error.message


def test_recording_states() -> None:
    """state lists are validated; 'any' means all states; default published+unpublished."""
    assert P.recording_states(params()) == ("published", "unpublished")
    assert set(P.recording_states(params(state="any"))) == set(P.RECORDING_STATES)
    assert P.recording_states(params(state="deleted,processing")) == ("deleted", "processing")
    refused("validationError", P.recording_states, params(state="lost"))


def test_bounded_numbers() -> None:
    """offset/limit must be numbers in range when given."""
    assert P.bounded_number(params(limit="10"), "limit", 1, 100) == 10
    assert P.bounded_number(params(), "limit", 1, 100) is None
    refused("validationError", P.bounded_number, params(limit="101"), "limit", 1, 100)
    refused("validationError", P.bounded_number, params(limit="x"), "limit", 1, 100)
