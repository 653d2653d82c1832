"""Parts of the SFU backend without Janus: reading what an offer sends, relaying talking
events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock

from meetplatform.media.sfu import Section, SfuBackend, _Peer, _Room, sdp_sections
from meetplatform.model import MeetingSpec, Role
from meetplatform.registry import Registry

_LINES = [
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:2", "a=inactive",
    "m=video 0 UDP/TLS/RTP/SAVPF 96", "a=mid:3", "a=sendonly",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:4",
]
OFFER = "\r\n".join(_LINES) + "\r\n"


def test_sections_say_what_an_offer_sends() -> None:
    assert sdp_sections(OFFER) == [
        Section("audio", "0", True), Section("video", "1", True),
        Section("video", "2", False), Section("video", "3", False),
        Section("application", "4", True)]


def test_an_sdp_without_media_has_no_sections() -> None:
    assert sdp_sections("v=0\r\ns=-\r\n") == []


# --- Janus's talking events become the page's speaking indicator -----------------------------

class _Nodes:
    """What SfuBackend subscribes to; no node is needed to relay events."""

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        return lambda: None


def test_talking_events_reach_everyone_once_per_change() -> None:
    """Every publisher handle of a room hears Janus's talking events: only the first
    peer's are relayed, once per change, as ``talking {id, talking}`` to everyone."""
    clock = Clock()
    registry = Registry(clock, server_url="https://meet.example.test")
    meeting, _ = registry.create_meeting(MeetingSpec("m1", "Weekly"))
    people = [registry.connect(registry.issue_seat(meeting, full_name=name, role=Role.VIEWER))
              for name in ("Ann", "Ben")]
    backend = SfuBackend(clock, _Nodes(), registry)  # type: ignore[arg-type]
    sent: list[tuple[str, str, dict[str, Any]]] = []
    backend.send = lambda p, kind, data: sent.append((p.user_id, kind, data))
    room = _Room(meeting, None)
    peers = [_Peer(p, room, feed=n + 1) for n, p in enumerate(people)]
    for peer in peers:
        room.peers[peer.user_id] = peer
        room.feeds[peer.feed] = peer.user_id

    def event(kind: str, feed: int) -> dict[str, Any]:
        return {"janus": "event", "plugindata": {"data": {"videoroom": kind, "id": feed}}}

    for peer in peers:  # both handles hear Ben start talking
        backend._publisher_event(peer, event("talking", 2))
    backend._publisher_event(peers[0], event("talking", 2))  # no change: nothing sent
    backend._publisher_event(peers[0], event("stopped-talking", 2))
    ben = people[1].user_id
    assert sent == [
        (people[0].user_id, "talking", {"id": ben, "talking": True}),
        (ben, "talking", {"id": ben, "talking": True}),
        (people[0].user_id, "talking", {"id": ben, "talking": False}),
        (ben, "talking", {"id": ben, "talking": False}),
    ]
    backend.close()
