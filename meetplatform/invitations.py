"""Invitations (the seed's ``user_token``) and entering a room: the domain side.

An invitation is a random secret (``mput_...``) of which the store keeps only a hash. It
grants a role in one room (or in a whole space) and may be used ``max_uses`` times
(default once). The invitation link is ``{public_url}/j/<secret>``; opening it must never
consume it (mail scanners prefetch links): :meth:`Invitations.preview` reads, and only
:meth:`Invitations.activate` consumes.

Activation takes one use in ONE conditional SQL ``UPDATE`` (see
:meth:`meetplatform.store.database.Database.activate_user_token`), so of any number of
concurrent activations exactly as many win as there are uses left. A room invitation then
gets a registry seat in the room's live meeting (created on demand) and a conference URL;
every activation also gets a user-level access token (``mpua_...``) scoped to the room or
space and the invitation's role, for the JSON:API's user-authorized methods (re-joining
after a reload, listing participants, moderating).

Errors are domain exceptions (subclasses of :class:`InvitationError`, plus the registry's
own); each surface (JSON:API, the ``/j/`` page) renders them in its own format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from meetplatform.config import Settings
from meetplatform.model import GuestPolicy, Meeting, MeetingSpec, Role, Seat
from meetplatform.registry import Registry
from meetplatform.store import (
    AccessTokenRecord,
    RoomRecord,
    SpaceRecord,
    Store,
    UserTokenRecord,
)
from meetplatform.store.database import USER_TOKEN_PREFIX
from meetplatform.store.records import PERMISSIONS, ROLES
from meetplatform.tenancy import room_meeting_id

_log = Logger()

#: What an invited user's access token may do, by role (scopes of the JSON:API).
USER_SCOPES: dict[str, tuple[str, ...]] = {
    "viewer": ("spaces:read", "rooms:read", "rooms:join", "participants:read"),
    "participant": ("spaces:read", "rooms:read", "rooms:join", "participants:read"),
    "moderator": ("spaces:read", "rooms:read", "rooms:join", "participants:read",
                  "participants:moderate"),
}
assert set(USER_SCOPES) == set(ROLES)

DEFAULT_TTL_MS = 24 * 3600 * 1000
MAX_TTL_MS = 30 * 24 * 3600 * 1000
#: Lifetime of the access token an activation hands to the invited user.
USER_ACCESS_TTL_MS = 4 * 3600 * 1000
MAX_SECRET_LENGTH = 128


# --- errors --------------------------------------------------------------------------------


class InvitationError(Exception):
    """Base of the refusals of this module; ``code`` names the case in the API's words."""

    code = "userToken.invalid"

    def __init__(self, detail: str, *, at: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        #: A time relevant to the refusal (when it expired, when it opens), in ms.
        self.at = at


class InvitationNotFound(InvitationError):
    code = "userToken.notFound"


class InvitationExpired(InvitationError):
    code = "userToken.expired"


class InvitationRevoked(InvitationError):
    code = "userToken.revoked"


class InvitationUsed(InvitationError):
    code = "userToken.alreadyActivated"


class InvitationNotYetValid(InvitationError):
    code = "userToken.notYetValid"


class DisplayNameRequired(InvitationError):
    code = "userToken.displayNameRequired"


class RoomNotFound(InvitationError):
    code = "room.notFound"


class RoomNotOpenYet(InvitationError):
    code = "room.notYetOpen"


class RoomExpired(InvitationError):
    code = "room.expired"


class RoomNotPublic(InvitationError):
    code = "room.private"


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedInvitation:
    """A new invitation: ``secret`` and ``invite_url`` are shown once and never again."""

    token: UserTokenRecord
    secret: str
    invite_url: str


@dataclass(frozen=True)
class InvitationView:
    """What the invitation page shows before the user confirms (nothing was consumed)."""

    token: UserTokenRecord
    space: SpaceRecord
    room: RoomRecord | None
    #: The name the user will have, if the invitation fixes it ("" lets them choose).
    display_name: str


@dataclass(frozen=True)
class RoomEntry:
    """A seat in a room's live meeting and where the browser goes with it."""

    room: RoomRecord
    meeting: Meeting
    seat: Seat
    role: str
    permissions: Mapping[str, bool]
    conference_url: str

    @property
    def session_token(self) -> str:
        return self.seat.token


@dataclass(frozen=True)
class Activation:
    """A successful activation."""

    token: UserTokenRecord
    space: SpaceRecord
    room: RoomRecord | None
    #: The seat, for room invitations (``None`` for space invitations).
    entry: RoomEntry | None
    access_token: str
    access: AccessTokenRecord
    scopes: tuple[str, ...] = field(default=())


# --- helpers -------------------------------------------------------------------------------


def effective_permissions(room: RoomRecord, role: str,
                          narrowing: Mapping[str, bool] | None = None) -> dict[str, bool]:
    """Moderators may do everything; viewers only watch; participants get the room's
    defaults, narrowed (never widened) by the invitation."""
    if role == "moderator":
        return {name: True for name in PERMISSIONS}
    if role == "viewer":
        return {name: False for name in PERMISSIONS}
    granted = room.permissions
    narrowing = narrowing or {}
    return {name: granted[name] and narrowing.get(name, True) for name in PERMISSIONS}


def check_room_open(room: RoomRecord, now: int) -> None:
    """Raise :class:`RoomNotOpenYet` or :class:`RoomExpired` outside the room's times."""
    if room.not_before is not None and now < room.not_before:
        raise RoomNotOpenYet(f"the room {room.name!r} opens later", at=room.not_before)
    if room.expires_at is not None and now >= room.expires_at:
        raise RoomExpired(f"the room {room.name!r} has expired", at=room.expires_at)


class Invitations:
    """Creates, previews and activates invitations; seats users in rooms."""

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store) -> None:
        self._clock = clock
        self._settings = settings
        self._registry = registry
        self._store = store

    def now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def invite_url(self, secret: str) -> str:
        return f"{self._settings.public_url.rstrip('/')}/j/{quote(secret, safe='')}"

    def conference_url(self, session_token: str) -> str:
        return (f"{self._settings.public_url.rstrip('/')}/client/join?sessionToken="
                f"{quote(session_token, safe='')}")

    # --- creating ---------------------------------------------------------------------------

    async def create(
        self,
        space: SpaceRecord,
        room: RoomRecord | None,
        *,
        role: str = "participant",
        display_name: str = "",
        external_user_id: str = "",
        permissions: Mapping[str, bool] | None = None,
        max_uses: int = 1,
        not_before: int | None = None,
        expires_at: int | None = None,
    ) -> CreatedInvitation:
        """A new invitation to ``room`` (or to the whole ``space`` when ``room`` is None).

        The caller validated the values (the JSON:API does); the expiry defaults to 24 h.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if max_uses < 1:
            raise ValueError("max_uses must be at least 1")
        now = self.now()
        record, secret = await self._store.create_user_token(
            space_id=space.id, room_id=room.id if room else None, role=role,
            display_name=display_name, external_user_id=external_user_id,
            permissions={k: bool(v) for k, v in (permissions or {}).items() if k in PERMISSIONS},
            max_uses=max_uses, not_before=not_before,
            expires_at=expires_at if expires_at is not None else now + DEFAULT_TTL_MS, now=now)
        _log.info("invitation {token_id} created for {target} as {role}",
                  token_id=record.id, target=room.id if room else space.id, role=role)
        return CreatedInvitation(token=record, secret=secret, invite_url=self.invite_url(secret))

    # --- reading ----------------------------------------------------------------------------

    async def _lookup(self, secret: str, *, recent: bool = False) -> tuple[
            UserTokenRecord, SpaceRecord, RoomRecord | None]:
        if (not isinstance(secret, str) or not secret.startswith(USER_TOKEN_PREFIX)
                or len(secret) > MAX_SECRET_LENGTH):
            raise InvitationNotFound("no such invitation")
        # One trip to the store, or none before an activation (``recent``: the consuming
        # UPDATE re-checks the invitation against the database).
        found = await self._store.invitation_context(secret, recent=recent)
        if found is None:
            raise InvitationNotFound("no such invitation")
        token, space, client, room = found
        if space is None or client is None:
            raise InvitationNotFound("no such invitation")
        if token.room_id is not None and room is None:
            raise InvitationNotFound("the room of this invitation was deleted")
        now = self.now()
        if token.revoked_at is not None or not client.active:
            raise InvitationRevoked("this invitation was revoked", at=token.revoked_at)
        self._raise_for(token, now)
        return token, space, room

    @staticmethod
    def _raise_for(token: UserTokenRecord, now: int) -> None:
        if token.revoked_at is not None:
            raise InvitationRevoked("this invitation was revoked", at=token.revoked_at)
        if token.uses >= token.max_uses:
            raise InvitationUsed("this invitation was already used",
                                 at=token.last_activated_at)
        if token.expires_at <= now:
            raise InvitationExpired("this invitation has expired", at=token.expires_at)
        if token.not_before is not None and token.not_before > now:
            raise InvitationNotYetValid("this invitation is not valid yet", at=token.not_before)

    async def preview(self, secret: str, *, recent: bool = False) -> InvitationView:
        """What the invitation grants, if it can be activated now; consumes nothing.

        Raises the same errors :meth:`activate` would. ``recent=True`` is for a caller
        about to activate (see :meth:`Store.invitation_context`): the invitation as this
        process last saw it, which may still be usable when it is not any more (the
        activation then refuses), never the reverse.
        """
        token, space, room = await self._lookup(secret, recent=recent)
        if room is not None:
            check_room_open(room, self.now())
        return InvitationView(token=token, space=space, room=room,
                              display_name=token.display_name)

    # --- activating -------------------------------------------------------------------------

    async def activate(self, secret: str, *, display_name: str | None = None,
                       room: RoomRecord | None = None,
                       view: InvitationView | None = None) -> Activation:
        """Consume one use of the invitation and hand out what it grants.

        ``display_name`` is used when the invitation does not fix one. ``room`` is the room
        to enter with a space invitation (a room of its space; without it a space
        invitation grants only its access token). ``view`` is the :meth:`preview` of
        ``secret`` the caller has just made (it is not read again: the consuming
        ``UPDATE`` checks the invitation's state itself).

        The seat is issued first (in memory), then the use is recorded (group-committed,
        on disk before this returns); when the use cannot be recorded the seat is
        withdrawn. So a refused seat (meeting full, guest denied...) never consumes the
        invitation, and an activation that returns is on disk. Raises an
        :class:`InvitationError` or the registry's error.
        """
        if view is None:
            token, space, own_room = await self._lookup(secret, recent=True)
        else:
            token, space, own_room = view.token, view.space, view.room
        name = token.display_name or (display_name or "").strip()
        if len(name) > 200:
            raise DisplayNameRequired("the display name is longer than 200 characters")
        target = own_room
        if room is not None:
            if (own_room is not None and room.id != own_room.id) or room.space_id != space.id:
                raise InvitationNotFound("this invitation is for another room")
            target = room
        entry = None
        if target is not None:
            if not name:
                raise DisplayNameRequired("a display name is needed to join")
            check_room_open(target, self.now())
            entry = self.enter_room(target, role=token.role, display_name=name,
                                    external_user_id=token.external_user_id or None,
                                    narrowing=token.permissions)
        scopes = USER_SCOPES[token.role]
        try:
            outcome = await self._store.activate_user_token(
                secret, self.now(), grant_scope=scopes, grant_ttl_ms=USER_ACCESS_TTL_MS)
        except BaseException:
            if entry is not None:
                self._registry.withdraw_seat(entry.seat)
            raise
        if not outcome.won:
            if entry is not None:
                self._registry.withdraw_seat(entry.seat)
            lost = outcome.token or token
            if outcome.reason == "not_found":
                raise InvitationNotFound("no such invitation")
            if outcome.reason == "revoked":
                raise InvitationRevoked("this invitation was revoked", at=lost.revoked_at)
            self._raise_for(lost, self.now())
            raise InvitationUsed("this invitation was already used")
        assert outcome.token is not None and outcome.access_record is not None
        assert outcome.access_token is not None
        _log.info("invitation {token_id} activated ({uses}/{max_uses})",
                  token_id=token.id, uses=outcome.token.uses, max_uses=token.max_uses)
        return Activation(token=outcome.token, space=space, room=own_room, entry=entry,
                          access_token=outcome.access_token, access=outcome.access_record,
                          scopes=scopes)

    # --- rooms and their meetings -----------------------------------------------------------

    def live_meeting(self, room: RoomRecord) -> Meeting | None:
        """The room's running meeting, if any."""
        meeting = self._registry.get_meeting(room_meeting_id(room))
        if meeting is None or meeting.ended:
            return None
        return meeting

    def meeting_for_room(self, room: RoomRecord) -> Meeting:
        """The room's live meeting, created in the registry if none runs."""
        meeting = self.live_meeting(room)
        if meeting is not None:
            return meeting
        now = self.now()
        duration = 0
        if room.expires_at is not None:
            duration = max(1, math.ceil((room.expires_at - now) / 60_000))
        metadata = {str(k).lower(): str(v) for k, v in room.metadata.items()}
        metadata.update({"mp-room-id": room.id, "mp-space-id": room.space_id})
        spec = MeetingSpec(
            meeting_id=room_meeting_id(room),
            name=room.name,
            max_participants=room.max_participants,
            duration=duration,
            mute_on_start=not room.microphone,
            webcams_only_for_moderator=room.type == "webinar",
            metadata=metadata,
            guest_policy=GuestPolicy.ASK_MODERATOR if room.lobby else GuestPolicy.ALWAYS_ACCEPT,
        )
        meeting, _ = self._registry.create_meeting(spec)
        return meeting

    def enter_room(
        self,
        room: RoomRecord,
        *,
        role: str,
        display_name: str,
        external_user_id: str | None = None,
        narrowing: Mapping[str, bool] | None = None,
    ) -> RoomEntry:
        """A seat in the room's meeting for a user with ``role``.

        With the room's lobby on, participants and viewers wait for a moderator
        (``seat.guest_status`` is ``WAIT``); moderators go straight in. Raises
        :class:`RoomNotOpenYet`, :class:`RoomExpired` or the registry's errors
        (``MaxParticipantsReached``, ``GuestDeniedAccess``, ``MeetingForciblyEnded``).
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        check_room_open(room, self.now())
        meeting = self.meeting_for_room(room)
        permissions = effective_permissions(room, role, narrowing)
        userdata = {"mp_role": role, "mp_room_id": room.id, "mp_space_id": room.space_id}
        userdata.update({f"mp_{k}": "true" if v else "false" for k, v in permissions.items()})
        seat = self._registry.issue_seat(
            meeting,
            full_name=display_name,
            role=Role.MODERATOR if role == "moderator" else Role.VIEWER,
            external_user_id=external_user_id,
            guest=room.lobby and role != "moderator",
            userdata=userdata,
        )
        return RoomEntry(room=room, meeting=meeting, seat=seat, role=role,
                         permissions=permissions, conference_url=self.conference_url(seat.token))

    async def join_public_room(self, alias: str, display_name: str) -> RoomEntry:
        """A participant seat in a public room of a public space, with no invitation
        (what ``/embed/<alias>`` offers anonymous visitors)."""
        room = await self._store.room_by_alias(alias)
        if room is None:
            raise RoomNotFound("no such room")
        space = await self._store.get_space(room.space_id)
        client = await self._store.get_client(space.client_id) if space else None
        if space is None or client is None or not client.active:
            raise RoomNotFound("no such room")
        if room.visibility != "public" or space.visibility != "public":
            raise RoomNotPublic("this room needs an invitation")
        name = display_name.strip()
        if not name or len(name) > 200:
            raise DisplayNameRequired("a display name (1 to 200 characters) is needed")
        return self.enter_room(room, role="participant", display_name=name)
