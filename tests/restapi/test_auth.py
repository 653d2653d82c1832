"""Authentication of the JSON:API: OAuth 2.0 client credentials, signed requests, scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from meetplatform.restapi.auth import parse_params, sign
from meetplatform.store.keys import signing_key_for
from tests.restapi.harness import PUBLIC_URL, Client, Harness
from tests.support import run

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def token_request(h: Harness, body: str | bytes, *, content_type: str = FORM,
                  authorization: str | None = None, path: str = "/oauth/token"):  # type: ignore
    headers = {"Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return h.request("POST", path, body=body if isinstance(body, bytes) else body.encode(),
                     content_type=content_type, headers=headers)


def test_token_with_http_basic(h: Harness) -> None:
    """Client credentials over HTTP Basic give a bearer token with its lifetime and scopes."""
    client = h.new_client(with_token=False)
    r = token_request(h, "grant_type=client_credentials", authorization=client.basic)
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    assert r.header("cache-control") == "no-store"
    body = r.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("mpat_")
    assert "rooms:write" in body["scope"].split()
    assert "refresh_token" not in body
    spaces = h.request("GET", "/spaces", token=body["access_token"])
    assert spaces.status == 200


def test_token_with_credentials_in_a_form_or_json_body(h: Harness) -> None:
    """client_id and client_secret may come in the form body or in a JSON body."""
    client = h.new_client(with_token=False)
    form = token_request(h, f"grant_type=client_credentials&client_id={client.id}"
                            f"&client_secret={client.secret}")
    assert form.status == 200
    as_json = token_request(h, json.dumps({"grant_type": "client_credentials",
                                           "client_id": client.id,
                                           "client_secret": client.secret}),
                            content_type="application/json")
    assert as_json.status == 200
    assert as_json.json["access_token"] != form.json["access_token"]


def test_token_scopes_can_be_narrowed(h: Harness) -> None:
    """A token asked for fewer scopes cannot do more: 403 with the scope it lacks."""
    client = h.new_client()
    reader = h.token_for(client, scope="rooms:read")
    assert h.request("GET", f"/spaces/{client.space.id}/rooms", token=reader).status == 200
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=reader,
                  json={"data": {"type": "rooms", "attributes": {"name": "x"}}})
    assert r.status == 403 and r.error_codes == ["auth.insufficientScope"]
    assert r.json["errors"][0]["meta"]["requiredScope"] == "rooms:write"


@pytest.mark.parametrize("body,status,error", [
    ("grant_type=password&username=a&password=b", 400, "unsupported_grant_type"),
    ("grant_type=client_credentials&scope=everything", 400, "invalid_scope"),
    ("scope=rooms:read", 400, "invalid_request"),
    ("grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request"),
])
def test_token_request_errors_follow_rfc_6749(h: Harness, body: str, status: int,
                                              error: str) -> None:
    """Bad token requests get the RFC 6749 error code, plus a JSON:API errors array."""
    client = h.new_client(with_token=False)
    r = token_request(h, body, authorization=client.basic)
    assert r.status == status
    assert r.json["error"] == error and r.json["errors"][0]["status"] == str(status)


def test_wrong_secret_and_unknown_client_are_401(h: Harness) -> None:
    """Wrong credentials get 401 invalid_client with a Basic challenge; nothing leaks
    which part was wrong."""
    client = h.new_client(with_token=False)
    wrong = "Basic " + base64.b64encode(f"{client.id}:nope".encode()).decode()
    unknown = "Basic " + base64.b64encode(f"mpc_nobody:{client.secret}".encode()).decode()
    for authorization in (wrong, unknown, "Basic !!!notbase64"):
        r = token_request(h, "grant_type=client_credentials", authorization=authorization)
        assert r.status == 401 and r.json["error"] == "invalid_client"
        assert r.header("www-authenticate", ).startswith("Basic")  # type: ignore[union-attr]
    detail = {token_request(h, "grant_type=client_credentials", authorization=a).json[
        "error_description"] for a in (wrong, unknown)}
    assert len(detail) == 1


def test_two_authentication_methods_at_once_are_refused(h: Harness) -> None:
    """Basic credentials and body credentials together are an invalid request (400)."""
    client = h.new_client(with_token=False)
    r = token_request(h, f"grant_type=client_credentials&client_id={client.id}&"
                         f"client_secret={client.secret}", authorization=client.basic)
    assert r.status == 400 and r.json["error"] == "invalid_request"


def test_access_tokens_expire_on_the_clock(h: Harness) -> None:
    """An access token works for an hour and is refused after that."""
    client = h.new_client()
    h.clock.advance(3599)
    assert h.request("GET", "/spaces", token=client.token).status == 200
    h.clock.advance(2)
    r = h.request("GET", "/spaces", token=client.token)
    assert r.status == 401 and r.error_codes == ["auth.invalidToken"]
    assert "Bearer" in (r.header("www-authenticate") or "")


def test_missing_or_malformed_credentials_are_401(h: Harness) -> None:
    """No Authorization, an unknown scheme or a made-up token: 401 with a challenge."""
    for headers in ({}, {"Authorization": "Digest abc"}, {"Authorization": "Bearer mpat_fake"},
                    {"Authorization": "Bearer \u00e9\u00e9"}):
        r = h.request("GET", "/spaces", headers=headers)
        assert r.status == 401, headers
        assert r.json["errors"][0]["source"] == {"header": "Authorization"}
        assert r.header("www-authenticate")


def test_revocation_rfc_7009(h: Harness) -> None:
    """A client revokes its own token (200); other clients' tokens are not touched, and
    unknown tokens also get 200."""
    alice, bob = h.new_client("alice"), h.new_client("bob")
    r = token_request(h, f"token={bob.token}", authorization=alice.basic, path="/oauth/revoke")
    assert r.status == 200 and r.json == {}
    assert h.request("GET", "/spaces", token=bob.token).status == 200
    r = token_request(h, "token=mpat_unknown", authorization=alice.basic, path="/oauth/revoke")
    assert r.status == 200
    r = token_request(h, f"token={alice.token}&token_type_hint=access_token",
                      authorization=alice.basic, path="/oauth/revoke")
    assert r.status == 200
    assert h.request("GET", "/spaces", token=alice.token).status == 401


def test_revocation_needs_client_authentication(h: Harness) -> None:
    """Revoking without authenticating is refused (401)."""
    client = h.new_client()
    r = token_request(h, f"token={client.token}", path="/oauth/revoke")
    assert r.status == 401 and r.json["error"] == "invalid_client"


def test_introspection_rfc_7662(h: Harness) -> None:
    """Introspection shows an active token's grant to its client only; revoked or foreign
    tokens are just inactive."""
    alice, bob = h.new_client("alice"), h.new_client("bob")
    r = token_request(h, f"token={alice.token}", authorization=alice.basic,
                      path="/oauth/introspect")
    assert r.status == 200
    info = r.json
    assert info["active"] is True and info["client_id"] == alice.id
    assert info["token_type"] == "Bearer" and info["space_id"] == alice.space.id
    assert info["exp"] - info["iat"] == 3600
    foreign = token_request(h, f"token={bob.token}", authorization=alice.basic,
                            path="/oauth/introspect")
    assert foreign.json == {"active": False}
    by_bearer = h.request("POST", "/oauth/introspect", body=f"token={alice.token}".encode(),
                          content_type=FORM, token=alice.token,
                          headers={"Accept": "application/json"})
    assert by_bearer.json["active"] is True


def test_introspecting_an_invitation(h: Harness) -> None:
    """An invitation secret introspects as an active user_token until it is used."""
    client = h.new_client()
    room = h.create_room(client)
    secret = h.invite(client, room["id"], role="moderator")["attributes"]["token"]
    r = token_request(h, f"token={secret}", authorization=client.basic,
                      path="/oauth/introspect")
    assert r.json["active"] is True and r.json["token_type"] == "user_token"
    assert r.json["room_id"] == room["id"] and r.json["role"] == "moderator"
    assert h.activate(secret).status == 200
    r = token_request(h, f"token={secret}", authorization=client.basic,
                      path="/oauth/introspect")
    assert r.json == {"active": False}


def test_revoking_the_client_stops_everything(h: Harness) -> None:
    """After `clients revoke`, the client's tokens and credentials are refused."""
    client = h.new_client()
    run(h.store.revoke_client(client.id, h.now_ms()))
    assert h.request("GET", "/spaces", token=client.token).status == 401
    r = token_request(h, "grant_type=client_credentials", authorization=client.basic)
    assert r.status == 401


