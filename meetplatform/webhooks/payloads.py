"""The JSON bodies of outgoing webhooks (written once, when the event enters the outbox).

- :func:`bbb_mapped`: bbb-webhooks' mapped event,
  ``{"data": {"type": "event", "id": "user-joined", "attributes": {"meeting": {...},
  "user": {...}}, "event": {"ts": <ms>, "id": "evt_..."}}}``. ``event.id`` is this
  platform's addition: the same on every retry, for deduplication.
- :func:`bbb_raw`: what a hook created with ``getRaw=true`` gets: an envelope shaped like
  BigBlueButton's internal messages (``{"envelope": {"name": "UserJoinedMeetingEvtMsg",
  ...}, "core": {"header": {...}, "body": {...}}}``).
- :func:`rest_body`: the JSON:API's event for per-space endpoints,
  ``{"id": "evt_...", "type": "participant.joined", "createdAt": "...Z",
  "apiVersion": "2", "data": {...}}`` (signed with Standard Webhooks headers, never in
  the body).
"""

from __future__ import annotations

import json
from typing import Any

from meetplatform.webhooks.events import BBB_EVENTS, Occurrence, format_time


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bbb_mapped(occ: Occurrence) -> str:
    return _dumps({"data": {"type": "event", "id": occ.bbb_name,
                            "attributes": dict(occ.bbb_attributes),
                            "event": {"ts": occ.at, "id": occ.id}}})


def bbb_raw(occ: Occurrence) -> str:
    name = BBB_EVENTS.get(occ.bbb_name or "", "MeetplatformEvtMsg")
    meeting = occ.meeting
    internal = meeting.internal_id if meeting else ""
    user = occ.bbb_attributes.get("user") or {}
    user_id = user.get("internal-user-id", "")
    body: dict[str, Any] = {"meetingId": internal,
                            "externalMeetingId": meeting.meeting_id if meeting else "",
                            "event": occ.bbb_name}
    for key, value in occ.bbb_attributes.items():
        if key != "meeting":
            body[key] = value
    meeting_attrs = occ.bbb_attributes.get("meeting") or {}
    extra = {k: v for k, v in meeting_attrs.items()
             if k not in ("internal-meeting-id", "external-meeting-id")}
    if extra:
        body["meeting"] = extra
    return _dumps({
        "envelope": {"name": name, "routing": {"meetingId": internal, "userId": user_id},
                     "timestamp": occ.at, "id": occ.id},
        "core": {"header": {"name": name, "meetingId": internal, "userId": user_id},
                 "body": body},
    })


def rest_body(occ: Occurrence) -> str:
    return _dumps({"id": occ.id, "type": occ.rest_type, "createdAt": format_time(occ.at),
                   "apiVersion": "2", "data": dict(occ.rest_data)})
