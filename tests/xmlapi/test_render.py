"""XML and JSON rendering of XML API answers (pure functions)."""

from __future__ import annotations

import json

import pytest

from meetplatform.xmlapi.render import (
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


def test_text_is_escaped_and_invalid_characters_dropped() -> None:
    """Markup characters are escaped; characters XML cannot carry are dropped."""
    assert escape('a<b>&"c"\x01\x0b') == "a&lt;b&gt;&amp;&quot;c&quot;"
    assert escape("plain") == "plain"


def test_values_render_as_bbb_does() -> None:
    """Booleans as true/false, numbers as digits, None as an empty element."""
    body = xml_body([("returncode", "SUCCESS"), ("running", False), ("n", 12),
                     ("messageKey", None)])
    assert body == (b"<response><returncode>SUCCESS</returncode><running>false</running>"
                    b"<n>12</n><messageKey></messageKey></response>")


def test_containers_and_empty_containers() -> None:
    """Repeated elements sit in their container; empty containers are self-closed."""
    body = xml_body([("meetings", Items("meeting", [[("id", "a")], [("id", "b")]])),
                     ("attendees", Items("attendee", [])), ("metadata", [])])
    assert body == (b"<response><meetings><meeting><id>a</id></meeting><meeting><id>b</id>"
                    b"</meeting></meetings><attendees/><metadata/></response>")


def test_attributes_and_fragments() -> None:
    """Attribute values are escaped; fragments and raw XML are spliced in place."""
    fragment = Fragment([("a", "1")])
    body = xml_body([("image", Attrs([("alt", 'x"y')], "u&v")), ("", fragment),
                     ("", Raw("<b>2</b>"))])
    assert body == b'<response><image alt="x&quot;y">u&amp;v</image><a>1</a><b>2</b></response>'


def test_json_has_the_same_fields() -> None:
    """JSON keeps element names and order; containers become arrays, booleans stay booleans."""
    nodes: list[Node] = [("returncode", "SUCCESS"), ("", Fragment([("meetingID", "m")])),
             ("running", True), ("attendees", Items("attendee", [[("fullName", "A")]])),
             ("metadata", [("k", "v")]), ("messageKey", None),
             ("images", Items("image", [Attrs([("width", "10")], "u")]))]
    assert json.loads(json_body(nodes)) == {"response": {
        "returncode": "SUCCESS", "meetingID": "m", "running": True,
        "attendees": [{"fullName": "A"}], "metadata": {"k": "v"}, "messageKey": "",
        "images": [{"width": "10", "value": "u"}]}}


def test_jsonp_wraps_the_json() -> None:
    """JSONP calls the named function with the JSON document."""
    assert json_body([("returncode", "SUCCESS")], "app.cb") == (
        b'/**/app.cb({"response":{"returncode":"SUCCESS"}});')


def test_json_is_ascii_safe() -> None:
    """Non-ASCII text is escaped in JSON, so JSONP bodies are plain ASCII."""
    assert json_body([("name", "Jörg\u2028")]) == b'{"response":{"name":"J\\u00f6rg\\u2028"}}'


@pytest.mark.parametrize("name,ok", [
    ("cb", True), ("jQuery123_456", True), ("a.b.$c", True), ("", False), ("1abc", False),
    ("alert(1)", False), ("a;b", False), ("a..b", False), ("x" * 65, False),
])
def test_callback_names(name: str, ok: bool) -> None:
    """Only plain dotted JavaScript identifiers are accepted as JSONP callbacks."""
    assert valid_callback(name) is ok


def test_raw_xml_has_no_json_form() -> None:
    """A handler's raw XML cannot be sent as JSON by mistake."""
    with pytest.raises(TypeError):
        json_body([("", Raw("<a/>"))])