# --- signed requests -----------------------------------------------------------------------


def signed(h: Harness, client: Client, method: str, path: str, body: bytes = b"", *,
           nonce: str = "nonce-0001", timestamp: int | None = None, secret: str | None = None,
           query: str = "", sign_method: str | None = None,
           headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    stamp = str(int(h.clock.seconds()) if timestamp is None else timestamp)
    full_path = "/api/v2" + path
    key = signing_key_for(secret or client.secret)
    signature = sign(key, sign_method or method, full_path, query, stamp, nonce, body)
    authorization = (f'MP-HMAC-SHA256 clientId="{client.id}", timestamp={stamp}, '
                     f'nonce="{nonce}", signature={signature}')
    url = PUBLIC_URL.replace("https", "http") + full_path + (f"?{query}" if query else "")
    all_headers = {"Authorization": authorization}
    all_headers.update(headers or {})
    return h.request(method, url, body=body or None, headers=all_headers,
                     content_type="application/vnd.api+json" if body else None)


def test_signed_requests_work_over_plain_http(h: Harness) -> None:
    """A request signed with HMAC-SHA256 is accepted (no token travels, plain HTTP is fine)."""
    client = h.new_client(with_token=False)
    r = signed(h, client, "GET", f"/spaces/{client.space.id}")
    assert r.status == 200, r.body
    body = json.dumps({"data": {"type": "rooms", "attributes": {"name": "Signed"}}}).encode()
    r = signed(h, client, "POST", f"/spaces/{client.space.id}/rooms", body, nonce="nonce-0002")
    assert r.status == 201, r.body
    r = signed(h, client, "GET", f"/spaces/{client.space.id}/rooms", nonce="nonce-0003",
               query="page[size]=1")
    assert r.status == 200 and len(r.json["data"]) == 1


def test_a_replayed_signature_is_refused(h: Harness) -> None:
    """The same signed request sent twice: the second is refused as a replay."""
    client = h.new_client(with_token=False)
    assert signed(h, client, "GET", "/spaces").status == 200
    r = signed(h, client, "GET", "/spaces")
    assert r.status == 401 and r.error_codes == ["auth.replayedRequest"]


def test_tampering_breaks_the_signature(h: Harness) -> None:
    """Changing the body, the path, the query or the method after signing is detected."""
    client = h.new_client(with_token=False)
    body = json.dumps({"data": {"type": "rooms", "attributes": {"name": "A"}}}).encode()
    stamp = str(int(h.clock.seconds()))
    key = signing_key_for(client.secret)
    path = f"/api/v2/spaces/{client.space.id}/rooms"
    good = sign(key, "POST", path, "", stamp, "nonce-aaaa", body)
    auth = f"MP-HMAC-SHA256 clientId={client.id}, timestamp={stamp}, nonce=nonce-aaaa, " \
           f"signature={good}"
    tampered = body.replace(b'"A"', b'"B"')
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", body=tampered,
                  content_type="application/vnd.api+json", headers={"Authorization": auth})
    assert r.status == 401 and r.error_codes == ["auth.invalidSignature"]
    r = h.request("POST", f"/spaces/{client.space.id}/rooms?pretty=false", body=body,
                  content_type="application/vnd.api+json", headers={"Authorization": auth})
    assert r.status == 401
    # the override changes the executed method, which is what is signed
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", body=body,
                  content_type="application/vnd.api+json",
                  headers={"Authorization": auth, "X-HTTP-Method-Override": "DELETE"})
    assert r.status in (401, 405)
    r = signed(h, client, "GET", "/spaces", secret=client.secret + "x", nonce="nonce-bbbb")
    assert r.status == 401 and r.error_codes == ["auth.invalidSignature"]


