"""The recording service: BigBlueButton's recording semantics over media nodes.

* A meeting created with ``record=true`` may record; ``autoStartRecording`` starts it when
  the first participant joins; a moderator starts and stops it from the conference page
  when ``allowStartStopRecording`` (the registry's :meth:`~meetplatform.registry.Registry.
  set_recording`, which emits :class:`~meetplatform.events.RecordingChanged`).
* Each start-to-stop is a **segment**; the service notes its times and tells the meeting's
  media node (:class:`Recorder`, the seam the SFU path provides: by default the VideoRoom
  ``enable_recording`` of :class:`~meetplatform.media.recording.RoomRecorder` on the
  meeting's placement).
* When a meeting that recorded at least one segment ends, one recording row and its
  ``process`` job are written in one transaction; a meeting that never recorded makes no
  recording. :class:`~meetplatform.recording.jobs.RecordingJobs` works the job off.

Where a node's files are seen from the service (:func:`node_recordings_dir`): for the
local Janus (``--janus-local``) its own directory ``<data-dir>/janus/recordings``; for any
other node ``<recordings-dir>/nodes/<node name>``, which the operator makes the node's
recording directory reachable at (an NFS mount of it, or a directory an ``rsync`` from the
node fills; see docs/recordings.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.media.janus import JanusError
from meetplatform.media.local import LOCAL_NODE
from meetplatform.media.nodes import MediaNodes, Placement
from meetplatform.media.recording import RoomRecorder
from meetplatform.model import Meeting
from meetplatform.recording.catalogue import StoreRecordings
from meetplatform.recording.jobs import RecordingJobs, RetryPolicy, Source
from meetplatform.recording.links import PlaybackLinks
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb

_log = Logger()

#: Free space under which the recordings directory counts as full (bytes).
LOW_DISK_BYTES = 256 * 1024 * 1024


class Recorder(Protocol):
    """What the service asks of the media side of one meeting."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Meeting:
    """What the service notes of a recording meeting."""

    segments: list[list[int]] = field(default_factory=list)
    node: str | None = None
    room: str | None = None
    recorder: Recorder | None = None
    screens: set[str] = field(default_factory=set)


def node_recordings_dir(settings: Settings, node: str) -> Path:
    """The directory where the service finds node ``node``'s ``.mjr`` files."""
    if node == LOCAL_NODE and settings.janus_local is not None:
        return settings.data_dir / "janus" / "recordings"
    return settings.recordings_path / "nodes" / node


def record_id_for(meeting: Meeting) -> str:
    """BigBlueButton's record id: the internal meeting id (``sha1(meetingID)-<ms>``)."""
    expected = hashlib.sha1(meeting.meeting_id.encode("utf-8")).hexdigest()
    if meeting.internal_id.startswith(expected + "-"):
        return meeting.internal_id
    return f"{expected}-{meeting.create_time}"


