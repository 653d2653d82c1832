"""The durable meeting history: what is recorded, recovery after a kill, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from meetplatform import history as history_module
from meetplatform.history import History, public_query
from meetplatform.model import EndReason, MeetingSpec, Role
from meetplatform.store import Database, Store
from meetplatform.store import history_db as hdb
from meetplatform.store.batch import BatchWriter
from meetplatform.tenancy import tenant_of
from tests.support import START, result
from tests.webhooks.harness import World


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def read(w: World, query: Any) -> Any:
    return result(Deferred.fromCoroutine(w.history.read(query)))


def test_a_meetings_whole_life_is_recorded(w: World) -> None:
    """Creation (parameters, node), start, every join and leave with role and times, the
    end and its reason are all in the history."""
    meeting = w.meeting("m1", params={"meetingID": "m1", "name": "Meeting m1",
                                      "attendeePW": "ap", "moderatorPW": "mp",
                                      "meta_origin": "lms"}, metadata={"origin": "lms"})
    w.advance(10)
    ann = w.join(meeting, "Ann", Role.MODERATOR)
    w.advance(5)
    bob = w.join(meeting, "Bob", Role.VIEWER, external_user_id="bob-1")
    w.advance(60)
    w.registry.disconnect(bob)
    w.advance(1)
    bob_again = w.join(meeting, "Bob", Role.VIEWER, external_user_id="bob-1")
    w.advance(30)
    w.registry.set_role(meeting, bob_again.user_id, Role.MODERATOR)
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    (record,) = read(w, lambda db: hdb.meeting_events(db))
    start = int(START * 1000)
    assert record.meeting_id == "m1" and record.name == "Meeting m1"
    assert (record.node_name, record.node_url) == ("meetplatform", "https://meet.example.test")
    assert record.create_time == start and record.start_time == start + 10_000
    assert record.end_time == start + 106_000
    assert record.end_reason == "ENDED_FROM_API" and record.forcibly_ended
    assert record.query == {"meetingID": "m1", "name": "Meeting m1", "meta_origin": "lms"}
    assert record.metadata == {"origin": "lms"}
    assert (record.users, record.joins) == (2, 3)
    rows = [(a.full_name, a.role, a.join_time - start,
             a.left_time - start if a.left_time else None, a.left_reason)
            for a in record.attendance]
    assert rows == [
        ("Ann", "MODERATOR", 10_000, 106_000, "ended"),
        ("Bob", "VIEWER", 15_000, 75_000, "left"),
        ("Bob", "MODERATOR", 76_000, 106_000, "ended"),
    ]
    assert ann.user_id == record.attendance[0].user_id


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    """A new process on the same data directory reads what the previous one recorded."""
    first = World(tmp_path)
    meeting = first.meeting("m1")
    first.join(meeting, "Ann")
    first.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    result(first.stop())
    first.close()
    second = World(tmp_path, start=False)
    (record,) = read(second, lambda db: hdb.meeting_events(db))
    assert record.meeting_id == "m1" and [a.full_name for a in record.attendance] == ["Ann"]


def test_passwords_never_reach_the_history() -> None:
    """Create parameters are kept without passwords or anything named like a secret."""
    spec = MeetingSpec("m1", "One", params={
        "meetingID": "m1", "attendeePW": "ap", "moderatorPW": "mp", "name": "One",
        "meta_secret-token": "x", "meta_password": "y", "welcome": "hi"})
    meeting: Any = type("M", (), {"spec": spec})()
    assert public_query(meeting) == {"meetingID": "m1", "name": "One", "welcome": "hi"}


def test_rest_meetings_get_equivalent_parameters() -> None:
    """A meeting made by the JSON:API (no BBB parameters) is recorded with its id, name,
    record flag and metadata as create parameters."""
    spec = MeetingSpec("sp_abc/standup", "Standup", record=True, metadata={"team": "a"})
    meeting: Any = type("M", (), {"spec": spec})()
    assert public_query(meeting) == {"meetingID": "sp_abc/standup", "name": "Standup",
                                     "record": "true", "meta_team": "a"}


@pytest.mark.parametrize(("meeting_id", "expected"), [
    ("m1", (None, "m1", None)),
    ("sp_k3x9/standup", ("sp_k3x9", "standup", None)),
    ("sp_k3x9/rm_abc", ("sp_k3x9", "rm_abc", "rm_abc")),
    ("sp_/x", (None, "sp_/x", None)),
])
def test_meetings_belong_to_a_space_by_their_id(meeting_id: str,
                                                expected: tuple[Any, ...]) -> None:
    """The JSON:API's meetings (``<spaceId>/<id>``) and rooms' meetings are the space's."""
    assert tenant_of(meeting_id) == expected


