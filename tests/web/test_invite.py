"""The invitation link ``/j/<token>`` through the real resource tree (``build_parts`` and
``mount``, as the service builds it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import pytest_twisted
import treq
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, DeferredList
from twisted.web.http_headers import Headers

from meetplatform.build import build_parts, mount
from meetplatform.invitations import CreatedInvitation
from meetplatform.model import GuestStatus, Role
from meetplatform.registry import Registry
from meetplatform.store import RoomRecord, SpaceRecord, Store
from meetplatform.webhooks.http import ImmediateBody
from tests.support import make_clock, make_settings, result, run

BASE = "https://meet.example.com"
FORM = "application/x-www-form-urlencoded"
HOUR_MS = 3_600_000


@dataclass
class Page:
    status: int
    headers: dict[str, list[str]]
    text: str

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def csp(self) -> dict[str, str]:
        value = self.header("content-security-policy") or ""
        return dict(d.strip().split(" ", 1) for d in value.split(";") if d.strip())

    def hidden(self, name: str) -> str:
        match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', self.text)
        assert match, f"no hidden {name} field"
        return match.group(1)


class Site:
    """The whole site (every part, mounted) over an in-memory agent, with a fake clock."""

    def __init__(self, tmp_path: Path, *, store: Store | None = None) -> None:
        self.clock = make_clock()
        self.settings = make_settings(public_url=BASE, data_dir=tmp_path, server_name="Meet")
        self.registry = Registry(self.clock, server_url=BASE)
        self.store = store or Store.open_inline(tmp_path)
        self.parts = build_parts(self.clock, self.settings, self.registry, self.store)
        self.invitations = self.parts.invitations
        self.root = mount(self.parts)
        self.agent = RequestTraversalAgent(self.root)
        self._rooms = 0

    def now(self) -> int:
        return int(self.clock.seconds() * 1000)

    # --- requests ---------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Page:
        d = self.agent.request(method.encode(), (BASE + path).encode(),
                               Headers({k: [v] for k, v in (headers or {}).items()}),
                               ImmediateBody(body) if body is not None else None)
        self.agent.flush()
        response = result(d)
        content = treq.content(response)
        self.agent.flush()
        headers_out = {k.decode().lower(): [v.decode("latin-1") for v in vs]
                       for k, vs in response.headers.getAllRawHeaders()}
        return Page(response.code, headers_out, result(content).decode("utf-8"))

    def get(self, path: str, **kw: Any) -> Page:
        return self.request("GET", path, **kw)

    def post_form(self, path: str, fields: dict[str, str], **kw: Any) -> Page:
        return self.request("POST", path, body=urlencode(fields).encode(),
                            headers={"Content-Type": FORM, **kw.pop("headers", {})}, **kw)

    # --- data ---------------------------------------------------------------------------

    def space(self, *, origins: tuple[str, ...] = (), visibility: str = "private",
              name: str = "Acme School") -> SpaceRecord:
        _, space, _ = run(self.store.create_client("acme", self.now()))
        changes: dict[str, Any] = {"name": name, "visibility": visibility,
                                   "embed_origins": list(origins)}
        updated = run(self.store.update_space(space.id, changes, self.now()))
        assert updated is not None
        return updated  # type: ignore[no-any-return]

    def room(self, space: SpaceRecord, **fields: Any) -> RoomRecord:
        self._rooms += 1
        values: dict[str, Any] = {
            "alias": f"room-{self._rooms}", "name": "Algebra <1>", "type": "conference",
            "visibility": "private", "lobby": False, "max_participants": 0, "camera": True,
            "microphone": True, "screenshare": True, "not_before": None, "expires_at": None,
            "metadata": {}}
        values.update(fields)
        return run(self.store.create_room(space.id, values, self.now()))  # type: ignore[no-any-return]

    def invite(self, space: SpaceRecord, room: RoomRecord | None, **kw: Any) -> CreatedInvitation:
        return run(self.invitations.create(space, room, **kw))  # type: ignore[no-any-return]

    def uses(self, invitation: CreatedInvitation) -> int:
        token = run(self.store.get_user_token(invitation.token.id))
        return int(token.uses)


def session_token_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/client/join", location
    return parse_qs(parts.query)["sessionToken"][0]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def space(site: Site) -> SpaceRecord:
    return site.space()


# --- opening the link ----------------------------------------------------------------------


def test_opening_the_link_shows_the_room_and_a_join_button(site: Site,
                                                           space: SpaceRecord) -> None:
    """GET /j/<token> names the room and the role and offers a Join form."""
    room = site.room(space)
    invitation = site.invite(space, room, role="moderator")
    page = site.get(f"/j/{invitation.secret}")
    assert page.status == 200
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert "Join Algebra &lt;1&gt;" in page.text
    assert "as a moderator" in page.text
    assert '<form method="post" action="/j/"' in page.text
    assert page.hidden("token") == invitation.secret
    assert 'name="displayName"' in page.text
    assert 'id="join-button"' in page.text


def test_opening_the_link_never_consumes_it(site: Site, space: SpaceRecord) -> None:
    """Link previews and mail scanners (GET, HEAD, repeated) leave the invitation unused."""
    room = site.room(space)
    invitation = site.invite(space, room)
    for method in ("GET", "HEAD", "GET", "GET"):
        assert site.request(method, f"/j/{invitation.secret}").status == 200
    assert site.uses(invitation) == 0
    assert not list(site.registry.meetings())


def test_the_page_is_private_and_cookieless(site: Site, space: SpaceRecord) -> None:
    """The page is not cached, sends no Referer, runs no script, sets no cookie, and
    cannot be framed by other sites."""
    invitation = site.invite(space, site.room(space))
    page = site.get(f"/j/{invitation.secret}")
    assert page.header("cache-control") == "no-store"
    assert page.header("referrer-policy") == "no-referrer"
    assert page.header("set-cookie") is None
    assert page.csp["script-src"] == "'none'"
    assert page.csp["frame-ancestors"] == "'self'"
    assert page.csp["form-action"] == "'self'"
    assert "<script" not in page.text


def test_a_fixed_name_is_shown_instead_of_asked(site: Site, space: SpaceRecord) -> None:
    """An invitation that fixes the display name shows it and asks for none."""
    invitation = site.invite(space, site.room(space), display_name="Ada <L>")
    page = site.get(f"/j/{invitation.secret}")
    assert '<strong id="fixed-name">Ada &lt;L&gt;</strong>' in page.text
    assert 'name="displayName"' not in page.text


# --- joining ---------------------------------------------------------------------------------


def test_joining_consumes_the_invitation_and_lands_in_the_conference(
        site: Site, space: SpaceRecord) -> None:
    """POST /j/ with the token uses it once and redirects (303) to the conference page
    with a seat in the room's meeting, with the invitation's role and the given name."""
    room = site.room(space)
    invitation = site.invite(space, room, role="moderator", external_user_id="u-7")
    page = site.post_form("/j/", {"token": invitation.secret, "displayName": " Ada "})
    assert page.status == 303
    location = page.header("location")
    assert location is not None and location.startswith(f"{BASE}/client/join?sessionToken=")
    assert page.header("cache-control") == "no-store"
    seat = site.registry.seat_for_token(session_token_of(location))
    assert seat is not None
    assert seat.full_name == "Ada"
    assert seat.role is Role.MODERATOR
    assert seat.external_user_id == "u-7"
    assert seat.userdata["mp_room_id"] == room.id
    assert site.uses(invitation) == 1
    # the conference page opens with that session token
    conference = site.get(urlsplit(location).path + "?" + urlsplit(location).query)
    assert conference.status == 200
    assert "Algebra &lt;1&gt;" in conference.text


def test_the_secret_is_not_in_the_form_action(site: Site, space: SpaceRecord) -> None:
    """The form posts to /j/ with the token in the body, so the POST's URL holds no secret."""
    invitation = site.invite(space, site.room(space))
    page = site.get(f"/j/{invitation.secret}")
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None and invitation.secret not in action.group(1)


