"""Invitations (user tokens): creation, preview, atomic activation, seats in rooms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList

from meetplatform import invitations as inv
from meetplatform.model import GuestPolicy, GuestStatus, MaxParticipantsReached, Role
from meetplatform.registry import Registry
from meetplatform.store import RoomRecord, SpaceRecord, Store
from meetplatform.tenancy import room_meeting_id
from tests.support import make_clock, make_settings, run

URL = "https://meet.example.com"


class World:
    def __init__(self, tmp_path: Path, store: Store | None = None) -> None:
        self.clock = make_clock()
        self.registry = Registry(self.clock, server_url=URL)
        self.store = store or Store.open_inline(tmp_path)
        self.settings = make_settings(public_url=URL, data_dir=tmp_path)
        self.invitations = inv.Invitations(self.clock, self.settings, self.registry, self.store)
        self._rooms = 0

    def now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def space(self) -> SpaceRecord:
        _, space, _ = run(self.store.create_client("acme", self.now()))
        return space

    def room(self, space: SpaceRecord, **fields: Any) -> RoomRecord:
        self._rooms += 1
        values: dict[str, Any] = {
            "alias": f"room-{self._rooms}", "name": "Room", "type": "conference", "visibility": "private", "lobby": False,
            "max_participants": 0, "camera": True, "microphone": True, "screenshare": True,
            "not_before": None, "expires_at": None, "metadata": {}}
        values.update(fields)
        return run(self.store.create_room(space.id, values, self.now()))  # type: ignore


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_invitation_link_and_secret_are_returned_once(world: World) -> None:
    """Creating an invitation returns its secret and its /j/ link; the store keeps a hash."""
    space = world.space()
    room = world.room(space)
    created = run(world.invitations.create(space, room, role="moderator"))
    assert created.secret.startswith("mput_")
    assert created.invite_url == f"{URL}/j/{created.secret}"
    assert created.token.uses == 0 and created.token.max_uses == 1
    assert created.token.expires_at == world.now() + inv.DEFAULT_TTL_MS
    stored = run(world.store.get_user_token(created.token.id))
    assert created.secret not in repr(stored)


def test_preview_never_consumes(world: World) -> None:
    """Opening the invitation page (preview) any number of times leaves it usable."""
    space = world.space()
    room = world.room(space)
    created = run(world.invitations.create(space, room, display_name="Ada"))
    for _ in range(3):
        view = run(world.invitations.preview(created.secret))
        assert view.room == room and view.display_name == "Ada"
    assert run(world.store.get_user_token(created.token.id)).uses == 0
    assert run(world.invitations.activate(created.secret)).entry is not None


def test_activation_seats_the_user_in_the_rooms_meeting(world: World) -> None:
    """Activation creates the room's meeting on demand and issues a seat with a session
    token and the conference URL."""
    space = world.space()
    room = world.room(space, name="Physics", max_participants=30, microphone=False)
    created = run(world.invitations.create(space, room, role="participant",
                                            external_user_id="student-7",
                                            permissions={"screenshare": False}))
    activation = run(world.invitations.activate(created.secret, display_name="Grace"))
    entry = activation.entry
    assert entry is not None
    meeting = world.registry.get_meeting(room_meeting_id(room))
    assert meeting is entry.meeting and meeting is not None
    assert meeting.spec.name == "Physics" and meeting.spec.max_participants == 30
    assert meeting.spec.mute_on_start
    assert meeting.spec.metadata["mp-room-id"] == room.id
    seat = entry.seat
    assert world.registry.seat_for_token(entry.seat.token) is entry.seat
    assert seat.full_name == "Grace" and seat.role is Role.VIEWER
    assert seat.external_user_id == "student-7"
    assert seat.guest_status is GuestStatus.ALLOW
    assert entry.conference_url == f"{URL}/client/join?sessionToken={seat.token}"
    assert entry.permissions == {"camera": True, "microphone": False, "screenshare": False}
    assert seat.userdata["mp_role"] == "participant"
    assert activation.access_token.startswith("mpua_")
    assert activation.access.room_id == room.id and activation.access.role == "participant"
    again = run(world.invitations.create(space, room))
    second = run(world.invitations.activate(again.secret, display_name="Alan"))
    assert second.entry is not None and second.entry.meeting is meeting


def test_lobby_makes_participants_wait_but_not_moderators(world: World) -> None:
    """In a room with a lobby, an invited participant waits; an invited moderator enters."""
    space = world.space()
    room = world.room(space, lobby=True)
    guest = run(world.invitations.create(space, room, role="participant"))
    host = run(world.invitations.create(space, room, role="moderator"))
    waiting = run(world.invitations.activate(guest.secret, display_name="Guest")).entry
    entering = run(world.invitations.activate(host.secret, display_name="Host")).entry
    assert waiting.meeting.spec.guest_policy is GuestPolicy.ASK_MODERATOR
    assert waiting.seat.guest_status is GuestStatus.WAIT
    assert entering.seat.guest_status is GuestStatus.ALLOW
    assert entering.seat.role is Role.MODERATOR


def test_refusals_are_distinct(world: World) -> None:
    """Unknown, used, expired, revoked and not-yet-valid invitations each raise their own
    error, on preview as on activation."""
    space = world.space()
    room = world.room(space)
    with pytest.raises(inv.InvitationNotFound):
        run(world.invitations.activate("mput_" + "x" * 43, display_name="A"))
    with pytest.raises(inv.InvitationNotFound):
        run(world.invitations.preview("not even a token"))
    used = run(world.invitations.create(space, room))
    run(world.invitations.activate(used.secret, display_name="A"))
    expired = run(world.invitations.create(space, room, expires_at=world.now() + 1000))
    revoked = run(world.invitations.create(space, room))
    run(world.store.revoke_user_token(revoked.token.id, world.now()))
    later = run(world.invitations.create(space, room, not_before=world.now() + 60_000))
    world.clock.advance(1)
    for secret, error in ((used.secret, inv.InvitationUsed),
                          (expired.secret, inv.InvitationExpired),
                          (revoked.secret, inv.InvitationRevoked),
                          (later.secret, inv.InvitationNotYetValid)):
        with pytest.raises(error):
            run(world.invitations.preview(secret))
        with pytest.raises(error):
            run(world.invitations.activate(secret, display_name="B"))
    assert len({e.code for e in (inv.InvitationUsed("x"), inv.InvitationExpired("x"),
                                 inv.InvitationRevoked("x"), inv.InvitationNotYetValid("x"),
                                 inv.InvitationNotFound("x"))}) == 5
    world.clock.advance(60)
    assert run(world.invitations.activate(later.secret, display_name="C")).entry is not None


def test_a_display_name_is_needed_before_anything_is_consumed(world: World) -> None:
    """Without a name (none fixed by the invitation), activation is refused and the
    invitation stays unused."""
    space = world.space()
    room = world.room(space)
    created = run(world.invitations.create(space, room))
    with pytest.raises(inv.DisplayNameRequired):
        run(world.invitations.activate(created.secret, display_name="   "))
    assert run(world.store.get_user_token(created.token.id)).uses == 0


def test_room_times_are_enforced(world: World) -> None:
    """A room that is not open yet, or has expired, refuses invited users (unconsumed)."""
    space = world.space()
    now = world.now()
    early = world.room(space, alias="early-room", not_before=now + 3_600_000)
    late = world.room(space, alias="late-room", expires_at=now + 1000)
    early_inv = run(world.invitations.create(space, early))
    late_inv = run(world.invitations.create(space, late))
    with pytest.raises(inv.RoomNotOpenYet):
        run(world.invitations.activate(early_inv.secret, display_name="A"))
    world.clock.advance(2)
    with pytest.raises(inv.RoomExpired):
        run(world.invitations.activate(late_inv.secret, display_name="A"))
    assert run(world.store.get_user_token(early_inv.token.id)).uses == 0


def test_a_full_room_gives_the_use_back(world: World) -> None:
    """When the room's meeting is full the seat is refused and the invitation can be used
    again later."""
    space = world.space()
    room = world.room(space, max_participants=1)
    first = run(world.invitations.create(space, room))
    second = run(world.invitations.create(space, room))
    run(world.invitations.activate(first.secret, display_name="A"))
    with pytest.raises(MaxParticipantsReached):
        run(world.invitations.activate(second.secret, display_name="B"))
    token = run(world.store.get_user_token(second.token.id))
    assert token.uses == 0
    world.clock.advance(world.registry.SEAT_RESERVATION_SECONDS + 1)  # first never connected
    assert run(world.invitations.activate(second.secret, display_name="B")).entry is not None


def test_an_invitation_kept_in_memory_never_outlives_its_state(
        world: World, tmp_path: Path) -> None:
    """Activations read the invitation as this process last saw it; a use taken by
    another process, a revocation and a refund are still decided by the database: the
    activation is refused as it should be and the seat it was given is withdrawn."""
    from meetplatform.store import open_database

    space = world.space()
    room = world.room(space)
    created = run(world.invitations.create(space, room, max_uses=2))
    run(world.invitations.activate(created.secret, display_name="A"))  # now kept
    other = open_database(tmp_path)  # the operator's CLI, another connection
    other.connection.execute("UPDATE user_tokens SET uses = max_uses WHERE id = ?",
                             (created.token.id,))
    other.close()
    seats_before = set(world.registry._seats)
    with pytest.raises(inv.InvitationUsed):
        run(world.invitations.activate(created.secret, display_name="B"))
    assert set(world.registry._seats) == seats_before  # the seat was withdrawn
    again = run(world.invitations.create(space, room, max_uses=5))
    run(world.invitations.activate(again.secret, display_name="C"))
    run(world.store.revoke_user_token(again.token.id, world.now()))
    with pytest.raises(inv.InvitationRevoked):
        run(world.invitations.activate(again.secret, display_name="D"))


def test_space_invitation_grants_a_token_not_a_seat(world: World) -> None:
    """A space invitation's activation returns a space-scoped access token and no seat."""
    space = world.space()
    created = run(world.invitations.create(space, None, role="moderator"))
    activation = run(world.invitations.activate(created.secret))
    assert activation.entry is None and activation.room is None
    assert activation.access.space_id == space.id and activation.access.room_id is None
    assert "participants:moderate" in activation.access.scope