def test_signature_timestamps_are_checked_on_the_clock(h: Harness) -> None:
    """Timestamps more than 300 s away, or from before the server started, are refused."""
    client = h.new_client(with_token=False)
    h.clock.advance(1000)
    now = int(h.clock.seconds())
    assert signed(h, client, "GET", "/spaces", timestamp=now - 301).status == 401
    assert signed(h, client, "GET", "/spaces", timestamp=now + 301,
                  nonce="nonce-1111").status == 401
    r = signed(h, client, "GET", "/spaces", timestamp=now - 299, nonce="nonce-2222")
    assert r.status == 200
    fresh = Harness(h.settings.data_dir, store=h.store, clock=h.clock)  # a restart
    r = signed(fresh, client, "GET", "/spaces", timestamp=now - 5, nonce="nonce-3333")
    assert r.status == 401 and r.error_codes == ["auth.staleRequest"]
    assert r.json["errors"][0]["meta"]["serverTime"] == now


@pytest.mark.parametrize("authorization", [
    "MP-HMAC-SHA256 clientId=x",
    "MP-HMAC-SHA256 clientId=x, timestamp=abc, nonce=nonce-1234, signature=00",
    "MP-HMAC-SHA256 garbage",
    'MP-HMAC-SHA256 clientId="a", clientId="b", timestamp=1, nonce=nonce-1234, signature=0',
])
def test_malformed_signatures_are_401(h: Harness, authorization: str) -> None:
    """Malformed signature headers get a clear 401, never a server error."""
    r = h.request("GET", "/spaces", headers={"Authorization": authorization})
    assert r.status == 401 and r.json["errors"][0]["code"].startswith("auth.")


