"""The JSON:API conventions: media types, formatting, gzip, method override, limits."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from meetplatform.restapi import Limit, RateLimits
from tests.restapi.harness import JSONAPI, PUBLIC_URL, Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def room_doc(name: str = "Room") -> dict[str, object]:
    return {"data": {"type": "rooms", "attributes": {"name": name}}}


def test_responses_are_json_api_and_pretty_by_default(h: Harness) -> None:
    """Responses use application/vnd.api+json, indented; ?pretty=false makes them compact."""
    client = h.new_client()
    r = h.request("GET", "/spaces", token=client.token)
    assert r.header("content-type") == JSONAPI
    assert r.body.startswith(b'{\n  "data"')
    assert r.json["jsonapi"] == {"version": "1.1"}
    compact = h.request("GET", "/spaces?pretty=false", token=client.token)
    assert b"\n" not in compact.body
    assert json.loads(compact.body)["data"] == r.json["data"]


def test_gzip_when_asked(h: Harness) -> None:
    """With Accept-Encoding: gzip the body is compressed; the content is the same."""
    client = h.new_client()
    plain = h.request("GET", "/spaces", token=client.token)
    r = h.request("GET", "/spaces", token=client.token, headers={"Accept-Encoding": "gzip"})
    assert r.header("content-encoding") == "gzip"
    assert r.header("vary") == "Accept-Encoding"
    assert gzip.decompress(r.body) == plain.body
    refused = h.request("GET", "/spaces", token=client.token,
                        headers={"Accept-Encoding": "gzip;q=0"})
    assert refused.header("content-encoding") is None


def test_responses_with_secrets_are_never_compressed(h: Harness) -> None:
    """Token issuance and invitation creation are not gzipped, even when asked (BREACH)."""
    client = h.new_client()
    room = h.create_room(client)
    r = h.request("POST", f"/rooms/{room['id']}/userTokens", token=client.token,
                  json={"data": {"type": "userTokens", "attributes": {}}},
                  headers={"Accept-Encoding": "gzip"})
    assert r.status == 201 and r.header("content-encoding") is None
    r = h.request("POST", "/oauth/token", body=b"grant_type=client_credentials",
                  content_type="application/x-www-form-urlencoded",
                  headers={"Authorization": client.basic, "Accept-Encoding": "gzip",
                           "Accept": "application/json"})
    assert r.status == 200 and r.header("content-encoding") is None


def test_no_cookies_and_no_caching(h: Harness) -> None:
    """No response sets a cookie; every response says Cache-Control: no-store."""
    client = h.new_client()
    for path in ("/", "/spaces", "/nowhere"):
        r = h.request("GET", path, token=client.token)
        assert "set-cookie" not in r.headers
        assert r.header("cache-control") == "no-store"


@pytest.mark.parametrize("content_type,status", [
    ("application/vnd.api+json", 201),
    ("application/json", 201),
    ("application/vnd.api+json; charset=utf-8", 415),
    ('application/vnd.api+json; ext="https://example.com/ext"', 415),
    ("text/plain", 415),
    ("application/x-www-form-urlencoded", 415),
])
def test_request_media_types(h: Harness, content_type: str, status: int) -> None:
    """Bodies are JSON:API (or plain JSON); anything else, or media type parameters other
    than ext/profile, is 415."""
    client = h.new_client()
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token,
                  json=room_doc(), content_type=content_type)
    assert r.status == status
    if status == 415:
        assert r.json["errors"][0]["source"] == {"header": "Content-Type"}


@pytest.mark.parametrize("accept,status", [
    ("application/vnd.api+json", 200),
    ("application/json", 200),
    ("*/*", 200),
    ("text/html,application/xhtml+xml,*/*;q=0.8", 200),
    ("application/vnd.api+json; foo=bar", 406),
    ("text/html", 406),
])
def test_accept_negotiation(h: Harness, accept: str, status: int) -> None:
    """Accept must allow JSON:API (without parameters) or JSON; otherwise 406."""
    client = h.new_client()
    r = h.request("GET", "/spaces", token=client.token, headers={"Accept": accept})
    assert r.status == status


def test_method_override_on_post(h: Harness) -> None:
    """POST with X-HTTP-Method-Override or ?_method= runs PATCH/DELETE."""
    client = h.new_client()
    room = h.create_room(client)
    patch = {"data": {"type": "rooms", "id": room["id"], "attributes": {"name": "Renamed"}}}
    r = h.request("POST", f"/rooms/{room['id']}", token=client.token, json=patch,
                  headers={"X-HTTP-Method-Override": "PATCH"})
    assert r.status == 200 and r.json["data"]["attributes"]["name"] == "Renamed"
    r = h.request("POST", f"/rooms/{room['id']}?_method=DELETE", token=client.token)
    assert r.status == 204
    assert h.request("GET", f"/rooms/{room['id']}", token=client.token).status == 404


@pytest.mark.parametrize("method,headers,query", [
    ("GET", {"X-HTTP-Method-Override": "DELETE"}, ""),
    ("GET", {}, "?_method=DELETE"),
    ("POST", {"X-HTTP-Method-Override": "TRACE"}, ""),
    ("POST", {"X-HTTP-Method-Override": "PATCH"}, "?_method=DELETE"),
])
def test_method_override_is_refused_elsewhere(h: Harness, method: str,
                                              headers: dict[str, str], query: str) -> None:
    """The override works on POST only, to PATCH/PUT/DELETE only, and must agree."""
    client = h.new_client()
    room = h.create_room(client)
    r = h.request(method, f"/rooms/{room['id']}{query}", token=client.token, headers=headers)
    assert r.status == 400
    assert r.json["errors"][0]["code"].startswith("request.methodOverride")
    assert h.request("GET", f"/rooms/{room['id']}", token=client.token).status == 200


def test_unknown_routes_and_methods_are_json_api_errors(h: Harness) -> None:
    """Unknown paths are 404 and wrong methods 405 (with Allow), as JSON:API errors."""
    client = h.new_client()
    r = h.request("GET", "/nowhere", token=client.token)
    assert r.status == 404 and r.error_codes == ["request.notFound"]
    r = h.request("PUT", "/spaces", token=client.token)
    assert r.status == 405 and r.header("allow") == "GET"
    assert r.header("content-type") == JSONAPI
    r = h.request("GET", "/spaces/", token=client.token)
    assert r.status == 404 and r.header("location") is None


def test_bad_bodies(h: Harness) -> None:
    """Invalid JSON, missing data, or a list are each a clear 400/422, never a 500."""
    client = h.new_client()
    path = f"/spaces/{client.space.id}/rooms"
    cases = [(b"{not json", 400), (b"\xff\xfe", 400), (b"[]", 422), (b"{}", 422),
             (b'{"data": []}', 422), (b'{"data": {"type": "rooms", "attributes": []}}', 422),
             (b'{"data": {"type": "rooms"}}', 422), (b"NaN", 400), (b"", 400),
             (b'{"data": {"type": "rooms", "attributes": {"name": "\\u0000"}}}', 422),
             (b"[" * 50_000, 400)]
    for body, status in cases:
        r = h.request("POST", path, token=client.token, body=body, content_type=JSONAPI)
        assert r.status == status, (body[:30], r.body)
        assert r.json["errors"][0]["status"] == str(status)


def test_size_limits(tmp_path: Path) -> None:
    """Bodies over the limit get 413; URLs over the query limit get 414."""
    h = Harness(tmp_path, max_query_bytes=1000)
    client = h.new_client()
    big = json.dumps({"data": {"type": "rooms", "attributes": {
        "name": "x", "metadata": {"k": "v" * 70_000}}}}).encode()
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token, body=big,
                  content_type=JSONAPI)
    assert r.status == 413
    r = h.request("GET", "/spaces?page[after]=" + "a" * 1000, token=client.token)
    assert r.status == 414
    meta = {f"k{i}": "v" * 1000 for i in range(5)}
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token,
                  json={"data": {"type": "rooms", "attributes": {"name": "x",
                                                                 "metadata": meta}}})
    assert r.status == 422 and r.json["errors"][0]["source"]["pointer"] == (
        "/data/attributes/metadata")


def test_bad_urls(h: Harness) -> None:
    """Invalid UTF-8 in the URL, unknown or repeated parameters: 400, not a crash."""
    client = h.new_client()
    for path in ("/rooms/%ff%fe", "/spaces?page%ff=1", "/spaces?colour=red",
                 "/spaces?page[size]=1&page[size]=2", "/spaces?pretty=maybe"):
        r = h.request("GET", path, token=client.token)
        assert r.status == 400, (path, r.body)


def test_head_requests(h: Harness) -> None:
    """HEAD answers like GET, without a body."""
    client = h.new_client()
    r = h.request("HEAD", "/spaces", token=client.token)
    assert r.status == 200 and r.body == b""


def test_index_and_openapi_are_public(h: Harness) -> None:
    """The API root links to the OpenAPI document; both need no credentials."""
    r = h.request("GET", "/")
    assert r.status == 200 and r.json["links"]["openapi"] == f"{PUBLIC_URL}/api/v2/openapi.json"
    assert h.request("GET", f"{PUBLIC_URL}/api/v2").json == r.json
    r = h.request("GET", "/openapi.json", headers={"Accept": "application/json"})
    assert r.status == 200 and r.json["openapi"] == "3.1.0"


def test_rate_limits_per_client_with_retry_after(tmp_path: Path) -> None:
    """Past its burst a client gets 429 with Retry-After; others are unaffected; time
    (on the injected clock) refills the bucket."""
    h = Harness(tmp_path, rate_limits=RateLimits(client=Limit(rate=1.0, burst=4)))
    alice, bob = h.new_client("alice"), h.new_client("bob")  # getting a token costs one
    statuses = [h.request("GET", "/spaces", token=alice.token).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = h.request("GET", "/spaces", token=alice.token)
    assert r.status == 429 and r.header("retry-after") == "1"
    assert r.json["errors"][0]["meta"]["retryAfterSec"] == 1
    assert h.request("GET", "/spaces", token=bob.token).status == 200
    h.clock.advance(1)
    assert h.request("GET", "/spaces", token=alice.token).status == 200


def test_anonymous_calls_are_rate_limited_per_address(tmp_path: Path) -> None:
    """Activation attempts and failed authentications count against the caller's address."""
    h = Harness(tmp_path, rate_limits=RateLimits(anonymous=Limit(rate=0.5, burst=5)))
    codes = [h.activate("mput_guess" + str(i) * 40).status for i in range(5)]
    assert codes == [404] * 5
    r = h.activate("mput_guess" + "9" * 40)
    assert r.status == 429 and r.header("retry-after") == "2"
    h.clock.advance(2)
    assert h.request("GET", "/spaces", token="mpat_wrong").status == 401
    assert h.request("GET", "/spaces", token="mpat_wrong").status == 429


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
        tmp_path: Path) -> None:
    """Issue 13: behind the recommended reverse proxy, 40 bad bearer tokens from one user
    gave 429 to everybody. Now the anonymous bucket is the forwarded client's: another
    forwarded client still gets its token and activates, an authenticated client is
    served from its own bucket, and a forwarded-for header from a peer that is not a
    trusted proxy is ignored."""
    h = Harness(tmp_path, trusted_proxies=("127.0.0.0/8",))
    alice, bob = h.new_client("alice"), h.new_client("bob", with_token=False)
    eve = {"X-Forwarded-For": "198.51.100.66"}
    statuses = [h.request("GET", "/spaces", token="mpat_wrong", headers=eve).status
                for _ in range(40)]
    assert statuses[0] == 401 and statuses[-1] == 429
    other = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}  # 6.6.6.6: written by the client
    r = h.request("POST", "/oauth/token", body=b"grant_type=client_credentials",
                  content_type="application/x-www-form-urlencoded",
                  headers={**other, "Authorization": bob.basic, "Accept": "application/json"})
    assert r.status == 200, r.body
    assert h.activate("mput_guess" + "1" * 40).status == 404  # from 127.0.0.1 itself
    assert h.request("GET", "/spaces", token=alice.token, headers=eve).status == 200
    # The same forwarded header from a peer that is no trusted proxy names nobody.
    untrusted = Harness(tmp_path / "untrusted")
    statuses = [untrusted.request("GET", "/spaces", token="mpat_wrong",
                                  headers={"X-Forwarded-For": f"198.51.100.{i}"}).status
                for i in range(40)]
    assert statuses[-1] == 429
    assert untrusted.activate("mput_guess" + "1" * 40).status == 429
