"""Text that is not valid Unicode is refused at the JSON:API's edge (meetplatform.text).

A lone UTF-16 surrogate (``"\\ud800"``) is valid JSON that :func:`json.loads` accepts; it
used to fail later, in the store, as a 500. Every way text enters the API (JSON bodies,
form bodies, the query, cursors, Basic credentials) now answers 400 with the field named.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.restapi.harness import JSONAPI, Harness

BAD = "Eve\ud800"
CODE = "request.invalidEncoding"


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_lone_surrogate_in_a_write_is_a_400_naming_the_field(h: Harness) -> None:
    client = h.new_client()
    room = h.create_room(client, name="Lab")
    cases = [
        ("POST", f"/spaces/{client.space.id}/rooms",
         {"data": {"type": "rooms", "attributes": {"name": BAD}}}, "/data/attributes/name"),
        ("POST", f"/spaces/{client.space.id}/rooms",
         {"data": {"type": "rooms", "attributes": {"name": "ok", "metadata": {"k": BAD}}}},
         "/data/attributes/metadata/k"),
        ("POST", f"/spaces/{client.space.id}/rooms",
         {"data": {"type": "rooms", "attributes": {"name": "ok", "metadata": {BAD: "v"}}}},
         "/data/attributes/metadata"),
        ("PATCH", f"/spaces/{client.space.id}",
         {"data": {"type": "spaces", "id": client.space.id, "attributes": {"name": BAD}}},
         "/data/attributes/name"),
        ("PATCH", f"/rooms/{room['id']}",
         {"data": {"type": "rooms", "id": room["id"], "attributes": {"name": BAD}}},
         "/data/attributes/name"),
        ("POST", f"/rooms/{room['id']}/join",
         {"data": {"type": "seats", "attributes": {"displayName": BAD}}},
         "/data/attributes/displayName"),
        ("POST", f"/rooms/{room['id']}/userTokens",
         {"data": {"type": "userTokens", "attributes": {"displayName": BAD}}},
         "/data/attributes/displayName"),
    ]
    for method, path, document, pointer in cases:
        r = h.request(method, path, token=client.token, json=document)
        assert r.status == 400, (path, pointer, r.body)
        error = r.json["errors"][0]
        assert error["code"] == CODE and error["source"] == {"pointer": pointer}, error
        assert "not valid Unicode" in error["detail"]
    # Nothing broken was kept: the space and its rooms read back.
    r = h.request("GET", f"/spaces/{client.space.id}/rooms", token=client.token)
    assert r.status == 200 and [x["attributes"]["name"] for x in r.json["data"]] == ["Lab"]
    assert h.request("GET", f"/spaces/{client.space.id}", token=client.token).status == 200


def test_bad_utf8_in_a_json_body_is_the_same_refusal(h: Harness) -> None:
    client = h.new_client()
    body = b'{"data": {"type": "rooms", "attributes": {"name": "\xed\xa0\x80"}}}'
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token, body=body,
                  content_type=JSONAPI)
    assert r.status == 400 and r.error_codes == [CODE]


def test_paired_surrogates_are_a_valid_character(h: Harness) -> None:
    client = h.new_client()
    body = b'{"data": {"type": "rooms", "attributes": {"name": "Party \\ud83c\\udf89"}}}'
    r = h.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token, body=body,
                  content_type=JSONAPI)
    assert r.status == 201 and r.json["data"]["attributes"]["name"] == "Party \U0001f389"


def test_a_refused_activation_leaves_the_invitation_usable(h: Harness) -> None:
    client = h.new_client()
    room = h.create_room(client)
    secret = h.invite(client, room["id"], maxUses=1)["attributes"]["token"]
    r = h.activate(secret, display_name=BAD)
    assert r.status == 400 and r.json["errors"][0]["source"] == {
        "pointer": "/data/attributes/displayName"}
    assert h.activate(secret, display_name="Eve").status == 200
    assert h.request("GET", f"/rooms/{room['id']}", token=client.token).status == 200


def test_a_query_value_that_is_not_utf8_names_its_parameter(h: Harness) -> None:
    client = h.new_client()
    for value in ("%ED%A0%80", "%FF"):
        r = h.request("GET", f"/spaces/{client.space.id}/rooms?page[after]={value}",
                      token=client.token)
        assert r.status == 400, r.body
        error = r.json["errors"][0]
        assert error["code"] == CODE and error["source"] == {"parameter": "page[after]"}


def test_a_forged_cursor_holding_a_lone_surrogate_is_not_a_cursor(h: Harness) -> None:
    client = h.new_client()
    cursor = base64.urlsafe_b64encode(b'[1,"\\ud800"]').rstrip(b"=").decode()
    r = h.request("GET", f"/spaces/{client.space.id}/rooms?page[after]={cursor}",
                  token=client.token)
    assert r.status == 400 and r.error_codes == ["page.invalidCursor"]


def test_token_requests_with_broken_text_are_refused_as_oauth_errors(h: Harness) -> None:
    client = h.new_client(with_token=False)
    form = "application/x-www-form-urlencoded"
    headers = {"Authorization": client.basic, "Accept": "application/json"}
    r = h.request("POST", "/oauth/token", body=b"grant_type=client_credentials&scope=%FF",
                  content_type=form, headers=headers)
    assert r.status == 400 and r.json["error"] == "invalid_request"
    assert r.json["errors"][0]["source"] == {"parameter": "scope"}
    r = h.request("POST", "/oauth/token", json={"grant_type": "client_credentials",
                                                "scope": BAD},
                  content_type="application/json", headers=headers)
    assert r.status == 400 and r.json["error"] == "invalid_request"
    assert r.json["errors"][0]["code"] == CODE
    # Basic credentials are percent-decoded as a form: broken text is no client.
    basic = "Basic " + base64.b64encode(f"{client.id}%ED%A0%80:x".encode()).decode()
    r = h.request("POST", "/oauth/token", body=b"grant_type=client_credentials",
                  content_type=form, headers={**headers, "Authorization": basic})
    assert r.status == 401 and r.json["error"] == "invalid_client"
    assert "not UTF-8" in r.json["error_description"]
    # The client itself is not affected.
    assert h.token_for(client)
