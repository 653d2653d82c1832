"""Per-space webhook endpoints in the JSON:API, and the Standard Webhooks events they get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meetplatform.model import EndReason
from meetplatform.webhooks import DeliveryPolicy, signing
from tests.webhooks.harness import FakeSender, Sent, World, enter, refused


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def add_endpoint(w: World, token: str, space_id: str, **attributes: Any) -> dict[str, Any]:
    attributes.setdefault("url", "http://127.0.0.1:9/events")
    r = w.rest.request("POST", f"/spaces/{space_id}/webhookEndpoints", token=token,
                       json={"data": {"type": "webhookEndpoints", "attributes": attributes}})
    assert r.status == 201, r.body
    return r.json["data"]  # type: ignore[no-any-return]


def verified(sent: list[Sent], secret: str, now: float) -> list[dict[str, Any]]:
    """The events of guarded POSTs, each checked as a Standard Webhooks receiver does."""
    out = []
    for request in sent:
        if not request.guarded:
            continue
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/json"
        signing.verify(secret, request.headers, request.body, now)
        event = json.loads(request.body)
        assert request.headers["webhook-id"] == event["id"]
        out.append(event)
    return out


def test_the_secret_is_shown_once_and_events_are_signed(w: World) -> None:
    """Creating an endpoint returns its secret once; reading it never does; its events
    (rooms, sessions, participants, invitations) arrive signed with that secret."""
    client = w.rest.new_client()
    created = add_endpoint(w, client.token, client.space.id, description="LMS")
    secret = created["attributes"]["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = created["id"]
    again = w.rest.request("GET", f"/webhookEndpoints/{endpoint_id}", token=client.token)
    assert "secret" not in again.json["data"]["attributes"]
    listed = w.rest.request("GET", f"/spaces/{client.space.id}/webhookEndpoints",
                            token=client.token)
    assert [e["id"] for e in listed.json["data"]] == [endpoint_id]
    assert "secret" not in listed.json["data"][0]["attributes"]
    assert listed.header("cache-control") == "no-store"

    room = w.rest.create_room(client, name="Class")
    invitation = w.rest.invite(client, room["id"], role="moderator")
    activation = w.rest.activate(invitation["attributes"]["token"], "Teacher")
    assert activation.status == 200
    teacher = w.registry.connect(w.registry.seat_for_token(  # type: ignore[arg-type]
        activation.json["data"]["attributes"]["sessionToken"]))
    student = enter(w, client.token, room["id"], "Student")
    w.registry.disconnect(student)
    w.registry.end_meeting(teacher.meeting, EndReason.ENDED_FROM_API)
    w.turn()  # (the reactor turns between the end and the next request)
    w.rest.request("DELETE", f"/rooms/{room['id']}", token=client.token)
    events = verified(w.sender.sent, secret, w.clock.seconds())
    assert [e["type"] for e in events] == [
        "room.created", "userToken.created", "userToken.activated", "session.started",
        "participant.joined", "participant.joined", "participant.left", "participant.left",
        "session.ended", "room.deleted"]
    assert all(e["apiVersion"] == "2" and e["id"].startswith("evt_") for e in events)
    joined = events[4]["data"]
    assert joined["spaceId"] == client.space.id and joined["roomId"] == room["id"]
    assert joined["sessionId"] == teacher.meeting.internal_id
    assert joined["participant"]["displayName"] == "Teacher"
    assert joined["participant"]["role"] == "moderator"
    assert events[6]["data"]["reason"] == "left"
    assert events[8]["data"]["reason"] == "ENDED_FROM_API"
    assert "moderatorPW" not in json.dumps(events) and "-pass" not in json.dumps(events)


def test_event_type_filter_and_other_spaces(w: World) -> None:
    """An endpoint gets only its eventTypes, and never another space's events."""
    client = w.rest.new_client("one")
    other = w.rest.new_client("two")
    created = add_endpoint(w, client.token, client.space.id, eventTypes=["session.ended"])
    room = w.rest.create_room(client)
    other_room = w.rest.create_room(other)
    for token, room_id in ((client.token, room["id"]), (other.token, other_room["id"])):
        person = enter(w, token, room_id, "Ann")
        w.registry.end_meeting(person.meeting, EndReason.ENDED_FROM_API)
    events = verified(w.sender.sent, created["attributes"]["secret"],
                      w.clock.seconds())
    assert [(e["type"], e["data"]["roomId"]) for e in events] == [("session.ended", room["id"])]


