"""What recordings tell the outside world, through the durable webhook outbox.

* bbb-webhooks' ``rap-*`` events (``rap-archive-started`` ... ``rap-publish-ended``) to
  the BBB hooks that want them, as each processing stage starts and ends;
* ``recording.ready`` to the endpoints of the meeting's space (JSON:API webhooks);
* BigBlueButton's recording-ready callback: when the meeting was created with
  ``meta_bbb-recording-ready-url``, a one-off ``POST`` of the form body
  ``signed_parameters=<JWT>``, the JWT HS256-signed with the shared secret over
  ``{"meeting_id": <meetingID>, "record_id": <recordID>}`` (as bbb-web's
  ``recording_ready_callback`` does; Scalelite re-signs the same way).

Each goes into the outbox like every other webhook (:meth:`WebhookService.enqueue`), so it
survives a restart and is retried until it is delivered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from meetplatform.store.recordings_db import RecordingRow
from meetplatform.tenancy import tenant_of
from meetplatform.webhooks import WebhookService
from meetplatform.webhooks.events import MeetingRef, Occurrence, format_time, new_event_id

#: The metadata names of the recording-ready callback (lower-case, as stored).
READY_URL_KEYS = ("bbb-recording-ready-url", "bn-recording-ready-url",
                  "canvas-recording-ready-url")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_hs256(claims: Mapping[str, Any], secret: str) -> str:
    """A compact JWS (HS256), as BigBlueButton signs ``signed_parameters``."""
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def ready_callback_body(row: RecordingRow, secret: str) -> str:
    token = jwt_hs256({"meeting_id": row.meeting_id, "record_id": row.record_id}, secret)
    return urlencode({"signed_parameters": token})


def _ref(row: RecordingRow) -> MeetingRef:
    space_id, local_id, room_id = tenant_of(row.meeting_id)
    return MeetingRef(row.internal_meeting_id, row.meeting_id, space_id, local_id, room_id)


class RecordingNotifier:
    """Turns recording stages into occurrences in the webhook outbox."""

    def __init__(self, webhooks: WebhookService, secret: str, now: Any) -> None:
        self._webhooks = webhooks
        self._secret = secret
        self._now = now

    def stage(self, name: str, row: RecordingRow) -> None:
        """A ``rap-*`` stage (and, at ``rap-publish-ended``, the ready notifications)."""
        ref = _ref(row)
        at = int(self._now())
        attributes: dict[str, Any] = {
            "meeting": {"internal-meeting-id": ref.internal_id,
                        "external-meeting-id": ref.meeting_id},
            "record-id": row.record_id, "success": True, "step-time": 0,
        }
        if name.endswith("-ended") and name.startswith(("rap-process", "rap-publish")):
            attributes["workflow"] = "video"
        self._webhooks.enqueue(Occurrence(new_event_id(), at, ref.internal_id, ref,
                                          bbb_name=name, bbb_attributes=attributes))
        if name == "rap-publish-ended":
            self.ready(row, at)

    def ready(self, row: RecordingRow, at: int) -> None:
        ref = _ref(row)
        posts = tuple(
            (url, ready_callback_body(row, self._secret))
            for url in (row.metadata.get(key, "").strip() for key in READY_URL_KEYS)
            if url and urlsplit(url).scheme in ("http", "https") and len(url) <= 4096)
        rest_type = "recording.ready" if ref.space_id is not None else None
        rest_data: dict[str, Any] = {}
        if ref.space_id is not None:
            rest_data = {"spaceId": ref.space_id, "roomId": ref.room_id,
                         "meetingId": ref.local_id, "sessionId": ref.internal_id,
                         "recording": {"id": row.record_id, "name": row.name,
                                       "state": row.state,
                                       "lengthMs": row.length_ms, "size": row.size,
                                       "startedAt": format_time(row.start_time),
                                       "endedAt": format_time(row.end_time)}}
        if not posts and rest_type is None:
            return
        self._webhooks.enqueue(Occurrence(new_event_id(), at, ref.internal_id, ref,
                                          rest_type=rest_type, space_id=ref.space_id,
                                          rest_data=rest_data, posts=posts))