def test_a_killed_process_leaves_meetings_that_the_next_one_ends(tmp_path: Path) -> None:
    """Meetings still open in the history when the process died are ended at their last
    recorded activity, with their open attendances, as a service interruption."""
    first = World(tmp_path)
    meeting = first.meeting("m1")
    first.advance(5)
    first.join(meeting, "Ann")
    first.advance(20)
    bob = first.join(meeting, "Bob")
    first.advance(7)
    first.registry.disconnect(bob)
    first.advance(100)
    first.close()  # killed: no end is recorded
    second = World(tmp_path, clock=first.clock, start=False)
    recovered: list[hdb.InterruptedMeeting] = result(
        Deferred.fromCoroutine(second.history.recover()))
    assert [m.meeting_id for m in recovered] == ["m1"]
    (record,) = read(second, lambda db: hdb.meeting_events(db))
    start = int(START * 1000)
    assert record.end_reason == "ENDED_DUE_TO_SERVICE_INTERRUPTION"
    assert record.end_time == start + 32_000
    assert [a.left_time for a in record.attendance] == [start + 32_000, start + 32_000]
    assert result(Deferred.fromCoroutine(second.history.recover())) == []


def test_recovery_leaves_meetings_of_the_new_process_alone(tmp_path: Path) -> None:
    """Only meetings created before this process started are ended by recovery."""
    w = World(tmp_path)
    w.advance(1)
    w.meeting("m1")
    assert result(Deferred.fromCoroutine(w.history.recover())) == []


def test_retention_deletes_meetings_that_ended_long_ago(tmp_path: Path) -> None:
    """With a retention of N days, the hourly job deletes meetings that ended more than N
    days ago (and their attendance); newer and running ones stay."""
    w = World(tmp_path, history_retention_days=2)
    old = w.meeting("old")
    w.join(old, "Ann")
    w.registry.end_meeting(old, EndReason.ENDED_FROM_API)
    w.advance(86_400)
    recent = w.meeting("recent")
    w.registry.end_meeting(recent, EndReason.ENDED_FROM_API)
    running = w.meeting("running")
    w.join(running, "Bob")
    w.advance(86_400 + 3600)
    names = {m.meeting_id for m in read(w, lambda db: hdb.meeting_events(db, min_users=0))}
    assert names == {"recent", "running"}
    remaining = read(w, lambda db: db.connection.execute(
        "SELECT count(*) FROM attendance_history").fetchone()[0])
    assert remaining == 1