def test_bbb_meetings_never_reach_space_endpoints(w: World) -> None:
    """Meetings of the BBB API belong to no space: space endpoints get nothing of them."""
    client = w.rest.new_client()
    add_endpoint(w, client.token, client.space.id)
    meeting = w.meeting("bbb")
    w.join(meeting, "Ann")
    assert [s for s in w.sender.sent if s.guarded] == []


def test_private_addresses_are_refused_unless_the_operator_allows_them(tmp_path: Path) -> None:
    """Without --allow-webhook-network, a loopback or private IP URL is a 422; with the
    range allowed, it is accepted."""
    w = World(tmp_path, allow_webhook_networks=())
    client = w.rest.new_client()
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://[::1]/x",
                "http://localhost/x", "http://169.254.169.254/latest/meta-data"):
        r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                           token=client.token, json={"data": {
                               "type": "webhookEndpoints", "attributes": {"url": url}}})
        assert r.status == 422 and r.error_codes == ["webhook.urlRefused"], url
        assert r.json["errors"][0]["source"] == {"pointer": "/data/attributes/url"}
    add_endpoint(w, client.token, client.space.id, url="https://hooks.example.com/x")


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://example.com/x", "webhook.urlRefused"),
    ("https://user:pw@example.com/", "webhook.urlRefused"),
    ("not a url", "webhook.urlRefused"),
])
def test_bad_urls_are_422(w: World, url: str, code: str) -> None:
    """Only plain http(s) URLs with a host are accepted."""
    client = w.rest.new_client()
    r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints",
                       token=client.token, json={"data": {
                           "type": "webhookEndpoints", "attributes": {"url": url}}})
    assert r.status == 422 and r.error_codes == [code]


def test_rotation_shows_the_new_secret_once_and_signs_with_both(w: World) -> None:
    """rotateSecret returns a new secret once; for a day requests carry signatures of
    the new and the previous secret, then only the new one."""
    client = w.rest.new_client()
    created = add_endpoint(w, client.token, client.space.id)
    old = created["attributes"]["secret"]
    r = w.rest.request("POST", f"/webhookEndpoints/{created['id']}/rotateSecret",
                       token=client.token)
    assert r.status == 200
    new = r.json["data"]["attributes"]["secret"]
    assert new != old and r.json["data"]["attributes"]["previousSecretExpiresAt"]
    w.rest.create_room(client, name="A")
    request = w.sender.sent[-1]
    assert request.headers["webhook-signature"].count("v1,") == 2
    signing.verify(old, request.headers, request.body, w.clock.seconds())
    signing.verify(new, request.headers, request.body, w.clock.seconds())
    w.advance(25 * 3600)
    token = w.rest.token_for(client)
    w.rest.create_room(client.__class__(client.record, client.space, client.secret, token),
                       name="B")
    request = w.sender.sent[-1]
    assert request.headers["webhook-signature"].count("v1,") == 1
    signing.verify(new, request.headers, request.body, w.clock.seconds())
    with pytest.raises(signing.SignatureInvalid):
        signing.verify(old, request.headers, request.body, w.clock.seconds())


