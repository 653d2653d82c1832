"""Checksums, request shapes, limits and formats of the XML API over HTTP (StubTreq)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from meetplatform.checksum import checksum, rebuilt_form_query
from meetplatform.xmlapi.errors import ApiError
from meetplatform.xmlapi.negotiation import answer_format
from meetplatform.xmlapi.pipeline import MAX_FORM_FIELDS
from tests.support import SECRET
from tests.xmlapi.helpers import BASE, make_env

FORM = {"Content-Type": ["application/x-www-form-urlencoded"]}


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_every_algorithm_is_accepted(algorithm: str) -> None:
    """Calls signed with any of the four algorithms are served."""
    answer = make_env().call("create", {"name": "Room", "meetingID": "r1"}, algorithm)
    assert answer.returncode == "SUCCESS"


def test_algorithms_can_be_restricted() -> None:
    """With only sha256 allowed, a sha1 checksum answers checksumError."""
    env = make_env(checksum_algorithms=("sha256",))
    assert env.call("getMeetings", "", "sha1").key == "checksumError"
    assert env.call("getMeetings", "", "sha256").returncode == "SUCCESS"


def test_wrong_missing_and_duplicate_checksums() -> None:
    """Bad, absent or repeated checksums answer checksumError before anything runs."""
    env = make_env()
    good = checksum("getMeetings", "", SECRET, "sha1")
    for query in ("", "checksum=" + "0" * 40, f"checksum={good}&checksum={good}",
                  f"checksum={good.upper()}x"):
        answer = env.request("GET", f"{BASE}getMeetings?{query}")
        assert answer.status == 200 and answer.returncode == "FAILED"
        assert answer.key == "checksumError"
        assert answer.text("message") == "Checksums do not match"
    assert env.request("GET", f"{BASE}getMeetings?checksum={good.upper()}").returncode == (
        "SUCCESS")


def test_leading_ampersand_query_is_valid() -> None:
    """``getMeetings?&checksum=...`` is served like a call without parameters."""
    env = make_env()
    value = checksum("getMeetings", "", SECRET, "sha1")
    assert env.request("GET", f"{BASE}getMeetings?&checksum={value}").returncode == "SUCCESS"


def test_raw_query_encoding_is_preserved() -> None:
    """The checksum covers the query exactly as sent (%20 and + are both fine)."""
    env = make_env()
    query = "name=Room%20One&meetingID=r%2B1"
    answer = env.call("create", query)
    assert answer.returncode == "SUCCESS"
    meeting = env.meeting("r+1")
    assert meeting is not None and meeting.name == "Room One"


def test_post_form_body_with_bbb_rebuilt_checksum() -> None:
    """A POST form with an empty query verifies the way bbb-web does (sorted, re-encoded)."""
    env = make_env()
    pairs = [("name", "Form room~"), ("meetingID", "form-1")]
    value = checksum("create", rebuilt_form_query(pairs), SECRET, "sha256")
    body = urlencode(pairs + [("checksum", value)]).encode()
    answer = env.request("POST", BASE + "create", data=body, headers=FORM)
    assert answer.returncode == "SUCCESS", answer.body
    assert env.meeting("form-1").name == "Form room~"


def test_post_form_body_with_raw_body_checksum() -> None:
    """A POST form signed over its raw body (as some load balancers do) verifies too."""
    env = make_env()
    raw = "meetingID=form-2&name=Raw%20room"
    body = f"{raw}&checksum={checksum('create', raw, SECRET, 'sha1')}".encode()
    answer = env.request("POST", BASE + "create", data=body, headers=FORM)
    assert answer.returncode == "SUCCESS", answer.body


def test_post_form_with_wrong_checksum_is_refused() -> None:
    """A POST form with a checksum over other parameters answers checksumError."""
    env = make_env()
    value = checksum("create", "meetingID=x1&name=Other", SECRET, "sha1")
    body = f"meetingID=x1&name=Mine&checksum={value}".encode()
    answer = env.request("POST", BASE + "create", data=body, headers=FORM)
    assert answer.key == "checksumError" and env.registry.get_meeting("x1") is None


def test_post_multipart_form_is_verified_like_bbb() -> None:
    """A multipart/form-data POST with an empty query verifies over the sorted parameters."""
    env = make_env()
    pairs = [("meetingID", "mp-1"), ("name", "Multipart")]
    value = checksum("create", rebuilt_form_query(pairs), SECRET, "sha1")
    boundary = "XyZ"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                    for k, v in pairs + [("checksum", value)])
    body = (parts + f"--{boundary}--\r\n").encode()
    answer = env.request("POST", BASE + "create", data=body, headers={
        "Content-Type": [f"multipart/form-data; boundary={boundary}"]})
    assert answer.returncode == "SUCCESS", answer.body


def test_unsigned_body_parameters_are_ignored() -> None:
    """With a signed query, form parameters in the body are not trusted or used."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    query = urlencode({"meetingID": "m1", "fullName": "Eve", "password": "ap",
                       "redirect": "false"})
    value = checksum("join", query, SECRET, "sha1")
    answer = env.request("POST", f"{BASE}join?{query}&checksum={value}",
                         data=b"role=MODERATOR", headers=FORM)
    token = answer.text("session_token") or ""
    assert env.seat(token).role.value == "VIEWER"