def test_pruning_works_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pruning deletes a bounded number of meetings per store job, until none is left."""
    w = World(tmp_path, history_retention_days=1, start=False)
    jobs: list[int] = []
    original = hdb.prune

    def counting(db: Database, cutoff: int, *, limit: int) -> int:
        deleted = original(db, cutoff, limit=limit)
        jobs.append(deleted)
        return deleted

    for n in range(7):
        meeting = w.meeting(f"m{n}")
        w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    w.advance(3 * 86_400)
    monkeypatch.setattr(history_module, "PRUNE_CHUNK", 3)
    monkeypatch.setattr(hdb, "prune", counting)
    assert result(Deferred.fromCoroutine(w.history.prune())) == 7
    assert jobs == [3, 3, 1]
    assert read(w, lambda db: hdb.meeting_events(db, min_users=0)) == []


def test_zero_retention_keeps_everything(tmp_path: Path) -> None:
    """history_retention_days = 0 never deletes anything."""
    w = World(tmp_path, history_retention_days=0)
    meeting = w.meeting("m1")
    w.registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
    w.advance(10 * 365 * 86_400)
    assert result(Deferred.fromCoroutine(w.history.prune())) == 0
    assert len(read(w, lambda db: hdb.meeting_events(db, min_users=0))) == 1


def queued_store(data_dir: Path) -> tuple[Store, list[tuple[Any, Deferred[Any]]]]:
    """A store whose jobs wait in a list until the test runs them (one write in flight)."""
    jobs: list[tuple[Any, Deferred[Any]]] = []
    store = Store.open_inline(data_dir)

    def queued(job: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        jobs.append((job, d))
        return d

    store._runner = queued  # type: ignore[method-assign]
    return store, jobs


def run_jobs(jobs: list[tuple[Any, Deferred[Any]]]) -> None:
    while jobs:
        job, d = jobs.pop(0)
        d.callback(job())


def test_stopping_writes_everything_received(tmp_path: Path) -> None:
    """Events buffered while a write is in flight are written when the service stops."""
    w = World(tmp_path, start=False)
    w.close()
    store, jobs = queued_store(tmp_path)
    history = History(w.clock, w.settings, w.registry, store)
    history.startService()
    meeting = w.meeting("m2")
    w.join(meeting, "Ann")
    w.join(meeting, "Bob")
    assert len(jobs) == 1 and history.pending == 4  # creation in flight; start, 2 joins wait
    stopped = history.stopService()
    run_jobs(jobs)
    assert result(stopped) is None and history.pending == 0
    (record,) = read(w, lambda db: hdb.meeting_events(db))
    assert [a.full_name for a in record.attendance] == ["Ann", "Bob"]


def test_batches_group_the_events_of_one_busy_moment(tmp_path: Path) -> None:
    """While one transaction is written, later items wait and go together into the next
    one; a flush submits what waits and fires when everything before it is written."""
    store, jobs = queued_store(tmp_path)
    batches: list[list[int]] = []
    writer: BatchWriter[int, None] = BatchWriter(
        store, lambda db, items: batches.append(list(items)), name="test")
    for n in range(5):
        writer.add(n)
    assert len(jobs) == 1 and writer.pending == 5
    job, d = jobs.pop(0)
    d.callback(job())
    assert len(jobs) == 1  # items 1-4 as one batch
    flushed = writer.flush()
    writer.add(99)
    assert not flushed.called
    job, d = jobs.pop(0)
    d.callback(job())
    assert flushed.called and batches == [[0], [1, 2, 3, 4]]
    run_jobs(jobs)
    assert batches[-1] == [99] and writer.pending == 0


def _set_aside(failures: list[Any]) -> list[tuple[str, str]]:
    """The writers that logged a quarantined item, and how they described it (and forget
    those expected failures)."""
    from twisted.logger import LogLevel

    found = [(e["name"], e["item"]) for e in failures if "set aside" in e.get("log_format", "")
             and e["log_level"] is LogLevel.error and e["reason"]]
    assert len(found) == len(failures), [e.get("log_format") for e in failures]
    failures.clear()
    return found


def test_a_bad_item_is_set_aside_and_the_rest_of_its_batch_is_written(
        tmp_path: Path, fail_on_logged_failures: list[Any]) -> None:
    """When a batch's transaction fails, the same store job writes it again in halves, down
    to single items: every good item is written, in order, and each item that fails alone
    is logged (error level, with its reason) and left out."""
    store, jobs = queued_store(tmp_path)
    written: list[list[int]] = []
    attempts: list[list[int]] = []

    def apply(db: Database, items: Any) -> int:
        attempts.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError(f"cannot write {min(items)}")
        written.append(list(items))
        return len(items)

    announced: list[tuple[list[int], int]] = []
    writer: BatchWriter[int, int] = BatchWriter(
        store, apply, name="test", on_written=lambda items, n: announced.append((list(items), n)))
    writer.add(0)
    writer.extend([1, 2, -3, 4, 5, 6, -7, 8])
    run_jobs(jobs)
    assert [i for part in written for i in part] == [0, 1, 2, 4, 5, 6, 8]
    assert announced == [(part, len(part)) for part in written]
    assert len(attempts) <= 1 + 2 * 2 * 3 + 1  # bisection, not one transaction per item
    assert writer.pending == 0 and result(writer.flush()) is None
    assert _set_aside(fail_on_logged_failures) == [("test", "int"), ("test", "int")]


def test_an_unencodable_history_event_loses_no_other_event(
        tmp_path: Path, fail_on_logged_failures: list[Any]) -> None:
    """A join whose name holds a lone surrogate (the edges refuse it; made here directly)
    fails alone: the other events of its batch are in the history."""
    w = World(tmp_path, start=False)
    w.close()
    store, jobs = queued_store(tmp_path)
    history = History(w.clock, w.settings, w.registry, store)
    history.startService()
    meeting = w.meeting("m2")
    for name in ("Ann", "Eve\ud800", "Bob"):
        w.join(meeting, name)
    assert len(jobs) == 1 and history.pending == 5  # creation in flight; 4 wait together
    run_jobs(jobs)
    assert history.pending == 0
    (record,) = read(w, lambda db: hdb.meeting_events(db))
    assert [a.full_name for a in record.attendance] == ["Ann", "Bob"]
    assert record.joins == 2 and record.start_time is not None
    assert _set_aside(fail_on_logged_failures) == [
        ("history", "JoinOp (text that is not valid Unicode in full_name)")]
