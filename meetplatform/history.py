"""Meeting history: the durable record of every meeting's life.

:class:`History` subscribes to the registry and writes, off the reactor thread and in
batches (:class:`~meetplatform.store.batch.BatchWriter`):

- the creation, with its create parameters (the seed's ``query`` block) with passwords
  left out (see :func:`public_query`), the metadata, and the node it runs on;
- the start (first participant connected), the end and its reason;
- every participant's stretches of presence: join and leave times, role, name, guest flag
  and why it left.

It answers ``getMeetingEvents``, ``getStats`` and the JSON:API's sessions through its
:class:`HistoryReader` (:attr:`History.reader`, :meth:`History.read`), which first hands
over what is still buffered, so a reader always sees every event that happened before
its request. The surfaces ask the reader, never the store: the queries on the history
tables (:mod:`meetplatform.store.history_db`) stay behind this module.

On start, :meth:`History.recover` ends the meetings that a killed process left open
(``ENDED_DUE_TO_SERVICE_INTERRUPTION``, at their last recorded moment). With a retention
setting, :meth:`History.prune` deletes meetings that ended longer ago than that, a few
hundred per store job so that it never holds the store (nor, of course, the reactor) for
long; the service runs it every hour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.model import Meeting
from meetplatform.registry import Registry
from meetplatform.store import Database, Store
from meetplatform.store import history_db as hdb
from meetplatform.store.batch import BatchWriter
from meetplatform.store.history_db import AttendanceRecord, MeetingRecord
from meetplatform.tenancy import tenant_of

_log = Logger()

T = TypeVar("T")

DAY_MS = 24 * 3600 * 1000
#: Meetings deleted per store job while pruning.
PRUNE_CHUNK = 500

#: Create parameters never kept (nor shown): passwords and anything named like a secret.
_HIDDEN_PARAMETER = re.compile(r"(?i)(^attendeepw$|^moderatorpw$|password|secret)")


def public_query(meeting: Meeting) -> dict[str, str]:
    """The create parameters as history keeps them: passwords (and anything named like a
    password or secret) removed. Meetings made by the JSON:API, which have no BBB
    parameters, get the equivalent ones."""
    params = meeting.spec.params
    if not params:
        spec = meeting.spec
        params = {"meetingID": spec.meeting_id, "name": spec.name}
        if spec.record:
            params["record"] = "true"
        for key, value in spec.metadata.items():
            params[f"meta_{key}"] = value
    return {k: v for k, v in params.items() if not _HIDDEN_PARAMETER.search(k)}


def classroom_op(event: ev.Event) -> hdb.ClassroomOp | None:
    """The classroom log entry of an event, if it makes one.

    The annotation log keeps finished shapes whole (not each increment of a stroke: a
    presenter streams 60 a second) and every removal, so replaying it in order gives every
    page's annotations at any moment. Poll answers of anonymous polls carry no user (the
    registry does not say who gave them)."""
    if isinstance(event, ev.PresentationChanged):
        p = event.meeting.presentation
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "page",
                               event.by.user_id if event.by else None,
                               {"documentId": p.current_document, "page": p.current_page})
    if isinstance(event, ev.ShapeDrawn):
        shape = event.shape
        if not shape.done:
            return None
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "shape",
                               shape.user_id or None, {
                                   "page": event.page_key, "id": shape.id, "kind": shape.kind,
                                   "color": shape.color, "width": shape.width,
                                   "points": list(shape.points), "text": shape.text})
    if isinstance(event, ev.ShapesRemoved):
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "shapes-removed",
                               event.by.user_id if event.by else None,
                               {"page": event.page_key, "ids": list(event.shape_ids),
                                "cleared": event.cleared})
    if isinstance(event, ev.MultiUserChanged):
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "multi-user", None,
                               {"enabled": event.enabled})
    if isinstance(event, ev.DocumentChanged):
        doc = event.document
        if doc.state not in ("ready", "failed"):
            return None
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "document", None, {
            "id": doc.id, "filename": doc.filename, "state": doc.state,
            "pagesTotal": doc.pages_total, "error": doc.error})
    if isinstance(event, ev.PollStarted):
        poll = event.poll
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "poll-started",
                               poll.started_by or None, {
                                   "id": poll.id, "type": poll.kind.value,
                                   "question": poll.question, "answers": list(poll.answers),
                                   "anonymous": poll.anonymous})
    if isinstance(event, ev.PollAnswered):
        voter = event.participant
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, "poll-answered",
                               voter.user_id if voter is not None else None,
                               {"id": event.poll.id, "answer": event.answer})
    if isinstance(event, (ev.PollStopped, ev.PollPublished)):
        poll = event.poll
        kind = "poll-published" if isinstance(event, ev.PollPublished) else "poll-stopped"
        return hdb.ClassroomOp(event.meeting.internal_id, event.at, kind, None, {
            "id": poll.id, "counts": list(poll.counts), "responders": len(poll.responders),
            "texts": list(poll.texts)})
    return None


class HistoryReader:
    """Queries on the durable history, each run after the writes still buffered.

    ``flush`` is the writer's (:meth:`History.flush`): a query is submitted to the store
    after the buffered writes, and the store runs its jobs in order, so it sees them.
    Without a writer (a surface built without the history service, in tests) the
    queries read what is in the store.
    """

    def __init__(self, store: Store,
                 flush: Callable[[], Deferred[None]] | None = None) -> None:
        self._store = store
        self._flush = flush

    async def read(self, query: Callable[[Database], T]) -> T:
        """Run ``query(database)`` on the store's thread after every buffered write."""
        if self._flush is None:
            return await self._store.run(query)
        flushed = self._flush()
        result = await self._store.run(query)
        await flushed
        return result

    async def session(self, internal_id: str) -> MeetingRecord | None:
        """One meeting by its internal id (the JSON:API's session id)."""
        return await self.read(lambda db: hdb.get_meeting(db, internal_id))

    async def sessions(self, space_id: str, *, room_id: str | None = None,
                       before: tuple[int, str] | None, limit: int) -> list[MeetingRecord]:
        """A space's (or one of its rooms') meetings, newest first, before the
        ``(create_time, internal_id)`` cursor."""
        return await self.read(lambda db: hdb.list_meetings(
            db, space_id=space_id, room_id=room_id, before=before, limit=limit))

    async def classroom(self, internal_id: str, *, after: int = 0,
                        limit: int = 1000) -> list[hdb.ClassroomRecord]:
        """A meeting's classroom log (pages shown, finished shapes, removals, polls,
        documents) in the order it happened, after the entry ``after``."""
        return await self.read(lambda db: hdb.list_classroom(
            db, internal_id, after=after, limit=limit))

    async def attendances(self, internal_id: str, *, after: tuple[int, int] | None,
                          limit: int) -> list[AttendanceRecord]:
        """A meeting's stretches of presence in join order, after the ``(join_time, id)``
        cursor."""
        return await self.read(lambda db: hdb.list_attendance(
            db, internal_id, after=after, limit=limit))


