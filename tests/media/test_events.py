"""POST /janus-events/<node>: a node's Janus events, authenticated by its event secret."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest_twisted
from treq.testing import StubTreq
from twisted.web.resource import Resource

from meetplatform.media.events import JanusEventsResource
from tests.media.test_nodes import Harness, record

URL = "http://m.test/janus-events/"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def site(h: Harness) -> Any:
    root = Resource()
    root.putChild(b"janus-events", JanusEventsResource(h.nodes))
    return StubTreq(root)


@pytest_twisted.ensureDeferred
async def test_events_of_an_authenticated_node_reach_the_listeners() -> None:
    h = Harness([record("a")])
    seen: list[tuple[str, dict[str, Any]]] = []
    h.nodes.subscribe_janus_events(lambda name, event: seen.append((name, event)))
    http = site(h)
    events = [{"type": 256, "event": {"status": "started"}},
              {"type": 64, "event": {"plugin": "janus.plugin.videoroom",
                                     "data": {"event": "created", "room": 5}}}]
    answer = await http.post(URL + "a", data=json.dumps(events).encode(),
                             headers=basic("a", "events"))
    assert answer.code == 200
    assert [(n, e["type"]) for n, e in seen] == [("a", 256), ("a", 64)]
    single = await http.post(URL + "a", data=json.dumps(events[1]).encode(),
                             headers=basic("a", "events"))
    assert single.code == 200 and len(seen) == 3


@pytest_twisted.ensureDeferred
async def test_wrong_missing_or_foreign_credentials_are_refused() -> None:
    h = Harness([record("a"), record("b")])
    seen: list[Any] = []
    h.nodes.subscribe_janus_events(lambda name, event: seen.append(name))
    http = site(h)
    body = json.dumps({"type": 1}).encode()
    for url, headers in ((URL + "a", {}),
                         (URL + "a", basic("a", "wrong")),
                         (URL + "a", basic("b", "events")),      # another node's name
                         (URL + "nope", basic("nope", "events")),
                         (URL + "a", {"authorization": "Basic !!!"}),
                         (URL + "a", {"authorization": "Bearer events"})):
        answer = await http.post(url, data=body, headers=headers)
        assert answer.code == 401, (url, headers)
        assert answer.headers.getRawHeaders("www-authenticate") == ['Basic realm="janus-events"']
    assert seen == []
    assert (await http.get(URL + "a", headers=basic("a", "events"))).code == 405
    bad = await http.post(URL + "a", data=b"not json", headers=basic("a", "events"))
    assert bad.code == 400
    assert (await http.post(URL + "a/x", data=body, headers=basic("a", "events"))).code == 404
