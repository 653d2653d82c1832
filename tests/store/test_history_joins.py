"""Consecutive joins are written together by ``history_db.apply``: the same rows as one by
one, whatever the mix of meetings, identities, leaves and renames."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meetplatform.store import history_db as hdb
from meetplatform.store import open_database

MEETINGS = ("int-a", "int-b", "int-missing")  # the last one has no meeting_history row


def _created(internal_id: str) -> hdb.MeetingCreatedOp:
    return hdb.MeetingCreatedOp(
        internal_id=internal_id, meeting_id=internal_id.upper(), name="Class",
        space_id=None, room_id=None, node_name="local", node_url="", create_time=1,
        is_breakout=False, parent_id=None, record=False, query={}, metadata={})


_ops = st.lists(st.one_of(
    st.builds(hdb.JoinOp, internal_id=st.sampled_from(MEETINGS),
              user_id=st.sampled_from(["u1", "u2", "u3", "u4"]),
              external_user_id=st.sampled_from(["e1", "e2", "e3"]),
              full_name=st.sampled_from(["Ann", "Bob"]), role=st.sampled_from(
                  ["MODERATOR", "VIEWER"]), guest=st.booleans(),
              at=st.integers(min_value=2, max_value=50)),
    st.builds(hdb.LeaveOp, internal_id=st.sampled_from(MEETINGS),
              user_id=st.sampled_from(["u1", "u2", "u3", "u4"]),
              at=st.integers(min_value=2, max_value=50), reason=st.just("left")),
    st.builds(hdb.UpdateOp, internal_id=st.sampled_from(MEETINGS),
              user_id=st.sampled_from(["u1", "u2", "u3", "u4"]),
              full_name=st.sampled_from([None, "Renamed"]),
              role=st.sampled_from([None, "MODERATOR"])),
), max_size=40)


def _dump(directory: Path, batches: list[list[Any]]) -> tuple[list[Any], list[Any]]:
    db = open_database(directory)
    try:
        for batch in batches:
            hdb.apply(db, batch)
        c = db.connection
        meetings = [tuple(r) for r in c.execute(
            "SELECT internal_id, joins, users, start_time FROM meeting_history"
            " ORDER BY internal_id")]
        attendance = [tuple(r) for r in c.execute(
            "SELECT internal_meeting_id, user_id, external_user_id, full_name, role, guest,"
            " join_time, left_time, left_reason FROM attendance_history"
            " ORDER BY internal_meeting_id, id")]
        return meetings, attendance
    finally:
        db.close()


@settings(max_examples=60, deadline=None)
@given(ops=_ops, split=st.integers(min_value=0, max_value=40))
def test_joins_written_together_leave_the_rows_of_joins_written_one_by_one(
        ops: list[Any], split: int) -> None:
    created: list[Any] = [_created("int-a"), _created("int-b")]
    work = Path(tempfile.mkdtemp(prefix="mp-history-"))
    try:
        one_by_one = _dump(work / "one", [created] + [[op] for op in ops])
        together = _dump(work / "together", [created + ops[:split], ops[split:]])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert together == one_by_one


def test_a_burst_of_joins_counts_each_identity_once(tmp_path: Path) -> None:
    """Two joins of one identity in the same batch (a reload) are one user, two joins."""
    joins = [hdb.JoinOp("int-a", f"u{n}", "e1" if n < 2 else f"e{n}", "Ann", "VIEWER",
                        False, 10 + n) for n in range(5)]
    meetings, attendance = _dump(tmp_path, [[_created("int-a"), *joins]])
    assert meetings == [("int-a", 5, 4, 10)]
    assert [row[1] for row in attendance] == ["u0", "u1", "u2", "u3", "u4"]