def test_get_with_a_body_is_served() -> None:
    """A GET carrying a body is served normally; the body is read and ignored."""
    env = make_env()
    answer = env.call("getMeetings", "", data=b"ignored=1&more", headers=FORM)
    assert answer.status == 200 and answer.returncode == "SUCCESS"


def test_unsupported_content_type() -> None:
    """A POST body of an unsupported type answers unsupportedContentType."""
    env = make_env()
    answer = env.call("create", {"name": "Room", "meetingID": "r1"}, method="POST",
                      data=b"{}", headers={"Content-Type": ["application/json"]})
    assert answer.key == "unsupportedContentType"
    assert answer.text("message") == "POST request Content-Type is missing or unsupported"


def test_query_size_limit() -> None:
    """A query string over the limit answers sizeError (414) without parsing it."""
    env = make_env(max_query_bytes=100)
    answer = env.call("create", {"name": "x" * 200, "meetingID": "r1"})
    assert answer.status == 414 and answer.key == "sizeError"


def test_body_size_limit() -> None:
    """A body over the limit answers sizeError (413)."""
    env = make_env(max_body_bytes=50)
    answer = env.call("insertDocument", {"meetingID": "m1"}, method="POST", data=b"<a/>" * 50,
                      headers={"Content-Type": ["application/xml"]})
    assert answer.status == 413 and answer.key == "sizeError"


def test_other_methods_are_refused() -> None:
    """PUT and DELETE answer 405 with a BBB-style XML error."""
    env = make_env()
    answer = env.call("getMeetings", "", method="DELETE")
    assert answer.status == 405 and answer.key == "unsupportedRequest"


def test_head_is_served() -> None:
    """HEAD requests are served like GET, without a body."""
    answer = make_env().call("getMeetings", "", method="HEAD")
    assert answer.status == 200 and answer.body == b""


def test_unknown_calls_and_hooks_are_unsupported() -> None:
    """Unknown calls (and the hooks/* calls, not served yet) answer unsupportedRequest."""
    env = make_env()
    for call in ("nope", "hooks/create", "getJoinUrl"):
        answer = env.call(call)
        assert answer.key == "unsupportedRequest"
        assert answer.text("message") == "This request is not supported."


def test_xml_headers() -> None:
    """XML answers are text/xml UTF-8 and not cached."""
    answer = make_env().call("getMeetings")
    assert answer.header("content-type") == "text/xml;charset=utf-8"
    assert answer.header("cache-control") == "no-cache"


def test_json_when_asked() -> None:
    """With Accept: application/json every call answers the same fields as JSON."""
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp", meta_origin="lms")
    answer = env.call("getMeetingInfo", {"meetingID": "m1"},
                      headers={"Accept": ["application/json"]})
    assert answer.header("content-type") == "application/json;charset=utf-8"
    data = json.loads(answer.body)["response"]
    xml = env.call("getMeetingInfo", {"meetingID": "m1"}).xml
    assert list(data) == [e.tag for e in xml]
    assert data["returncode"] == "SUCCESS" and data["running"] is False
    assert data["attendees"] == [] and data["metadata"] == {"origin": "lms"}
    assert data["createTime"] == 1700000000000 and data["attendeePW"] == "ap"


def test_json_errors() -> None:
    """Errors are JSON too when JSON was asked for."""
    env = make_env()
    answer = env.call("getMeetingInfo", {"meetingID": "zz"},
                      headers={"Accept": ["application/json"]})
    assert json.loads(answer.body) == {"response": {
        "returncode": "FAILED", "messageKey": "notFound",
        "message": "A meeting with that ID does not exist"}}
    unsigned = env.request("GET", BASE + "getMeetings", headers={"Accept": ["application/json"]})
    assert json.loads(unsigned.body)["response"]["messageKey"] == "checksumError"


