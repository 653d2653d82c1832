"""The recordings catalogue and job queue in the store (schema v6), as blocking queries."""

from __future__ import annotations

from pathlib import Path

from meetplatform.store import open_database
from meetplatform.store import recordings_db as rdb
from meetplatform.store.database import Database


def row(record_id: str, meeting_id: str, start: int, **extra: object) -> rdb.RecordingRow:
    fields: dict[str, object] = {
        "record_id": record_id, "meeting_id": meeting_id, "internal_meeting_id": record_id,
        "name": f"meeting {meeting_id}", "is_breakout": False, "state": "processing", "publish": True,
        "start_time": start, "end_time": start + 60_000, "participants": 2,
        "metadata": {"course": "math"}, "node": "local", "source_dir": "/nodes/local", "room": "4242",
        "segments": ((start, start + 30_000), (start + 40_000, start + 60_000))}
    fields.update(extra)
    return rdb.RecordingRow(**fields)  # type: ignore[arg-type]


def db(tmp_path: Path) -> Database:
    return open_database(tmp_path)


def test_a_recording_and_its_job_are_written_together(tmp_path: Path) -> None:
    d = db(tmp_path)
    made = rdb.add_recording(d, row("r1", "m1", 1000), now=5)
    assert made.state == "processing" and made.segments == ((1000, 31_000), (41_000, 61_000))
    assert made.room == "4242" and made.metadata == {"course": "math"}
    [job] = rdb.jobs(d)
    assert (job.record_id, job.kind, job.attempts, job.due_at) == ("r1", "process", 0, 5)


def test_finish_publishes_or_keeps_unpublished(tmp_path: Path) -> None:
    d = db(tmp_path)
    rdb.add_recording(d, row("r1", "m1", 1000), now=5)
    rdb.add_recording(d, row("r2", "m1", 2000), now=5)
    assert rdb.set_published(d, ["r2"], False, now=6) == 1
    for job in rdb.jobs(d):
        rdb.finish_processing(d, job.record_id, length_ms=50_000, size=10, processing_ms=7,
                              participants=2, job_id=job.id, now=8)
    states = {r.record_id: r.state for r in rdb.search(d, states=rdb.STATES)[0]}
    assert states == {"r1": "published", "r2": "unpublished"}
    assert rdb.jobs(d) == []


def test_search_filters_as_bbb_web(tmp_path: Path) -> None:
    d = db(tmp_path)
    for i, meeting in enumerate(["m1", "m2", "m1"]):
        rdb.add_recording(d, row(f"abc{i}", meeting, 1000 * (3 - i),
                                 metadata={"course": "math" if i else "art"}), now=1)
    for job in rdb.jobs(d):
        rdb.finish_processing(d, job.record_id, length_ms=1, size=1, processing_ms=1,
                              participants=1, job_id=job.id, now=2)
    ids = lambda **q: [r.record_id for r in rdb.search(d, **q)[0]]
    assert ids() == ["abc2", "abc1", "abc0"]  # by start time
    assert ids(meeting_ids=["m1"]) == ["abc2", "abc0"]
    assert ids(record_ids=["abc1", "abc2"], meeting_ids=["m1"]) == ["abc2", "abc1"]
    assert ids(record_ids=["ab"]) == ["abc2", "abc1", "abc0"]  # prefixes
    assert ids(metadata={"course": "math"}) == ["abc2", "abc1"]
    assert ids(states=["processing"]) == []
    page, total = rdb.search(d, offset=1, limit=1)
    assert [r.record_id for r in page] == ["abc1"] and total == 3


def test_delete_queues_the_removal_and_update_changes_metadata(tmp_path: Path) -> None:
    d = db(tmp_path)
    rdb.add_recording(d, row("r1", "m1", 1000), now=5)
    assert rdb.update_metadata(d, ["r1", "nope"], {"course": "", "term": "fall"}, now=6) == 1
    got = rdb.get_recording(d, "r1")
    assert got is not None and got.metadata == {"term": "fall"}
    assert rdb.mark_deleted(d, ["r1"], now=7) == 1
    assert [(j.kind, j.record_id) for j in rdb.jobs(d)] == [("delete", "r1")]
    assert rdb.search(d)[0] == [] and [r.state for r in rdb.search(d, states=["deleted"])[0]] \
        == ["deleted"]
    assert rdb.mark_deleted(d, ["nope"], now=8) == 0


def test_retries_and_failure(tmp_path: Path) -> None:
    d = db(tmp_path)
    rdb.add_recording(d, row("r1", "m1", 1000), now=5)
    [job] = rdb.jobs(d)
    rdb.retry_later(d, job.id, "disk full", due_at=100)
    assert rdb.due_jobs(d, now=99) == [] and rdb.next_due(d) == 100
    [job] = rdb.due_jobs(d, now=100)
    assert (job.attempts, job.last_error) == (1, "disk full")
    rdb.fail_processing(d, "r1", "disk full", job.id, now=101)
    failed = rdb.get_recording(d, "r1")
    assert failed is not None and (failed.state, failed.failure) == ("failed", "disk full")
    assert rdb.jobs(d) == [] and rdb.search(d)[0] == []
    assert [r.record_id for r in rdb.search(d, states=["failed"])[0]] == ["r1"]