class History(Service):
    """The history writer and reader; attach it to the service for flushing on stop."""

    name = "history"

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, retention_days: int | None = None,
                 prune_interval_s: float = 3600.0) -> None:
        self._clock = clock
        self._settings = settings
        self._store = store
        self._node_name = settings.server_name
        self._node_url = settings.public_url.rstrip("/")
        days = settings.history_retention_days if retention_days is None else retention_days
        self.retention_days = days
        self._prune_interval = prune_interval_s
        self._prune_call: IDelayedCall | None = None
        self._pruning = False
        self._started_at = int(clock.seconds() * 1000)
        self._writer: BatchWriter[hdb.HistoryOp, int] = BatchWriter(
            store, hdb.apply, name="history")
        #: What the surfaces read the history with (after what is still buffered).
        self.reader = HistoryReader(store, self._writer.flush)
        self._unsubscribe: Callable[[], None] | None = registry.subscribe(self._on_event)

    # --- service lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.retention_days > 0:
            self._schedule_prune(60.0)

    def stopService(self) -> Deferred[None]:
        """Stop pruning; fires once every event received so far is written."""
        super().stopService()
        if self._prune_call is not None and self._prune_call.active():
            self._prune_call.cancel()
        self._prune_call = None
        return self._writer.flush()

    def close(self) -> None:
        """Stop listening to the registry (tests that build several)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # --- writing -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Operations received but not yet written."""
        return self._writer.pending

    def flush(self) -> Deferred[None]:
        """Fires once everything received so far is written."""
        return self._writer.flush()

    def _on_event(self, event: ev.Event) -> None:
        op = self._op_for(event)
        if op is not None:
            self._writer.add(op)

    def _op_for(self, event: ev.Event) -> hdb.HistoryOp | None:
        if isinstance(event, ev.ParticipantJoined):
            p = event.participant
            return hdb.JoinOp(p.meeting.internal_id, p.user_id, p.external_user_id,
                              p.full_name, p.role.value, p.seat.guest, event.at)
        if isinstance(event, ev.ParticipantLeft):
            p = event.participant
            return hdb.LeaveOp(p.meeting.internal_id, p.user_id, event.at, event.reason)
        if isinstance(event, ev.ParticipantUpdated):
            if "role" in event.changed:
                p = event.participant
                return hdb.UpdateOp(p.meeting.internal_id, p.user_id, role=p.role.value)
            return None
        if isinstance(event, ev.ParticipantReplaced):
            p = event.participant
            return hdb.UpdateOp(p.meeting.internal_id, p.user_id, full_name=p.full_name,
                                role=p.role.value)
        if isinstance(event, ev.MeetingCreated):
            m = event.meeting
            space_id, _, room_id = tenant_of(m.meeting_id)
            return hdb.MeetingCreatedOp(
                internal_id=m.internal_id, meeting_id=m.meeting_id, name=m.name,
                space_id=space_id, room_id=room_id, node_name=self._node_name,
                node_url=self._node_url, create_time=m.create_time,
                is_breakout=m.spec.is_breakout, parent_id=m.spec.parent_meeting_id,
                record=m.spec.record, query=public_query(m), metadata=dict(m.spec.metadata))
        if isinstance(event, ev.MeetingStarted):
            return hdb.MeetingStartedOp(event.meeting.internal_id, event.at)
        if isinstance(event, ev.MeetingEnded):
            m = event.meeting
            return hdb.MeetingEndedOp(m.internal_id, event.at, event.reason, m.forcibly_ended)
        return classroom_op(event)

    # --- reading -------------------------------------------------------------------------

    async def read(self, query: Callable[[Database], T]) -> T:
        """Run ``query(database)`` on the store's thread after every buffered write."""
        return await self.reader.read(query)

    # --- after a crash -------------------------------------------------------------------

    async def recover(self) -> list[hdb.InterruptedMeeting]:
        """End the meetings a killed process left open (call once, at start)."""
        started_at = self._started_at
        recovered = await self._store.run(lambda db: hdb.recover(db, started_at))
        for meeting in recovered:
            _log.warn("meeting {meeting_id} ({internal_id}) was still open when the service "
                      "last stopped; recorded as ended at its last activity",
                      meeting_id=meeting.meeting_id, internal_id=meeting.internal_id)
        return recovered

    # --- retention -----------------------------------------------------------------------

    def _schedule_prune(self, delay: float) -> None:
        def run() -> None:
            self._prune_call = None
            d = Deferred.fromCoroutine(self.prune())
            d.addBoth(lambda _: self._schedule_prune(self._prune_interval)
                      if self.running else None)

        self._prune_call = self._clock.callLater(delay, run)

    async def prune(self) -> int:
        """Delete meetings that ended more than the retention period ago; returns how many.

        Works in chunks of :data:`PRUNE_CHUNK` meetings, one store job each, so queries
        from the surfaces interleave. Never raises (it logs): a periodic job.
        """
        if self.retention_days <= 0 or self._pruning:
            return 0
        self._pruning = True
        cutoff = int(self._clock.seconds() * 1000) - self.retention_days * DAY_MS
        total = 0
        try:
            while True:
                deleted = await self._store.run(
                    lambda db: hdb.prune(db, cutoff, limit=PRUNE_CHUNK))
                total += deleted
                if deleted < PRUNE_CHUNK:
                    break
        except Exception:  # noqa: BLE001 - periodic jobs never raise (they log)
            _log.failure("pruning the meeting history failed")
        finally:
            self._pruning = False
        if total:
            _log.info("history: deleted {count} meeting(s) that ended more than {days} "
                      "day(s) ago", count=total, days=self.retention_days)
        return total

