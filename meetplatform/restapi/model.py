"""The JSON:API resource types (their attributes, in camelCase) and how records render.

Every type here is used three ways: to validate request documents, to render responses
and to generate the OpenAPI document. A test checks that rendered resources validate
against the generated schemas.
"""

from __future__ import annotations

from typing import Any

from meetplatform.model import Meeting, Participant, Seat
from meetplatform.restapi import jsonapi
from meetplatform.restapi.schema import (
    Array,
    Attr,
    Bool,
    DateTime,
    Int,
    Obj,
    ResourceType,
    Str,
    format_time,
)
from meetplatform.store import RoomRecord, SpaceRecord, UserTokenRecord
from meetplatform.store.records import PERMISSIONS, ROLES, ROOM_TYPES, VISIBILITIES

ORIGIN_PATTERN = r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:[0-9]{1,5})?"
ALIAS_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}"
MEETING_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}"
METADATA_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


def _permissions(description: str) -> Obj:
    return Obj(properties={name: Bool() for name in PERMISSIONS}, description=description)


def _metadata() -> Obj:
    return Obj(values=Str(max_length=1024), key_pattern=METADATA_KEY_PATTERN, max_properties=50,
               max_bytes=4096, description="free string values for your own use (up to 4 KiB)")


SPACE = ResourceType(
    "spaces",
    "The client's space: where its rooms live. Each client has exactly one, made with it.",
    {
        "name": Attr(Str(min_length=1, max_length=200, single_line=True)),
        "description": Attr(Str(max_length=2000)),
        "visibility": Attr(Str(enum=VISIBILITIES,
                               description="public spaces let anyone into their public rooms")),
        "embedOrigins": Attr(Array(
            items=Str(max_length=300, pattern=ORIGIN_PATTERN, example="https://lms.example.com"),
            max_items=50, unique=True,
            description="origins of the sites allowed to embed this space's rooms")),
        "createdAt": Attr(DateTime(), read_only=True),
        "updatedAt": Attr(DateTime(), read_only=True),
    },
    relationships={"rooms": "rooms", "userTokens": "userTokens"},
    id_example="sp_k3x9m2p7q4r8s6t5",
)

ROOM = ResourceType(
    "rooms",
    "A room of a space. Its live meeting is created when the first user enters.",
    {
        "name": Attr(Str(min_length=1, max_length=200, single_line=True), required=True),
        "alias": Attr(Str(max_length=64, pattern=ALIAS_PATTERN,
                          description="short name used in URLs (/embed/<alias>); unique; "
                                      "generated when not given")),
        "type": Attr(Str(enum=ROOM_TYPES, description="in a webinar only moderators "
                         "publish by default")),
        "visibility": Attr(Str(enum=VISIBILITIES,
                               description="public rooms (of public spaces) can be entered "
                                           "without an invitation")),
        "lobby": Attr(Bool(description="participants wait until a moderator admits them")),
        "maxParticipants": Attr(Int(minimum=0, maximum=10_000, description="0: no limit")),
        "defaultPermissions": Attr(_permissions(
            "what participants may publish by default (invitations can only narrow it)")),
        "notBefore": Attr(DateTime(nullable=True, description="nobody enters before this")),
        "expiresAt": Attr(DateTime(nullable=True, description="nobody enters after this; "
                                   "a meeting running then ends")),
        "metadata": Attr(_metadata()),
        "running": Attr(Bool(description="a meeting is live in the room"), read_only=True),
        "participantCount": Attr(Int(), read_only=True),
        "createdAt": Attr(DateTime(), read_only=True),
        "updatedAt": Attr(DateTime(), read_only=True),
    },
    relationships={"space": "spaces", "userTokens": "userTokens",
                   "participants": "participants"},
    id_example="rm_k3x9m2p7q4r8s6t5",
)

