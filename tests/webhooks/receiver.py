"""A real webhook receiver: a twisted.web server on 127.0.0.1:0 (or [::1]:0) in the test's
reactor.

It records every request (method, path, query, headers, raw body) and answers with the
status the test sets (or holds requests unanswered, to test timeouts). Tests wait for
requests with :meth:`Receiver.wait`, which fires when the n-th request has arrived; the
waits carry a generous deadline only so that a broken test fails instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

DEADLINE = 20.0


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver(Resource):
    """Records requests; answers ``status`` (``None``: never answers)."""

    isLeaf = True
    status: int | None = 200
    received: list[Received] = field(default_factory=list)
    _waiters: list[tuple[Any, Deferred[None]]] = field(default_factory=list)
    held: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> Any:  # type: ignore[override]
        uri = request.uri.decode()
        path, _, query = uri.partition("?")
        assert request.content is not None
        self.received.append(Received(
            request.method.decode(), path, query,
            {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
            request.content.read()))
        ready = [w for w in self._waiters if w[0](self)]
        self._waiters = [w for w in self._waiters if w not in ready]
        for _, waiter in ready:
            waiter.callback(None)
        if self.status is None:
            self.held.append(request)
            return NOT_DONE_YET
        request.setResponseCode(self.status)
        # no kept-alive connections: a receiver that stops listening is really gone
        request.setHeader(b"connection", b"close")
        return b"ok"

    def wait(self, count: int, reactor: Any) -> Deferred[None]:
        """Fires once ``count`` requests have arrived in all."""
        return self.wait_until(lambda receiver: len(receiver.received) >= count, reactor)

    def wait_until(self, condition: Any, reactor: Any) -> Deferred[None]:
        """Fires once ``condition(self)`` is true (checked at every request)."""
        d: Deferred[None] = Deferred()
        if condition(self):
            d.callback(None)
        else:
            self._waiters.append((condition, d))
        return d.addTimeout(DEADLINE, reactor)

    def hook_events(self, path: str = "/hook") -> list[dict[str, Any]]:
        """Every event the BBB hook callbacks to ``path`` carried, in arrival order."""
        import json

        return [event for r in self.received if r.path == path
                for event in json.loads(r.form["event"])]


async def listen(reactor: Any, receiver: Receiver, port: int = 0,
                 interface: str = "127.0.0.1") -> Any:
    site = Site(receiver)
    site.noisy = False
    return reactor.listenTCP(port, site, interface=interface)


async def stop(port: Any) -> None:
    """Stop listening (if it still does)."""
    if port.connected:
        await port.stopListening()
