"""``/embed/<alias>``, its session endpoint, the REST embed snippet and the socket's
Origin check for embedding sites, through the real resource tree."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import txaio

from meetplatform.build import build_parts
from meetplatform.embedding import ALLOW
from meetplatform.model import MeetingSpec, Role
from meetplatform.store import RoomRecord, SpaceRecord, Store
from tests.signalling.harness import Refused
from tests.signalling.harness import World as SignallingWorld
from tests.support import make_settings, run
from tests.web.test_invite import BASE, Page, Site

LMS = "https://lms.example.org"


def post_json(site: Site, path: str, body: Any, *, origin: str | None = BASE,
              content_type: str = "application/json") -> tuple[Page, Any]:
    headers = {"Content-Type": content_type}
    if origin is not None:
        headers["Origin"] = origin
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    page = site.request("POST", path, body=raw, headers=headers)
    return page, json.loads(page.text) if page.text else None


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def space(site: Site) -> SpaceRecord:
    return site.space(origins=(LMS, "http://localhost:8080"))


@pytest.fixture
def room(site: Site, space: SpaceRecord) -> RoomRecord:
    return site.room(space, alias="algebra", name="Algebra")


# --- the page ------------------------------------------------------------------------------


def test_the_embed_page_may_be_framed_by_the_spaces_origins_only(
        site: Site, room: RoomRecord) -> None:
    """The page's frame-ancestors are the service itself plus the space's embedOrigins,
    and it grants camera, microphone and display capture to itself."""
    page = site.get("/embed/algebra")
    assert page.status == 200
    assert page.csp["frame-ancestors"] == f"'self' {LMS} http://localhost:8080"
    assert page.csp["script-src"] == "'self'"
    assert "unsafe-inline" not in (page.header("content-security-policy") or "")
    policy = page.header("permissions-policy") or ""
    for feature in ("camera=(self)", "microphone=(self)", "display-capture=(self)"):
        assert feature in policy
    assert page.header("referrer-policy") == "no-referrer"
    assert page.header("cache-control") == "no-store"
    assert page.header("x-frame-options") is None
    assert page.header("set-cookie") is None


def test_a_space_without_embedding_origins_is_framed_by_nobody_else(site: Site) -> None:
    """With no embedOrigins only the service's own pages may frame a room."""
    closed = site.space()
    site.room(closed, alias="closed-room")
    assert site.get("/embed/closed-room").csp["frame-ancestors"] == "'self'"


def test_only_well_formed_origins_reach_the_policy(site: Site) -> None:
    """Stored origins are normalised, deduplicated, and anything that could end the CSP
    source list is dropped."""
    odd = site.space(origins=("HTTPS://LMS.example.org:443", LMS,
                              "https://a.example; script-src *", "javascript:alert(1)",
                              "https://b.example/x"))
    site.room(odd, alias="odd-room")
    assert site.get("/embed/odd-room").csp["frame-ancestors"] == (
        f"'self' {LMS} https://b.example")


def test_the_page_loads_the_bridge_not_the_conference_and_holds_no_secret(
        site: Site, room: RoomRecord) -> None:
    """The embed page is the conference page with embed-bridge.js in charge: it knows the
    room, whether it is public, the allowed origins and where to ask for a seat."""
    page = site.get("/embed/algebra")
    assert re.search(r'<script type="module" src="/static/embed-bridge\.js\?v=[0-9a-f]{16}">',
                     page.text)
    assert 'src="/static/conference.js' not in page.text
    assert re.search(r'<meta name="mp-conference-js" content="/static/conference\.js\?v=', page.text)
    assert '<meta name="mp-embed-room" content="algebra">' in page.text
    assert '<meta name="mp-embed-public" content="false">' in page.text
    assert f'<meta name="mp-embed-origins" content="{LMS} http://localhost:8080">' in page.text
    assert ('<meta name="mp-embed-session-url" content="/embed/algebra/session">'
            in page.text)
    assert '<meta name="mp-ended-url" content="/embed/algebra/ended">' in page.text
    assert 'id="meeting-screen"' in page.text and "<title>Algebra · Meet</title>" in page.text
    assert "mput_" not in page.text