def test_the_query_is_signed_as_the_published_description_says(h: Harness) -> None:
    """The OpenAPI text says the query is signed canonically (decoded, sorted, re-encoded),
    not as sent; a client following it, with parameters sent in another order and
    encoding than the canonical one, is accepted."""
    text = h.request("GET", "/openapi.json", headers={"Accept": "application/json"}).json[
        "components"]["securitySchemes"]["requestSignature"]["description"]
    assert "as sent," not in text and "sorted by name and then value" in text
    client = h.new_client(with_token=False)
    sent = "pretty=false&page%5Bsize%5D=1"
    documented = "page%5Bsize%5D=1&pretty=false"  # sorted; [ ] percent-encoded
    stamp = str(int(h.clock.seconds()))
    path = f"/api/v2/spaces/{client.space.id}/rooms"
    signature = sign(signing_key_for(client.secret), "GET", path, documented, stamp,
                     "nonce-q001", b"")
    auth = (f"MP-HMAC-SHA256 clientId={client.id}, timestamp={stamp}, nonce=nonce-q001, "
            f"signature={signature}")
    r = h.request("GET", f"/spaces/{client.space.id}/rooms?{sent}",
                  headers={"Authorization": auth})
    assert r.status == 200, r.body


def test_signature_key_derivation_matches_the_documentation() -> None:
    """The key is HMAC-SHA256(client_secret, "meetplatform request signing v1")."""
    secret = "mpcs_example"
    expected = hmac.new(secret.encode(), b"meetplatform request signing v1",
                        hashlib.sha256).digest()
    assert signing_key_for(secret) == expected
    assert parse_params('a=1, b="two words", c=3') == {"a": "1", "b": "two words", "c": "3"}


# --- invited users' tokens ------------------------------------------------------------------


def test_user_tokens_are_limited_to_their_room_and_role(h: Harness) -> None:
    """An invited participant's token reads its room, not others, and cannot manage."""
    client = h.new_client()
    room = h.create_room(client, name="Mine")
    other = h.create_room(client, name="Other")
    secret = h.invite(client, room["id"])["attributes"]["token"]
    access = h.activate(secret).json["data"]["attributes"]["accessToken"]
    assert h.request("GET", f"/rooms/{room['id']}", token=access).status == 200
    r = h.request("GET", f"/rooms/{other['id']}", token=access)
    assert r.status == 403 and r.error_codes == ["auth.outOfScope"]
    listed = h.request("GET", f"/spaces/{client.space.id}/rooms", token=access).json["data"]
    assert [x["id"] for x in listed] == [room["id"]]
    r = h.request("PATCH", f"/rooms/{room['id']}", token=access,
                  json={"data": {"type": "rooms", "id": room["id"], "attributes": {}}})
    assert r.status == 403 and r.error_codes == ["auth.clientTokenRequired"]
    r = h.request("GET", "/meetings", token=access)
    assert r.status == 403


