"""/healthz names each media node's state, health and load when nodes are configured."""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from treq.testing import StubTreq
from twisted.web.resource import Resource

from meetplatform.registry import Registry
from meetplatform.site import HealthResource
from tests.media.test_nodes import Harness, record


@pytest_twisted.ensureDeferred
async def test_healthz_reports_node_states() -> None:
    h = Harness([record("a"), record("b", state="draining")])
    h.nodes.place("m1", preferred="a")
    h.controls["b"].mode = "refuse"
    h.advance(6.5)
    root = Resource()
    root.putChild(b"healthz", HealthResource(h.clock, Registry(h.clock, "http://m.test"),
                                             h.nodes))
    http: Any = StubTreq(root)
    body = json.loads(await (await http.get("http://m.test/healthz")).text())
    assert body["status"] == "ok"
    assert body["mediaNodes"] == {
        "a": {"state": "enabled", "health": "online", "meetings": 1, "load": 0.01},
        "b": {"state": "draining", "health": "offline", "meetings": 0, "load": 0.0},
    }
    none = Harness([])
    root.putChild(b"healthz", HealthResource(h.clock, Registry(h.clock, "http://m.test"),
                                             none.nodes))
    body = json.loads(await (await http.get("http://m.test/healthz")).text())
    assert "mediaNodes" not in body
