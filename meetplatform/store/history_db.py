"""Meeting history in the store: what happened in every meeting, as plain blocking queries.

The writer side is a list of small operations (:data:`HistoryOp`) that
:class:`meetplatform.history.History` collects from registry events and :func:`apply`
writes in one transaction. The reader side answers ``getMeetingEvents``, ``getStats`` and
the JSON:API's sessions. Every function takes the store's :class:`Database` and runs on
the store's thread; times are milliseconds since the epoch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meetplatform.store.database import Database

#: Values per ``IN (...)`` list, well below SQLite's limit on bound parameters.
_CHUNK = 500


# --- operations (written by History) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeetingCreatedOp:
    internal_id: str
    meeting_id: str
    name: str
    space_id: str | None
    room_id: str | None
    node_name: str
    node_url: str
    create_time: int
    is_breakout: bool
    parent_id: str | None
    record: bool
    query: Mapping[str, str]
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MeetingStartedOp:
    internal_id: str
    at: int


@dataclass(frozen=True, slots=True)
class JoinOp:
    internal_id: str
    user_id: str
    external_user_id: str
    full_name: str
    role: str
    guest: bool
    at: int


@dataclass(frozen=True, slots=True)
class UpdateOp:
    """The open attendance of ``user_id`` takes a new name and/or role."""

    internal_id: str
    user_id: str
    full_name: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveOp:
    internal_id: str
    user_id: str
    at: int
    reason: str


@dataclass(frozen=True, slots=True)
class MeetingEndedOp:
    internal_id: str
    at: int
    reason: str
    forcibly: bool


@dataclass(frozen=True, slots=True)
class ClassroomOp:
    """One entry of a meeting's classroom log: a page shown, a finished shape, shapes
    removed, a poll's life, a document's outcome (``data`` by ``kind``)."""

    internal_id: str
    at: int
    kind: str
    user_id: str | None
    data: Mapping[str, Any]


HistoryOp = (MeetingCreatedOp | MeetingStartedOp | JoinOp | UpdateOp | LeaveOp
             | MeetingEndedOp | ClassroomOp)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False)


def apply(db: Database, ops: Sequence[HistoryOp]) -> int:
    """Write ``ops`` in order, in one transaction; returns how many were applied.

    Consecutive joins are written together (:func:`_apply_joins`): while a room of 1,000
    fills, the history's three statements per join were a sixth of a join's CPU (on the
    store's thread, but the same process)."""
    with db.transaction() as c:
        joins: list[JoinOp] = []
        for op in ops:
            if isinstance(op, JoinOp):
                joins.append(op)
                continue
            if joins:
                _apply_joins(c, joins)
                joins = []
            _apply_one(c, op)
        if joins:
            _apply_joins(c, joins)
    return len(ops)


def _apply_joins(c: sqlite3.Connection, joins: Sequence[JoinOp]) -> None:
    """A run of joins, written as :func:`_apply_one` would write them one by one (tested
    against it), with per meeting one read of the identities seen before, one ``UPDATE``
    of its counters and one ``executemany`` of attendance rows (in the joins' order)."""
    by_meeting: dict[str, list[JoinOp]] = {}
    for op in joins:
        by_meeting.setdefault(op.internal_id, []).append(op)
    for internal_id, group in by_meeting.items():
        wanted = list(dict.fromkeys(op.external_user_id for op in group))
        seen: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            seen.update(row[0] for row in c.execute(
                "SELECT DISTINCT external_user_id FROM attendance_history"
                " WHERE internal_meeting_id = ? AND external_user_id IN"
                f" ({','.join('?' * len(chunk))})", (internal_id, *chunk)))
        new_users = 0
        for op in group:
            if op.external_user_id not in seen:
                seen.add(op.external_user_id)
                new_users += 1
        cursor = c.execute(
            "UPDATE meeting_history SET joins = joins + ?, users = users + ?,"
            " start_time = coalesce(start_time, ?) WHERE internal_id = ?",
            (len(group), new_users, group[0].at, internal_id))
        if cursor.rowcount:
            c.executemany(
                "INSERT INTO attendance_history (internal_meeting_id, user_id,"
                " external_user_id, full_name, role, guest, join_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(op.internal_id, op.user_id, op.external_user_id, op.full_name, op.role,
                  int(op.guest), op.at) for op in group])


