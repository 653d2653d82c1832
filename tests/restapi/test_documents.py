"""The ``documents`` resource: add a document to a room's live meeting, follow its
conversion, choose what everyone sees."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from meetplatform.model import Meeting
from tests.documents.pdfs import make_png
from tests.restapi.harness import Client, Harness
from tests.restapi.test_resources import connect, doc


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def live_room(h: Harness) -> tuple[Client, dict[str, Any], Meeting]:
    client = h.new_client()
    room = h.create_room(client)
    host = h.invite(client, room["id"], role="moderator", displayName="Host")
    activation = h.activate(host["attributes"]["token"]).json["data"]["attributes"]
    participant = connect(h, activation["sessionToken"])
    return client, room, participant.meeting


def test_a_document_is_added_converted_listed_and_shown(h: Harness) -> None:
    client, room, meeting = live_room(h)
    base = f"/rooms/{room['id']}/documents"
    picture = base64.b64encode(make_png(8, 6)).decode()
    r = h.request("POST", base, token=client.token,
                  json=doc("documents", {"filename": "board.png", "content": picture,
                                         "downloadable": True}))
    assert r.status == 202, r.body
    first = r.json["data"]
    assert r.header("location") == h.api.url(f"{base}/{first['id']}")
    assert first["attributes"]["state"] in ("queued", "converting", "ready")
    assert "content" not in first["attributes"]
    h.clock.advance(0)
    listed = h.request("GET", base, token=client.token).json["data"]
    assert [(d["id"], d["attributes"]["state"], d["attributes"]["pagesTotal"],
             d["attributes"]["current"]) for d in listed] == [(first["id"], "ready", 1, True)]
    assert listed[0]["attributes"]["pageUrl"].endswith(
        f"/presentations/{meeting.internal_id}/{first['id']}/page-{{page}}.png")
    second = h.request("POST", base, token=client.token, json=doc(
        "documents", {"filename": "other.png", "content": picture})).json["data"]["id"]
    h.clock.advance(0)
    assert meeting.presentation.current_document == first["id"]
    r = h.request("PATCH", f"{base}/{second}", token=client.token,
                  json=doc("documents", {"current": True}, second))
    assert r.status == 200 and r.json["data"]["attributes"]["current"] is True
    assert meeting.presentation.current_document == second
    r = h.request("PATCH", f"{base}/{second}", token=client.token,
                  json=doc("documents", {"page": 2}, second))
    assert r.status == 422 and r.error_codes == ["document.page"]
    r = h.request("PATCH", f"{base}/{first['id']}", token=client.token,
                  json=doc("documents", {"page": 1}, first["id"]))
    assert r.status == 422 and r.error_codes == ["document.notCurrent"]


def test_refusals(h: Harness) -> None:
    client, room, _ = live_room(h)
    base = f"/rooms/{room['id']}/documents"
    both = doc("documents", {"filename": "a.pdf", "url": "https://a.example/a.pdf",
                             "content": "AAAA"})
    assert h.request("POST", base, token=client.token, json=both).error_codes == [
        "document.source"]
    bad = doc("documents", {"filename": "a.pdf", "content": "not base64!"})
    assert h.request("POST", base, token=client.token, json=bad).error_codes == [
        "document.content"]
    assert h.request("GET", f"{base}/nope", token=client.token).status == 404
    other_room = h.create_room(client)
    r = h.request("POST", f"/rooms/{other_room['id']}/documents", token=client.token,
                  json=doc("documents", {"filename": "a.png", "content": "AAAA"}))
    assert r.status == 409 and r.error_codes == ["room.notLive"]
    assert h.request("GET", f"/rooms/{other_room['id']}/documents",
                     token=client.token).json["data"] == []


def test_a_url_to_a_loopback_address_ends_failed_with_its_message(h: Harness) -> None:
    client, room, _ = live_room(h)
    base = f"/rooms/{room['id']}/documents"
    r = h.request("POST", base, token=client.token, json=doc(
        "documents", {"filename": "s.pdf", "url": "http://127.0.0.1:9/s.pdf"}))
    assert r.status == 202
    h.clock.advance(0)
    [listed] = h.request("GET", base, token=client.token).json["data"]
    assert listed["attributes"]["state"] == "failed"
    assert listed["attributes"]["error"] == (
        "The document URL was refused: 127.0.0.1 is not a public address "
        "(public addresses only)")
    assert "url" not in listed["attributes"]
