"""A world for history and webhook tests: fake clock, real registry, store, XML API, REST.

The parts are the service's own: :func:`meetplatform.build.build_parts` builds them (the
XML API with the ``hooks/*``, ``getMeetingEvents`` and ``getStats`` calls, the JSON:API
with sessions and webhook endpoints, one :class:`History` and one
:class:`WebhookService`, and the pages and the signalling, which nothing here calls) and
:func:`meetplatform.build.mount` mounts them as the service does. The world injects its
sender, delivery policy, random source, rate limits, recordings and revision through the
builder instead of replacing parts afterwards. The store runs inline (every query in the
calling thread); tests move time with ``clock.advance``.

The webhook service turns events into outbox rows on the *next turn* of the reactor
(``callLater(0)``), not while the join or call that caused them runs. A real reactor
takes that turn right after handling a request; here :meth:`World.turn` does
(``clock.advance(0)``), and the world's helpers (:meth:`World.call`, :meth:`World.hook`,
:meth:`World.meeting`, :meth:`World.join`, every ``w.rest`` request) end with it, so
with an in-memory sender every delivery has happened when a helper returns. Tests that
act on the registry directly call ``w.turn()`` before they look at what was sent.

:class:`FakeSender` records requests and answers with a status chosen by the test (or
holds them: ``hold=True``); real-socket tests pass a real :class:`TreqSender` instead.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from meetplatform.build import build_parts, mount
from meetplatform.model import Meeting, MeetingSpec, Participant, Role
from meetplatform.recordings import InMemoryRecordings
from meetplatform.registry import Registry
from meetplatform.restapi import RateLimits
from meetplatform.restapi.ratelimit import Limit
from meetplatform.store import Store
from meetplatform.webhooks import DeliveryPolicy
from meetplatform.webhooks.http import Sender
from tests.restapi.harness import Harness
from tests.support import PUBLIC_URL, make_clock, make_settings
from tests.xmlapi.helpers import Answer, Env

UNLIMITED = RateLimits(client=Limit(1e6, 10**6), user=Limit(1e6, 10**6),
                       anonymous=Limit(1e6, 10**6))


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    guarded: bool

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class FakeSender:
    """Answers every request with ``status(sent)`` (a status code, or an exception to
    fail with), or holds it when ``hold`` is set (``release`` answers later)."""

    status: Callable[[Sent], int | Exception] = lambda sent: 200
    hold: bool = False
    sent: list[Sent] = field(default_factory=list)
    held: list[tuple[Sent, Deferred[int]]] = field(default_factory=list)

    def send(self, method: str, url: str, headers: Any, body: bytes, *,
             guarded: bool) -> Deferred[int]:
        request = Sent(method, url, dict(headers), body, guarded)
        self.sent.append(request)
        if self.hold:
            d: Deferred[int] = Deferred()
            self.held.append((request, d))
            return d
        answer = self.status(request)
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)

    def release(self, status: int = 200) -> int:
        """Answer every held request with ``status``; returns how many."""
        held, self.held = self.held, []
        for _, d in held:
            d.callback(status)
        return len(held)

    def close(self) -> Deferred[None]:
        return succeed(None)


def refused(sent: Sent) -> Exception:
    return ConnectionRefusedError("receiver down")


class World:
    """Registry, store, history, webhooks and both API surfaces over one fake clock."""

    def __init__(self, data_dir: Path, *, sender: Sender | None = None,
                 policy: DeliveryPolicy | None = None, clock: Clock | None = None,
                 start: bool = True, spread: bool = False, **settings: Any) -> None:
        self.data_dir = data_dir
        self.clock = clock if clock is not None else make_clock()
        settings.setdefault("allow_webhook_networks", ("127.0.0.0/8",))
        self.settings = make_settings(public_url=PUBLIC_URL, data_dir=data_dir, **settings)
        self.registry = Registry(self.clock, server_url=PUBLIC_URL)
        self.store = Store.open_inline(data_dir)
        #: The sender the world delivers with (a FakeSender unless one was given).
        self.sender: Any = sender if sender is not None else FakeSender()
        policy = policy or DeliveryPolicy()
        if not spread:
            # Spreading a burst of requests over turns of the reactor uses the clock, which
            # only the tests that are about it advance (``spread=True``).
            policy = dataclasses.replace(policy, sends_per_turn=1_000_000)
        recordings = InMemoryRecordings()
        self.parts = build_parts(
            self.clock, self.settings, self.registry, self.store, webhook_sender=self.sender,
            delivery_policy=policy, rng=random.Random(7), rate_limits=UNLIMITED,
            recordings=recordings, revision="abc")
        self.history = self.parts.history
        self.webhooks = self.parts.webhooks
        self.xml_api = self.parts.xml_api
        self.root = mount(self.parts)
        self.xml = Env(self.clock, self.settings, self.registry, recordings, self.xml_api,
                       root=self.root)
        #: The JSON:API over the same tree; every request ends with a turn.
        self.rest = Harness(parts=self.parts, root=self.root, after_request=self.turn)
        if start:
            self.start()

    def start(self) -> None:
        self.history.startService()
        self.webhooks.startService()

    def stop(self) -> Deferred[None]:
        return gatherResults([self.webhooks.stopService(), self.history.stopService()]
                             ).addCallback(lambda _: None)

    def close(self) -> None:
        """Stop listening (a 'crashed' world must not see later events)."""
        self.history.close()
        self.webhooks.close()

    def crash(self) -> None:
        """What ``kill -9`` does to this world: it stops at once and writes nothing more
        (requests in flight are dropped, their answers never recorded, and the events
        captured in the current turn never reach the outbox)."""
        self.close()
        webhooks = self.webhooks
        if webhooks._build_call is not None and webhooks._build_call.active():
            webhooks._build_call.cancel()
        webhooks._build_call = None
        webhooks._captured.clear()
        dispatcher = self.webhooks.dispatcher
        dispatcher._running = False
        for request in list(dispatcher._requests):
            request.cancel()

    def turn(self) -> None:
        """One turn of the reactor: what was scheduled for now runs (the webhook service
        builds and writes the events captured so far, and delivers them)."""
        self.clock.advance(0)

    # --- the XML API ---------------------------------------------------------------------

    def call(self, call: str, query: Any = "", **kwargs: Any) -> Answer:
        answer = self.xml.call(call, query, **kwargs)
        self.turn()
        return answer

    def hook(self, url: str, **params: str) -> str:
        answer = self.call("hooks/create", {"callbackURL": url, **params})
        assert answer.returncode == "SUCCESS", answer.body
        hook_id = answer.text("hookID")
        assert hook_id
        return hook_id

    # --- the registry ---------------------------------------------------------------------

    def meeting(self, meeting_id: str = "m1", **spec: Any) -> Meeting:
        spec.setdefault("name", "Meeting " + meeting_id)
        meeting, _ = self.registry.create_meeting(MeetingSpec(meeting_id, **spec))
        self.turn()
        return meeting

    def join(self, meeting: Meeting, name: str = "Ann", role: Role = Role.VIEWER,
             **kwargs: Any) -> Participant:
        seat = self.registry.issue_seat(meeting, full_name=name, role=role, **kwargs)
        participant = self.registry.connect(seat)
        self.turn()
        return participant

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def enter(w: World, token: str, room_id: str, name: str) -> Any:
    """Join a room through the JSON:API (``POST /rooms/{id}/join``) and connect the seat."""
    r = w.rest.request("POST", f"/rooms/{room_id}/join", token=token,
                       json={"data": {"type": "seats", "attributes": {"displayName": name}}})
    assert r.status == 200, r.body
    seat = w.registry.seat_for_token(r.json["data"]["attributes"]["sessionToken"])
    assert seat is not None
    return w.registry.connect(seat)
