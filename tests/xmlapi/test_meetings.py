"""Meeting calls of the XML API, through the real resource tree with StubTreq."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from meetplatform import events as ev
from meetplatform.model import EndReason, Role
from tests.support import PUBLIC_URL
from tests.xmlapi.helpers import BASE, make_env

NO_REDIRECT: dict[str, Any] = {"allow_redirects": False}


def test_api_root_is_unsigned_and_names_the_service() -> None:
    """/bigbluebutton/api and /api/ answer version, apiVersion and the custom block."""
    env = make_env(server_name="acme-meet")
    for url in (BASE[:-1], BASE):
        answer = env.request("GET", url)
        assert answer.status == 200 and answer.returncode == "SUCCESS"
        assert answer.text("version") == "2.0" and answer.text("apiVersion") == "2.0"
        assert answer.text("custom/name") == "acme-meet"
        assert answer.text("custom/version") and answer.text("custom/revision") == "abc123"
    assert [e.tag for e in env.request("GET", BASE).xml] == [
        "returncode", "version", "apiVersion", "custom"]


def test_create_answers_bbb_fields_in_order() -> None:
    """create answers BBB's create fields, in BBB's order, with the Mconf-Live additions."""
    env = make_env()
    answer = env.call("create", {"name": "Maths", "meetingID": "maths", "attendeePW": "ap",
                                 "moderatorPW": "mp", "dialNumber": "613-555-1234",
                                 "voiceBridge": "74518", "duration": "20"})
    assert [e.tag for e in answer.xml] == [
        "returncode", "meetingID", "internalMeetingID", "parentMeetingID", "attendeePW",
        "moderatorPW", "createTime", "voiceBridge", "dialNumber", "createDate",
        "hasUserJoined", "duration", "hasBeenForciblyEnded", "messageKey", "message"]
    meeting = env.meeting("maths")
    assert meeting is not None
    assert answer.text("internalMeetingID") == meeting.internal_id
    assert answer.text("internalMeetingID") == (
        hashlib.sha1(b"maths").hexdigest() + "-1700000000000")
    assert answer.text("parentMeetingID") == "bbb-none"
    assert answer.text("voiceBridge") == "74518" and answer.text("dialNumber") == "613-555-1234"
    assert answer.text("createTime") == "1700000000000" and answer.text("duration") == "20"
    assert answer.text("createDate") == "Tue Nov 14 22:13:20 UTC 2023"
    assert answer.key == "" and answer.text("message") == ""


def test_create_is_idempotent() -> None:
    """A repeated create with the same (or no) passwords answers duplicateWarning."""
    env = make_env()
    first = env.create("m1", attendeePW="ap", moderatorPW="mp")
    again = env.call("create", {"name": "Other", "meetingID": "m1", "attendeePW": "ap",
                                "moderatorPW": "mp"})
    assert again.returncode == "SUCCESS" and again.key == "duplicateWarning"
    assert again.text("message") == ("This conference was already in existence and may "
                                     "currently be in progress.")
    assert again.text("internalMeetingID") == first.text("internalMeetingID")
    bare = env.call("create", {"name": "Other", "meetingID": "m1"})
    assert bare.key == "duplicateWarning" and bare.text("attendeePW") == "ap"


def test_create_with_other_passwords_is_id_not_unique() -> None:
    """A repeated create with different passwords answers idNotUnique."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    answer = env.call("create", {"name": "Mm", "meetingID": "m1", "attendeePW": "x",
                                 "moderatorPW": "mp"})
    assert answer.returncode == "FAILED" and answer.key == "idNotUnique"
    assert answer.text("message") == ("A meeting already exists with that meeting ID.  "
                                      "Please use a different meeting ID.")


def test_create_generates_passwords() -> None:
    """Without passwords create answers generated ones."""
    answer = make_env().create("m1")
    assert len(answer.text("attendeePW") or "") == 8
    assert len(answer.text("moderatorPW") or "") == 8


def test_voice_bridge_in_use_is_refused() -> None:
    """A voice bridge used by a running meeting answers nonUniqueVoiceBridge (errors list)."""
    env = make_env()
    env.create("aa", voiceBridge="71000")
    answer = env.call("create", {"name": "Bee", "meetingID": "bb", "voiceBridge": "71000"})
    assert answer.returncode == "FAILED"
    assert answer.text("errors/error/key") == "nonUniqueVoiceBridge"
    assert answer.text("errors/error/message") == "The selected voice bridge is already in use."


