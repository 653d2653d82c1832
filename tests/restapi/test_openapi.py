"""The OpenAPI document matches the implementation: routes, and the shape of responses."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from meetplatform.history import History
from meetplatform.restapi import RestApi
from tests.documents.pdfs import make_png
from tests.restapi.harness import PUBLIC_URL, Harness, Response

BASE = "/api/v2"


def klein_operations() -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) for every rule Klein routes (HEAD is implied by GET)."""
    found = set()
    for rule in RestApi.app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((method, path))
    return found


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item}


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def document(h: Harness) -> dict[str, Any]:
    r = h.request("GET", "/openapi.json", headers={"Accept": "application/json"})
    assert r.status == 200
    return r.json  # type: ignore[no-any-return]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """The served document validates as OpenAPI 3.1 and points at this server."""
    from openapi_spec_validator import validate

    validate(document)
    assert document["openapi"] == "3.1.0"
    # a plain PEP 440 version (the package's), which client generators use as theirs
    from packaging.version import Version

    assert str(Version(document["info"]["version"])) == document["info"]["version"]
    assert document["servers"] == [{"url": f"{PUBLIC_URL}{BASE}"}]
    flows = document["components"]["securitySchemes"]["clientToken"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{PUBLIC_URL}{BASE}/oauth/token"


def test_every_route_is_documented_and_every_documented_route_exists(
        document: dict[str, Any]) -> None:
    """The set of (method, path) in the document equals the set Klein routes."""
    assert document_operations(document) == klein_operations()
    operation_ids = [op["operationId"] for item in document["paths"].values()
                     for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


class Recorder:
    """Calls the API and keeps every response with the operation it belongs to."""

    def __init__(self, h: Harness, document: dict[str, Any]) -> None:
        self.h = h
        self.document = document
        self.seen: list[tuple[str, str, Response]] = []
        self.templates = [(re.compile("^" + re.sub(r"\{[A-Za-z]+\}", "[^/]+",
                                                    re.escape(p).replace(r"\{", "{").replace(
                                                        r"\}", "}")) + "$"), p)
                          for p in document["paths"]]

    def template(self, method: str, path: str) -> str:
        bare = path.split("?")[0]
        matches = [t for regex, t in self.templates if regex.match(bare)
                   and method.lower() in self.document["paths"][t]]
        # static segments win over parameters, as in the router
        matches.sort(key=lambda t: t.count("{"))
        assert matches, (method, path)
        return matches[0]

    def __call__(self, method: str, path: str, **kwargs: Any) -> Response:
        response = self.h.request(method, path, **kwargs)
        self.seen.append((method, self.template(method, path), response))
        return response


def schema_for(document: dict[str, Any], method: str, template: str,
               status: int) -> dict[str, Any] | None:
    responses = document["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} answered an undocumented {status}"
    content = responses[str(status)].get("content")
    if content is None:
        return None
    ((_, spec),) = content.items()
    return {"components": document["components"], **spec["schema"]}


def exercise(call: Recorder, h: Harness) -> None:
    """Call every operation at least once, successfully, plus a few refusals."""
    client = h.new_client(with_token=False)
    basic = {"Authorization": client.basic, "Accept": "application/json"}
    history = History(h.clock, h.settings, h.registry, h.store)
    form = "application/x-www-form-urlencoded"
    call("GET", "/")
    call("GET", "/openapi.json", headers={"Accept": "application/json"})
    token = call("POST", "/oauth/token", body=b"grant_type=client_credentials",
                 content_type=form, headers=basic).json["access_token"]
    call("POST", "/oauth/token", body=b"grant_type=password", content_type=form, headers=basic)
    call("POST", "/oauth/introspect", body=f"token={token}".encode(), content_type=form,
         headers=basic)
    space = client.space.id
    call("GET", "/spaces", token=token)
    call("GET", "/spaces", token="mpat_nope")
    call("GET", f"/spaces/{space}", token=token)
    call("PATCH", f"/spaces/{space}", token=token, json={"data": {
        "type": "spaces", "id": space, "attributes": {"embedOrigins": ["https://a.example"]}}})
    room = call("POST", f"/spaces/{space}/rooms", token=token, json={"data": {
        "type": "rooms", "attributes": {"name": "Room", "lobby": False}}}).json["data"]["id"]
    call("POST", f"/spaces/{space}/rooms", token=token, json={"data": {
        "type": "rooms", "attributes": {"name": 7}}})
    call("GET", f"/spaces/{space}/rooms?page[size]=1", token=token)
    call("GET", f"/rooms/{room}", token=token)
    call("GET", f"/rooms/{room}/embed", token=token)
    call("GET", "/rooms/rm_missing", token=token)
    call("PATCH", f"/rooms/{room}", token=token, json={"data": {
        "type": "rooms", "id": room, "attributes": {"maxParticipants": 5}}})
    created = call("POST", f"/rooms/{room}/userTokens", token=token, json={"data": {
        "type": "userTokens", "attributes": {"role": "moderator"}}}).json["data"]
    call("POST", f"/spaces/{space}/userTokens", token=token,
         json={"data": {"type": "userTokens", "attributes": {}}})
    call("GET", f"/rooms/{room}/userTokens", token=token)
    call("GET", f"/spaces/{space}/userTokens", token=token)
    call("GET", f"/userTokens/{created['id']}", token=token)
    activation = call("POST", "/userTokens/activate", json={"data": {
        "type": "userTokenActivations",
        "attributes": {"token": created["attributes"]["token"], "displayName": "Mod"}}})
    call("POST", "/userTokens/activate", json={"data": {
        "type": "userTokenActivations",
        "attributes": {"token": created["attributes"]["token"], "displayName": "Mod"}}})
    session = activation.json["data"]["attributes"]["sessionToken"]
    seat = h.registry.seat_for_token(session)
    assert seat is not None
    participant = h.registry.connect(seat)
    seated = call("POST", f"/rooms/{room}/join", token=token,
                  json={"data": {"type": "seats", "attributes": {"displayName": "Guest"}}})
    other = h.registry.connect(h.registry.seat_for_token(  # type: ignore[arg-type]
        seated.json["data"]["attributes"]["sessionToken"]))
    call("GET", f"/rooms/{room}/participants", token=token)
    call("GET", f"/rooms/{room}/participants/{participant.user_id}", token=token)
    call("POST", f"/rooms/{room}/participants/{other.user_id}/mute", token=token)
    call("DELETE", f"/rooms/{room}/participants/{other.user_id}", token=token)
    picture = base64.b64encode(make_png()).decode()
    document_id = call("POST", f"/rooms/{room}/documents", token=token, json={"data": {
        "type": "documents", "attributes": {"filename": "board.png", "content": picture}}}
                       ).json["data"]["id"]
    h.clock.advance(0)  # the conversion's news reach the meeting on the next turn
    call("POST", f"/rooms/{room}/documents", token=token, json={"data": {
        "type": "documents", "attributes": {"filename": "x.pdf"}}})
    call("GET", f"/rooms/{room}/documents", token=token)
    call("GET", f"/rooms/{room}/documents/{document_id}", token=token)
    call("GET", f"/rooms/{room}/documents/nope", token=token)
    call("PATCH", f"/rooms/{room}/documents/{document_id}", token=token, json={"data": {
        "type": "documents", "id": document_id, "attributes": {"current": True}}})
    call("PATCH", f"/rooms/{room}/documents/{document_id}", token=token, json={"data": {
        "type": "documents", "id": document_id, "attributes": {"page": 2}}})
    call("DELETE", f"/rooms/{room}/documents/{document_id}", token=token)
    call("POST", "/meetings", token=token, json={"data": {
        "type": "meetings", "id": "m1", "attributes": {"name": "M"}}})
    call("POST", "/meetings", token=token, json={"data": {
        "type": "meetings", "id": "m1", "attributes": {"name": "M"}}})
    call("GET", "/meetings", token=token)
    call("GET", "/meetings/m1", token=token)
    call("POST", "/meetings/m1/join", token=token, json={"data": {
        "type": "seats", "attributes": {"displayName": "X", "role": "moderator"}}})
    call("DELETE", "/meetings/m1", token=token)
    call("GET", "/meetings/m1", token=token)
    sessions = call("GET", f"/rooms/{room}/sessions", token=token).json["data"]
    call("GET", f"/spaces/{space}/sessions?page[size]=1", token=token)
    call("GET", f"/sessions/{sessions[0]['id']}", token=token)
    call("GET", f"/sessions/{sessions[0]['id']}/attendances", token=token)
    call("GET", "/sessions/missing", token=token)
    endpoint = call("POST", f"/spaces/{space}/webhookEndpoints", token=token, json={"data": {
        "type": "webhookEndpoints", "attributes": {"url": "https://hooks.example/meet"}}}
                    ).json["data"]["id"]
    call("POST", f"/spaces/{space}/webhookEndpoints", token=token, json={"data": {
        "type": "webhookEndpoints", "attributes": {"url": "http://127.0.0.1/admin"}}})
    call("GET", f"/spaces/{space}/webhookEndpoints", token=token)
    call("GET", f"/webhookEndpoints/{endpoint}", token=token)
    call("PATCH", f"/webhookEndpoints/{endpoint}", token=token, json={"data": {
        "type": "webhookEndpoints", "id": endpoint,
        "attributes": {"eventTypes": ["session.ended"]}}})
    call("POST", f"/webhookEndpoints/{endpoint}/rotateSecret", token=token)
    call("DELETE", f"/webhookEndpoints/{endpoint}", token=token)
    history.close()
    call("DELETE", f"/userTokens/{created['id']}", token=token)
    call("DELETE", f"/rooms/{room}", token=token)
    call("POST", "/oauth/revoke", body=f"token={token}".encode(), content_type=form,
         headers=basic)


def test_responses_match_the_documented_schemas(h: Harness, document: dict[str, Any]) -> None:
    """Every operation, called for real, answers a documented status with a body that
    validates against the documented schema (success and error alike)."""
    call = Recorder(h, document)
    exercise(call, h)
    for method, template, response in call.seen:
        schema = schema_for(document, method, template, response.status)
        if schema is None:
            assert response.body == b"", (method, template)
            continue
        errors = sorted(Draft202012Validator(schema).iter_errors(response.json),
                        key=lambda e: list(e.path))
        assert not errors, (method, template, response.status,
                            [f"{list(e.path)}: {e.message}" for e in errors[:3]])
    called = {(m, t) for m, t, r in call.seen if r.status < 400}
    assert called == document_operations(document), (
        "operations never called successfully: "
        f"{sorted(document_operations(document) - called)}")
