"""A JSON:API test harness: the real resource tree over StubTreq, a fake clock, a store.

Not a conftest (importing Klein there would install a reactor before pytest-twisted).
Requests go through treq.testing's in-memory agent (what StubTreq uses) and are
answered synchronously: the store runs its queries in the calling thread
(``Store.open_inline``), so every Deferred here has fired when ``request`` returns.

By default the harness serves the JSON:API alone (no meeting history, no webhook
service listening to the registry): what the REST tests are about. Given ``parts``
(:func:`meetplatform.build.build_parts`) it serves those instead, mounted as the
service mounts them, which is how the webhook and history world uses it.
"""

from __future__ import annotations

import base64
import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from meetplatform.build import Parts, mount
from meetplatform.documents import DocumentService
from meetplatform.documents.meetings import MeetingDocuments
from meetplatform.registry import Registry
from meetplatform.restapi import RateLimits, RestApi
from meetplatform.store import ClientRecord, SpaceRecord, Store
from meetplatform.webhooks.http import ImmediateBody
from tests.support import make_clock, make_settings, result, run

PUBLIC_URL = "https://meet.example.com"
JSONAPI = "application/vnd.api+json"


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.json.get("errors", [])]


@dataclass
class Client:
    record: ClientRecord
    space: SpaceRecord
    secret: str
    token: str = ""

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.id}:{self.secret}".encode()).decode()


class Harness:
    def __init__(self, data_dir: Path | None = None, *, rate_limits: RateLimits | None = None,
                 store: Store | None = None, clock: Clock | None = None,
                 parts: Parts | None = None, root: Resource | None = None,
                 after_request: Callable[[], None] | None = None, **settings: Any) -> None:
        """The JSON:API alone over a new store in ``data_dir`` (or ``store``), or, with
        ``parts``, the whole tree of those parts (``root`` if it is mounted already).
        ``after_request`` runs after every request (the world takes a turn of the
        reactor)."""
        self._after_request = after_request
        if parts is not None:
            assert data_dir is store is clock is rate_limits is None and not settings, (
                "the parts bring their own data directory, store, clock and settings")
            self.clock: Any = parts.clock
            self.settings = parts.settings
            self.registry = parts.registry
            self.store = parts.store
            self.api = parts.rest_api
            self.root = root if root is not None else mount(parts)
        else:
            assert data_dir is not None, "a data directory or parts"
            self.clock = clock or make_clock()
            self.settings = make_settings(public_url=PUBLIC_URL, data_dir=data_dir, **settings)
            self.registry = Registry(self.clock, server_url=PUBLIC_URL)
            self.store = store or Store.open_inline(data_dir)
            #: Documents converted for real (images need no worker process).
            self.documents = MeetingDocuments(
                self.clock, self.registry, DocumentService(self.clock, data_dir))
            self.api = RestApi(self.clock, self.settings, self.registry, self.store,
                               rate_limits=rate_limits or RateLimits(),
                               documents=self.documents)
            self.root = Resource()
            api = Resource()
            self.root.putChild(b"api", api)
            api.putChild(b"v2", self.api.resource())
        #: The raw agent of treq.testing (StubTreq's), without treq's automatic gzip
        #: decoding, so that tests see exactly what the server sent.
        self.agent = RequestTraversalAgent(self.root)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def request(self, method: str, path: str, *, json: Any = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = None,
                content_type: str | None = None) -> Response:
        all_headers = {"Accept": JSONAPI}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = content_type or JSONAPI
        elif content_type:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        url = path if path.startswith("http") else PUBLIC_URL + "/api/v2" + path
        d = self.agent.request(method.encode(), url.encode(),
                               Headers({k: [v] for k, v in all_headers.items()}),
                               ImmediateBody(body) if body is not None else None)
        self.agent.flush()
        response = result(d)
        body_d = treq.content(response)
        self.agent.flush()
        content: bytes = result(body_d)
        headers_out = {k.decode().lower(): [v.decode("latin-1") for v in vs]
                       for k, vs in response.headers.getAllRawHeaders()}
        if self._after_request is not None:
            self._after_request()
        return Response(response.code, headers_out, content)

    def new_client(self, name: str = "acme", *, with_token: bool = True) -> Client:
        record, space, secret = run(self.store.create_client(name, self.now_ms()))
        client = Client(record, space, secret)
        if with_token:
            client.token = self.token_for(client)
        return client

    def token_for(self, client: Client, scope: str | None = None) -> str:
        form = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
        r = self.request("POST", "/oauth/token", body=form.encode(),
                         content_type="application/x-www-form-urlencoded",
                         headers={"Authorization": client.basic, "Accept": "application/json"})
        assert r.status == 200, r.body
        return str(r.json["access_token"])

    def create_room(self, client: Client, **attributes: Any) -> dict[str, Any]:
        attributes.setdefault("name", "Room")
        r = self.request("POST", f"/spaces/{client.space.id}/rooms", token=client.token,
                         json={"data": {"type": "rooms", "attributes": attributes}})
        assert r.status == 201, r.body
        return r.json["data"]  # type: ignore[no-any-return]

    def invite(self, client: Client, room_id: str, **attributes: Any) -> dict[str, Any]:
        r = self.request("POST", f"/rooms/{room_id}/userTokens", token=client.token,
                         json={"data": {"type": "userTokens", "attributes": attributes}})
        assert r.status == 201, r.body
        return r.json["data"]  # type: ignore[no-any-return]

    def activate(self, secret: str, display_name: str | None = "Guest") -> Response:
        attributes: dict[str, Any] = {"token": secret}
        if display_name is not None:
            attributes["displayName"] = display_name
        return self.request("POST", "/userTokens/activate",
                            json={"data": {"type": "userTokenActivations",
                                           "attributes": attributes}})
