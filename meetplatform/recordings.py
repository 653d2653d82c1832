"""The recordings catalogue the BBB recording calls work over.

:class:`RecordingCatalogue` is the small interface the XML API needs (search with BBB's
filters, publish, delete, update metadata). Its methods are coroutines so that the durable
store, which reaches its database off the reactor thread, can implement the same interface.
:class:`InMemoryRecordings` is the implementation the XML API's tests use (they add
recordings to it directly with :meth:`InMemoryRecordings.add`); the service runs over the
store's (:class:`meetplatform.recording.catalogue.StoreRecordings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

#: Every state a recording can be in, in BigBlueButton's words, plus ``failed``
#: (processing gave up after its retries; the reason is logged and shown by the REST API).
STATES = ("processing", "processed", "published", "unpublished", "deleted", "failed")


@dataclass(frozen=True)
class PreviewImage:
    """A thumbnail of a playback format (``<preview><images><image ..>``)."""

    url: str
    width: int | None = None
    height: int | None = None
    alt: str = ""


@dataclass(frozen=True)
class PlaybackFormat:
    """One way to play a recording back (``presentation``, ``video``, ``podcast``, ...)."""

    type: str
    url: str
    #: Milliseconds the processing took.
    processing_time: int = 0
    #: Minutes of playback.
    length: int = 0
    #: Bytes, when known.
    size: int | None = None
    preview: tuple[PreviewImage, ...] = ()


@dataclass(frozen=True)
class Recording:
    """One recording, as ``getRecordings`` lists it."""

    record_id: str
    meeting_id: str
    internal_meeting_id: str
    name: str
    state: str = "published"
    start_time: int = 0
    end_time: int = 0
    participants: int = 0
    is_breakout: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    playback: tuple[PlaybackFormat, ...] = ()

    @property
    def published(self) -> bool:
        return self.state == "published"


@dataclass(frozen=True)
class RecordingQuery:
    """``getRecordings`` filters. Empty sequences mean "no filter on this"."""

    #: Record IDs or prefixes of them; when given, ``meeting_ids`` is not consulted (as BBB).
    record_ids: Sequence[str] = ()
    meeting_ids: Sequence[str] = ()
    states: Sequence[str] = ("published", "unpublished")
    #: Every pair must match (lower-case names, as stored).
    metadata: Mapping[str, str] = field(default_factory=dict)
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class RecordingPage:
    recordings: Sequence[Recording]
    #: How many recordings matched before ``offset``/``limit`` were applied.
    total: int


class RecordingCatalogue(Protocol):
    """What the XML API needs from wherever recordings are kept."""

    async def search(self, query: RecordingQuery) -> RecordingPage:
        """Recordings matching ``query``, ordered by start time then record ID."""

    async def set_published(self, record_ids: Sequence[str], published: bool) -> int:
        """Publish or unpublish; returns how many of ``record_ids`` exist (0: none found)."""

    async def delete(self, record_ids: Sequence[str]) -> int:
        """Mark as deleted; returns how many of ``record_ids`` exist."""

    async def update_metadata(self, record_ids: Sequence[str],
                              changes: Mapping[str, str]) -> int:
        """Set metadata (an empty value removes the name); returns how many exist."""


class InMemoryRecordings:
    """A :class:`RecordingCatalogue` held in memory (lost at restart)."""

    def __init__(self, recordings: Sequence[Recording] = ()) -> None:
        self._by_id: dict[str, Recording] = {}
        for recording in recordings:
            self.add(recording)

    def add(self, recording: Recording) -> None:
        """Add or replace a recording (the recording pipeline and tests call this)."""
        if recording.state not in STATES:
            raise ValueError(f"unknown recording state {recording.state!r}")
        self._by_id[recording.record_id] = recording

    def get(self, record_id: str) -> Recording | None:
        return self._by_id.get(record_id)

    def __len__(self) -> int:
        return len(self._by_id)

    async def search(self, query: RecordingQuery) -> RecordingPage:
        states = frozenset(query.states)
        prefixes = tuple(query.record_ids)
        meetings = frozenset(query.meeting_ids)
        wanted = tuple(query.metadata.items())
        found = []
        for recording in self._by_id.values():
            if recording.state not in states:
                continue
            if prefixes:
                if not recording.record_id.startswith(prefixes):
                    continue
            elif meetings and recording.meeting_id not in meetings:
                continue
            if wanted and any(recording.metadata.get(k) != v for k, v in wanted):
                continue
            found.append(recording)
        found.sort(key=lambda r: (r.start_time, r.record_id))
        end = None if query.limit is None else query.offset + query.limit
        return RecordingPage(recordings=found[query.offset:end], total=len(found))

    def _existing(self, record_ids: Sequence[str]) -> list[Recording]:
        return [self._by_id[i] for i in dict.fromkeys(record_ids) if i in self._by_id]

    async def set_published(self, record_ids: Sequence[str], published: bool) -> int:
        existing = self._existing(record_ids)
        for recording in existing:
            if recording.state in ("published", "unpublished"):
                state = "published" if published else "unpublished"
                self._by_id[recording.record_id] = replace(recording, state=state)
        return len(existing)

    async def delete(self, record_ids: Sequence[str]) -> int:
        existing = self._existing(record_ids)
        for recording in existing:
            self._by_id[recording.record_id] = replace(recording, state="deleted")
        return len(existing)

    async def update_metadata(self, record_ids: Sequence[str],
                              changes: Mapping[str, str]) -> int:
        existing = self._existing(record_ids)
        for recording in existing:
            metadata = dict(recording.metadata)
            for name, value in changes.items():
                if value:
                    metadata[name] = value
                else:
                    metadata.pop(name, None)
            self._by_id[recording.record_id] = replace(recording, metadata=metadata)
        return len(existing)