def _apply_one(c: sqlite3.Connection, op: HistoryOp) -> None:
    if isinstance(op, JoinOp):
        new_user = c.execute(
            "SELECT 1 FROM attendance_history WHERE internal_meeting_id = ?"
            " AND external_user_id = ? LIMIT 1",
            (op.internal_id, op.external_user_id)).fetchone() is None
        cursor = c.execute(
            "UPDATE meeting_history SET joins = joins + 1, users = users + ?,"
            " start_time = coalesce(start_time, ?) WHERE internal_id = ?",
            (int(new_user), op.at, op.internal_id))
        if cursor.rowcount:
            c.execute(
                "INSERT INTO attendance_history (internal_meeting_id, user_id,"
                " external_user_id, full_name, role, guest, join_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (op.internal_id, op.user_id, op.external_user_id, op.full_name, op.role,
                 int(op.guest), op.at))
    elif isinstance(op, LeaveOp):
        c.execute(
            "UPDATE attendance_history SET left_time = ?, left_reason = ?"
            " WHERE internal_meeting_id = ? AND user_id = ? AND left_time IS NULL",
            (op.at, op.reason, op.internal_id, op.user_id))
    elif isinstance(op, UpdateOp):
        if op.full_name is not None:
            c.execute(
                "UPDATE attendance_history SET full_name = ? WHERE internal_meeting_id = ?"
                " AND user_id = ? AND left_time IS NULL",
                (op.full_name, op.internal_id, op.user_id))
        if op.role is not None:
            c.execute(
                "UPDATE attendance_history SET role = ? WHERE internal_meeting_id = ?"
                " AND user_id = ? AND left_time IS NULL",
                (op.role, op.internal_id, op.user_id))
    elif isinstance(op, MeetingCreatedOp):
        c.execute(
            "INSERT OR IGNORE INTO meeting_history (internal_id, meeting_id, name, space_id,"
            " room_id, node_name, node_url, create_time, is_breakout, parent_id, record,"
            " query, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (op.internal_id, op.meeting_id, op.name, op.space_id, op.room_id, op.node_name,
             op.node_url, op.create_time, int(op.is_breakout), op.parent_id, int(op.record),
             _json(op.query), _json(op.metadata)))
    elif isinstance(op, MeetingStartedOp):
        c.execute("UPDATE meeting_history SET start_time = coalesce(start_time, ?)"
                  " WHERE internal_id = ?", (op.at, op.internal_id))
    elif isinstance(op, MeetingEndedOp):
        c.execute(
            "UPDATE meeting_history SET end_time = ?, end_reason = ?, forcibly_ended = ?"
            " WHERE internal_id = ? AND end_time IS NULL",
            (op.at, op.reason, int(op.forcibly), op.internal_id))
        c.execute(
            "UPDATE attendance_history SET left_time = ?, left_reason = 'ended'"
            " WHERE internal_meeting_id = ? AND left_time IS NULL", (op.at, op.internal_id))
    elif isinstance(op, ClassroomOp):
        # Only for a meeting the history knows (its creation is written before).
        c.execute(
            "INSERT INTO classroom_history (internal_meeting_id, at, kind, user_id, data)"
            " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM meeting_history"
            " WHERE internal_id = ?)",
            (op.internal_id, op.at, op.kind, op.user_id,
             json.dumps(dict(op.data), separators=(",", ":"), ensure_ascii=False),
             op.internal_id))
    else:  # pragma: no cover - every op type is handled above
        raise TypeError(f"unknown history operation {op!r}")


# --- what readers get ---------------------------------------------------------------------


@dataclass(frozen=True)
class AttendanceRecord:
    id: int
    user_id: str
    external_user_id: str
    full_name: str
    role: str
    guest: bool
    join_time: int
    left_time: int | None
    left_reason: str | None


@dataclass(frozen=True)
class MeetingRecord:
    internal_id: str
    meeting_id: str
    name: str
    space_id: str | None
    room_id: str | None
    node_name: str
    node_url: str
    create_time: int
    start_time: int | None
    end_time: int | None
    end_reason: str | None
    forcibly_ended: bool
    is_breakout: bool
    parent_id: str | None
    record: bool
    query: Mapping[str, str]
    metadata: Mapping[str, str]
    users: int
    joins: int
    attendance: tuple[AttendanceRecord, ...] = field(default=())

    @property
    def running(self) -> bool:
        return self.end_time is None