def test_welcome_keywords_are_substituted() -> None:
    """%%CONFNAME%% and friends in welcome and moderatorOnlyMessage are replaced."""
    env = make_env()
    env.create("m1", name="Maths", welcome="Hi %%CONFNAME%% %%CONFNUM%%",
               voiceBridge="70001", moderatorOnlyMessage="Dial %%DIALNUM%%",
               dialNumber="555")
    meeting = env.meeting("m1")
    assert meeting.welcome == "Hi Maths 70001"
    assert meeting.moderator_only_message == "Dial 555"


def test_create_stores_every_parameter_and_metadata() -> None:
    """Every create parameter is kept; meta_ names are lower-cased, invalid ones ignored."""
    env = make_env()
    env.create("m1", meta_Origin="moodle", meta_bad_key="x", lockSettingsDisableCam="true", meetingLayout="SMART_LAYOUT")
    spec = env.meeting("m1").spec
    assert spec.metadata == {"origin": "moodle"}
    assert spec.params["lockSettingsDisableCam"] == "true"
    assert spec.params["meetingLayout"] == "SMART_LAYOUT" and "checksum" not in spec.params


def test_reserved_metadata_is_refused() -> None:
    """create with meta_mconflb-guid answers invalidParameters and creates nothing."""
    env = make_env()
    answer = env.call("create", {"name": "Mm", "meetingID": "m1", "meta_mconflb-guid": "x"})
    assert answer.key == "invalidParameters" and env.registry.get_meeting("m1") is None


def test_create_breakout_rooms() -> None:
    """A breakout create needs its parent; the parent then lists its breakout room."""
    env = make_env()
    parent = env.create("parent")
    missing = env.call("create", {"name": "Room 1", "meetingID": "b1", "isBreakout": "true"})
    assert missing.key == "parentMeetingIdMissing"
    parent_internal = parent.text("internalMeetingID") or ""
    child = env.create("b1", isBreakout="true", parentMeetingID=parent_internal, sequence="1",
                       freeJoin="true")
    assert child.text("parentMeetingID") == parent_internal
    info = env.call("getMeetingInfo", {"meetingID": "b1"})
    assert info.text("isBreakout") == "true" and info.text("sequence") == "1"
    assert info.text("parentMeetingID") == parent_internal and info.text("freeJoin") == "true"
    parent_info = env.call("getMeetingInfo", {"meetingID": "parent"})
    assert parent_info.text("breakoutRooms/breakout") == child.text("internalMeetingID")


def test_a_breakout_needs_a_running_parent_other_than_itself() -> None:
    """A breakout whose parentMeetingID names no running meeting, an ended one or itself
    answers parentMeetingDoesNotExist and creates nothing, as bbb-web does."""
    env = make_env()
    env.create("parent")
    for parent_id, meeting_id in (("nobody", "b1"), ("b2", "b2")):
        answer = env.call("create", {"name": "Room 1", "meetingID": meeting_id,
                                     "isBreakout": "true", "parentMeetingID": parent_id})
        assert (answer.key, answer.text("message")) == (
            "parentMeetingDoesNotExist", "No parent meeting exists for the breakout room")
        assert env.registry.get_meeting(meeting_id) is None
    env.call("end", {"meetingID": "parent"})
    answer = env.call("create", {"name": "Room 1", "meetingID": "b3", "isBreakout": "true",
                                 "parentMeetingID": "parent"})
    assert answer.key == "parentMeetingDoesNotExist"
    assert env.registry.get_meeting("b3") is None


def test_create_with_modules_body_records_documents() -> None:
    """POST create with an XML <modules> body records the documents on the meeting."""
    env = make_env()
    body = (b"<modules><module name='presentation'>"
            b"<document url='https://files.test/deck.pdf' filename='Deck.pdf'/>"
            b"<document name='n.txt'>" + base64.b64encode(b"notes") + b"</document>"
            b"</module></modules>")
    answer = env.call("create", {"name": "Mm", "meetingID": "m1"}, method="POST", data=body,
                      headers={"Content-Type": ["application/xml"]})
    assert answer.returncode == "SUCCESS"
    documents = env.meeting("m1").documents
    assert [(d.filename, d.url, d.content, d.current) for d in documents] == [
        ("Deck.pdf", "https://files.test/deck.pdf", None, True),
        ("n.txt", None, b"notes", False)]


