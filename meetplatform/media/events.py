"""``POST /janus-events/<node>``: where a node's Janus event handler (sampleevh) posts.

Each node authenticates with HTTP basic credentials: its name and its event secret (what
``meetplatform nodes janus-config`` put into ``janus.eventhandler.sampleevh.jcfg``). A
request without them, for an unknown node or with a wrong secret gets 401 (the same
answer for all three, compared in constant time). The body is one JSON event or, with
``grouping``, an array of them; each goes to :meth:`MediaNodes.janus_event`, which hands
it to the media layer's listeners. Janus only needs a 200 back.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from meetplatform import text
from meetplatform.media.nodes import MediaNodes

_log = Logger()


def _plain(request: Request, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return text.encode() + b"\n"


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.getHeader(b"authorization") or b""
    scheme, _, value = header.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password.decode("utf-8", "replace")


class JanusEventsResource(Resource):
    """The ``janus-events`` child of the site's root."""

    def __init__(self, nodes: MediaNodes) -> None:
        super().__init__()
        self._nodes = nodes

    def getChild(self, path: bytes, request: Request) -> Resource:  # type: ignore[override]
        return _NodeEvents(self._nodes, path.decode("utf-8", "replace"))

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        return _plain(request, 404, "post to /janus-events/<node>")


class _NodeEvents(Resource):
    isLeaf = True

    def __init__(self, nodes: MediaNodes, name: str) -> None:
        super().__init__()
        self._nodes = nodes
        self._name = name

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        if request.postpath not in ([], [b""]):
            return _plain(request, 404, "no such resource")
        if request.method != b"POST":
            request.setHeader(b"allow", b"POST")
            return _plain(request, 405, "use POST")
        given = _credentials(request)
        record = self._nodes.record(self._name)
        expected = record.secrets.event_secret if record is not None else "\0unknown"
        user_ok = given is not None and hmac.compare_digest(
            given[0].encode(), self._name.encode())
        secret_ok = given is not None and hmac.compare_digest(
            given[1].encode(), expected.encode())
        if not (user_ok and secret_ok and record is not None):
            _log.warn("refused Janus events for node {name!r}: missing or wrong credentials",
                      name=self._name)
            request.setHeader(b"www-authenticate", b'Basic realm="janus-events"')
            return _plain(request, 401, "unauthorized")
        assert request.content is not None
        try:
            body: Any = text.loads_json(request.content.read(), "event")
        except ValueError:  # not JSON, or not valid Unicode (text.BadText)
            return _plain(request, 400, "expected JSON")
        events = body if isinstance(body, list) else [body]
        for event in events:
            if isinstance(event, dict):
                self._nodes.janus_event(self._name, event)
        return _plain(request, 200, "ok")
