"""Simultaneous requests through the real resource tree, with the threaded store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, DeferredList
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from meetplatform.restapi import Limit, RateLimits
from meetplatform.store import Store
from meetplatform.webhooks.http import ImmediateBody
from tests.restapi.harness import JSONAPI, PUBLIC_URL, Harness


class _FlushWhenDone(Resource):
    """Root wrapper: when a response is finished (later, once the store thread answered),
    pump it to the client on the next reactor turn."""

    def __init__(self, inner: Resource) -> None:
        super().__init__()
        self.inner = inner
        self.agent: RequestTraversalAgent | None = None

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        from twisted.internet import reactor

        agent = self.agent
        assert agent is not None
        finished = request.notifyFinish()  # type: ignore[attr-defined]
        finished.addBoth(lambda _: reactor.callLater(0, agent.flush))
        return self.inner.getChildWithDefault(path, request)


@pytest_twisted.ensureDeferred
async def test_fifty_simultaneous_activation_requests_one_wins(tmp_path: Path) -> None:
    """50 POST /userTokens/activate for one single-use invitation, all in flight at once
    over the threaded store: one 200, forty-nine 409 userToken.alreadyActivated."""
    from twisted.internet import reactor

    store = Store.open(reactor, tmp_path)  # type: ignore[arg-type]
    try:
        # one address sends all 50: lift the per-address limit for this test
        h = Harness(tmp_path, store=store,
                    rate_limits=RateLimits(anonymous=Limit(rate=1.0, burst=100)))
        wrapper = _FlushWhenDone(h.root)
        agent = RequestTraversalAgent(wrapper)
        wrapper.agent = agent

        async def send(method: str, path: str, document: Any = None,
                       token: str | None = None) -> tuple[int, Any]:
            headers = {b"Accept": [JSONAPI.encode()], b"Content-Type": [JSONAPI.encode()]}
            if token:
                headers[b"Authorization"] = [f"Bearer {token}".encode()]
            body = ImmediateBody(json.dumps(document).encode()) if document is not None else None
            response = await agent.request(method.encode(),
                                           f"{PUBLIC_URL}/api/v2{path}".encode(),
                                           Headers(headers), body)
            content = await treq.content(response)
            return response.code, json.loads(content) if content else None

        client, space, _ = await store.create_client("acme", h.now_ms())
        issued = await store.issue_access_token(client.id, ["rooms:write", "userTokens:write"],
                                                h.now_ms(), 3_600_000)
        assert issued is not None
        token = issued[1]
        status, room = await send("POST", f"/spaces/{space.id}/rooms",
                                  {"data": {"type": "rooms", "attributes": {"name": "R"}}},
                                  token)
        assert status == 201, room
        status, invitation = await send("POST", f"/rooms/{room['data']['id']}/userTokens",
                                        {"data": {"type": "userTokens", "attributes": {}}},
                                        token)
        assert status == 201, invitation
        secret = invitation["data"]["attributes"]["token"]
        activation = {"data": {"type": "userTokenActivations",
                               "attributes": {"token": secret, "displayName": "Racer"}}}
        attempts = [Deferred.fromCoroutine(send("POST", "/userTokens/activate", activation))
                    for _ in range(50)]
        results = await DeferredList(attempts, fireOnOneErrback=True)
        statuses = sorted(code for _, (code, _) in results)
        assert statuses == [200] + [409] * 49
        codes = {body["errors"][0]["code"] for _, (code, body) in results if code == 409}
        assert codes == {"userToken.alreadyActivated"}
    finally:
        await store.close()
