"""Recording in a node's VideoRoom: the Janus requests the recording service needs.

The recording service (:mod:`meetplatform.recording`) decides *when* a meeting records
(BigBlueButton's ``record``, ``autoStartRecording``, a moderator's start/stop); this
module only tells a node's VideoRoom, with the room's secret (held by the service only):

* ``enable_recording {room, secret, record}``: every publisher of the room starts (or
  stops) writing ``.mjr`` files, and so does every later publisher; each start makes new
  files, so a stop and a start make a second segment;
* ``edit {room, secret, new_lock_record: true, new_rec_dir}``: makes sure the room
  refuses a client's ``configure {record, filename}`` (rooms the service creates have
  ``lock_record`` already; this covers a room created otherwise) and, when the service
  knows the node's recording directory (the local node), records into it;
* ``configure {record: true}`` on a publisher's own handle, for the relay that holds it
  (a publisher that joined before ``enable_recording`` in Janus builds that miss it).

:class:`RoomRecorder` is the seam the SFU path calls with a node's :class:`VideoRoom` and
a room id; tests call it with a real Janus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger

from meetplatform.media.janus import JanusHandle, VideoRoom

_log = Logger()


class RoomRecorder:
    """Turns recording on and off in one VideoRoom room of one node."""

    def __init__(self, rooms: VideoRoom, room: int, secret: str,
                 rec_dir: str | None = None) -> None:
        self._rooms = rooms
        self._room = int(room)
        self._secret = secret
        self._rec_dir = rec_dir

    async def _request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return await self._rooms._send(dict(request))

    async def lock(self) -> None:
        """No browser may change recording (``lock_record``)."""
        request: dict[str, Any] = {"request": "edit", "room": self._room,
                                   "secret": self._secret, "new_lock_record": True}
        if self._rec_dir is not None:
            request["new_rec_dir"] = self._rec_dir
        await self._request(request)

    async def start(self) -> None:
        """Every publisher of the room records (new ``.mjr`` files: a new segment)."""
        await self.lock()
        await self._request({"request": "enable_recording", "room": self._room,
                             "secret": self._secret, "record": True})
        _log.info("recording started in room {room}", room=self._room)

    async def stop(self) -> None:
        """Every publisher stops recording (its files are closed)."""
        await self._request({"request": "enable_recording", "room": self._room,
                             "secret": self._secret, "record": False})
        _log.info("recording stopped in room {room}", room=self._room)


async def record_publisher(handle: JanusHandle, record: bool) -> None:
    """``configure {record}`` on a publisher's handle (the relay's, never a browser's)."""
    await handle.message({"request": "configure", "record": record})
