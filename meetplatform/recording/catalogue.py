"""The durable :class:`~meetplatform.recordings.RecordingCatalogue`: recordings in the store.

The XML API's recording calls and the JSON:API's recordings resources work over this.
Rows are :class:`~meetplatform.store.recordings_db.RecordingRow`; what a client sees
(playback URLs, signed when playback is protected) is made here, per request, so that a
signed link is always fresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from twisted.internet.interfaces import IReactorTime

from meetplatform.recording.links import PlaybackLinks
from meetplatform.recordings import (
    PlaybackFormat,
    PreviewImage,
    Recording,
    RecordingPage,
    RecordingQuery,
)
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb

#: Size of the preview image (``compose.preview`` scales to 320 wide, 4:3).
PREVIEW_WIDTH, PREVIEW_HEIGHT = 320, 240


class StoreRecordings:
    """Recordings kept in the store; ``on_change(kind, record_ids)`` hears about deletes
    and publishing (the job runner removes files; webhooks announce it)."""

    def __init__(self, clock: IReactorTime, store: Store, links: PlaybackLinks, *,
                 on_change: Callable[[str, Sequence[str]], None] | None = None) -> None:
        self._clock = clock
        self._store = store
        self.links = links
        self._on_change = on_change

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def recording(self, row: rdb.RecordingRow) -> Recording:
        """A row as getRecordings lists it (its ``video`` format once processed)."""
        playback: tuple[PlaybackFormat, ...] = ()
        if row.length_ms is not None and row.state in ("published", "unpublished",
                                                        "processed"):
            preview = PreviewImage(self.links.preview(row.record_id), PREVIEW_WIDTH,
                                   PREVIEW_HEIGHT, row.name)
            playback = (PlaybackFormat(
                type="video", url=self.links.page(row.record_id),
                processing_time=row.processing_ms or 0, length=row.length_ms // 60_000,
                size=row.size, preview=(preview,)),)
        return Recording(
            record_id=row.record_id, meeting_id=row.meeting_id,
            internal_meeting_id=row.internal_meeting_id, name=row.name,
            state=row.state, start_time=row.start_time, end_time=row.end_time,
            participants=row.participants, is_breakout=row.is_breakout,
            metadata=dict(row.metadata), playback=playback)

    async def get(self, record_id: str) -> rdb.RecordingRow | None:
        return await self._store.run(lambda db: rdb.get_recording(db, record_id))

    async def search(self, query: RecordingQuery) -> RecordingPage:
        rows, total = await self._store.run(lambda db: rdb.search(
            db, record_ids=query.record_ids, meeting_ids=query.meeting_ids,
            states=query.states, metadata=query.metadata, offset=query.offset,
            limit=query.limit))
        return RecordingPage(recordings=[self.recording(r) for r in rows], total=total)

    def _changed(self, kind: str, record_ids: Sequence[str]) -> None:
        if self._on_change is not None:
            self._on_change(kind, record_ids)

    async def set_published(self, record_ids: Sequence[str], published: bool) -> int:
        now = self._now()
        found = await self._store.run(
            lambda db: rdb.set_published(db, record_ids, published, now))
        if found:
            self._changed("published" if published else "unpublished", record_ids)
        return found

    async def delete(self, record_ids: Sequence[str]) -> int:
        now = self._now()
        found = await self._store.run(lambda db: rdb.mark_deleted(db, record_ids, now))
        if found:
            self._changed("deleted", record_ids)
        return found

    async def update_metadata(self, record_ids: Sequence[str],
                              changes: Mapping[str, str]) -> int:
        now = self._now()
        return await self._store.run(
            lambda db: rdb.update_metadata(db, record_ids, changes, now))
