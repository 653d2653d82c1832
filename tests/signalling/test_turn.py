"""TURN credentials minted per participant (coturn ``use-auth-secret``) and ``iceRefresh``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import txaio

from meetplatform.config import IceServer
from meetplatform.model import GuestPolicy, Role
from tests.signalling.harness import World, pair
from tests.support import START

TURN_SECRET = "turn-shared-secret-0123456789"
URIS = ("turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349")


@pytest.fixture
def turn_world() -> Iterator[World]:
    old = txaio.config.loop  # type: ignore[attr-defined]
    w = World(ice_servers=(IceServer(("stun:stun.example.test:3478",)),),
              turn_uris=URIS, turn_secret=TURN_SECRET, turn_ttl=600)
    txaio.config.loop = w.clock  # type: ignore[attr-defined]
    try:
        yield w
    finally:
        txaio.config.loop = old  # type: ignore[attr-defined]


def _turn_entry(data: dict[str, Any]) -> dict[str, Any]:
    [entry] = [s for s in data["iceServers"] if s["urls"] == list(URIS)]
    return entry


def _valid(entry: dict[str, Any], user_id: str, expiry: int) -> bool:
    """What coturn checks: the username names the expiry and the user, and the credential
    is the HMAC-SHA1 of the username under the shared secret."""
    expected = base64.b64encode(hmac.new(TURN_SECRET.encode(), entry["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    return bool(entry["username"] == f"{expiry}:{user_id}" and entry["credential"] == expected)


def test_joined_carries_credentials_minted_for_the_participant(turn_world: World) -> None:
    """STUN stays as configured; TURN gets `<now + ttl>:<user id>` and its HMAC."""
    mod, ann = pair(turn_world)
    for client in (mod, ann):
        joined = client.joined
        assert joined["iceServers"][0] == {"urls": ["stun:stun.example.test:3478"]}
        assert _valid(_turn_entry(joined), client.user_id, int(START) + 600)
        assert joined["iceServersTtl"] == 600 and joined["iceTransportPolicy"] == "all"
    assert _turn_entry(mod.joined)["credential"] != _turn_entry(ann.joined)["credential"]


def test_ice_refresh_mints_fresh_credentials(turn_world: World) -> None:
    """`iceRefresh` (before an ICE restart) answers with credentials valid from now."""
    _, ann = pair(turn_world)
    turn_world.advance(500)
    data = ann.ok("iceRefresh")
    assert _valid(_turn_entry(data), ann.user_id, int(START) + 500 + 600)
    assert data["iceTransportPolicy"] == "all" and data["iceServersTtl"] == 600


def test_a_resume_mints_fresh_credentials(turn_world: World) -> None:
    _, ann = pair(turn_world)
    token = turn_world.server_of(ann).seat.token
    turn_world.drop(ann)
    turn_world.advance(10)
    again = turn_world.open_socket(token)
    assert again.joined["resumed"] is True
    assert _valid(_turn_entry(again.joined), again.user_id, int(START) + 10 + 600)


def test_the_turn_secret_never_reaches_a_browser(turn_world: World) -> None:
    mod, ann = pair(turn_world)
    mod.ok("iceRefresh")
    frames = json.dumps([mod.received, ann.received, mod.joined, ann.joined])
    assert TURN_SECRET not in frames


def test_a_waiting_guest_cannot_ask_for_credentials(turn_world: World) -> None:
    """TURN credentials are for participants: the lobby gets notJoined."""
    meeting = turn_world.meeting(guest_policy=GuestPolicy.ASK_MODERATOR)
    turn_world.join(meeting, "Mod", Role.MODERATOR)
    guest = turn_world.join(meeting, "Gus", guest=True)
    assert guest.fails("iceRefresh") == "notJoined"


def test_relay_policy_is_handed_to_pages() -> None:
    """Without minted TURN the static servers go as they are, with the policy and no TTL."""
    relay = World(ice_transport_policy="relay")
    old = txaio.config.loop  # type: ignore[attr-defined]
    txaio.config.loop = relay.clock  # type: ignore[attr-defined]
    try:
        _, ann = pair(relay)
        assert ann.joined["iceTransportPolicy"] == "relay"
        assert "iceServersTtl" not in ann.joined
        assert ann.ok("iceRefresh")["iceServers"] == ann.joined["iceServers"]
    finally:
        txaio.config.loop = old  # type: ignore[attr-defined]