def test_get_meetings_json_lists_meetings() -> None:
    """getMeetings in JSON is an array of meeting objects with the XML's fields."""
    env = make_env()
    env.create("m1")
    env.create("m2")
    data = json.loads(env.call("getMeetings", headers={"Accept": ["application/json"]}).body)
    meetings = data["response"]["meetings"]
    assert [m["meetingID"] for m in meetings] == ["m1", "m2"]
    xml_tags = [e.tag for e in env.call("getMeetings").xml.find("meetings/meeting")]
    assert list(meetings[0]) == xml_tags


def test_jsonp_with_callback() -> None:
    """A signed callback= parameter answers JSONP calling that function."""
    env = make_env()
    answer = env.call("isMeetingRunning", {"meetingID": "m1", "callback": "handle"})
    assert answer.header("content-type") == "application/javascript;charset=utf-8"
    assert answer.header("x-content-type-options") == "nosniff"
    assert answer.body == (b'/**/handle({"response":{"returncode":"SUCCESS",'
                           b'"running":false}});')


def test_invalid_jsonp_callback_is_refused() -> None:
    """A callback that is not a plain function name is refused in plain JSON."""
    answer = make_env().call("getMeetings", {"callback": "alert(document.cookie)"})
    assert answer.header("content-type") == "application/json;charset=utf-8"
    assert json.loads(answer.body)["response"]["messageKey"] == "validationError"


def test_api_root_json() -> None:
    """The API root answers JSON when asked."""
    env = make_env()
    answer = env.request("GET", BASE, headers={"Accept": ["application/json"]})
    data = json.loads(answer.body)["response"]
    assert data["version"] == "2.0" and data["custom"]["revision"] == "abc123"


def test_added_calls_are_signed_too() -> None:
    """Calls added with add_call (hooks later) get the same checksum and error handling."""
    env = make_env()

    def handler(ctx: Any) -> Any:
        if ctx.params.raw("fail"):
            raise ApiError("missingParamCallbackURL",
                           "You must specify a callbackURL in the parameters.")
        return [("hookID", "h1")]

    env.api.add_call("hooks/create", handler)
    assert env.call("hooks/create").text("hookID") == "h1"
    assert env.call("hooks/create", {"fail": "1"}).key == "missingParamCallbackURL"
    assert env.request("GET", BASE + "hooks/create?checksum=00").key == "checksumError"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_the_context_carries_the_verified_algorithm(algorithm: str) -> None:
    """A handler learns which algorithm signed its call (hooks sign callbacks with it)."""
    env = make_env()
    env.api.add_call("echo", lambda ctx: [("algorithm", ctx.algorithm)])
    assert env.call("echo", {"a": "1"}, algorithm).text("algorithm") == algorithm
    pairs = [("a", "1")]
    value = checksum("echo", rebuilt_form_query(pairs), SECRET, algorithm)
    body = urlencode(pairs + [("checksum", value)]).encode()
    form = env.request("POST", BASE + "echo", data=body, headers=FORM)
    assert form.text("algorithm") == algorithm


def test_a_bug_answers_xml_and_is_logged(fail_on_logged_failures: list[Any]) -> None:
    """An unexpected exception answers BBB XML (internalError) and logs the failure."""
    env = make_env()

    def broken(ctx: Any) -> Any:
        raise RuntimeError("boom")

    env.api.add_call("broken", broken)
    answer = env.call("broken")
    assert answer.returncode == "FAILED" and answer.key == "internalError"
    assert b"boom" not in answer.body and b"Traceback" not in answer.body
    assert len(fail_on_logged_failures) == 1
    fail_on_logged_failures.clear()


def test_every_spelling_of_a_call_takes_the_one_path() -> None:
    """A call answers the same bytes whatever the spelling of its address.

    Before the split, ``/api/<call>`` went straight to the dispatcher and the other
    spellings (a trailing slash, an escaped letter) through a Klein app; this test compared
    the two paths. There is one path now; the spellings the Klein routes used to serve
    must still answer exactly like the plain address.
    """
    env = make_env()
    env.create("m1", attendeePW="ap", moderatorPW="mp")
    query = urlencode({"meetingID": "m1"})
    signed = f"{query}&checksum={checksum('getMeetingInfo', query, SECRET)}"
    expected = env.call("getMeetingInfo", {"meetingID": "m1"}).body
    for path in ("getMeetingInfo", "getMeetingInfo/", "getMeetingInfo//", "%67etMeetingInfo"):
        answer = env.request("GET", f"{BASE}{path}?{signed}")
        assert answer.status == 200, path
        assert answer.body == expected, path