def test_a_used_invitation_gets_its_own_page(site: Site, space: SpaceRecord) -> None:
    """After the one use, joining again and opening the link both say "already used" (409)."""
    invitation = site.invite(space, site.room(space))
    assert site.post_form("/j/", {"token": invitation.secret,
                                  "displayName": "Ada"}).status == 303
    again = site.post_form("/j/", {"token": invitation.secret, "displayName": "Eve"})
    assert again.status == 409
    assert "This invitation was already used" in again.text
    assert 'data-reason="userToken.alreadyActivated"' in again.text
    opened = site.get(f"/j/{invitation.secret}")
    assert opened.status == 409
    assert "already used" in opened.text
    assert "join-form" not in opened.text


def test_an_invitation_for_several_uses_works_that_many_times(site: Site,
                                                              space: SpaceRecord) -> None:
    """maxUses 2: two joins succeed with distinct seats, the third is refused."""
    invitation = site.invite(space, site.room(space), max_uses=2)
    first = site.post_form("/j/", {"token": invitation.secret, "displayName": "A"})
    second = site.post_form("/j/", {"token": invitation.secret, "displayName": "B"})
    assert first.status == second.status == 303
    assert first.header("location") != second.header("location")
    assert site.post_form("/j/", {"token": invitation.secret,
                                  "displayName": "C"}).status == 409