def test_public_rooms_of_public_spaces_say_so(site: Site) -> None:
    """The page tells the bridge a room is public only when room and space both are."""
    open_space = site.space(visibility="public")
    site.room(open_space, alias="open-room", visibility="public")
    site.room(open_space, alias="half-open", visibility="private")
    assert 'mp-embed-public" content="true"' in site.get("/embed/open-room").text
    assert 'mp-embed-public" content="false"' in site.get("/embed/half-open").text


def test_credentials_in_the_query_are_refused(site: Site, room: RoomRecord) -> None:
    """A token in the query (where server logs keep it) gets a 400 that explains the
    fragment, framable by the space so the integrator sees it."""
    for query in ("t=mput_abc", "token=x", "sessionToken=abc"):
        page = site.get(f"/embed/algebra?{query}")
        assert page.status == 400, query
        assert "never in the query" in page.text
        assert LMS in page.csp["frame-ancestors"]
    assert site.get("/embed/algebra?resume=1").status == 200


def test_unknown_rooms_and_other_addresses(site: Site, room: RoomRecord) -> None:
    """Unknown rooms, revoked clients' rooms and stray addresses get HTML errors."""
    assert site.get("/embed/no-such-room").status == 404
    assert site.get("/embed/x").status == 404
    assert site.get("/embed/").status == 404
    assert site.get("/embed/algebra/more/path").status == 404
    assert site.request("POST", "/embed/algebra").status == 405
    space = run(site.store.get_space(room.space_id))
    run(site.store.revoke_client(space.client_id, site.now()))
    gone = site.get("/embed/algebra")
    assert gone.status == 404 and gone.csp["frame-ancestors"] == "'self'"


def test_the_ended_page_stays_framable(site: Site, room: RoomRecord) -> None:
    """After leaving, the embedded page lands on an ended page the parent may still frame."""
    page = site.get("/embed/algebra/ended?reason=left")
    assert page.status == 200
    assert "You left the meeting" in page.text
    assert page.csp["frame-ancestors"].startswith("'self' " + LMS)
    assert site.get("/embed/algebra/ended?reason=whatever").status == 200


# --- seats -------------------------------------------------------------------------------------


def test_an_invitation_becomes_a_seat_once(site: Site, space: SpaceRecord,
                                           room: RoomRecord) -> None:
    """POST /embed/<alias>/session with an invitation: a seat in the room (200 JSON),
    the invitation used; a second time 409 userToken.alreadyActivated."""
    invitation = site.invite(space, room, role="moderator", display_name="Mo")
    page, body = post_json(site, "/embed/algebra/session", {"token": invitation.secret})
    assert page.status == 200, body
    assert page.header("cache-control") == "no-store"
    assert body["participant"] == {"displayName": "Mo", "role": "moderator",
                                   "waitingForModerator": False}
    assert body["room"] == {"alias": "algebra", "name": "Algebra"}
    seat = site.registry.seat_for_token(body["sessionToken"])
    assert seat is not None and seat.role is Role.MODERATOR
    assert seat.userdata["mp_room_id"] == room.id
    assert site.uses(invitation) == 1
    again, error = post_json(site, "/embed/algebra/session", {"token": invitation.secret})
    assert again.status == 409
    assert error["error"]["code"] == "userToken.alreadyActivated"
    assert error["error"]["message"]


def test_a_session_token_resumes_without_the_invitation(site: Site, space: SpaceRecord,
                                                        room: RoomRecord) -> None:
    """A reload hands the stored session token back: same seat, nothing consumed; a
    session of another room, an unknown one, or a removed one is refused (404)."""
    invitation = site.invite(space, room)
    _, body = post_json(site, "/embed/algebra/session",
                        {"token": invitation.secret, "displayName": "Ada"})
    token = body["sessionToken"]
    page, again = post_json(site, "/embed/algebra/session", {"sessionToken": token})
    assert page.status == 200 and again["sessionToken"] == token
    assert site.uses(invitation) == 1

    other = site.room(space, alias="other-room")
    _, elsewhere = post_json(site, "/embed/other-room/session", {"sessionToken": token})
    assert elsewhere["error"]["code"] == "session.invalid"
    page, unknown = post_json(site, "/embed/algebra/session", {"sessionToken": "x" * 30})
    assert page.status == 404 and unknown["error"]["code"] == "session.invalid"
    seat = site.registry.seat_for_token(token)
    assert seat is not None and other.id != room.id
    participant = site.registry.connect(seat)
    site.registry.remove(seat.meeting, participant.user_id)
    page, removed = post_json(site, "/embed/algebra/session", {"sessionToken": token})
    assert page.status == 404 and removed["error"]["code"] == "session.invalid"


