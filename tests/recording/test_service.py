"""The recording service: BBB's recording semantics, segments, and what a meeting leaves.

The service runs over a fake clock and an inline store; the media side is a fake
placement and a recorder that notes what it was asked.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as global_reactor
from twisted.internet.task import Clock, deferLater

from meetplatform.model import MeetingSpec, NotAllowed, Role
from meetplatform.recording.jobs import RetryPolicy
from meetplatform.recording.links import PlaybackLinks
from meetplatform.recording.notify import jwt_hs256, ready_callback_body
from meetplatform.recording.service import RecordingService, record_id_for
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb
from tests.support import PUBLIC_URL, SECRET, make_clock, make_settings, run


@dataclass
class FakeRecorder:
    calls: list[str] = field(default_factory=list)

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


class FakeMedia:
    """A media layer that placed every meeting on node 'sfu-1', room 4242."""

    def placement(self, meeting: str) -> Any:
        return SimpleNamespace(node=SimpleNamespace(name="sfu-1"), room=4242)


@dataclass
class World:
    clock: Clock
    registry: Registry
    store: Store
    service: RecordingService
    recorder: FakeRecorder

    def jobs(self) -> list[rdb.Job]:
        return run(self.store.run(rdb.jobs))  # type: ignore[no-any-return]

    def rows(self) -> list[rdb.RecordingRow]:
        return run(self.store.run(lambda db: rdb.search(db, states=rdb.STATES)))[0]  # type: ignore[no-any-return]


def make_world(tmp_path: Path, media: Any = None) -> World:
    clock = make_clock()
    registry = Registry(clock, server_url=PUBLIC_URL)
    store = Store.open_inline(tmp_path)
    recorder = FakeRecorder()
    service = RecordingService(clock, make_settings(data_dir=tmp_path), registry, store,
                               media=media if media is not None else FakeMedia(),  # type: ignore[arg-type]
                               recorder_for=lambda meeting, placement: recorder)
    return World(clock, registry, store, service, recorder)


def join(w: World, meeting: Any, name: str, role: Role = Role.MODERATOR) -> Any:
    seat = w.registry.issue_seat(meeting, full_name=name, role=role)
    return w.registry.connect(seat)


def test_auto_start_records_from_the_first_join_and_the_end_makes_one_recording(
        tmp_path: Path) -> None:
    w = make_world(tmp_path)
    meeting, _ = w.registry.create_meeting(MeetingSpec(
        "m1", "Course", record=True, auto_start_recording=True,
        metadata={"bbb-recording-ready-url": "https://lms.test/ready"}))
    assert not meeting.recording
    w.clock.advance(5)
    mod = join(w, meeting, "Mod")
    assert meeting.recording and w.recorder.calls == ["start"]
    w.clock.advance(30)
    w.registry.set_recording(meeting, False, by=mod)
    w.clock.advance(10)
    w.registry.set_recording(meeting, True, by=mod)
    w.clock.advance(20)
    w.registry.end_meeting(meeting, "ENDED_FROM_API")
    assert w.recorder.calls == ["start", "stop", "start"]
    [row] = w.rows()
    assert row.record_id == record_id_for(meeting) == meeting.internal_id
    assert (row.state, row.node, row.room, row.participants) == ("processing", "sfu-1",
                                                                 "4242", 1)
    start = int((make_clock().seconds() + 5) * 1000)
    assert row.segments == ((start, start + 30_000), (start + 40_000, start + 60_000))
    assert row.source_dir == str(tmp_path / "recordings" / "nodes" / "sfu-1")
    assert row.metadata == {"bbb-recording-ready-url": "https://lms.test/ready"}
    assert [(j.kind, j.record_id) for j in w.jobs()] == [("process", row.record_id)]


def test_a_meeting_that_never_recorded_makes_no_recording(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    meeting, _ = w.registry.create_meeting(MeetingSpec("m1", "Course", record=True))
    join(w, meeting, "Mod")
    w.clock.advance(60)
    w.registry.end_meeting(meeting, "ENDED_FROM_API")
    assert w.rows() == [] and w.jobs() == [] and w.recorder.calls == []


def test_record_false_and_start_stop_rules(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    plain, _ = w.registry.create_meeting(MeetingSpec("m1", "No", auto_start_recording=True))
    mod = join(w, plain, "Mod")
    assert not plain.recording  # autoStartRecording without record=true does nothing
    with pytest.raises(NotAllowed):
        w.registry.set_recording(plain, True, by=mod)
    fixed, _ = w.registry.create_meeting(MeetingSpec(
        "m2", "Fixed", record=True, auto_start_recording=True,
        allow_start_stop_recording=False))
    mod2 = join(w, fixed, "Mod")
    viewer = join(w, fixed, "Ann", Role.VIEWER)
    assert fixed.recording
    with pytest.raises(NotAllowed):
        w.registry.set_recording(fixed, False, by=mod2)
    with pytest.raises(NotAllowed):
        w.registry.set_recording(fixed, False, by=viewer)


def test_a_mesh_meeting_makes_no_recording(tmp_path: Path) -> None:
    class NoMedia:
        def placement(self, meeting: str) -> None:
            return None

    w = make_world(tmp_path, media=NoMedia())
    meeting, _ = w.registry.create_meeting(MeetingSpec("m1", "Mesh", record=True,
                                                       auto_start_recording=True))
    join(w, meeting, "Mod")
    w.clock.advance(30)
    w.registry.end_meeting(meeting, "ENDED_FROM_API")
    assert w.rows() == []


def test_signed_links_and_the_ready_callback_body() -> None:
    clock = make_clock()
    links = PlaybackLinks(clock, PUBLIC_URL, SECRET, protected_seconds=60)
    url = links.page("r-1")
    assert url.startswith(f"{PUBLIC_URL}/playback/video/r-1/?expires=")
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert links.check("r-1", query["expires"], query["sig"]) is None
    assert links.check("r-2", query["expires"], query["sig"]) == "the link's signature is wrong"
    assert links.check("r-1", None, None) == "this recording needs a signed link"
    clock.advance(61)
    assert links.check("r-1", query["expires"], query["sig"]) == "the link has expired"
    assert PlaybackLinks(clock, PUBLIC_URL, SECRET).check("r-1", None, None) is None
    row = rdb.RecordingRow("r-1", "m1", "r-1", "n", False, "published", True, 1, 2, 1)
    token = jwt_hs256({"meeting_id": "m1", "record_id": "r-1"}, SECRET)
    assert ready_callback_body(row, SECRET) == "signed_parameters=" + token
    payload = token.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {
        "meeting_id": "m1", "record_id": "r-1"}


@pytest_twisted.ensureDeferred
async def test_an_unwritable_recordings_directory_fails_the_recording_and_healthz(
        tmp_path: Path) -> None:
    """The directory cannot be made (a file is in the way): /healthz says so, and the
    recording shows ``failed`` with the reason while its retries go on."""
    (tmp_path / "blocked").write_text("a file, not a directory")
    settings = make_settings(data_dir=tmp_path, recordings_dir=tmp_path / "blocked" / "rec")
    store = Store.open(global_reactor, tmp_path)  # type: ignore[arg-type]
    registry = Registry(global_reactor)  # type: ignore[arg-type]
    service = RecordingService(global_reactor, settings, registry, store,  # type: ignore[arg-type]
                               policy=RetryPolicy(attempts=3, delays=(60.0,)))
    service.startService()
    try:
        await service.check_disk()
        health = service.health()
        assert health["status"] == "failing" and "cannot create" in str(health["problem"])
        await service.add(rdb.RecordingRow(
            "r-1", "m1", "r-1", "Course", False, "processing", True, 1000, 2000, 1,
            node="sfu-1", source_dir=str(tmp_path / "node"), room="1",
            segments=((1000, 2000),)))
        for _ in range(100):
            rows, _ = await store.run(lambda db: rdb.search(db, states=["failed"]))
            if rows:
                break
            await deferLater(global_reactor, 0.05, lambda: None)  # type: ignore[arg-type]
        [row] = rows
        assert row.failure is not None and "not writable" in row.failure
        [job] = await store.run(rdb.jobs)
        assert job.attempts == 1  # retried later (the operator may fix the disk)
        assert "not writable" in str(service.health()["lastFailure"])
    finally:
        await service.stopService()
        await store.close()