def test_revoking_the_invitation_revokes_the_users_access(h: Harness) -> None:
    """DELETE of an invitation also ends the access tokens its activation handed out."""
    client = h.new_client()
    room = h.create_room(client)
    invitation = h.invite(client, room["id"], maxUses=2)
    access = h.activate(invitation["attributes"]["token"]).json["data"]["attributes"][
        "accessToken"]
    assert h.request("GET", f"/rooms/{room['id']}", token=access).status == 200
    assert h.request("DELETE", f"/userTokens/{invitation['id']}",
                     token=client.token).status == 204
    assert h.request("GET", f"/rooms/{room['id']}", token=access).status == 401


def test_expired_tokens_are_purged_a_day_later(h: Harness) -> None:
    """The periodic purge forgets access tokens a day after they expired, not before."""
    client = h.new_client()
    h.clock.advance(3600 + 86_400 - 1)
    assert run(h.api.purge_expired_tokens()) == 0
    h.clock.advance(2)
    assert run(h.api.purge_expired_tokens()) == 1
    assert run(h.store.find_access_token(client.token)) is None


# --- the cache of verified bearer tokens ---------------------------------------------------


def test_a_cached_token_revoked_answers_401_at_once(h: Harness) -> None:
    """A token served from the cache (used just before) is refused on the very next request
    after its revocation through the API, a client rotation or a client revocation."""
    alice, bob, carol = h.new_client("alice"), h.new_client("bob"), h.new_client("carol")
    for client in (alice, bob, carol):
        assert h.request("GET", "/spaces", token=client.token).status == 200
        assert h.request("GET", "/spaces", token=client.token).status == 200  # cached
    assert token_request(h, f"token={alice.token}", authorization=alice.basic,
                         path="/oauth/revoke").status == 200
    assert h.request("GET", "/spaces", token=alice.token).status == 401
    run(h.store.rotate_client(bob.id, h.now_ms()))
    assert h.request("GET", "/spaces", token=bob.token).status == 401
    run(h.store.revoke_client(carol.id, h.now_ms()))
    assert h.request("GET", "/spaces", token=carol.token).status == 401


def test_a_cached_token_expires_on_time(h: Harness) -> None:
    """The cache never extends a token's life: at its expiry it is refused."""
    client = h.new_client()
    assert h.request("GET", "/spaces", token=client.token).status == 200
    h.clock.advance(3600 - 0.5)
    assert h.request("GET", "/spaces", token=client.token).status == 200
    h.clock.advance(0.5)
    assert h.request("GET", "/spaces", token=client.token).status == 401


def test_a_revocation_by_another_process_is_seen_within_the_recheck_bound(
        h: Harness, tmp_path: Path) -> None:
    """The operator CLI revokes through its own connection (no in-process signal): the
    cached token is checked against the database again after TOKEN_RECHECK_S."""
    from meetplatform.restapi.auth import TOKEN_RECHECK_S
    from meetplatform.store import open_database

    client = h.new_client()
    assert h.request("GET", "/spaces", token=client.token).status == 200
    other = open_database(tmp_path)
    other.revoke_client(client.id, h.now_ms())
    other.close()
    h.clock.advance(TOKEN_RECHECK_S)
    assert h.request("GET", "/spaces", token=client.token).status == 401


def test_a_lookup_that_raced_a_revocation_is_not_cached(h: Harness) -> None:
    """A record read before a revocation finished is not kept: the cache drops entries put
    with an older credentials epoch."""
    from meetplatform.restapi.auth import TokenCache

    client = h.new_client()
    record = run(h.store.find_access_token(client.token))
    cache = TokenCache(h.clock, h.store)
    key = TokenCache.key(client.token)
    epoch = h.store.credentials_epoch
    run(h.store.revoke_access_token("mpat_other", client.id, h.now_ms()))
    cache.put(key, record, epoch, h.clock.seconds())
    assert cache.get(key, h.now_ms()) is None
    cache.put(key, record, h.store.credentials_epoch, h.clock.seconds())
    assert cache.get(key, h.now_ms()) == record