def test_join_redirects_to_the_conference_page() -> None:
    """join (redirect by default) answers 302 to this service's own conference page."""
    env = make_env()
    env.create("m1")
    seen: list[ev.Event] = []
    env.registry.subscribe(seen.append)
    answer = env.call("join", {"meetingID": "m1", "fullName": "Ann", "role": "MODERATOR"},
                      **NO_REDIRECT)
    assert answer.status == 302
    location = answer.header("location") or ""
    assert location.startswith(f"{PUBLIC_URL}/client/join?sessionToken=")
    token = parse_qs(urlsplit(location).query)["sessionToken"][0]
    seat = env.seat(token)
    assert seat is not None and seat.full_name == "Ann" and seat.role is Role.MODERATOR
    assert any(isinstance(e, ev.SeatIssued) for e in seen)
    meeting = env.meeting("m1")
    assert not meeting.running and not meeting.has_user_joined


def test_join_without_redirect_answers_xml() -> None:
    """join with redirect=false answers the session token, url, ids and guestStatus."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    answer = env.call("join", {"meetingID": "m1", "fullName": "Bob", "password": "ap",
                               "redirect": "false", "userID": "ext-9", "avatarURL":
                               "https://a.test/b.png", "userdata-bbb_skip_check": "true"})
    assert [e.tag for e in answer.xml] == [
        "returncode", "messageKey", "message", "meeting_id", "user_id", "auth_token",
        "session_token", "guestStatus", "url"]
    assert answer.key == "successfullyJoined"
    assert answer.text("message") == "You have joined successfully."
    meeting = env.meeting("m1")
    assert answer.text("meeting_id") == meeting.internal_id
    assert answer.text("guestStatus") == "ALLOW"
    token = answer.text("session_token") or ""
    assert answer.text("url") == f"{PUBLIC_URL}/client/join?sessionToken={token}"
    seat = env.seat(token)
    assert seat.role is Role.VIEWER and seat.external_user_id == "ext-9"
    assert seat.user_id == answer.text("user_id") and seat.auth_token == answer.text("auth_token")
    assert seat.avatar_url == "https://a.test/b.png"
    assert seat.userdata == {"bbb_skip_check": "true"}


def test_join_role_resolution_errors() -> None:
    """join without role or a valid password answers BBB's 'Params required' errors."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    wrong = env.call("join", {"meetingID": "m1", "fullName": "A", "password": "nope"})
    assert wrong.key == "Params required" and wrong.text("message") == (
        "You must enter a valid password")
    none = env.call("join", {"meetingID": "m1", "fullName": "A"})
    assert none.key == "Params required"
    moderator = env.call("join", {"meetingID": "m1", "fullName": "A", "password": "mp",
                                  "redirect": "false"})
    token = moderator.text("session_token") or ""
    assert env.seat(token).role is Role.MODERATOR


def test_join_checks_meeting_and_create_time() -> None:
    """Unknown meetings, ended meetings and a stale createTime are refused."""
    env = make_env()
    unknown = env.call("join", {"meetingID": "zz", "fullName": "A", "role": "viewer",
                                "redirect": "false"})
    assert unknown.key == "invalidMeetingIdentifier"
    env.create("m1")
    stale = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                              "createTime": "123", "redirect": "false"})
    assert stale.key == "mismatchCreateTimeParam"
    fresh = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                              "createTime": "1700000000000", "redirect": "false"})
    assert fresh.returncode == "SUCCESS"
    env.registry.end_meeting(env.meeting("m1"), EndReason.ENDED_FROM_API)
    ended = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                              "redirect": "false"})
    assert ended.key == "meetingForciblyEnded"


