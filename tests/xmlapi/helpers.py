"""Test helpers: the XML API mounted in a real resource tree, driven with StubTreq."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from lxml import etree
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from meetplatform.checksum import checksum
from meetplatform.config import Settings
from meetplatform.model import Meeting, Seat
from meetplatform.recordings import InMemoryRecordings
from meetplatform.registry import Registry
from meetplatform.xmlapi import XmlApi
from tests.support import PUBLIC_URL, SECRET, make_clock, make_settings, result

BASE = "http://meet.example.test/bigbluebutton/api/"


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def text(self, path: str) -> str | None:
        found = self.xml.find(path)
        return None if found is None else (found.text or "")

    @property
    def returncode(self) -> str | None:
        return self.text("returncode")

    @property
    def key(self) -> str | None:
        return self.text("messageKey")


@dataclass
class Env:
    clock: Clock
    settings: Settings
    registry: Registry
    recordings: InMemoryRecordings
    api: XmlApi
    #: The tree to send requests to (default: one with only the XML API mounted).
    root: Resource | None = None
    stub: Any = field(init=False)

    def __post_init__(self) -> None:
        root = self.root
        if root is None:
            root = Resource()
            root.putChild(b"bigbluebutton", self.api.resource())
        self.stub = StubTreq(root)

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        d = self.stub.request(method, url, **kwargs)
        self.stub.flush()
        response = result(d)
        body = self.stub.content(response)
        self.stub.flush()
        return Answer(response.code, response.headers, result(body))

    def call(self, call: str, query: str | dict[str, str] | list[tuple[str, str]] = "",
             algorithm: str = "sha1", method: str = "GET", **kwargs: Any) -> Answer:
        """Sign and send ``call`` with ``query`` (a raw string or parameters to encode)."""
        if not isinstance(query, str):
            query = urlencode(query)
        value = checksum(call, query, SECRET, algorithm)
        full = f"{query}&checksum={value}" if query else f"checksum={value}"
        return self.request(method, f"{BASE}{call}?{full}", **kwargs)

    def meeting(self, meeting_id: str) -> Meeting:
        """The live meeting with this id (it must exist)."""
        meeting = self.registry.get_meeting(meeting_id)
        assert meeting is not None, f"no live meeting {meeting_id!r}"
        return meeting

    def seat(self, token: str | None) -> Seat:
        """The live seat with this session token (it must exist)."""
        seat = self.registry.seat_for_token(token or "")
        assert seat is not None, f"no live seat {token!r}"
        return seat

    def create(self, meeting_id: str = "m1", **extra: str) -> Answer:
        params = {"name": "Meeting " + meeting_id, "meetingID": meeting_id}
        params.update(extra)
        answer = self.call("create", params)
        assert answer.returncode == "SUCCESS", answer.body
        return answer


def make_env(**settings: Any) -> Env:
    clock: Any = make_clock()
    config = make_settings(**settings)
    registry = Registry(clock, server_url=PUBLIC_URL)
    recordings = InMemoryRecordings()
    api = XmlApi(clock, config, registry, recordings, revision="abc123")
    return Env(clock, config, registry, recordings, api)