def test_an_invitation_for_another_room_is_refused_unused(site: Site, space: SpaceRecord,
                                                          room: RoomRecord) -> None:
    """An invitation to another room gives 403 userToken.otherRoom and stays unused; a
    space invitation works in any room of its space."""
    other = site.room(space, alias="other-room")
    invitation = site.invite(space, other, display_name="Ada")
    page, body = post_json(site, "/embed/algebra/session", {"token": invitation.secret})
    assert page.status == 403 and body["error"]["code"] == "userToken.otherRoom"
    assert site.uses(invitation) == 0
    whole_space = site.invite(space, None, display_name="Sam")
    page, body = post_json(site, "/embed/algebra/session", {"token": whole_space.secret})
    assert page.status == 200
    seat = site.registry.seat_for_token(body["sessionToken"])
    assert seat is not None and seat.userdata["mp_room_id"] == room.id
    foreign_space = site.space()
    foreign = site.invite(foreign_space, None, display_name="Eve")
    page, body = post_json(site, "/embed/algebra/session", {"token": foreign.secret})
    assert page.status == 403 and site.uses(foreign) == 0


def test_a_name_is_asked_for_before_anything_is_used(site: Site, space: SpaceRecord,
                                                     room: RoomRecord) -> None:
    """Without a fixed or given name the answer is 422 userToken.displayNameRequired and
    the invitation is still unused."""
    invitation = site.invite(space, room)
    page, body = post_json(site, "/embed/algebra/session", {"token": invitation.secret})
    assert page.status == 422
    assert body["error"]["code"] == "userToken.displayNameRequired"
    assert site.uses(invitation) == 0


def test_public_rooms_take_anyone_with_a_name_private_ones_nobody(site: Site) -> None:
    """In a public room of a public space a display name is enough; in a private room
    it is refused with 403 room.private."""
    open_space = site.space(visibility="public")
    site.room(open_space, alias="open-room", visibility="public")
    site.room(open_space, alias="shut-room", visibility="private")
    page, body = post_json(site, "/embed/open-room/session", {"displayName": "Visitor"})
    assert page.status == 200
    assert body["participant"]["role"] == "participant"
    page, body = post_json(site, "/embed/open-room/session", {})
    assert page.status == 422 and body["error"]["code"] == "userToken.displayNameRequired"
    page, body = post_json(site, "/embed/shut-room/session", {"displayName": "Visitor"})
    assert page.status == 403 and body["error"]["code"] == "room.private"
    page, body = post_json(site, "/embed/nowhere/session", {"displayName": "Visitor"})
    assert page.status == 404 and body["error"]["code"] == "room.notFound"


def test_the_session_endpoint_refuses_other_sites_and_bad_bodies(
        site: Site, space: SpaceRecord, room: RoomRecord) -> None:
    """Only the page itself (its own Origin, JSON) may ask; bad bodies get JSON errors."""
    invitation = site.invite(space, room, display_name="Ada")
    cases = [
        post_json(site, "/embed/algebra/session", {"token": invitation.secret}, origin=LMS),
        post_json(site, "/embed/algebra/session", b"token=x",
                  content_type="application/x-www-form-urlencoded"),
        post_json(site, "/embed/algebra/session", b"{not json"),
        post_json(site, "/embed/algebra/session", b"[1, 2]"),
        post_json(site, "/embed/algebra/session", {"token": 7}),
        post_json(site, "/embed/algebra/session", {"displayName": "x" * 201}),
        post_json(site, "/embed/algebra/session", b"{" + b" " * 9000 + b"}"),
    ]
    assert [page.status for page, _ in cases] == [403, 415, 400, 400, 400, 400, 413]
    for page, body in cases:
        assert page.header("content-type") == "application/json"
        assert body["error"]["code"] and body["error"]["message"]
    assert site.uses(invitation) == 0
    wrong = site.get("/embed/algebra/session")
    assert wrong.status == 405 and wrong.header("allow") == "POST"
    # without an Origin header (not a browser) the call is fine
    page, _ = post_json(site, "/embed/algebra/session", {"token": invitation.secret},
                        origin=None)
    assert page.status == 200


# --- embed.js and the REST snippet -----------------------------------------------------------


