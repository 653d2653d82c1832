"""How the JSON:API's spaces name their meetings in the one registry.

The registry has a single namespace of meeting ids, shared by the BBB API and the JSON:API.
A space's meetings are ``<spaceId>/<localId>``: a room's live meeting is
``<spaceId>/<roomId>``, a meeting a client created directly is ``<spaceId>/<its id>``. The
BBB API's meetings belong to no space. This module is the one place that writes and reads
that encoding.
"""

from __future__ import annotations

import re
from typing import Protocol

#: ``<spaceId>/<local id>``: the shape of a space's meeting id.
_SPACE_MEETING = re.compile(r"(sp_[a-z0-9]{1,64})/(.+)", re.DOTALL)


class _RoomLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def space_id(self) -> str: ...


def space_meeting_id(space_id: str, local_id: str) -> str:
    """The registry's meetingID of a meeting a client created through the JSON:API."""
    return f"{space_id}/{local_id}"


def room_meeting_id(room: _RoomLike) -> str:
    """The registry's meetingID of a room's live meeting."""
    return space_meeting_id(room.space_id, room.id)


def tenant_of(meeting_id: str) -> tuple[str | None, str, str | None]:
    """``(space_id, local_id, room_id)`` of a registry meeting id.

    The JSON:API's meetings are ``<spaceId>/<id>`` and rooms' meetings
    ``<spaceId>/<roomId>``; the BBB API's meetings belong to no space: ``(None, id, None)``.
    """
    match = _SPACE_MEETING.fullmatch(meeting_id)
    if match is None:
        return None, meeting_id, None
    space_id, local = match.group(1), match.group(2)
    return space_id, local, local if local.startswith("rm_") else None