def test_odd_call_names_are_refused_in_the_api_format() -> None:
    """A name that starts with a slash is not an API address (404); bytes that are not
    UTF-8 name no call (unsupportedRequest, no logged failure)."""
    env = make_env()
    slash = env.request("GET", BASE + "/getMeetings")
    assert slash.status == 404 and slash.key == "notFound"
    binary = env.request("GET", BASE + "%FF")
    assert binary.status == 200 and binary.key == "unsupportedRequest"


def test_other_paths_answer_a_404_in_the_api_format() -> None:
    """Paths under /bigbluebutton outside the API answer 404 with BBB-style XML."""
    env = make_env()
    for url in ("http://meet.example.test/bigbluebutton/",
                "http://meet.example.test/bigbluebutton/client/x",
                "http://meet.example.test/bigbluebutton/apis"):
        answer = env.request("GET", url)
        assert answer.status == 404 and answer.key == "notFound", url


@pytest.mark.parametrize(("accept", "fmt"), [
    (None, "xml"),
    ("", "xml"),
    ("application/json, text/plain, */*", "xml"),  # axios (bigbluebutton-js 0.2.0)
    ("*/*", "xml"),
    ("text/*", "xml"),
    ("application/*", "xml"),
    ("text/xml", "xml"),
    ("application/xml", "xml"),
    ("application/json, text/xml;q=0.1", "xml"),
    ("application/json, */*;q=0.01", "xml"),
    ("image/png", "xml"),  # nothing we can produce: BBB's XML
    ("application/json", "json"),
    ("APPLICATION/JSON; charset=utf-8", "json"),
    ("application/json, application/xml;q=0", "json"),
    ("application/json, */*;q=0", "json"),
    ("application/json, text/*;q=0, application/xml;q=0.0", "json"),
    ("application/json, */*;q=0.5, text/xml;q=0, application/xml;q=0", "json"),
    ("application/json, text/xml;q=0, */*;q=0.5", "xml"),  # application/xml via */*
    ("application/json;q=0, text/plain", "xml"),
    ("application/json, text/plain", "json"),
    ("application/json;q=bogus", "xml"),
])
def test_the_accept_rule(accept: str | None, fmt: str) -> None:
    """JSON only when the client accepts JSON and does not accept XML (q-values count)."""
    assert answer_format(None if accept is None else accept.encode("latin-1")) == fmt


def test_axios_accept_header_gets_xml() -> None:
    """Regression: axios' default Accept (it names application/json) answered JSON, which
    bigbluebutton-js 0.2.0 cannot read (``xmlData.replace is not a function``)."""
    env = make_env()
    axios = {"Accept": ["application/json, text/plain, */*"]}
    env.create("m1")
    for answer in (env.call("getMeetings", headers=axios),
                   env.call("getMeetingInfo", {"meetingID": "zz"}, headers=axios),
                   env.request("GET", BASE + "getMeetings", headers=axios),
                   env.request("GET", BASE, headers=axios)):
        assert answer.header("content-type") == "text/xml;charset=utf-8"
        assert answer.xml.tag == "response"
    json_only = {"Accept": ["application/json, application/xml;q=0"]}
    answer = env.call("getMeetings", headers=json_only)
    assert answer.header("content-type") == "application/json;charset=utf-8"
    assert json.loads(answer.body)["response"]["meetings"][0]["meetingID"] == "m1"


def test_form_with_too_many_parameters_is_refused_before_decoding() -> None:
    """A form body of 10,000 or more ``&`` is a validationError, counted not decoded (a
    2 MB body of ``&`` decoded pair by pair held the reactor)."""
    env = make_env()
    answer = env.request("POST", BASE + "create", data=b"a=1" + b"&" * MAX_FORM_FIELDS,
                         headers=FORM)
    assert answer.key == "validationError"
    assert "at most 10000 parameters" in (answer.text("message") or "")
    boundary = "B"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
            * MAX_FORM_FIELDS + f"--{boundary}--\r\n").encode()
    answer = env.request("POST", BASE + "create", data=body, headers={
        "Content-Type": [f"multipart/form-data; boundary={boundary}"]})
    assert answer.key == "validationError"