def test_join_errors_redirect_with_errors_list() -> None:
    """A redirecting join that fails redirects to logoutURL with errors=[{key, message}]."""
    env = make_env()
    answer = env.call("join", {"meetingID": "nope", "fullName": "A", "role": "viewer",
                               "logoutURL": "https://lms.test/back?x=1"}, **NO_REDIRECT)
    assert answer.status == 302
    location = urlsplit(answer.header("location") or "")
    assert location.netloc == "lms.test" and location.path == "/back"
    query = parse_qs(location.query)
    assert query["x"] == ["1"]
    assert json.loads(query["errors"][0]) == [{
        "key": "invalidMeetingIdentifier",
        "message": "The meeting ID that you supplied did not match any existing meetings"}]


def test_join_with_bad_checksum_redirects_to_the_default_page() -> None:
    """An unsigned join's own logoutURL is not trusted: errors go to the default page."""
    env = make_env()
    answer = env.request("GET", BASE + "join?meetingID=m&fullName=A&role=viewer"
                         "&logoutURL=https%3A%2F%2Fevil.test%2F&checksum=" + "0" * 40,
                         **NO_REDIRECT)
    assert answer.status == 302
    location = urlsplit(answer.header("location") or "")
    assert f"{location.scheme}://{location.netloc}" == PUBLIC_URL
    assert json.loads(parse_qs(location.query)["errors"][0])[0]["key"] == "checksumError"


def test_max_participants_is_enforced() -> None:
    """Joins beyond maxParticipants answer maxParticipantsReached; a re-join is allowed."""
    env = make_env()
    env.create("m1", maxParticipants="1")
    first = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                              "userID": "u1", "redirect": "false"})
    assert first.returncode == "SUCCESS"
    again = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                              "userID": "u1", "redirect": "false"})
    assert again.returncode == "SUCCESS"
    full = env.call("join", {"meetingID": "m1", "fullName": "B", "role": "viewer",
                             "userID": "u2", "redirect": "false"})
    assert full.key == "maxParticipantsReached"
    assert full.text("message") == ("The number of participants allowed for this meeting "
                                    "has been reached.")


def test_guest_policies() -> None:
    """Guests wait under ASK_MODERATOR (guestWait, seat issued) and are refused under DENY."""
    env = make_env()
    env.create("ask", guestPolicy="ASK_MODERATOR")
    waiting = env.call("join", {"meetingID": "ask", "fullName": "G", "role": "viewer",
                                "guest": "true", "redirect": "false"})
    assert waiting.returncode == "SUCCESS" and waiting.key == "guestWait"
    assert waiting.text("message") == "Guest waiting for approval to join meeting."
    assert waiting.text("guestStatus") == "WAIT"
    assert env.registry.seat_for_token(waiting.text("session_token") or "") is not None
    redirected = env.call("join", {"meetingID": "ask", "fullName": "G", "role": "viewer",
                                   "guest": "true"}, **NO_REDIRECT)
    assert redirected.status == 302 and "/client/join?sessionToken=" in (
        redirected.header("location") or "")
    env.create("deny", guestPolicy="ALWAYS_DENY")
    denied = env.call("join", {"meetingID": "deny", "fullName": "G", "role": "viewer",
                               "guest": "true", "redirect": "false"})
    assert denied.key == "guestDeniedAccess"


def test_is_meeting_running_follows_connections() -> None:
    """isMeetingRunning is false until a seat's browser connects, and for unknown meetings."""
    env = make_env()
    assert env.call("isMeetingRunning", {"meetingID": "m1"}).text("running") == "false"
    env.create("m1")
    seat = env.registry.issue_seat(env.meeting("m1"), full_name="A",
                                   role=Role.MODERATOR)
    assert env.call("isMeetingRunning", {"meetingID": "m1"}).text("running") == "false"
    env.registry.connect(seat)
    assert env.call("isMeetingRunning", {"meetingID": "m1"}).text("running") == "true"
    assert env.call("isMeetingRunning", "").key == "missingParamMeetingID"