def test_a_failing_endpoint_is_disabled_visibly_and_can_be_enabled_again(
        tmp_path: Path) -> None:
    """After max_failures consecutive failures the endpoint shows enabled: false with the
    reason; enabling it again delivers the events that waited, in order."""
    sender = FakeSender(status=refused)
    w = World(tmp_path, sender=sender, policy=DeliveryPolicy(max_failures=3))
    client = w.rest.new_client()
    created = add_endpoint(w, client.token, client.space.id)
    endpoint_id = created["id"]
    w.rest.create_room(client, name="First")
    w.advance(1)
    r = w.rest.request("GET", f"/webhookEndpoints/{endpoint_id}", token=client.token)
    state = r.json["data"]["attributes"]
    assert state["enabled"] is True and state["consecutiveFailures"] == 2
    assert state["lastError"] == "connection refused" and state["nextAttemptAt"] is not None
    w.advance(2)
    r = w.rest.request("GET", f"/webhookEndpoints/{endpoint_id}", token=client.token)
    state = r.json["data"]["attributes"]
    assert state["enabled"] is False and state["disabledAt"] is not None
    assert state["disabledReason"] == "3 consecutive failures; last: connection refused"
    assert state["pendingDeliveries"] == 1
    attempts = len(sender.sent)
    w.rest.create_room(client, name="Second")  # not queued for a disabled endpoint
    w.advance(1800)
    assert len(sender.sent) == attempts
    sender.status = lambda sent: 204
    r = w.rest.request("PATCH", f"/webhookEndpoints/{endpoint_id}", token=client.token,
                       json={"data": {"type": "webhookEndpoints", "id": endpoint_id,
                                      "attributes": {"enabled": True}}})
    assert r.status == 200 and r.json["data"]["attributes"]["enabled"] is True
    delivered = [json.loads(s.body)["data"]["room"]["name"] for s in sender.sent[attempts:]]
    assert delivered == ["First"]
    final = w.rest.request("GET", f"/webhookEndpoints/{endpoint_id}", token=client.token)
    assert final.json["data"]["attributes"]["pendingDeliveries"] == 0
    assert final.json["data"]["attributes"]["consecutiveFailures"] == 0


def test_endpoints_of_other_clients_do_not_exist(w: World) -> None:
    """Another client's endpoint is a 404 for every call; a space holds at most ten."""
    owner = w.rest.new_client("owner")
    other = w.rest.new_client("other")
    created = add_endpoint(w, owner.token, owner.space.id)
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/rotateSecret")):
        r = w.rest.request(method, f"/webhookEndpoints/{created['id']}{path}",
                           token=other.token)
        assert r.status == 404 and r.error_codes == ["webhookEndpoint.notFound"]
    r = w.rest.request("GET", f"/spaces/{owner.space.id}/webhookEndpoints", token=other.token)
    assert r.status == 404
    for n in range(9):
        add_endpoint(w, owner.token, owner.space.id, url=f"https://h{n}.example.com/")
    r = w.rest.request("POST", f"/spaces/{owner.space.id}/webhookEndpoints",
                       token=owner.token, json={"data": {"type": "webhookEndpoints",
                                                         "attributes": {"url": "https://x.example/"}}})
    assert r.status == 409 and r.error_codes == ["webhookEndpoint.tooMany"]


def test_deleting_an_endpoint_drops_its_waiting_events(tmp_path: Path) -> None:
    """A deleted endpoint's undelivered events are dropped; nothing more is sent to it."""
    sender = FakeSender(status=refused)
    w = World(tmp_path, sender=sender)
    client = w.rest.new_client()
    created = add_endpoint(w, client.token, client.space.id)
    w.rest.create_room(client)
    r = w.rest.request("DELETE", f"/webhookEndpoints/{created['id']}", token=client.token)
    assert r.status == 204
    attempts = len(sender.sent)
    w.advance(1800)
    assert len(sender.sent) == attempts
    assert w.rest.request("GET", f"/webhookEndpoints/{created['id']}",
                          token=client.token).status == 404


def test_endpoints_need_the_space_scopes(w: World) -> None:
    """Reading needs spaces:read, changing spaces:write."""
    client = w.rest.new_client()
    token = w.rest.token_for(client, scope="spaces:read")
    r = w.rest.request("GET", f"/spaces/{client.space.id}/webhookEndpoints", token=token)
    assert r.status == 200
    r = w.rest.request("POST", f"/spaces/{client.space.id}/webhookEndpoints", token=token,
                       json={"data": {"type": "webhookEndpoints",
                                      "attributes": {"url": "https://a.example/"}}})
    assert r.status == 403 and r.error_codes == ["auth.insufficientScope"]
