"""Recording needs a media node: the XML API over the whole build (``build_parts``).

Without a media node (the default: meetings run browser to browser, mesh) a meeting
created with ``record=true&autoStartRecording=true`` does not record: getMeetingInfo's
``<recording>`` stays false after a join. A meeting whose media go through a node records
as before, and stops when it falls back to mesh (docs/recordings.md).
"""

from __future__ import annotations

from pathlib import Path

from meetplatform.build import Parts, build_parts, mount
from meetplatform.media.sfu import SfuBackend, _Room
from meetplatform.recordings import InMemoryRecordings
from meetplatform.registry import Registry
from meetplatform.store import Store
from tests.support import PUBLIC_URL, make_clock, make_settings
from tests.xmlapi.helpers import Env

RECORDED = {"record": "true", "autoStartRecording": "true", "moderatorPW": "mp",
            "attendeePW": "ap"}


def whole_service(tmp_path: Path) -> tuple[Env, Parts]:
    clock = make_clock()
    settings = make_settings(data_dir=tmp_path)
    registry = Registry(clock, server_url=PUBLIC_URL)
    recordings = InMemoryRecordings()
    parts = build_parts(clock, settings, registry, Store.open_inline(tmp_path),
                        recordings=recordings)
    return Env(clock, settings, registry, recordings, parts.xml_api, root=mount(parts)), parts


def join(env: Env, meeting_id: str) -> None:
    """``join`` through the API, then the seat's browser connects."""
    answer = env.call("join", {"meetingID": meeting_id, "fullName": "Mod", "password": "mp",
                               "redirect": "false"})
    assert answer.returncode == "SUCCESS", answer.body
    env.registry.connect(env.seat(answer.text("session_token")))


def recording(env: Env, meeting_id: str) -> str | None:
    return env.call("getMeetingInfo", {"meetingID": meeting_id}).text("recording")


def test_a_mesh_meeting_created_with_auto_start_recording_does_not_record(
        tmp_path: Path) -> None:
    env, _ = whole_service(tmp_path)
    env.create("m1", **RECORDED)
    assert recording(env, "m1") == "true"  # not known yet: the first join places it
    join(env, "m1")
    info = env.call("getMeetingInfo", {"meetingID": "m1"})
    assert (info.text("running"), info.text("recording")) == ("true", "false")
    meeting = env.meeting("m1")
    assert not meeting.recording and not meeting.recorded
    assert env.registry.recording_available(meeting) is False


def test_a_meeting_on_a_node_records_and_stops_when_it_falls_back_to_mesh(
        tmp_path: Path) -> None:
    """The same create with the meeting's media on a node (a room the SFU backend holds;
    no Janus needed) records from the first join; its fall-back to mesh stops it."""
    env, parts = whole_service(tmp_path)
    sfu = parts.signalling.hub.media.backend
    assert isinstance(sfu, SfuBackend)
    env.create("m1", **RECORDED)
    meeting = env.meeting("m1")
    room = sfu._rooms[meeting.internal_id] = _Room(meeting, None)
    assert recording(env, "m1") == "true"  # before the first join: as created
    join(env, "m1")
    assert recording(env, "m1") == "true" and meeting.recording
    sfu._fall_back(room, "the test's node failed")
    assert recording(env, "m1") == "false"
    assert not meeting.recording and meeting.recorded
    assert env.registry.recording_available(meeting) is False