def test_effective_permissions_only_narrow(world: World) -> None:
    """Invitations narrow the room's defaults; viewers publish nothing; moderators all."""
    space = world.space()
    room = world.room(space, camera=False)
    assert inv.effective_permissions(room, "participant", {"camera": True}) == {
        "camera": False, "microphone": True, "screenshare": True}
    assert not any(inv.effective_permissions(room, "viewer").values())
    assert all(inv.effective_permissions(room, "moderator", {"camera": False}).values())


def test_public_rooms_of_public_spaces_need_no_invitation(world: World) -> None:
    """Anyone may enter a public room of a public space by its alias; private ones refuse."""
    space = world.space()
    public = world.room(space, alias="open-room", visibility="public")
    with pytest.raises(inv.RoomNotPublic):
        run(world.invitations.join_public_room("open-room", "Visitor"))
    space = run(world.store.update_space(space.id, {"visibility": "public"}, world.now()))
    entry = run(world.invitations.join_public_room("open-room", "Visitor"))
    assert entry.room == public and entry.role == "participant"
    world.room(space, alias="closed-room", visibility="private")
    with pytest.raises(inv.RoomNotPublic):
        run(world.invitations.join_public_room("closed-room", "Visitor"))
    with pytest.raises(inv.RoomNotFound):
        run(world.invitations.join_public_room("nowhere", "Visitor"))


