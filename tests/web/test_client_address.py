"""Issue 13: the invitation and embed pages' address limits behind a trusted proxy."""

from __future__ import annotations

from pathlib import Path

import treq
from treq.testing import RequestTraversalAgent
from twisted.web.http_headers import Headers

from meetplatform.build import build_parts, mount
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.webhooks.http import ImmediateBody
from tests.support import make_clock, make_settings, result

BASE = "https://meet.example.com"
FORM = "application/x-www-form-urlencoded"


def join_statuses(tmp_path: Path, forwarded: list[str], *,
                  trusted: tuple[str, ...] = ("127.0.0.1/32",)) -> list[int]:
    """POST /j/ with an unknown invitation once per ``forwarded`` X-Forwarded-For value
    (the agent's peer is 127.0.0.1)."""
    clock = make_clock()
    settings = make_settings(public_url=BASE, data_dir=tmp_path, trusted_proxies=trusted)
    parts = build_parts(clock, settings, Registry(clock, server_url=BASE),
                        Store.open_inline(tmp_path))
    agent = RequestTraversalAgent(mount(parts))
    statuses = []
    for value in forwarded:
        d = agent.request(b"POST", (BASE + "/j/").encode(),
                          Headers({"Content-Type": [FORM], "X-Forwarded-For": [value]}),
                          ImmediateBody(b"token=mput_" + b"y" * 30))
        agent.flush()
        response = result(d)
        body = treq.content(response)
        agent.flush()
        result(body)
        statuses.append(response.code)
    return statuses


def test_join_attempts_are_limited_per_forwarded_client(tmp_path: Path) -> None:
    """One forwarded client past the burst does not lock out another behind the proxy."""
    statuses = join_statuses(tmp_path, ["198.51.100.1"] * 61 + ["198.51.100.2"])
    assert statuses[60] == 429
    assert statuses[61] == 404


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(tmp_path: Path) -> None:
    """Without --trusted-proxy the header cannot buy an attacker a new bucket."""
    statuses = join_statuses(tmp_path, [f"198.51.100.{i}" for i in range(61)], trusted=())
    assert statuses[60] == 429