def test_expired_revoked_unknown_and_early_invitations_have_their_own_pages(
        site: Site, space: SpaceRecord) -> None:
    """Expired 410, revoked 410 (different words), unknown 404, not valid yet 409; none
    shows a Join button and none can be joined."""
    room = site.room(space)
    expired = site.invite(space, room, expires_at=site.now() + 1000)
    revoked = site.invite(space, room)
    early = site.invite(space, room, not_before=site.now() + HOUR_MS)
    run(site.store.revoke_user_token(revoked.token.id, site.now()))
    site.clock.advance(2)

    cases = [
        (expired.secret, 410, "This invitation has expired"),
        (revoked.secret, 410, "This invitation was withdrawn"),
        ("mput_" + "x" * 40, 404, "This invitation link is not valid"),
        ("not-a-token", 404, "This invitation link is not valid"),
        (early.secret, 409, "This invitation is not valid yet"),
    ]
    for secret, status, title in cases:
        page = site.get(f"/j/{secret}")
        assert (page.status, title in page.text) == (status, True), (secret, page.text)
        assert "join-form" not in page.text
        joined = site.post_form("/j/", {"token": secret, "displayName": "Eve"})
        assert joined.status == status, secret
    assert "valid until" in site.get(f"/j/{expired.secret}").text
    assert site.uses(expired) == site.uses(revoked) == site.uses(early) == 0


def test_a_name_is_required_and_asking_for_it_consumes_nothing(
        site: Site, space: SpaceRecord) -> None:
    """Joining without a name re-shows the form (422) with the problem; the invitation
    stays unused; with a name it works."""
    invitation = site.invite(space, site.room(space))
    page = site.post_form("/j/", {"token": invitation.secret, "displayName": "   "})
    assert page.status == 422
    assert 'id="form-problem"' in page.text and "Enter your name" in page.text
    assert page.hidden("token") == invitation.secret
    assert site.uses(invitation) == 0
    too_long = site.post_form("/j/", {"token": invitation.secret, "displayName": "x" * 201})
    assert too_long.status == 422
    assert site.post_form("/j/", {"token": invitation.secret,
                                  "displayName": "Ada"}).status == 303


