"""The XML API edge of the service-wide text rule (:mod:`meetplatform.text`): parameters
and XML bodies that are not valid Unicode are refused with a BBB ``validationError`` naming
the parameter, never repaired, never stored, never logged as a failure (the autouse
``fail_on_logged_failures`` fixture checks the last)."""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

import pytest

from meetplatform.checksum import checksum, rebuilt_form_query
from tests.support import SECRET, result
from tests.xmlapi.helpers import BASE, Answer, Env, make_env

FORM = {"Content-Type": ["application/x-www-form-urlencoded"]}
XML = {"Content-Type": ["application/xml"]}
BAD = ["%FF", "%ED%A0%80", "caf%E9", "%C3"]


def _room_with_people() -> Env:
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    for name in ("Ann", "Bob"):
        joined = env.call("join", {"meetingID": "m1", "fullName": name, "password": "mp",
                                   "redirect": "false"})
        assert joined.returncode == "SUCCESS"
    return env


def _assert_refused(answer: Answer, param: str) -> None:
    assert answer.status == 200
    assert answer.returncode == "FAILED" and answer.key == "validationError", answer.body
    assert answer.text("message") == (
        f"Param '{param}' is not valid UTF-8 text; parameters must be UTF-8, percent-encoded.")


def _untouched(env: Env, before: bytes) -> None:
    assert [m.spec.meeting_id for m in env.registry.meetings()] == ["m1"]
    assert env.call("getMeetings").body == before


@pytest.mark.parametrize("bad", BAD)
def test_create_with_a_bad_utf8_name_fails_cleanly(bad: str) -> None:
    """A create whose name is not UTF-8 is refused; other meetings are untouched."""
    env = _room_with_people()
    before = env.call("getMeetings").body
    _assert_refused(env.call("create", f"name=Room{bad}&meetingID=m2"), "name")
    _untouched(env, before)
    assert env.call("create", "name=Room%20two&meetingID=m2").returncode == "SUCCESS"


@pytest.mark.parametrize("bad", BAD)
def test_bad_utf8_in_any_call_and_any_parameter_is_refused(bad: str) -> None:
    env = _room_with_people()
    before = env.call("getMeetings").body
    _assert_refused(env.call("getMeetingInfo", f"meetingID=m1{bad}"), "meetingID")
    _assert_refused(env.call("end", f"meetingID=m1&password=mp{bad}"), "password")
    _assert_refused(env.call("join", f"meetingID=m1&fullName=E{bad}&password=mp"
                                     "&redirect=false"), "fullName")
    name = env.call("getMeetings", f"x{bad}=1")
    assert name.key == "validationError"
    assert name.text("message") == ("A parameter name is not valid UTF-8 text; parameters "
                                    "must be UTF-8, percent-encoded.")
    _untouched(env, before)


def test_a_redirecting_join_with_bad_text_redirects_with_the_error() -> None:
    """A browser join (redirect=true) gets bbb-web's error redirect, not a page of XML."""
    env = _room_with_people()
    d = env.stub.request("GET", BASE + "join?meetingID=m1&fullName=E%FF&password=mp&checksum="
                         + checksum("join", "meetingID=m1&fullName=E%FF&password=mp", SECRET,
                                    "sha1"), allow_redirects=False)
    env.stub.flush()
    response = result(d)
    assert response.code == 302
    location = response.headers.getRawHeaders("location")[0]
    assert location.startswith("http") and "validationError" in location
    assert "fullName" in unquote(location)


def test_bad_text_is_refused_in_json_too() -> None:
    env = make_env()
    answer = env.call("create", "name=%FF&meetingID=m2",
                      headers={"Accept": ["application/json"]})
    assert json.loads(answer.body)["response"]["messageKey"] == "validationError"


def test_bad_utf8_in_urlencoded_and_multipart_forms_is_refused() -> None:
    """Form bodies follow the same rule (the multipart path used to repair with U+FFFD)."""
    env = make_env()
    raw = "meetingID=f1&name=Bad%FF"
    body = f"{raw}&checksum={checksum('create', raw, SECRET, 'sha1')}".encode()
    _assert_refused(env.request("POST", BASE + "create", data=body, headers=FORM), "name")
    boundary = "XyZ"
    value = checksum("create", rebuilt_form_query([("meetingID", "f2"), ("name", "x")]),
                     SECRET, "sha1")
    parts = [(b"meetingID", b"f2"), (b"name", b"Bad\xed\xa0\x80"),
             (b"checksum", value.encode())]
    multipart = b"".join(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"" + k + b"\"\r\n\r\n" + v + b"\r\n"
        for k, v in parts) + b"--XyZ--\r\n"
    answer = env.request("POST", BASE + "create", data=multipart, headers={
        "Content-Type": [f"multipart/form-data; boundary={boundary}"]})
    _assert_refused(answer, "name")
    assert list(env.registry.meetings()) == []


_MODULES = (b"<modules><module name='presentation'><document name='%s'>bm90ZXM=</document>"
            b"</module></modules>")


@pytest.mark.parametrize("body", [
    _MODULES % b"n\xff.txt", _MODULES % b"n\xed\xa0\x80.txt", _MODULES % b"n&#xD800;.txt"])
def test_create_with_a_bad_xml_body_is_refused(body: bytes) -> None:
    """A <modules> body that is not valid Unicode is not well-formed XML: refused."""
    env = _room_with_people()
    before = env.call("getMeetings").body
    answer = env.call("create", {"name": "Mm", "meetingID": "m2"}, method="POST", data=body,
                      headers=XML)
    assert answer.key == "validationError"
    assert (answer.text("message") or "").startswith("The request body is not well-formed XML")
    _untouched(env, before)


@pytest.mark.parametrize("config", [
    quote(b"<config>\xff</config>"),
    quote(b"<config>\xed\xa0\x80</config>"),
    quote("<config>&#xD800;</config>"),
])
def test_set_config_xml_with_bad_text_is_refused(config: str) -> None:
    """setConfigXML's (doubly encoded) document must be valid Unicode too: configXMLError."""
    env = _room_with_people()
    answer = env.call("setConfigXML", {"meetingID": "m1", "configXML": config})
    assert answer.key == "configXMLError"
