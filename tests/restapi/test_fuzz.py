"""Property: whatever arrives, the JSON:API answers with a clear error, never a 5xx.

Requests are generated from the OpenAPI document (every documented operation, with valid
and invalid path parameters, query parameters, headers, credentials and bodies) and sent
through the real resource tree. A server error would also be a logged failure, which the
autouse fixture in ``tests/conftest.py`` turns into a test failure.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetplatform.restapi import Limit, RateLimits
from meetplatform.restapi.model import ALL_TYPES
from tests.restapi.harness import Harness

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)

_ATTRIBUTE_NAMES = sorted({name for t in ALL_TYPES for name in t.attributes})
_TYPES = [t.type for t in ALL_TYPES] + ["", "nothing"]


def _setup() -> tuple[Harness, dict[str, Any], dict[str, str]]:
    h = Harness(Path(tempfile.mkdtemp(prefix="fuzz-")), rate_limits=RateLimits(
        client=Limit(1e6, 10**6), user=Limit(1e6, 10**6), anonymous=Limit(1e6, 10**6)))
    client = h.new_client()
    room = h.create_room(client)
    invitation = h.invite(client, room["id"], maxUses=1000)
    access = h.activate(invitation["attributes"]["token"]).json["data"]["attributes"]
    document = h.request("GET", "/openapi.json", headers={"Accept": "application/json"}).json
    ids = {"spaceId": client.space.id, "roomId": room["id"], "tokenId": invitation["id"],
           "meetingId": "m1", "participantId": "w_x", "client_token": client.token,
           "user_token": access["accessToken"], "secret": invitation["attributes"]["token"],
           "basic": client.basic}
    return h, document, ids


H, DOCUMENT, IDS = _setup()
OPERATIONS = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items()
                    for method in item)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None]:
    method, template = draw(st.sampled_from(OPERATIONS))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
    path = template
    for name in ("spaceId", "roomId", "tokenId", "meetingId", "participantId"):
        if "{" + name + "}" in path:
            value = draw(st.sampled_from([IDS[name], "x", "%ff", "..", "a%2Fb", "%C3%A9" * 3,
                                          IDS["roomId"] + "0", IDS[name] * 3]))
            path = path.replace("{" + name + "}", value)
    query = draw(st.lists(st.tuples(
        st.sampled_from(["page[size]", "page[after]", "pretty", "_method", "filter[x]", "q"]),
        st.sampled_from(["1", "0", "101", "false", "PATCH", "DELETE", "eyJ4Ijox", "%ff", ""])),
        max_size=3))
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query)
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["client", "user", "none", "basic", "garbage", "signature"]))
    headers["Authorization"] = {
        "client": f"Bearer {IDS['client_token']}", "user": f"Bearer {IDS['user_token']}",
        "none": "", "basic": IDS["basic"], "garbage": draw(st.text(max_size=40)),
        "signature": "MP-HMAC-SHA256 " + draw(st.text(max_size=60)),
    }[auth]
    headers["Content-Type"] = draw(st.sampled_from([
        "application/vnd.api+json", "application/json", "application/x-www-form-urlencoded",
        "text/plain", "application/vnd.api+json; ext=x", ""]))
    headers["Accept"] = draw(st.sampled_from([
        "application/vnd.api+json", "*/*", "text/html", "application/json", "",
        "application/vnd.api+json; q=0"]))
    if draw(st.booleans()):
        headers["X-HTTP-Method-Override"] = draw(st.sampled_from(["PATCH", "DELETE", "GET", "x"]))
    if draw(st.booleans()):
        headers["Accept-Encoding"] = "gzip"
    kind = draw(st.sampled_from(["none", "bytes", "json", "document", "form"]))
    body: bytes | None = None
    if kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "json":
        body = json.dumps(draw(_JSON)).encode()
    elif kind == "document":
        attributes = draw(st.dictionaries(st.sampled_from(_ATTRIBUTE_NAMES), _JSON,
                                          max_size=4))
        if draw(st.booleans()):
            attributes["token"] = IDS["secret"]
        data: dict[str, Any] = {"type": draw(st.sampled_from(_TYPES)),
                                "attributes": attributes}
        if draw(st.booleans()):
            data["id"] = draw(st.sampled_from([IDS["roomId"], IDS["spaceId"], "m2", "", "rm_x"]))
        body = json.dumps({"data": data}).encode()
    elif kind == "form":
        body = draw(st.sampled_from([
            b"grant_type=client_credentials", b"token=" + IDS["client_token"].encode(),
            b"grant_type=client_credentials&scope=rooms:read%20nope", b"a=%ff&b",
            b"token=" + IDS["secret"].encode()]))
    return method, path, {k: v for k, v in headers.items() if v}, body


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_no_request_gets_a_server_error(request: tuple[str, str, dict[str, str],
                                                       bytes | None]) -> None:
    """Generated requests to every documented operation never get a 5xx; every refusal is
    a JSON error document with a status and a code."""
    method, path, headers, body = request
    value = headers.get("Authorization", "")
    if any(ord(ch) < 32 or ord(ch) > 126 for ch in value):
        # not a valid header value: Twisted's HTTP parser refuses it before any resource
        headers.pop("Authorization", None)
    response = H.request(method, path, headers=headers, body=body)
    assert response.status < 500, (method, path, response.body[:500])
    if response.status >= 400 and method != "HEAD":
        content = response.body
        if response.header("content-encoding") == "gzip":
            import gzip

            content = gzip.decompress(content)
        errors = json.loads(content)["errors"]
        assert errors and all(e["status"] == str(response.status) and e["code"]
                              for e in errors)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_indented_encoding_is_byte_for_byte_the_standard_librarys(value: Any) -> None:
    """The fast indented encoder writes exactly what json.dumps(indent=2) writes."""
    from meetplatform.restapi import jsonapi

    expected = (json.dumps({"data": value}, indent=2, ensure_ascii=False) + "\n").encode()
    assert jsonapi.encode({"data": value}) == expected


def test_indented_encoding_of_unusual_values_falls_back_to_the_standard_library() -> None:
    """Tuples, non-string keys and str subclasses come out as json.dumps writes them."""
    import enum

    from meetplatform.restapi import jsonapi

    class Colour(str, enum.Enum):
        RED = "red"

    values: list[Any] = [{"t": (1, "x")}, {1: "a", None: 2.5}, {"e": Colour.RED}, {"b": True}]
    for value in values:
        assert jsonapi.encode(value) == (json.dumps(value, indent=2, ensure_ascii=False)
                                         + "\n").encode()


def test_an_encoded_value_encodes_as_its_value() -> None:
    """jsonapi.Encoded inside a document: the same text as the plain value, indented at
    any depth, compact, and through the standard library's fallback."""
    from meetplatform.restapi import jsonapi

    value = {"type": "rooms", "id": "rm_1", "attributes": {"name": "Zoë", "n": [1, 2.5, None]}}
    kept = jsonapi.Encoded(value)
    for doc, plain in (({"data": kept}, {"data": value}),
                       ({"data": [kept, kept]}, {"data": [value, value]}),
                       ({"data": kept, "t": (1,)}, {"data": value, "t": (1,)})):
        assert jsonapi.encode(doc) == jsonapi.encode(plain)
        assert jsonapi.encode(doc, pretty=False) == jsonapi.encode(plain, pretty=False)