def test_get_meeting_info_lists_connected_attendees() -> None:
    """getMeetingInfo reads live counts and attendees (with the Mconf-Live fields)."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp", maxParticipants="20", meta_Origin="x")
    meeting = env.meeting("m1")
    mod = env.registry.connect(env.registry.issue_seat(
        meeting, full_name="Ernie", role=Role.MODERATOR, external_user_id="e1",
        userdata={"backgroundColor": "#FF0033"}))
    viewer = env.registry.connect(env.registry.issue_seat(
        meeting, full_name="Bruce", role=Role.VIEWER, external_user_id="b2"))
    env.registry.issue_seat(meeting, full_name="Pending", role=Role.VIEWER)
    env.registry.update_media(mod, joined_voice=True, muted=False, video_streams=2)
    env.registry.update_media(viewer, listen_only=True)
    answer = env.call("getMeetingInfo", {"meetingID": "m1"})
    assert [e.tag for e in answer.xml] == [
        "returncode", "meetingName", "meetingID", "internalMeetingID", "createTime",
        "createDate", "voiceBridge", "dialNumber", "attendeePW", "moderatorPW", "running",
        "duration", "hasUserJoined", "recording", "hasBeenForciblyEnded", "startTime",
        "endTime", "participantCount", "listenerCount", "voiceParticipantCount", "videoCount",
        "maxUsers", "moderatorCount", "attendees", "metadata", "isBreakout"]
    counts = {tag: answer.text(tag) for tag in (
        "running", "hasUserJoined", "participantCount", "listenerCount",
        "voiceParticipantCount", "videoCount", "maxUsers", "moderatorCount")}
    assert counts == {"running": "true", "hasUserJoined": "true", "participantCount": "2",
                      "listenerCount": "1", "voiceParticipantCount": "1", "videoCount": "2",
                      "maxUsers": "20", "moderatorCount": "1"}
    assert answer.text("startTime") == "1700000000000" and answer.text("endTime") == "0"
    attendees = answer.xml.findall("attendees/attendee")
    assert [a.findtext("fullName") for a in attendees] == ["Ernie", "Bruce"]
    first = attendees[0]
    assert [e.tag for e in first] == [
        "userID", "fullName", "role", "isPresenter", "isListeningOnly", "hasJoinedVoice",
        "hasVideo", "videoStreams", "clientType", "customdata"]
    assert first.findtext("userID") == "e1" and first.findtext("role") == "MODERATOR"
    assert first.findtext("isPresenter") == "true" and first.findtext("hasJoinedVoice") == "true"
    assert first.findtext("hasVideo") == "true"
    assert len(first.findall("videoStreams/streamName")) == 2
    assert first.findtext("customdata/backgroundColor") == "#FF0033"
    assert attendees[1].findtext("isListeningOnly") == "true"
    assert answer.text("metadata/origin") == "x"


def test_get_meeting_info_unknown_meeting() -> None:
    """getMeetingInfo for an unknown meeting answers notFound."""
    answer = make_env().call("getMeetingInfo", {"meetingID": "zz"})
    assert answer.key == "notFound"
    assert answer.text("message") == "A meeting with that ID does not exist"


def test_get_meetings() -> None:
    """getMeetings lists every meeting with live counts, or answers noMeetings."""
    env = make_env()
    empty = env.call("getMeetings")
    assert empty.returncode == "SUCCESS" and empty.key == "noMeetings"
    assert empty.text("message") == "no meetings were found on this server"
    assert empty.xml.find("meetings") is not None
    env.create("aa")
    env.create("bb", voiceBridge="70002", dialNumber="555")
    meeting = env.meeting("bb")
    env.registry.connect(env.registry.issue_seat(meeting, full_name="X", role=Role.VIEWER))
    answer = env.call("getMeetings")
    meetings = answer.xml.findall("meetings/meeting")
    assert [m.findtext("meetingID") for m in meetings] == ["aa", "bb"]
    assert meetings[1].findtext("participantCount") == "1"
    assert meetings[1].findtext("voiceBridge") == "70002"
    assert meetings[1].findtext("dialNumber") == "555"
    assert meetings[1].findtext("attendees/attendee/fullName") == "X"


def test_get_meetings_fast_xml_equals_generic_rendering() -> None:
    """The hand-written XML of getMeetings is byte for byte the generic renderer's output."""
    from meetplatform.xmlapi.render import xml_body

    env = make_env()
    env.create("pp", meta_a="1")
    parent = env.meeting("pp")
    env.create("cc", isBreakout="true", parentMeetingID=parent.internal_id, sequence="2")
    people = [env.registry.connect(env.registry.issue_seat(
        parent, full_name=f"<P{i}&>", role=role, userdata={"k": "v&"}))
        for i, role in enumerate((Role.MODERATOR, Role.VIEWER))]
    env.registry.update_media(people[1], video_streams=1, joined_voice=True)
    for meeting in env.registry.meetings():
        assert xml_body([("", _raw(env.api.renderer.xml(meeting)))]) == xml_body(
            env.api.renderer.nodes(meeting))


