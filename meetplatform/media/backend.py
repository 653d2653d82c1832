"""The one media-backend interface the signalling surface and the page use.

A meeting's media run either **mesh** (browsers send to each other; the signalling
surface relays their offers, answers and candidates between two peers) or **sfu** (each
browser sends one stream to a Janus node, which forwards it; meetplatform holds every
Janus session and relays JSEP between browser and node). The registry, the signalling
protocol's envelope and the page's socket code do not branch on which: the ``joined``
snapshot names the mode (``media.mode``) and the page picks its media path from it.

:class:`MediaBackend` is what both implementations offer: the mode of a meeting, what a
newcomer is told in ``joined``, and the checks of what a participant may send. The mesh
one (:class:`MeshBackend`) lives here; the Janus one is
:class:`meetplatform.media.sfu.SfuBackend`.
"""

from __future__ import annotations

from typing import Any, Protocol

from meetplatform.model import Meeting, Participant, Role

MESH, SFU = "mesh", "sfu"

#: Cameras a mesh meeting carries at most: each browser uploads one copy of its camera per
#: other participant, so above this a new camera would degrade everyone (docs/media.md).
MESH_CAMERA_LIMIT = 6


class MediaRefused(Exception):
    """A participant asked for media it may not send; ``code`` is the signalling error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def may_publish_video(participant: Participant) -> bool:
    """``webcamsOnlyForModerator``: only moderators publish cameras in such a meeting."""
    spec = participant.meeting.spec
    return not spec.webcams_only_for_moderator or participant.seat.role is Role.MODERATOR


class MediaBackend(Protocol):
    """What the signalling surface asks of a meeting's media implementation."""

    mode: str

    def joined_info(self, participant: Participant, resumed: bool) -> dict[str, Any]:
        """The ``media`` member of the participant's ``joined`` snapshot."""
        ...

    def check_camera(self, participant: Participant, on: bool) -> None:
        """Raise :class:`MediaRefused` when the participant may not turn its camera on."""
        ...


class MeshBackend:
    """Browser-to-browser media: the signalling surface relays ``signal`` between peers.

    Above :data:`MESH_CAMERA_LIMIT` cameras a new camera is refused (``cameraLimit``)
    rather than making every browser upload one more copy to everyone.
    """

    mode = MESH

    def __init__(self, camera_limit: int = MESH_CAMERA_LIMIT) -> None:
        self.camera_limit = camera_limit

    def joined_info(self, participant: Participant, resumed: bool) -> dict[str, Any]:
        return {"mode": MESH, "cameraLimit": self.camera_limit,
                "canPublishVideo": may_publish_video(participant)}

    def check_camera(self, participant: Participant, on: bool) -> None:
        if not on or participant.video_streams > 0:
            return
        if not may_publish_video(participant):
            raise MediaRefused("notAllowed",
                               "In this meeting only moderators may share a camera.")
        cameras = sum(1 for p in participant.meeting.participants.values()
                      if p.video_streams > 0 and p is not participant)
        if cameras >= self.camera_limit:
            raise MediaRefused(
                "cameraLimit",
                f"This meeting already shows {cameras} cameras, the most a meeting without "
                "a media server can carry. Ask someone to stop theirs first.")


def meeting_key(meeting: Meeting) -> str:
    return meeting.internal_id