USER_TOKEN = ResourceType(
    "userTokens",
    "An invitation: a secret link that grants a role in a room (or a whole space). The "
    "secret is shown once, when it is created.",
    {
        "role": Attr(Str(enum=ROLES), create_only=True),
        "displayName": Attr(Str(max_length=200, single_line=True,
                                description="fixes the invited user's name; "
                                "empty lets the user choose"), create_only=True),
        "externalUserId": Attr(Str(max_length=256, single_line=True), create_only=True),
        "permissions": Attr(_permissions("narrows the room's default permissions"),
                            create_only=True),
        "maxUses": Attr(Int(minimum=1, maximum=1000, description="default 1: single use"),
                        create_only=True),
        "notBefore": Attr(DateTime(nullable=True), create_only=True),
        "expiresAt": Attr(DateTime(description="default: 24 hours after creation; at most "
                                   "30 days"), create_only=True),
        "uses": Attr(Int(), read_only=True),
        "status": Attr(Str(enum=("pending", "activated", "revoked", "expired")),
                       read_only=True),
        "createdAt": Attr(DateTime(), read_only=True),
        "lastActivatedAt": Attr(DateTime(nullable=True), read_only=True),
        "revokedAt": Attr(DateTime(nullable=True), read_only=True),
        "token": Attr(Str(description="the secret; shown only in the creation response"),
                      read_only=True, once=True),
        "inviteUrl": Attr(Str(format="uri", description="the invitation link to send; "
                              "shown only in the creation response"),
                          read_only=True, once=True),
    },
    relationships={"space": "spaces", "room": "rooms"},
    id_example="ut_k3x9m2p7q4r8s6t5",
)

ACTIVATION = ResourceType(
    "userTokenActivations",
    "Using an invitation: consumes one use and returns where the user goes.",
    {
        "token": Attr(Str(min_length=1, max_length=128), required=True, write_only=True),
        "displayName": Attr(Str(max_length=200, single_line=True,
                                description="needed when the invitation "
                                "does not fix a name")),
        "role": Attr(Str(enum=ROLES), read_only=True),
        "conferenceUrl": Attr(Str(format="uri", nullable=True,
                                  description="open this to join (room invitations)"),
                              read_only=True),
        "sessionToken": Attr(Str(nullable=True), read_only=True),
        "waitingForModerator": Attr(Bool(), read_only=True),
        "permissions": Attr(_permissions("what the user may publish"), read_only=True),
        "accessToken": Attr(Str(description="user-level bearer token for the user-authorized "
                                "calls (rejoin, participants)"), read_only=True),
        "accessTokenExpiresAt": Attr(DateTime(), read_only=True),
        "scope": Attr(Str(), read_only=True),
    },
    relationships={"space": "spaces", "room": "rooms", "userToken": "userTokens"},
    id_example="at_k3x9m2p7q4r8s6t5",
)

SEAT = ResourceType(
    "seats",
    "A place in a live meeting for one user: the conference URL carries its session token.",
    {
        "displayName": Attr(Str(min_length=1, max_length=200, single_line=True)),
        "role": Attr(Str(enum=ROLES)),
        "externalUserId": Attr(Str(max_length=256, single_line=True)),
        "guest": Attr(Bool(description="meetings only: a guest waits for a moderator when "
                           "the guest policy is ASK_MODERATOR (rooms: see lobby)")),
        "conferenceUrl": Attr(Str(format="uri"), read_only=True),
        "sessionToken": Attr(Str(), read_only=True),
        "waitingForModerator": Attr(Bool(), read_only=True),
        "permissions": Attr(_permissions("what the user may publish"), read_only=True),
        "meetingId": Attr(Str(), read_only=True),
    },
    relationships={"room": "rooms"},
    id_example="w_3f9a0c1b2d4e",
)

PARTICIPANT = ResourceType(
    "participants",
    "A user connected to a room's live meeting.",
    {
        "displayName": Attr(Str(), read_only=True),
        "externalUserId": Attr(Str(), read_only=True),
        "role": Attr(Str(enum=("moderator", "viewer")), read_only=True),
        "guest": Attr(Bool(), read_only=True),
        "presenter": Attr(Bool(), read_only=True),
        "muted": Attr(Bool(), read_only=True),
        "joinedVoice": Attr(Bool(), read_only=True),
        "listenOnly": Attr(Bool(), read_only=True),
        "videoStreams": Attr(Int(), read_only=True),
        "screenSharing": Attr(Bool(), read_only=True),
        "raisedHand": Attr(Bool(), read_only=True),
        "joinedAt": Attr(DateTime(), read_only=True),
    },
    relationships={"room": "rooms"},
    id_example="w_3f9a0c1b2d4e",
)

_ATTENDEE = Obj(properties={
    "participantId": Str(), "displayName": Str(), "externalUserId": Str(),
    "role": Str(enum=("moderator", "viewer")), "presenter": Bool(), "muted": Bool(),
    "joinedAt": DateTime(),
}, required=("participantId", "displayName", "externalUserId", "role", "presenter", "muted",
             "joinedAt"))