@pytest_twisted.ensureDeferred
async def test_fifty_simultaneous_activations_one_wins(tmp_path: Path) -> None:
    """50 activations of one single-use invitation started at once (through the threaded
    store): exactly one gets a seat, 49 are told it was already used."""
    from twisted.internet import reactor

    store = Store.open(reactor, tmp_path)  # type: ignore[arg-type]
    try:
        world = World(tmp_path, store=store)
        _, space, _ = await store.create_client("acme", world.now())
        room = await store.create_room(space.id, {
            "alias": "contested", "name": "Room", "type": "conference", "visibility": "private",
            "lobby": False, "max_participants": 0, "camera": True, "microphone": True, "screenshare": True,
            "not_before": None, "expires_at": None, "metadata": {}}, world.now())
        created = await world.invitations.create(space, room)
        attempts = [Deferred.fromCoroutine(
            world.invitations.activate(created.secret, display_name=f"user {i}"))
            for i in range(50)]
        results = await DeferredList(attempts, consumeErrors=True)
        wins = [value for ok, value in results if ok]
        losses = [value for ok, value in results if not ok]
        assert len(wins) == 1
        assert len(losses) == 49
        assert all(f.check(inv.InvitationUsed) for f in losses)  # type: ignore[attr-defined]
        meeting = world.registry.get_meeting(room_meeting_id(room))
        assert meeting is not None and len(meeting.seats) == 1
        assert (await store.get_user_token(created.token.id)).uses == 1  # type: ignore
    finally:
        await store.close()