def test_embed_js_may_be_loaded_by_other_sites(site: Site) -> None:
    """embed.js (for parent pages) is served cross-origin; the bridge is not."""
    script = site.get("/static/embed.js")
    assert script.status == 200
    assert script.header("content-type") == "text/javascript; charset=utf-8"
    assert script.header("cross-origin-resource-policy") == "cross-origin"
    assert script.header("access-control-allow-origin") == "*"
    assert "MeetplatformEmbed" in script.text and ALLOW in script.text
    bridge = site.get("/static/embed-bridge.js")
    assert bridge.header("cross-origin-resource-policy") == "same-origin"


def test_the_rest_api_returns_the_iframe_snippet(site: Site, space: SpaceRecord,
                                                 room: RoomRecord) -> None:
    """GET /api/v2/rooms/{id}/embed gives the URL, the allow attribute, the iframe markup
    and the embed.js variant."""
    from tests.restapi.harness import Client, Harness

    h = Harness(parts=site.parts, root=site.root)
    record, space2, secret = run(site.store.create_client("lms", site.now()))
    run(site.store.update_space(space2.id, {"embed_origins": [LMS]}, site.now()))

    client = Client(record, space2, secret)
    client.token = h.token_for(client)
    created = h.create_room(client, name="Biology", alias="biology")
    r = h.request("GET", f"/rooms/{created['id']}/embed", token=client.token)
    assert r.status == 200, r.body
    attributes = r.json["data"]["attributes"]
    assert r.json["data"]["type"] == "roomEmbeds"
    assert attributes["url"] == "https://meet.example.com/embed/biology"
    assert attributes["allow"] == ALLOW
    assert attributes["html"].startswith(
        '<iframe src="https://meet.example.com/embed/biology" '
        'allow="camera; microphone; display-capture; autoplay; fullscreen; clipboard-write"')
    assert attributes["scriptUrl"] == "https://meet.example.com/static/embed.js"
    assert "MeetplatformEmbed.create" in attributes["script"]
    assert attributes["embedOrigins"] == [LMS]
    assert attributes["frameAncestors"] == f"'self' {LMS}"
    assert attributes["credentialRequired"] is True
    other = h.request("GET", f"/rooms/{room.id}/embed", token=client.token)
    assert other.status == 404


# --- the socket's Origin check -----------------------------------------------------------------


class EmbedWorld(SignallingWorld):
    """The signalling test world with the service's own signalling: built with the embed
    pages' origin lookup plugged in (:func:`build_parts`)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(extra_origins=())
        clock: Any = self.clock
        settings = make_settings(public_url=self.settings.public_url, data_dir=tmp_path)
        self.store = Store.open_inline(tmp_path)
        self.parts = build_parts(clock, settings, self.registry, self.store)
        self.invitations = self.parts.invitations
        self.embed = self.parts.embed
        self.service = self.parts.signalling

    def room_seat(self, origins: tuple[str, ...]) -> str:
        now = int(self.clock.seconds() * 1000)
        _, space, _ = run(self.store.create_client("acme", now))
        space = run(self.store.update_space(space.id, {"embed_origins": list(origins)}, now))
        room = run(self.store.create_room(space.id, {
            "alias": f"r-{space.id[-8:]}", "name": "R", "type": "conference",
            "visibility": "private", "lobby": False, "max_participants": 0, "camera": True,
            "microphone": True, "screenshare": True, "not_before": None, "expires_at": None,
            "metadata": {}}, now))
        entry = self.invitations.enter_room(room, role="participant", display_name="Ada")
        return entry.seat.token


@pytest.fixture
def world(tmp_path: Path) -> Iterator[EmbedWorld]:
    old = txaio.config.loop  # type: ignore[attr-defined]
    w = EmbedWorld(tmp_path)
    txaio.config.loop = w.clock  # type: ignore[attr-defined]
    try:
        yield w
    finally:
        txaio.config.loop = old  # type: ignore[attr-defined]


def test_embedding_sites_of_the_seats_space_may_open_its_socket(world: EmbedWorld) -> None:
    """A seat of a room whose space lists an embedding origin may connect from that
    origin (any case, default port), as from the service's own."""
    for origin in (LMS, "HTTPS://LMS.example.org:443", "https://meet.example.test"):
        client = world.open_socket(world.room_seat((LMS,)), origin=origin)
        assert client.open and client.joined["self"]["name"] == "Ada", origin