def _meeting(row: sqlite3.Row, attendance: Iterable[AttendanceRecord] = ()) -> MeetingRecord:
    return MeetingRecord(
        internal_id=row["internal_id"], meeting_id=row["meeting_id"], name=row["name"],
        space_id=row["space_id"], room_id=row["room_id"], node_name=row["node_name"],
        node_url=row["node_url"], create_time=row["create_time"],
        start_time=row["start_time"], end_time=row["end_time"], end_reason=row["end_reason"],
        forcibly_ended=bool(row["forcibly_ended"]), is_breakout=bool(row["is_breakout"]),
        parent_id=row["parent_id"], record=bool(row["record"]),
        query=json.loads(row["query"]), metadata=json.loads(row["metadata"]),
        users=row["users"], joins=row["joins"], attendance=tuple(attendance))


def _attendance(row: sqlite3.Row) -> AttendanceRecord:
    return AttendanceRecord(
        id=row["id"], user_id=row["user_id"], external_user_id=row["external_user_id"],
        full_name=row["full_name"], role=row["role"], guest=bool(row["guest"]),
        join_time=row["join_time"], left_time=row["left_time"],
        left_reason=row["left_reason"])


def _with_attendance(db: Database, rows: Sequence[sqlite3.Row]) -> list[MeetingRecord]:
    """Meeting records for ``rows``, each with its attendance in join order."""
    by_meeting: dict[str, list[AttendanceRecord]] = {row["internal_id"]: [] for row in rows}
    ids = list(by_meeting)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for row in db.connection.execute(
                f"SELECT * FROM attendance_history WHERE internal_meeting_id IN ({marks})"
                " ORDER BY join_time, id", chunk):
            by_meeting[row["internal_meeting_id"]].append(_attendance(row))
    return [_meeting(row, by_meeting[row["internal_id"]]) for row in rows]


def meeting_events(db: Database, *, created_from: int | None = None,
                   created_before: int | None = None, ended_before: int | None = None,
                   min_users: int = 1, limit: int = 50) -> list[MeetingRecord]:
    """``getMeetingEvents``: meetings newest first, with their attendance.

    ``created_from``/``created_before`` bound the creation time (inclusive/exclusive),
    ``ended_before`` keeps only meetings that ended before it (so no live ones),
    ``min_users`` is the least number of distinct users.
    """
    where = ["users >= ?"]
    params: list[Any] = [min_users]
    if created_from is not None:
        where.append("create_time >= ?")
        params.append(created_from)
    if created_before is not None:
        where.append("create_time < ?")
        params.append(created_before)
    if ended_before is not None:
        where.append("end_time IS NOT NULL AND end_time < ?")
        params.append(ended_before)
    rows = db.connection.execute(
        f"SELECT * FROM meeting_history WHERE {' AND '.join(where)}"
        " ORDER BY create_time DESC, internal_id DESC LIMIT ?", (*params, limit)).fetchall()
    return _with_attendance(db, rows)


def stats(db: Database, meeting_ids: Sequence[str] = (), *,
          limit: int = 10_000) -> list[MeetingRecord]:
    """``getStats``: meetings someone connected to, oldest first (at most the newest
    ``limit``), optionally only those with one of ``meeting_ids``."""
    if meeting_ids:
        wanted = list(dict.fromkeys(meeting_ids))[:_CHUNK]
        marks = ", ".join("?" for _ in wanted)
        rows = db.connection.execute(
            "SELECT * FROM meeting_history WHERE start_time IS NOT NULL"
            f" AND meeting_id IN ({marks}) ORDER BY create_time DESC, internal_id DESC"
            " LIMIT ?", (*wanted, limit)).fetchall()
    else:
        rows = db.connection.execute(
            "SELECT * FROM meeting_history WHERE start_time IS NOT NULL"
            " ORDER BY create_time DESC, internal_id DESC LIMIT ?", (limit,)).fetchall()
    rows.reverse()
    return _with_attendance(db, rows)


def get_meeting(db: Database, internal_id: str) -> MeetingRecord | None:
    row = db.connection.execute("SELECT * FROM meeting_history WHERE internal_id = ?",
                                (internal_id,)).fetchone()
    return _meeting(row) if row is not None else None


def list_meetings(db: Database, *, space_id: str, room_id: str | None = None,
                  before: tuple[int, str] | None = None,
                  limit: int = 20) -> list[MeetingRecord]:
    """A space's (or one of its rooms') meetings, newest first, before the cursor
    ``(create_time, internal_id)``; without attendance."""
    where = ["space_id = ?"]
    params: list[Any] = [space_id]
    if room_id is not None:
        where.append("room_id = ?")
        params.append(room_id)
    if before is not None:
        where.append("(create_time, internal_id) < (?, ?)")
        params.extend(before)
    rows = db.connection.execute(
        f"SELECT * FROM meeting_history WHERE {' AND '.join(where)}"
        " ORDER BY create_time DESC, internal_id DESC LIMIT ?", (*params, limit)).fetchall()
    return [_meeting(row) for row in rows]