def _raw(xml: str) -> Any:
    from meetplatform.xmlapi.render import Raw

    return Raw(xml)


def test_end_meeting() -> None:
    """end with the moderator password (or none) ends the meeting; others are refused."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    wrong = env.call("end", {"meetingID": "m1", "password": "ap"})
    assert wrong.key == "invalidPassword"
    assert wrong.text("message") == "The supplied moderator password is incorrect"
    answer = env.call("end", {"meetingID": "m1", "password": "mp"})
    assert answer.returncode == "SUCCESS" and answer.key == "sentEndMeetingRequest"
    assert answer.text("message") == (
        "A request to end the meeting was sent.  Please wait a few seconds, and then use the "
        "getMeetingInfo or isMeetingRunning API calls to verify that it was ended.")
    ended = env.registry.recently_ended("m1")
    assert ended is not None
    assert ended.end_reason == EndReason.ENDED_FROM_API.value and ended.forcibly_ended
    assert env.call("end", {"meetingID": "m1"}).key == "notFound"
    env.create("m2")
    assert env.call("end", {"meetingID": "m2"}).returncode == "SUCCESS"
    assert env.call("end", "").key == "missingParamMeetingID"


def test_get_sessions() -> None:
    """getSessions lists issued seats, or answers noSessions."""
    env = make_env()
    empty = env.call("getSessions")
    assert empty.key == "noSessions"
    assert empty.text("message") == "no sessions were found on this serverr"
    env.create("m1", name="Live Probe")
    env.call("join", {"meetingID": "m1", "fullName": "Alice", "role": "moderator"},
             **NO_REDIRECT)
    answer = env.call("getSessions")
    session = answer.xml.find("sessions/meeting")
    assert session.findtext("meetingID") == env.meeting("m1").internal_id
    assert session.findtext("meetingName") == "Live Probe"
    assert session.findtext("userName") == "Alice"


def test_send_chat_message() -> None:
    """sendChatMessage records the message on the meeting, as System by default."""
    env = make_env()
    env.create("m1")
    answer = env.call("sendChatMessage", {"meetingID": "m1", "message": "Hello all"})
    assert answer.returncode == "SUCCESS"
    named = env.call("sendChatMessage", {"meetingID": "m1", "message": "Hi",
                                         "userName": "Bot"})
    assert named.returncode == "SUCCESS"
    chat = list(env.meeting("m1").chat)
    assert [(m.sender_name, m.text) for m in chat] == [("System", "Hello all"), ("Bot", "Hi")]


def test_send_chat_message_validation() -> None:
    """sendChatMessage refuses empty or over-long messages and unknown meetings."""
    env = make_env()
    env.create("m1")
    empty = env.call("sendChatMessage", {"meetingID": "m1", "message": ""})
    assert empty.key == "validationError"
    assert empty.text("message") == "Param message must be between 1 and 500 characters"
    long = env.call("sendChatMessage", {"meetingID": "m1", "message": "x" * 501})
    assert long.key == "validationError"
    name = env.call("sendChatMessage", {"meetingID": "m1", "message": "x",
                                        "userName": "n" * 256})
    assert name.key == "validationError"
    unknown = env.call("sendChatMessage", {"meetingID": "zz", "message": "x"})
    assert unknown.key == "meetingNotFound"
    assert unknown.text("message") == "Meeting not found or not active"


def test_insert_document() -> None:
    """insertDocument records the documents of its XML body on the meeting."""
    env = make_env()
    env.create("m1")
    seen: list[ev.Event] = []
    env.registry.subscribe(seen.append)
    body = (b"<modules><module name='presentation'><document url='https://f.test/a.pdf'/>"
            b"<document url='https://f.test/b.pdf' current='true'/></module></modules>")
    answer = env.call("insertDocument", {"meetingID": "m1"}, method="POST", data=body,
                      headers={"Content-Type": ["application/xml"]})
    assert answer.returncode == "SUCCESS"
    assert answer.text("message") == "Presentation is being uploaded"
    documents = env.meeting("m1").documents
    assert [(d.filename, d.current) for d in documents] == [("b.pdf", True), ("a.pdf", False)]
    assert any(isinstance(e, ev.DocumentsInserted) and e.count == 2 for e in seen)


def test_insert_document_errors() -> None:
    """insertDocument needs an XML body and a live meeting."""
    env = make_env()
    no_body = env.call("insertDocument", {"meetingID": "m1"}, method="POST")
    assert no_body.key == "validationError"
    body = b"<modules><module name='presentation'><document url='https://f.test/a.pdf'/>" \
           b"</module></modules>"
    unknown = env.call("insertDocument", {"meetingID": "m1"}, method="POST", data=body,
                       headers={"Content-Type": ["text/xml"]})
    assert unknown.key == "notFound"


def test_get_stats_covers_ended_and_live_meetings() -> None:
    """getStats lists meetings that ran since start-up with their participants."""
    env = make_env()
    assert env.call("getStats").key == "noStats"
    env.create("old", name="Old one")
    old = env.meeting("old")
    participant = env.registry.connect(env.registry.issue_seat(
        old, full_name="John", role=Role.MODERATOR))
    env.clock.advance(60)
    env.registry.disconnect(participant)
    env.registry.end_meeting(old, EndReason.ENDED_FROM_API)
    env.create("live")
    env.registry.connect(env.registry.issue_seat(env.meeting("live"),
                                                 full_name="Dexter", role=Role.VIEWER))
    env.create("idle")
    answer = env.call("getStats")
    stats = answer.xml.findall("stats/meeting")
    assert [s.findtext("meetingID") for s in stats] == ["old", "live"]
    first = stats[0]
    assert first.findtext("meetingName") == "Old one"
    assert first.findtext("recordID") == old.internal_id
    assert first.findtext("participants/participant/userName") == "John"
    assert first.findtext("participants/participant/joinTime") == "1700000000000"
    assert first.findtext("participants/participant/leftTime") == "1700000060000"
    only = env.call("getStats", {"meetingID": "live,other"})
    assert [s.findtext("meetingID") for s in only.xml.findall("stats/meeting")] == ["live"]


def test_config_xml_calls() -> None:
    """getDefaultConfigXML answers a config document; setConfigXML stores one for join."""
    env = make_env()
    default = env.call("getDefaultConfigXML")
    assert default.status == 200 and default.xml.tag == "config"
    assert default.xml.find("server").get("url") == PUBLIC_URL
    env.create("m1")
    from urllib.parse import quote

    config = "<config><skinning url='x'/></config>"
    stored = env.call("setConfigXML", {"meetingID": "m1", "configXML": quote(config)},
                      method="POST")
    assert stored.returncode == "SUCCESS", stored.body
    token = stored.text("configToken") or ""
    assert env.api.configs.config_xml(env.meeting("m1"), token) == config
    joined = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                               "configToken": token, "redirect": "false"})
    assert joined.returncode == "SUCCESS"
    unknown = env.call("join", {"meetingID": "m1", "fullName": "A", "role": "viewer",
                                "configToken": "nope", "redirect": "false"})
    assert unknown.key == "noConfigFound"


def test_set_config_xml_errors() -> None:
    """setConfigXML refuses missing or malformed config and unknown meetings."""
    env = make_env()
    env.create("m1")
    assert env.call("setConfigXML", {"meetingID": "m1"}).key == "configXMLError"
    bad = env.call("setConfigXML", {"meetingID": "m1", "configXML": "<config"})
    assert bad.key == "configXMLError" and bad.text("message") == "Cannot decode config XML"
    assert env.call("setConfigXML", {"configXML": "<a/>"}).key == "missingParamMeetingID"
    assert env.call("setConfigXML", {"meetingID": "zz", "configXML": "<a/>"}).key == (
        "invalidMeetingIdentifier")
    unsigned = env.request("GET", BASE + "setConfigXML?meetingID=m1&configXML=x&checksum=00")
    assert unsigned.key == "configXMLChecksumError"


def test_create_timers_end_meetings() -> None:
    """duration and meetingExpireIfNoUserJoinedInMinutes end meetings on the clock."""
    env = make_env()
    env.create("short", duration="2", meetingExpireIfNoUserJoinedInMinutes="0")
    env.create("unjoined", meetingExpireIfNoUserJoinedInMinutes="1")
    env.clock.advance(61)
    assert env.call("getMeetingInfo", {"meetingID": "unjoined"}).key == "notFound"
    assert env.call("getMeetingInfo", {"meetingID": "short"}).returncode == "SUCCESS"
    env.clock.advance(60)
    assert env.call("getMeetingInfo", {"meetingID": "short"}).key == "notFound"
    ended = env.registry.recently_ended("short")
    assert ended is not None
    assert ended.end_reason == EndReason.ENDED_AFTER_EXCEEDING_DURATION.value


def test_meeting_info_follows_every_participant_change_between_calls() -> None:
    """getMeetingInfo and getMeetings show each join, media change, role change and leave
    made after an earlier call rendered the meeting."""
    env = make_env()
    env.create("m1")
    meeting = env.meeting("m1")

    def seen(call: str = "getMeetingInfo") -> tuple[str | None, ...]:
        params = {"meetingID": "m1"} if call == "getMeetingInfo" else {}
        answer = env.call(call, params)
        prefix = "" if call == "getMeetingInfo" else "meetings/meeting/"
        return tuple(answer.xml.findtext(prefix + tag) for tag in (
            "participantCount", "moderatorCount", "videoCount", "listenerCount"))

    assert seen() == seen("getMeetings") == ("0", "0", "0", "0")
    ann = env.registry.connect(env.registry.issue_seat(
        meeting, full_name="Ann", role=Role.VIEWER, external_user_id="a"))
    assert seen() == seen("getMeetings") == ("1", "0", "0", "0")
    env.registry.update_media(ann, video_streams=1, listen_only=True)
    assert seen() == seen("getMeetings") == ("1", "0", "1", "1")
    env.registry.set_role(meeting, ann.user_id, Role.MODERATOR)
    assert seen() == seen("getMeetings") == ("1", "1", "1", "1")
    env.registry.disconnect(ann)
    assert seen() == seen("getMeetings") == ("0", "0", "0", "0")


def test_get_meeting_info_shows_the_documents_under_an_extension_element() -> None:
    """BBB's getMeetingInfo has no documents: a meeting with documents gets
    <meetplatform><presentation> after BBB's fields (XML and JSON)."""
    from meetplatform.model import SlideDocument

    env = make_env()
    env.create("m1")
    meeting = env.meeting("m1")
    env.registry.document_changed(meeting, SlideDocument(
        id="d1", filename="a.pdf", state="ready", pages_total=3, pages_done=3))
    env.registry.document_changed(meeting, SlideDocument(
        id="d2", filename="b.pdf", state="failed", error="The document is unreadable"))
    env.registry.set_page(meeting, "d1", 2)
    answer = env.call("getMeetingInfo", {"meetingID": "m1"})
    assert [e.tag for e in answer.xml][-3:] == ["metadata", "isBreakout", "meetplatform"]
    presentation = answer.xml.find("meetplatform/presentation")
    assert presentation is not None
    assert (presentation.findtext("currentDocument"), presentation.findtext("currentPage"),
            presentation.findtext("multiUserWhiteboard")) == ("d1", "2", "false")
    docs = presentation.findall("documents/document")
    assert [(d.findtext("id"), d.findtext("state"), d.findtext("pagesTotal"),
             d.findtext("current"), d.findtext("error")) for d in docs] == [
        ("d1", "ready", "3", "true", ""), ("d2", "failed", "0", "false",
                                           "The document is unreadable")]
    as_json = env.call("getMeetingInfo", {"meetingID": "m1"},
                       headers={"Accept": "application/json"})
    body = json.loads(as_json.body)
    found = json.dumps(body)
    assert '"currentDocument": "d1"' in found and '"pagesTotal": 3' in found
