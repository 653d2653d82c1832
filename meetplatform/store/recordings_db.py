"""Recordings in the store: the ``recordings`` catalogue and the ``recording_jobs`` queue.

A recording row is written when a meeting that recorded something ends, in the same
transaction as its ``process`` job; a ``deleteRecordings`` marks the row deleted and queues
a ``delete`` job in one transaction too. So a job is never lost between the answer and the
work: the queue is a table, and a killed process finds its jobs again at the next start
(:func:`due_jobs`). Jobs are deleted when they are done; a failed attempt stays with its
error and the time of the next try (the caller's backoff).

Plain blocking queries, run on the store's thread (``Store.run``) or by tests; ``now`` is
milliseconds. What a recording *means* (playback URLs, the processing itself) is the
recording service's (:mod:`meetplatform.recording`), not the store's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meetplatform.store.database import Database

#: ``recordings.state`` values: BigBlueButton's, plus ``failed``.
STATES = ("processing", "processed", "published", "unpublished", "deleted", "failed")

JOB_KINDS = ("process", "delete")


@dataclass(frozen=True)
class RecordingRow:
    """One row of ``recordings``."""

    record_id: str
    meeting_id: str
    internal_meeting_id: str
    name: str
    is_breakout: bool
    state: str
    publish: bool
    start_time: int
    end_time: int
    participants: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None
    source_dir: str | None = None
    room: str | None = None
    segments: tuple[tuple[int, int], ...] = ()
    #: Publisher ids (on the node) whose video is a screen share, not a camera.
    screens: tuple[str, ...] = ()
    length_ms: int | None = None
    size: int | None = None
    processing_ms: int | None = None
    failure: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Job:
    id: int
    record_id: str
    kind: str
    attempts: int
    due_at: int
    last_error: str | None


def _row(row: sqlite3.Row) -> RecordingRow:
    return RecordingRow(
        record_id=row["record_id"], meeting_id=row["meeting_id"],
        internal_meeting_id=row["internal_meeting_id"], name=row["name"],
        is_breakout=bool(row["is_breakout"]), state=row["state"], publish=bool(row["publish"]),
        start_time=row["start_time"], end_time=row["end_time"],
        participants=row["participants"], metadata=json.loads(row["metadata"]),
        node=row["node"], source_dir=row["source_dir"], room=row["room"],
        segments=tuple((int(a), int(b)) for a, b in json.loads(row["segments"])),
        screens=tuple(json.loads(row["screens"])),
        length_ms=row["length_ms"], size=row["size"], processing_ms=row["processing_ms"],
        failure=row["failure"], created_at=row["created_at"], updated_at=row["updated_at"])


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], record_id=row["record_id"], kind=row["kind"],
               attempts=row["attempts"], due_at=row["due_at"], last_error=row["last_error"])


def _metadata(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def add_recording(db: Database, rec: RecordingRow, now: int) -> RecordingRow:
    """Insert a recording (state ``processing``) and its ``process`` job, together."""
    with db.transaction() as c:
        c.execute(
            "INSERT INTO recordings (record_id, meeting_id, internal_meeting_id, name,"
            " is_breakout, state, publish, start_time, end_time, participants, metadata,"
            " node, source_dir, room, segments, screens, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'processing', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.record_id, rec.meeting_id, rec.internal_meeting_id, rec.name,
             int(rec.is_breakout), int(rec.publish), rec.start_time, rec.end_time,
             rec.participants, _metadata(rec.metadata), rec.node, rec.source_dir, rec.room,
             json.dumps([list(s) for s in rec.segments]), json.dumps(list(rec.screens)),
             now, now))
        _add_job(c, rec.record_id, "process", now)
    made = get_recording(db, rec.record_id)
    assert made is not None
    return made


def _add_job(c: sqlite3.Connection, record_id: str, kind: str, now: int) -> None:
    c.execute("INSERT INTO recording_jobs (record_id, kind, attempts, due_at, created_at)"
              " VALUES (?, ?, 0, ?, ?)", (record_id, kind, now, now))


def get_recording(db: Database, record_id: str) -> RecordingRow | None:
    row = db.connection.execute("SELECT * FROM recordings WHERE record_id = ?",
                                (record_id,)).fetchone()
    return _row(row) if row else None


def search(db: Database, *, record_ids: Sequence[str] = (), meeting_ids: Sequence[str] = (),
           states: Sequence[str] = ("published", "unpublished"),
           metadata: Mapping[str, str] | None = None, offset: int = 0,
           limit: int | None = None, after: tuple[int, str] | None = None,
           meeting_prefix: str | None = None) -> tuple[list[RecordingRow], int]:
    """getRecordings' filters in SQL (``record_ids`` are prefixes and, when given, win over
    ``meeting_ids``, as in bbb-web; every metadata pair must match); the page and the total
    before ``offset``/``limit``, ordered by start time then record id. ``after`` (a
    ``(start_time, record_id)`` cursor) starts the page after that recording;
    ``meeting_prefix`` keeps the meetings whose id starts with it (a space's)."""
    where: list[str] = []
    args: list[Any] = []
    states = [s for s in states if s in STATES]
    if not states:
        return [], 0
    where.append(f"state IN ({','.join('?' * len(states))})")
    args.extend(states)
    if record_ids:
        where.append("(" + " OR ".join("substr(record_id, 1, ?) = ?"
                                       for _ in record_ids) + ")")
        for prefix in record_ids:
            args.extend((len(prefix), prefix))
    elif meeting_ids:
        where.append(f"meeting_id IN ({','.join('?' * len(meeting_ids))})")
        args.extend(meeting_ids)
    if meeting_prefix is not None:
        where.append("substr(meeting_id, 1, ?) = ?")
        args.extend((len(meeting_prefix), meeting_prefix))
    for name, value in (metadata or {}).items():
        where.append("json_extract(metadata, ?) IS ?")
        args.extend((f'$."{name.replace(chr(34), "")}"', value))
    total_clause = " AND ".join(where)
    if after is not None:
        where.append("(start_time > ? OR (start_time = ? AND record_id > ?))")
        args_page = [*args, after[0], after[0], after[1]]
    else:
        args_page = list(args)
    clause = " AND ".join(where)
    conn = db.connection
    total = int(conn.execute(f"SELECT COUNT(*) FROM recordings WHERE {total_clause}",
                             args).fetchone()[0])
    limit = -1 if limit is None else int(limit)
    rows = conn.execute(
        f"SELECT * FROM recordings WHERE {clause}"
        " ORDER BY start_time, record_id LIMIT ? OFFSET ?",
        [*args_page, limit, int(offset)]).fetchall()
    return [_row(r) for r in rows], total


def _existing(c: sqlite3.Connection, record_ids: Sequence[str]) -> list[sqlite3.Row]:
    ids = list(dict.fromkeys(record_ids))
    if not ids:
        return []
    return c.execute(f"SELECT * FROM recordings WHERE record_id IN"
                     f" ({','.join('?' * len(ids))})", ids).fetchall()


def set_published(db: Database, record_ids: Sequence[str], published: bool, now: int) -> int:
    """Publish or unpublish; a recording still processing remembers the choice. Returns
    how many of ``record_ids`` exist."""
    with db.transaction() as c:
        rows = _existing(c, record_ids)
        for row in rows:
            state = row["state"]
            if state in ("published", "unpublished", "processed"):
                state = "published" if published else "unpublished"
            c.execute("UPDATE recordings SET publish = ?, state = ?, updated_at = ?"
                      " WHERE record_id = ?", (int(published), state, now, row["record_id"]))
    return len(rows)


def mark_deleted(db: Database, record_ids: Sequence[str], now: int) -> int:
    """State ``deleted`` and a ``delete`` job (the files go after the answer), together."""
    with db.transaction() as c:
        rows = _existing(c, record_ids)
        for row in rows:
            if row["state"] == "deleted":
                continue
            c.execute("UPDATE recordings SET state = 'deleted', updated_at = ?"
                      " WHERE record_id = ?", (now, row["record_id"]))
            c.execute("DELETE FROM recording_jobs WHERE record_id = ? AND kind = 'process'",
                      (row["record_id"],))
            _add_job(c, row["record_id"], "delete", now)
    return len(rows)


def update_metadata(db: Database, record_ids: Sequence[str], changes: Mapping[str, str],
                    now: int) -> int:
    """Set metadata (an empty value removes the name); returns how many exist."""
    with db.transaction() as c:
        rows = _existing(c, record_ids)
        for row in rows:
            metadata = json.loads(row["metadata"])
            for name, value in changes.items():
                if value:
                    metadata[name] = value
                else:
                    metadata.pop(name, None)
            c.execute("UPDATE recordings SET metadata = ?, updated_at = ? WHERE record_id = ?",
                      (_metadata(metadata), now, row["record_id"]))
    return len(rows)


def finish_processing(db: Database, record_id: str, *, length_ms: int, size: int,
                      processing_ms: int, participants: int, job_id: int,
                      now: int) -> RecordingRow | None:
    """The composed video is in place: ``published`` (or ``unpublished``) and the job
    gone, together. A recording deleted meanwhile stays deleted."""
    with db.transaction() as c:
        c.execute(
            "UPDATE recordings SET state = CASE WHEN publish = 1 THEN 'published'"
            " ELSE 'unpublished' END, length_ms = ?, size = ?, processing_ms = ?,"
            " participants = MAX(participants, ?), failure = NULL, updated_at = ?"
            " WHERE record_id = ? AND state IN ('processing', 'failed')",
            (length_ms, size, processing_ms, participants, now, record_id))
        c.execute("DELETE FROM recording_jobs WHERE id = ?", (job_id,))
    return get_recording(db, record_id)


def fail_processing(db: Database, record_id: str, reason: str, job_id: int, now: int) -> None:
    """Processing gave up: state ``failed`` with the reason; the job is gone."""
    with db.transaction() as c:
        c.execute("UPDATE recordings SET state = 'failed', failure = ?, updated_at = ?"
                  " WHERE record_id = ? AND state IN ('processing', 'failed')", (reason, now, record_id))
        c.execute("DELETE FROM recording_jobs WHERE id = ?", (job_id,))


def forget(db: Database, record_id: str, job_id: int) -> None:
    """A deleted recording's files are gone: its job is done (the row stays, ``deleted``,
    as bbb-web lists deleted recordings with ``state=deleted``)."""
    with db.transaction() as c:
        c.execute("DELETE FROM recording_jobs WHERE id = ?", (job_id,))


def due_jobs(db: Database, now: int, limit: int = 10) -> list[Job]:
    rows = db.connection.execute(
        "SELECT * FROM recording_jobs WHERE due_at <= ? ORDER BY due_at, id LIMIT ?",
        (now, limit)).fetchall()
    return [_job(r) for r in rows]


def next_due(db: Database) -> int | None:
    row = db.connection.execute("SELECT MIN(due_at) FROM recording_jobs").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def retry_later(db: Database, job_id: int, error: str, due_at: int, *,
                show_failed: str | None = None) -> None:
    """Count a failed attempt and set the next one. With ``show_failed`` (a record id),
    the recording shows ``failed`` with the error meanwhile (a full or unwritable disk:
    the operator must act); a later attempt that works still publishes it."""
    with db.transaction() as c:
        c.execute("UPDATE recording_jobs SET attempts = attempts + 1, last_error = ?,"
                  " due_at = ? WHERE id = ?", (error, due_at, job_id))
        if show_failed is not None:
            c.execute("UPDATE recordings SET state = 'failed', failure = ?, updated_at = ?"
                      " WHERE record_id = ? AND state = 'processing'",
                      (error, due_at, show_failed))


def jobs(db: Database) -> list[Job]:
    return [_job(r) for r in db.connection.execute(
        "SELECT * FROM recording_jobs ORDER BY id").fetchall()]