def list_attendance(db: Database, internal_id: str, *, after: tuple[int, int] | None = None,
                    limit: int = 20) -> list[AttendanceRecord]:
    """A meeting's attendance in join order, after the cursor ``(join_time, id)``."""
    if after is None:
        rows = db.connection.execute(
            "SELECT * FROM attendance_history WHERE internal_meeting_id = ?"
            " ORDER BY join_time, id LIMIT ?", (internal_id, limit)).fetchall()
    else:
        rows = db.connection.execute(
            "SELECT * FROM attendance_history WHERE internal_meeting_id = ?"
            " AND (join_time, id) > (?, ?) ORDER BY join_time, id LIMIT ?",
            (internal_id, *after, limit)).fetchall()
    return [_attendance(row) for row in rows]


# --- after a crash, and retention -----------------------------------------------------------


@dataclass(frozen=True)
class InterruptedMeeting:
    """A meeting the previous process did not see end (it was killed)."""

    internal_id: str
    meeting_id: str
    name: str
    space_id: str | None
    room_id: str | None
    create_time: int
    end_time: int
    record: bool
    metadata: Mapping[str, str]
    query: Mapping[str, str]


def recover(db: Database, started_at: int,
            reason: str = "ENDED_DUE_TO_SERVICE_INTERRUPTION") -> list[InterruptedMeeting]:
    """End the meetings a killed process left open: each at its last recorded moment.

    Only meetings created before ``started_at`` (this process's start) are touched.
    Their open attendances end at the same moment (``left_reason = 'ended'``).
    """
    out: list[InterruptedMeeting] = []
    with db.transaction() as c:
        rows = c.execute(
            "SELECT m.*, max(m.create_time, coalesce(m.start_time, 0),"
            "  coalesce((SELECT max(max(a.join_time, coalesce(a.left_time, 0)))"
            "            FROM attendance_history a WHERE a.internal_meeting_id = m.internal_id),"
            "           0)) AS last_seen"
            " FROM meeting_history m WHERE m.end_time IS NULL AND m.create_time < ?"
            " ORDER BY m.create_time, m.internal_id", (started_at,)).fetchall()
        for row in rows:
            end = int(row["last_seen"])
            c.execute("UPDATE meeting_history SET end_time = ?, end_reason = ?,"
                      " forcibly_ended = 0 WHERE internal_id = ?",
                      (end, reason, row["internal_id"]))
            c.execute("UPDATE attendance_history SET left_time = ?, left_reason = 'ended'"
                      " WHERE internal_meeting_id = ? AND left_time IS NULL",
                      (end, row["internal_id"]))
            out.append(InterruptedMeeting(
                internal_id=row["internal_id"], meeting_id=row["meeting_id"],
                name=row["name"], space_id=row["space_id"], room_id=row["room_id"],
                create_time=row["create_time"], end_time=end, record=bool(row["record"]),
                metadata=json.loads(row["metadata"]), query=json.loads(row["query"])))
    return out


def prune(db: Database, ended_before: int, *, limit: int = 500) -> int:
    """Delete at most ``limit`` meetings (and their attendance) that ended before
    ``ended_before``; returns how many. Call again while it returns ``limit``."""
    with db.transaction() as c:
        return c.execute(
            "DELETE FROM meeting_history WHERE internal_id IN (SELECT internal_id"
            " FROM meeting_history WHERE end_time IS NOT NULL AND end_time < ? LIMIT ?)",
            (ended_before, limit)).rowcount


# --- the classroom log ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassroomRecord:
    id: int
    at: int
    kind: str
    user_id: str | None
    data: dict[str, Any]


def list_classroom(db: Database, internal_id: str, *, after: int = 0,
                   limit: int = 1000) -> list[ClassroomRecord]:
    """A meeting's classroom log in the order it happened, after the entry ``after``."""
    rows = db.connection.execute(
        "SELECT id, at, kind, user_id, data FROM classroom_history"
        " WHERE internal_meeting_id = ? AND id > ? ORDER BY id LIMIT ?",
        (internal_id, after, limit)).fetchall()
    return [ClassroomRecord(row[0], row[1], row[2], row[3], json.loads(row[4]))
            for row in rows]