def test_a_request_without_credentials_is_401_even_when_the_address_is_limited(
        tmp_path: Path) -> None:
    """Wrong credentials count against the address (then 429); a request with none guesses
    nothing and is always told to authenticate (401), as the OpenAPI security says."""
    h = Harness(tmp_path, rate_limits=RateLimits(anonymous=Limit(rate=0.1, burst=2)))
    assert [h.request("GET", "/spaces", token="mpat_wrong").status for _ in range(3)] == [
        401, 401, 429]
    r = h.request("GET", "/spaces")
    assert r.status == 401 and r.header("www-authenticate") is not None


def test_the_query_parameters_take_exactly_the_documented_values(h: Harness) -> None:
    """pretty takes true/false/1/0/yes/no (lower case), page[size] 1 to 100 without
    leading zeros, page[after] only the cursor form; others are a 400 naming them."""
    client = h.new_client()
    for query, parameter in (("pretty=TRUE", "pretty"), ("pretty=0.0", "pretty"),
                             ("page[size]=0", "page[size]"), ("page[size]=007", "page[size]"),
                             ("page[size]=101", "page[size]"),
                             ("page[after]=%01", "page[after]"),
                             ("page[after]=abc", "page[after]")):
        r = h.request("GET", f"/spaces?{query}", token=client.token)
        assert r.status == 400 and r.json["errors"][0]["source"] == {"parameter": parameter}
    for query in ("pretty=no", "page[size]=100", "page[after]=0.", "page[after]=17.6869"):
        assert h.request("GET", f"/spaces?{query}", token=client.token).status == 200, query