def test_a_form_that_is_not_utf8_is_refused_and_consumes_nothing(
        site: Site, space: SpaceRecord) -> None:
    """A name whose percent-decoded bytes are not UTF-8 (a UTF-8-encoded surrogate, a
    stray byte) is refused with an HTML 400 naming the field, not repaired; the invitation
    stays unused and works afterwards."""
    invitation = site.invite(space, site.room(space), max_uses=1)
    for raw in (b"Eve%ED%A0%80", b"Eve%FF"):
        page = site.request("POST", "/j/", body=b"token=" + invitation.secret.encode()
                            + b"&displayName=" + raw, headers={"Content-Type": FORM})
        assert page.status == 400, page.text
        assert page.header("content-type") == "text/html; charset=utf-8"
        assert "The field displayName" in page.text and "not valid Unicode" in page.text
    page = site.request("POST", "/j/", body=b"token=\xff", headers={"Content-Type": FORM})
    assert page.status == 400 and "The form holds text" in page.text
    assert site.uses(invitation) == 0
    assert site.post_form("/j/", {"token": invitation.secret,
                                  "displayName": "Eve"}).status == 303
    assert site.uses(invitation) == 1


def test_a_full_meeting_gives_the_use_back(site: Site, space: SpaceRecord) -> None:
    """When the room's meeting is full the join is refused (409) and the invitation can
    still be used later."""
    room = site.room(space, max_participants=1)
    first = site.invite(space, room)
    seat = site.registry.seat_for_token(session_token_of(
        site.post_form("/j/", {"token": first.secret,
                               "displayName": "A"}).header("location") or ""))
    assert seat is not None
    site.registry.connect(seat)
    late = site.invite(space, room)
    page = site.post_form("/j/", {"token": late.secret, "displayName": "C"})
    assert page.status == 409
    assert "The meeting is full" in page.text
    assert site.uses(late) == 0


def test_lobby_rooms_say_a_moderator_will_let_you_in(site: Site, space: SpaceRecord) -> None:
    """In a room with a lobby, a participant is told so and its seat waits."""
    room = site.room(space, lobby=True)
    invitation = site.invite(space, room)
    assert "A moderator will let you in" in site.get(f"/j/{invitation.secret}").text
    page = site.post_form("/j/", {"token": invitation.secret, "displayName": "Guest"})
    seat = site.registry.seat_for_token(session_token_of(page.header("location") or ""))
    assert seat is not None and seat.guest_status is GuestStatus.WAIT


def test_a_space_invitation_lets_the_person_pick_a_room(site: Site,
                                                        space: SpaceRecord) -> None:
    """A space invitation lists the space's open rooms; joining needs a room of them."""
    first = site.room(space, name="Maths")
    second = site.room(space, name="Physics")
    site.room(space, name="Closed", expires_at=site.now() + 1000)
    site.clock.advance(2)
    invitation = site.invite(space, None, display_name="Ada")
    page = site.get(f"/j/{invitation.secret}")
    assert page.status == 200
    choices = re.findall(r'value="([^"]+)"( checked)?> ([A-Za-z]+)</label>', page.text)
    assert sorted((alias, name) for alias, _, name in choices) == [
        (first.alias, "Maths"), (second.alias, "Physics")]
    assert [checked for _, checked, _ in choices].count(" checked") == 1
    assert "Closed" not in page.text
    refused = site.post_form("/j/", {"token": invitation.secret, "room": "nope"})
    assert refused.status == 422 and "Pick one of the rooms" in refused.text
    assert site.uses(invitation) == 0
    joined = site.post_form("/j/", {"token": invitation.secret, "room": second.alias})
    assert joined.status == 303
    seat = site.registry.seat_for_token(session_token_of(joined.header("location") or ""))
    assert seat is not None and seat.userdata["mp_room_id"] == second.id
    assert seat.full_name == "Ada"


