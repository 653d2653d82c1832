"""The media backend seen through the signalling surface, without media nodes (mesh):
what ``joined`` says, the mesh camera limit, ``webcamsOnlyForModerator`` and the
``media.*`` requests that only an SFU meeting takes."""

from __future__ import annotations

from meetplatform.media.backend import MESH_CAMERA_LIMIT
from meetplatform.model import Role
from tests.signalling.harness import World


def test_joined_says_mesh_without_nodes(world: World) -> None:
    meeting = world.meeting()
    ann = world.join(meeting, "Ann")
    assert ann.joined["media"] == {"mode": "mesh", "cameraLimit": MESH_CAMERA_LIMIT,
                                   "canPublishVideo": True}


def test_a_camera_above_the_mesh_limit_is_refused_with_a_clear_message(world: World) -> None:
    """Above the limit a new camera is refused (cameraLimit); cameras already on stay, and
    once one stops the next may start."""
    meeting = world.meeting()
    clients = [world.join(meeting, f"P{n}") for n in range(MESH_CAMERA_LIMIT + 1)]
    for client in clients[:MESH_CAMERA_LIMIT]:
        assert client.ok("media", {"video": True}) == {}
    last = clients[-1]
    rid = last.request("media", {"video": True})
    refusal = last.reply(rid)
    assert refusal["code"] == "cameraLimit"
    assert f"{MESH_CAMERA_LIMIT} cameras" in refusal["message"]
    assert meeting.participants[last.user_id].video_streams == 0
    assert clients[0].ok("media", {"video": True}) == {}  # already on: still fine
    assert clients[0].ok("media", {"video": False}) == {}
    assert last.ok("media", {"video": True}) == {}


def test_viewers_cannot_turn_cameras_on_under_webcams_only_for_moderator(world: World) -> None:
    meeting = world.meeting(webcams_only_for_moderator=True)
    mod = world.join(meeting, "Mod", Role.MODERATOR)
    ann = world.join(meeting, "Ann")
    assert ann.joined["media"]["canPublishVideo"] is False
    assert mod.joined["media"]["canPublishVideo"] is True
    assert ann.fails("media", {"video": True}) == "notAllowed"
    assert mod.ok("media", {"video": True}) == {}


def test_sfu_requests_in_a_mesh_meeting_are_a_typed_error(world: World) -> None:
    meeting = world.meeting()
    ann = world.join(meeting, "Ann")
    assert ann.fails("media.publish", {"sdp": "v=0\r\n", "sources": {}}) == "wrongMode"
    assert ann.fails("media.answer", {"seq": 1, "sdp": "v=0\r\n"}) == "wrongMode"
    assert ann.fails("media.trickle", {"pc": "publisher", "candidate": None}) == "wrongMode"
    assert ann.fails("media.configure", {"mid": "1", "substream": 0}) == "wrongMode"
    assert ann.fails("media.nothing", {}) == "unknownType"
    assert ann.fails("media.publish", {"sdp": 3}) == "invalid"
    assert ann.fails("media.configure", {"mid": "1", "substream": 7}) == "invalid"
    assert ann.fails("media.trickle", {"pc": "elsewhere"}) == "invalid"