class RecordingService(MultiService):
    """Recording semantics, the job runner and the disk check, as one service."""

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, media: MediaNodes | None = None,
                 recorder_for: Callable[[Meeting, Placement | None], Recorder | None]
                 | None = None,
                 policy: RetryPolicy | None = None, python: str | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._settings = settings
        self._registry = registry
        self._store = store
        self._media = media
        self._recorder_for = recorder_for or self._videoroom_recorder
        self.directory = settings.recordings_path
        self.links = PlaybackLinks(clock, settings.public_url, settings.secret,
                                   settings.protected_recordings)
        self.jobs = RecordingJobs(clock, store, self.directory, sources=self._source,
                                  policy=policy, python=python)
        self.jobs.setServiceParent(self)
        self.catalogue = StoreRecordings(clock, store, self.links, on_change=self._changed)
        self._meetings: dict[str, _Meeting] = {}
        #: Why the recordings directory cannot take recordings now (None: it can).
        self.disk_problem: str | None = None
        self._disk_check = LoopingCall(self.check_disk)
        self._disk_check.clock = clock
        self._unsubscribe = registry.subscribe(self._on_event)
        #: (event name, meeting/recording attributes): rap-* stages, for webhooks.
        self.stage_listeners: list[Callable[[str, rdb.RecordingRow], None]] = []
        self.jobs.stages.append(self._stage)

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    # --- lifecycle --------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._disk_check.start(30.0, now=True).addErrback(
            lambda f: _log.failure("recordings: the disk check loop failed", f))

    def stopService(self) -> Deferred[None]:
        if self._disk_check.running:
            self._disk_check.stop()
        return super().stopService()  # type: ignore[no-any-return]

    # --- the disk -----------------------------------------------------------------------------

    def check_disk(self) -> Deferred[None]:
        """Whether the recordings directory exists (it is created), is writable and has
        room; the answer goes to /healthz and the log (only changes are logged)."""

        def probe() -> str | None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                return f"cannot create {self.directory}: {error.strerror or error}"
            if not os.access(self.directory, os.W_OK | os.X_OK):
                return f"{self.directory} is not writable"
            free = shutil.disk_usage(self.directory).free
            if free < LOW_DISK_BYTES:
                return f"{self.directory} is full ({free // (1024 * 1024)} MiB free)"
            return None

        def seen(problem: str | None) -> None:
            if problem != self.disk_problem:
                if problem is None:
                    _log.info("recordings: {dir} is usable again", dir=str(self.directory))
                else:
                    _log.error("recordings: {problem}; recordings will fail until this "
                               "is fixed", problem=problem)
            self.disk_problem = problem

        d: Deferred[None] = deferToThread(probe).addCallback(seen)
        return d

    def health(self) -> dict[str, object]:
        """The ``recordings`` section of ``/healthz``."""
        body: dict[str, object] = {"status": "ok" if self.disk_problem is None else "failing",
                                   "directory": str(self.directory)}
        if self.disk_problem is not None:
            body["problem"] = self.disk_problem
        if self.jobs.last_failure is not None:
            body["lastFailure"] = self.jobs.last_failure
        return body

    # --- registry events --------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.RecordingChanged):
            self._recording_changed(event)
        elif isinstance(event, ev.MeetingEnded):
            self._ended(event.meeting, event.at)

    def _recording_changed(self, event: ev.RecordingChanged) -> None:
        meeting = event.meeting
        state = self._meetings.setdefault(meeting.internal_id, _Meeting())
        if event.recording:
            state.segments.append([event.at, event.at])
        elif state.segments:
            state.segments[-1][1] = event.at
        placement = None
        if self._media is not None:
            placement = self._media.placement(meeting.internal_id)
        if placement is not None and state.node is None:
            state.node, state.room = placement.node.name, str(placement.room)
        if state.recorder is None:
            state.recorder = self._recorder_for(meeting, placement)
        if state.recorder is not None:
            Deferred.fromCoroutine(self._tell_node(meeting, state.recorder, event.recording))

    def screen_publisher(self, meeting: Meeting, publisher_id: int | str,
                         mid: str | None = None) -> None:
        """The SFU path tells which of the node's publishers (or which stream ``mid`` of
        one) is a screen share: its video goes to the main area of the composed
        recording, the cameras beside it."""
        key = str(publisher_id) if mid is None else f"{publisher_id}:{mid}"
        self._meetings.setdefault(meeting.internal_id, _Meeting()).screens.add(key)

    def streams_changed(self, meeting: Meeting, feed: int,
                        streams: list[dict[str, Any]]) -> None:
        """``SfuBackend.on_streams`` listener: note every screen stream published."""
        for stream in streams:
            if stream.get("source") == "screen" and stream.get("type") == "video":
                self.screen_publisher(meeting, feed, str(stream.get("mid")))

    async def _tell_node(self, meeting: Meeting, recorder: Recorder, on: bool) -> None:
        try:
            await (recorder.start() if on else recorder.stop())
        except JanusError as error:
            _log.error("meeting {meeting_id}: the media node did not {what} recording: "
                       "{error}", meeting_id=meeting.meeting_id,
                       what="start" if on else "stop", error=str(error))

    def _videoroom_recorder(self, meeting: Meeting,
                            placement: Placement | None) -> Recorder | None:
        if placement is None or self._media is None:
            return None
        try:
            rooms = self._media._control(placement).rooms
        except JanusError:
            return None
        rec_dir = None
        if placement.node.name == LOCAL_NODE and self._settings.janus_local is not None:
            rec_dir = str(node_recordings_dir(self._settings, LOCAL_NODE))
        return RoomRecorder(rooms, placement.room, placement.secret, rec_dir)

    def _ended(self, meeting: Meeting, at: int) -> None:
        state = self._meetings.pop(meeting.internal_id, None)
        if state is None or not state.segments:
            return  # never recorded: no recording
        if meeting.recording and state.segments:
            state.segments[-1][1] = at
        segments = tuple((s, e) for s, e in state.segments if e > s)
        if not segments:
            return
        if state.node is None:
            _log.warn("meeting {meeting_id} recorded {n} segment(s) but ran without a media "
                      "node (mesh): there is no media to make a recording of",
                      meeting_id=meeting.meeting_id, n=len(segments))
            return
        participants = len({a.user_id for a in meeting.attendance})
        row = rdb.RecordingRow(
            record_id=record_id_for(meeting), meeting_id=meeting.meeting_id,
            internal_meeting_id=meeting.internal_id, name=meeting.name,
            is_breakout=meeting.spec.is_breakout, state="processing", publish=True,
            start_time=segments[0][0], end_time=segments[-1][1], participants=participants,
            metadata=dict(meeting.spec.metadata), node=state.node,
            source_dir=str(node_recordings_dir(self._settings, state.node))
            if state.node else None, room=state.room, segments=segments,
            screens=tuple(sorted(state.screens)))
        Deferred.fromCoroutine(self.add(row)).addErrback(
            lambda f: _log.failure("meeting {meeting_id}: writing its recording failed", f,
                                   meeting_id=meeting.meeting_id))

    async def add(self, row: rdb.RecordingRow) -> rdb.RecordingRow:
        """Write a recording and its processing job (durably), then start on it."""
        now = self._now()
        made = await self._store.run(lambda db: rdb.add_recording(db, row, now))
        _log.info("meeting {meeting_id}: recording {id} queued for processing ({n} "
                  "segment(s))", meeting_id=row.meeting_id, id=row.record_id,
                  n=len(row.segments))
        self._stage("rap-archive-started", made)
        self._stage("rap-archive-ended", made)
        self.jobs.wake()
        return made

    @staticmethod
    def _source(row: rdb.RecordingRow) -> Source:
        return Source(row.source_dir, row.room)

    def _stage(self, name: str, row: rdb.RecordingRow) -> None:
        for listener in list(self.stage_listeners):
            try:
                listener(name, row)
            except Exception:  # noqa: BLE001 - logged; webhooks must not stop recording
                _log.failure("recordings: a stage listener failed on {name}", name=name)

    def _changed(self, kind: str, record_ids: object) -> None:
        if kind == "deleted":
            self.jobs.wake()