def test_a_space_without_rooms_says_so(site: Site, space: SpaceRecord) -> None:
    """A space invitation to a space with no open room explains and offers no form."""
    invitation = site.invite(space, None)
    page = site.get(f"/j/{invitation.secret}")
    assert page.status == 409
    assert "No room to join yet" in page.text


# --- bad requests ------------------------------------------------------------------------------


def test_bad_requests_get_html_answers(site: Site, space: SpaceRecord) -> None:
    """Wrong methods, content types, oversized bodies and addresses get HTML errors."""
    invitation = site.invite(space, site.room(space))
    cases = [
        site.request("POST", f"/j/{invitation.secret}", body=b"x=1",
                     headers={"Content-Type": FORM}),
        site.request("POST", "/j/", body=b'{"token": "x"}',
                     headers={"Content-Type": "application/json"}),
        site.request("POST", "/j/", body=b"token=" + b"x" * 9000,
                     headers={"Content-Type": FORM}),
        site.request("POST", "/j/", body=b"token=a&token=b", headers={"Content-Type": FORM}),
        site.get("/j/"),
        site.get("/j/a/b"),
        site.get("/j/%ff%fe"),
        site.request("DELETE", f"/j/{invitation.secret}"),
    ]
    assert [p.status for p in cases] == [405, 415, 413, 400, 404, 404, 400, 405]
    for page in cases:
        assert page.header("content-type") == "text/html; charset=utf-8"
        assert "Traceback" not in page.text
    assert site.uses(invitation) == 0


def test_joins_are_rate_limited_per_address(site: Site, space: SpaceRecord) -> None:
    """Past the burst, joins from one address get 429 with Retry-After."""
    statuses = [site.post_form("/j/", {"token": "mput_" + "y" * 30}).status
                for _ in range(61)]
    assert statuses[:60] == [404] * 60
    assert statuses[60] == 429
    later = site.post_form("/j/", {"token": "mput_" + "y" * 30})
    assert later.status == 429 and later.header("retry-after") == "1"
    site.clock.advance(1)
    assert site.post_form("/j/", {"token": "mput_" + "y" * 30}).status == 404


@pytest_twisted.ensureDeferred
async def test_simultaneous_joins_with_one_invitation_one_wins(tmp_path: Path) -> None:
    """20 POST /j/ for one single-use invitation in flight at once over the threaded
    store: one 303 into the conference, nineteen "already used" pages."""
    from twisted.internet import reactor

    from tests.restapi.test_concurrency import _FlushWhenDone

    store = Store.open(reactor, tmp_path)  # type: ignore[arg-type]
    try:
        site = Site(tmp_path, store=store)
        wrapper = _FlushWhenDone(site.root)  # type: ignore[arg-type]
        agent = RequestTraversalAgent(wrapper)
        wrapper.agent = agent
        _, space, _ = await store.create_client("acme", site.now())
        room = await store.create_room(space.id, {
            "alias": "race", "name": "Race", "type": "conference", "visibility": "private",
            "lobby": False, "max_participants": 0, "camera": True, "microphone": True,
            "screenshare": True, "not_before": None, "expires_at": None, "metadata": {}},
            site.now())
        invitation = await site.invitations.create(space, room)
        form = urlencode({"token": invitation.secret, "displayName": "Racer"}).encode()

        async def join() -> tuple[int, str]:
            response = await agent.request(b"POST", f"{BASE}/j/".encode(),
                                           Headers({b"Content-Type": [FORM.encode()]}),
                                           ImmediateBody(form))
            body = await treq.content(response)
            return response.code, body.decode()

        attempts = [Deferred.fromCoroutine(join()) for _ in range(20)]
        results = await DeferredList(attempts, fireOnOneErrback=True)
        statuses = sorted(code for _, (code, _) in results)
        assert statuses == [303] + [409] * 19
        assert all("already used" in body for _, (code, body) in results if code == 409)
        seats = [s for s in site.registry.sessions()]
        assert len(seats) == 1
    finally:
        await store.close()