def test_any_cursor_of_the_documented_form_is_a_position(h: Harness) -> None:
    """A cursor is <number>.<hex of an id>: every such string pages from that key, so the
    published pattern is exactly what is accepted (hand-made ones included)."""
    client = h.new_client()
    names = [h.create_room(client, name=f"R{i}")["attributes"]["name"] for i in range(3)]
    first = h.request("GET", f"/spaces/{client.space.id}/rooms?page[size]=1",
                      token=client.token).json
    cursor = first["links"]["next"].split("page[after]=")[1]
    assert re.fullmatch(r"[0-9]{1,15}\.(?:[0-9a-f]{2})*", cursor)
    rest = h.request("GET", f"/spaces/{client.space.id}/rooms?page[after]={cursor}",
                     token=client.token).json["data"]
    seen = [r["attributes"]["name"] for r in first["data"] + rest]
    assert sorted(seen) == sorted(names)
    for made in ("0.", "999999999999999.ff", "1." + "c3" * 3):
        r = h.request("GET", f"/spaces/{client.space.id}/rooms?page[after]={made}",
                      token=client.token)
        assert r.status == 200, (made, r.body)


def test_allow_names_the_methods_of_the_literal_resource(h: Harness) -> None:
    """/userTokens/activate is its own resource (POST): a 405 there names only POST, not
    the GET and DELETE of /userTokens/{tokenId}."""
    r = h.request("PUT", "/userTokens/activate")
    assert r.status == 405 and r.header("allow") == "POST"
    r = h.request("PUT", "/userTokens/ut_x")
    assert r.status == 405 and r.header("allow") == "DELETE, GET"


def test_ending_an_ended_meeting_again_is_204(h: Harness) -> None:
    """DELETE is idempotent: a meeting that has just ended ends again with 204; reading it
    still says 410 Gone; an unknown one is 404."""
    client = h.new_client()
    created = h.request("POST", "/meetings", token=client.token, json={"data": {
        "type": "meetings", "id": "m-1", "attributes": {"name": "M"}}})
    assert created.status == 201
    assert h.request("DELETE", "/meetings/m-1", token=client.token).status == 204
    assert h.request("DELETE", "/meetings/m-1", token=client.token).status == 204
    assert h.request("GET", "/meetings/m-1", token=client.token).status == 410
    assert h.request("DELETE", "/meetings/nobody", token=client.token).status == 404