# --- durability of answered activations (the real service, killed with SIGKILL) -----------


@pytest.mark.integration
def test_every_answered_activation_survives_kill_minus_nine(tmp_path: Path) -> None:
    """Activations sent at once (so that they share group commits), through the JSON:API
    (200) and the invitation page (303): the service is killed with SIGKILL right after the
    last answer, and every answered activation is in the database, its use counted and its
    access token there; nothing was consumed that was not answered."""
    from meetplatform.store import open_database
    from tests.integration.conftest import ServiceProcess, service_environment

    service = ServiceProcess(["--listen", "tcp:0:interface=127.0.0.1"], tmp_path,
                             service_environment())
    try:
        service.started()
        answers, data_dir, token = _activate_then_kill(service, tmp_path)
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=60)
    assert sorted({status for status, _ in answers}) == [200, 303], answers
    check = open_database(data_dir)
    try:
        assert check.get_user_token(token.id).uses == len(answers)  # type: ignore[union-attr]
        for status, access in answers:
            if status == 200:
                record = check.find_access_token(access)
                assert record is not None and record.user_token_id == token.id
        stored = check.connection.execute(
            "SELECT count(*) FROM access_tokens WHERE user_token_id = ?", (token.id,)).fetchone()
        assert stored[0] == len(answers)
    finally:
        check.close()


def _activate_then_kill(service: Any, tmp_path: Path) -> tuple[list[tuple[int, str]], Path,
                                                                 Any]:
    """Set up an invitation of 100 uses through another connection, send 24 activations
    from 12 threads, SIGKILL the service once all are answered; return the answers."""
    import json
    import signal
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from meetplatform.store import open_database

    data_dir = tmp_path / "meetplatform-data"
    db = open_database(data_dir)  # another connection, as the operator CLI would
    _, space, _ = db.create_client("acme", 1)
    room = db.create_room(space.id, {
        "alias": "kill-room", "name": "Room", "type": "conference", "visibility": "private",
        "lobby": False, "max_participants": 0, "camera": True, "microphone": True,
        "screenshare": True, "not_before": None, "expires_at": None, "metadata": {}}, 2)
    token, secret = db.create_user_token(
        space_id=space.id, room_id=room.id, role="participant", display_name="",
        external_user_id="", permissions={}, max_uses=100, not_before=None,
        expires_at=10**13, now=3)
    db.close()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def activate(i: int) -> tuple[int, str]:
        if i % 2:
            body = json.dumps({"data": {"type": "userTokenActivations", "attributes": {
                "token": secret, "displayName": f"Api {i}"}}}).encode()
            request = urllib.request.Request(
                f"{service.url}/api/v2/userTokens/activate", data=body, method="POST",
                headers={"Content-Type": "application/vnd.api+json"})
            with urllib.request.urlopen(request, timeout=30) as r:
                access = json.loads(r.read())["data"]["attributes"]["accessToken"]
                return r.status, access
        form = f"token={secret}&displayName=Page+{i}".encode()
        request = urllib.request.Request(f"{service.url}/j/", data=form, method="POST")
        try:
            opener.open(request, timeout=30)
        except urllib.error.HTTPError as e:
            return e.code, ""
        return 0, ""

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(activate, range(24)))
    service.process.send_signal(signal.SIGKILL)
    assert service.process.wait(timeout=60) == -signal.SIGKILL
    return answers, data_dir, token