def test_other_origins_stay_refused(world: EmbedWorld) -> None:
    """Origins not listed by the seat's space, and any foreign origin for seats outside
    rooms (BBB meetings), are refused with 403."""
    token = world.room_seat((LMS,))
    for origin in ("https://evil.example", "http://lms.example.org"):
        with pytest.raises(Refused, match=r"403.*origin not allowed"):
            world.open_socket(token, origin=origin)
    with pytest.raises(Refused, match=r"origin 'null' not allowed"):
        world.open_socket(token, origin="null")
    with pytest.raises(Refused, match=r"403.*origin not allowed"):
        world.open_socket(world.room_seat(()), origin=LMS)
    meeting, _ = world.registry.create_meeting(MeetingSpec("bbb-1", "BBB"))
    seat = world.registry.issue_seat(meeting, full_name="Bob", role=Role.VIEWER)
    with pytest.raises(Refused, match=r"403.*origin not allowed"):
        world.open_socket(seat.token, origin=LMS)
    with pytest.raises(Refused, match=r"403.*unknown session token"):
        world.open_socket("x" * 30, origin=LMS)


def test_a_failing_origin_lookup_refuses_with_500(world: EmbedWorld,
                                                   fail_on_logged_failures: list[Any]) -> None:
    """If the store cannot answer, the handshake is refused (500) and the error logged."""
    token = world.room_seat((LMS,))

    async def broken(seat: Any) -> frozenset[str]:
        raise RuntimeError("store down")

    world.service.factory.extra_origins_for = broken
    with pytest.raises(Refused, match=r"500.*internal error"):
        world.open_socket(token, origin=LMS)
    assert len(fail_on_logged_failures) == 1
    fail_on_logged_failures.clear()



# --- broken text (meetplatform.text) -------------------------------------------------------------


def test_queries_that_are_not_utf8_are_refused(site: Site, room: RoomRecord) -> None:
    """The embed and invitation pages refuse a query that is not UTF-8 (HTML 400)."""
    for path in ("/embed/algebra/ended?reason=%ED%A0%80", "/embed/algebra?x=%FF",
                 "/j/mput_abcdefghij?x=%FF"):
        page = site.get(path)
        assert page.status == 400, path
        assert page.header("content-type") == "text/html; charset=utf-8"


def test_a_name_with_a_lone_surrogate_is_refused_and_breaks_nobody(world: EmbedWorld) -> None:
    """``displayName: "Eve\\ud800"`` (valid JSON, not valid Unicode) is a 400 naming the
    field; nobody gets a seat with it, so later joiners connect and see each other (no
    1011) and the room's REST reads answer 200."""
    from meetplatform.build import mount
    from tests.restapi.harness import Harness

    h = Harness(parts=world.parts, root=mount(world.parts))
    client = h.new_client()
    r = h.request("PATCH", f"/spaces/{client.space.id}", token=client.token, json={
        "data": {"type": "spaces", "id": client.space.id,
                 "attributes": {"visibility": "public"}}})
    assert r.status == 200, r.body
    room = h.create_room(client, name="Open", alias="open-room", visibility="public")

    def session(body: bytes) -> tuple[int, Any]:
        r = h.request("POST", "https://meet.example.test/embed/open-room/session", body=body,
                      content_type="application/json", headers={"Accept": "*/*"})
        return r.status, r.json

    status, answer = session(b'{"displayName": "Eve\\ud800"}')
    assert status == 400, answer
    assert answer["error"]["code"] == "request.invalid"
    assert answer["error"]["message"].startswith("displayName is not valid Unicode")
    status, answer = session(b'{"displayName": "Eve\xed\xa0\x80"}')
    assert status == 400 and "not valid Unicode" in answer["error"]["message"]

    joiners = []
    for name in ("Ada", "Bob"):
        status, answer = session(json.dumps({"displayName": name}).encode())
        assert status == 200, answer
        joiners.append(world.open_socket(answer["sessionToken"]))
    ada, bob = joiners
    assert ada.open and bob.open
    assert sorted(p["name"] for p in bob.joined["participants"]) == ["Ada", "Bob"]
    world.flush()
    assert ada.open and bob.open
    assert h.request("GET", f"/rooms/{room['id']}", token=client.token).status == 200
    r = h.request("GET", f"/rooms/{room['id']}/participants", token=client.token)
    assert r.status == 200 and len(r.json["data"]) == 2