MEETING = ResourceType(
    "meetings",
    "A live meeting of the space, as the BigBlueButton API knows it (create, join, end, "
    "info). Rooms' meetings are listed too; their id is the room's id.",
    {
        "name": Attr(Str(min_length=1, max_length=256, single_line=True), required=True,
                     create_only=True),
        "maxParticipants": Attr(Int(minimum=0, maximum=10_000), create_only=True),
        "duration": Attr(Int(minimum=0, maximum=100_000, description="minutes; 0: no limit"),
                         create_only=True),
        "record": Attr(Bool(), create_only=True),
        "welcome": Attr(Str(max_length=5000), create_only=True),
        "moderatorOnlyMessage": Attr(Str(max_length=5000), create_only=True),
        "logoutUrl": Attr(Str(max_length=2000, pattern=r"(https?://\S*)?"), create_only=True),
        "guestPolicy": Attr(Str(enum=("ALWAYS_ACCEPT", "ALWAYS_DENY", "ASK_MODERATOR")),
                            create_only=True),
        "muteOnStart": Attr(Bool(), create_only=True),
        "webcamsOnlyForModerator": Attr(Bool(), create_only=True),
        "endWhenNoModerator": Attr(Bool(), create_only=True),
        "metadata": Attr(_metadata(), create_only=True),
        "internalMeetingId": Attr(Str(), read_only=True),
        "voiceBridge": Attr(Str(), read_only=True),
        "running": Attr(Bool(), read_only=True),
        "createdAt": Attr(DateTime(), read_only=True),
        "startedAt": Attr(DateTime(nullable=True), read_only=True),
        "participantCount": Attr(Int(), read_only=True),
        "moderatorCount": Attr(Int(), read_only=True),
        "roomId": Attr(Str(nullable=True), read_only=True),
        "attendees": Attr(Array(items=_ATTENDEE, max_items=100_000), read_only=True),
    },
    client_id=Str(max_length=100, pattern=MEETING_ID_PATTERN, reserved_prefix="rm_",
                  description="your meetingID (ids starting with rm_ are rooms')"),
    id_example="weekly-standup",
)

ALL_TYPES = (SPACE, ROOM, USER_TOKEN, ACTIVATION, SEAT, PARTICIPANT, MEETING)


# --- rendering ------------------------------------------------------------------------------


def space_resource(space: SpaceRecord, base: str) -> dict[str, Any]:
    return jsonapi.resource(
        "spaces", space.id,
        {
            "name": space.name,
            "description": space.description,
            "visibility": space.visibility,
            "embedOrigins": list(space.embed_origins),
            "createdAt": format_time(space.created_at),
            "updatedAt": format_time(space.updated_at),
        },
        relationships={
            "rooms": {"links": {"related": f"{base}/spaces/{space.id}/rooms"}},
            "userTokens": {"links": {"related": f"{base}/spaces/{space.id}/userTokens"}},
        },
        links={"self": f"{base}/spaces/{space.id}"},
    )


def room_resource(room: RoomRecord, base: str, public_url: str,
                  meeting: Meeting | None) -> dict[str, Any]:
    return jsonapi.resource(
        "rooms", room.id,
        {
            "name": room.name,
            "alias": room.alias,
            "type": room.type,
            "visibility": room.visibility,
            "lobby": room.lobby,
            "maxParticipants": room.max_participants,
            "defaultPermissions": room.permissions,
            "notBefore": format_time(room.not_before),
            "expiresAt": format_time(room.expires_at),
            "metadata": dict(room.metadata),
            "running": meeting is not None and meeting.running,
            "participantCount": meeting.participant_count if meeting else 0,
            "createdAt": format_time(room.created_at),
            "updatedAt": format_time(room.updated_at),
        },
        relationships={
            "space": jsonapi.to_one("spaces", room.space_id, f"{base}/spaces/{room.space_id}"),
            "userTokens": {"links": {"related": f"{base}/rooms/{room.id}/userTokens"}},
            "participants": {"links": {"related": f"{base}/rooms/{room.id}/participants"}},
        },
        links={"self": f"{base}/rooms/{room.id}",
               "embed": f"{public_url.rstrip('/')}/embed/{room.alias}"},
    )


