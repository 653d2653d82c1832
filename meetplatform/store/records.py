"""What the store holds, as immutable values. Times are milliseconds since the epoch (UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("moderator", "participant", "viewer")
ROOM_TYPES = ("conference", "webinar")
VISIBILITIES = ("public", "private")
PERMISSIONS = ("camera", "microphone", "screenshare")


@dataclass(frozen=True)
class ClientRecord:
    """An application allowed to use the JSON:API (its secret is not here: only a hash is kept)."""

    id: str
    name: str
    created_at: int
    rotated_at: int | None = None
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class SpaceRecord:
    """The one space of a client: where its rooms live."""

    id: str
    client_id: str
    name: str
    description: str
    visibility: str
    embed_origins: tuple[str, ...]
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class RoomRecord:
    """A room of a space; its live meeting is created in the registry on demand."""

    id: str
    space_id: str
    alias: str
    name: str
    type: str
    visibility: str
    lobby: bool
    max_participants: int
    camera: bool
    microphone: bool
    screenshare: bool
    not_before: int | None
    expires_at: int | None
    metadata: Mapping[str, str]
    created_at: int
    updated_at: int

    @property
    def permissions(self) -> dict[str, bool]:
        """The room's default media permissions for participants."""
        return {"camera": self.camera, "microphone": self.microphone,
                "screenshare": self.screenshare}


@dataclass(frozen=True)
class UserTokenRecord:
    """An invitation: a hashed secret that grants a role in a room or a space."""

    id: str
    space_id: str
    room_id: str | None
    role: str
    display_name: str
    external_user_id: str
    permissions: Mapping[str, bool]
    max_uses: int
    uses: int
    not_before: int | None
    expires_at: int
    created_at: int
    last_activated_at: int | None = None
    revoked_at: int | None = None

    def status(self, now: int) -> str:
        """``pending``, ``activated`` (no uses left), ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.uses >= self.max_uses:
            return "activated"
        if self.expires_at <= now:
            return "expired"
        return "pending"


@dataclass(frozen=True)
class AccessTokenRecord:
    """A bearer token issued to a client (``kind='client'``) or an invited user (``'user'``)."""

    id: str
    client_id: str
    kind: str
    scope: tuple[str, ...]
    space_id: str
    issued_at: int
    expires_at: int
    revoked_at: int | None = None
    room_id: str | None = None
    role: str | None = None
    user_token_id: str | None = None
    client_revoked_at: int | None = None

    def active(self, now: int) -> bool:
        return (self.revoked_at is None and self.client_revoked_at is None
                and now < self.expires_at)


@dataclass(frozen=True)
class ActivationOutcome:
    """What an activation attempt did; ``reason`` says why it lost when ``won`` is false.

    Reasons: ``not_found``, ``revoked``, ``expired``, ``used``, ``not_yet_valid``.
    """

    won: bool
    token: UserTokenRecord | None = None
    reason: str | None = None
    access_token: str | None = None
    access_record: AccessTokenRecord | None = None