def user_token_resource(token: UserTokenRecord, base: str, now: int, *,
                        secret: str | None = None,
                        invite_url: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "role": token.role,
        "displayName": token.display_name,
        "externalUserId": token.external_user_id,
        "permissions": dict(token.permissions),
        "maxUses": token.max_uses,
        "notBefore": format_time(token.not_before),
        "expiresAt": format_time(token.expires_at),
        "uses": token.uses,
        "status": token.status(now),
        "createdAt": format_time(token.created_at),
        "lastActivatedAt": format_time(token.last_activated_at),
        "revokedAt": format_time(token.revoked_at),
    }
    if secret is not None:
        attributes["token"] = secret
        attributes["inviteUrl"] = invite_url
    return jsonapi.resource(
        "userTokens", token.id, attributes,
        relationships={
            "space": jsonapi.to_one("spaces", token.space_id, f"{base}/spaces/{token.space_id}"),
            "room": jsonapi.to_one("rooms", token.room_id,
                                   f"{base}/rooms/{token.room_id}" if token.room_id else None),
        },
        links={"self": f"{base}/userTokens/{token.id}"},
    )


def seat_resource(seat: Seat, base: str, *, role: str, permissions: dict[str, bool],
                  conference_url: str, meeting_local_id: str,
                  room_id: str | None) -> dict[str, Any]:
    return jsonapi.resource(
        "seats", seat.user_id,
        {
            "displayName": seat.full_name,
            "role": role,
            "externalUserId": seat.external_user_id,
            "guest": seat.guest,
            "conferenceUrl": conference_url,
            "sessionToken": seat.token,
            "waitingForModerator": seat.guest_status.value == "WAIT",
            "permissions": permissions,
            "meetingId": meeting_local_id,
        },
        relationships={"room": jsonapi.to_one(
            "rooms", room_id, f"{base}/rooms/{room_id}" if room_id else None)},
    )


def participant_resource(p: Participant, room_id: str, base: str) -> dict[str, Any]:
    return jsonapi.resource(
        "participants", p.user_id,
        {
            "displayName": p.full_name,
            "externalUserId": p.external_user_id,
            "role": "moderator" if p.is_moderator else "viewer",
            "guest": p.seat.guest,
            "presenter": p.presenter,
            "muted": p.muted,
            "joinedVoice": p.joined_voice,
            "listenOnly": p.listen_only,
            "videoStreams": p.video_streams,
            "screenSharing": p.screen_sharing,
            "raisedHand": p.raised_hand,
            "joinedAt": format_time(p.joined_at),
        },
        relationships={"room": jsonapi.to_one("rooms", room_id, f"{base}/rooms/{room_id}")},
        links={"self": f"{base}/rooms/{room_id}/participants/{p.user_id}"},
    )


def meeting_resource(meeting: Meeting, local_id: str, base: str,
                     room_id: str | None) -> dict[str, Any]:
    spec = meeting.spec
    return jsonapi.resource(
        "meetings", local_id,
        {
            "name": spec.name,
            "maxParticipants": spec.max_participants,
            "duration": spec.duration,
            "record": spec.record,
            "welcome": meeting.welcome,
            "moderatorOnlyMessage": meeting.moderator_only_message,
            "logoutUrl": spec.logout_url,
            "guestPolicy": spec.guest_policy.value
            if spec.guest_policy.value != "ALWAYS_ACCEPT_AUTH" else "ALWAYS_ACCEPT",
            "muteOnStart": spec.mute_on_start,
            "webcamsOnlyForModerator": spec.webcams_only_for_moderator,
            "endWhenNoModerator": spec.end_when_no_moderator,
            "metadata": dict(spec.metadata),
            "internalMeetingId": meeting.internal_id,
            "voiceBridge": meeting.voice_bridge,
            "running": meeting.running,
            "createdAt": format_time(meeting.create_time),
            "startedAt": format_time(meeting.start_time or None),
            "participantCount": meeting.participant_count,
            "moderatorCount": meeting.moderator_count,
            "roomId": room_id,
            "attendees": [
                {"participantId": p.user_id, "displayName": p.full_name,
                 "externalUserId": p.external_user_id,
                 "role": "moderator" if p.is_moderator else "viewer",
                 "presenter": p.presenter, "muted": p.muted,
                 "joinedAt": format_time(p.joined_at)}
                for p in meeting.participants.values()
            ],
        },
        links={"self": f"{base}/meetings/{local_id}"},
    )
