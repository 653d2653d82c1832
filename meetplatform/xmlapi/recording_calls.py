"""The recording calls: ``getRecordings``, ``publishRecordings``, ``deleteRecordings`` and
``updateRecordings``, over a :class:`~meetplatform.recordings.RecordingCatalogue`.

The catalogue answers asynchronously (it may live in the store), so the handlers are
coroutines; the pipeline writes their answer when it comes.
"""

from __future__ import annotations

from meetplatform.recordings import PlaybackFormat, Recording, RecordingCatalogue, RecordingQuery
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext, Nodes
from meetplatform.xmlapi.render import Attrs, Items


def recording_nodes(recording: Recording) -> Nodes:
    """A recording as getRecordings lists it."""
    return [
        ("recordID", recording.record_id),
        ("meetingID", recording.meeting_id),
        ("internalMeetingID", recording.internal_meeting_id),
        ("name", recording.name),
        ("isBreakout", recording.is_breakout),
        ("published", recording.published),
        ("state", recording.state),
        ("startTime", recording.start_time),
        ("endTime", recording.end_time),
        ("participants", recording.participants),
        ("metadata", list(recording.metadata.items())),
        ("playback", Items("format", [format_nodes(f) for f in recording.playback])),
    ]


def format_nodes(playback: PlaybackFormat) -> Nodes:
    """One playback format of a recording."""
    nodes: Nodes = [
        ("type", playback.type),
        ("url", playback.url),
        ("processingTime", playback.processing_time),
        ("length", playback.length),
    ]
    if playback.size is not None:
        nodes.append(("size", playback.size))
    if playback.preview:
        nodes.append(("preview", [("images", Items("image", [
            Attrs([(k, v) for k, v in (
                ("width", "" if image.width is None else str(image.width)),
                ("height", "" if image.height is None else str(image.height)),
                ("alt", image.alt)) if v], image.url)
            for image in playback.preview]))]))
    return nodes


def _record_ids(params: P.Params) -> list[str]:
    ids = params.id_list("recordID")
    if not ids:
        raise errors.missing_record_id()
    return ids


class RecordingCalls:
    """The recording calls; :meth:`register` adds them to the pipeline."""

    def __init__(self, recordings: RecordingCatalogue) -> None:
        self._recordings = recordings

    def register(self, api: ApiPipeline) -> None:
        api.add_call("getRecordings", self.get_recordings)
        api.add_call("publishRecordings", self.publish_recordings)
        api.add_call("deleteRecordings", self.delete_recordings)
        api.add_call("updateRecordings", self.update_recordings)

    async def get_recordings(self, ctx: CallContext) -> Answer:
        params = ctx.params
        offset = P.bounded_number(params, "offset", 0, 1_000_000_000)
        limit = P.bounded_number(params, "limit", 1, 100)
        query = RecordingQuery(
            record_ids=params.id_list("recordID"),
            meeting_ids=params.id_list("meetingID"),
            states=P.recording_states(params),
            metadata=params.metadata(),
            offset=offset or 0,
            limit=limit,
        )
        page = await self._recordings.search(query)
        if not page.recordings:
            return [("messageKey", "noRecordings"), ("message", "No recordings found"),
                    ("recordings", Items("recording", []))]
        nodes: Nodes = [("recordings", Items("recording", [
            recording_nodes(r) for r in page.recordings]))]
        if offset is not None or limit is not None:
            nodes.append(("totalElements", page.total))
        return nodes

    async def publish_recordings(self, ctx: CallContext) -> Answer:
        ids = _record_ids(ctx.params)
        publish = ctx.params.text("publish").strip().lower()
        if publish not in ("true", "false"):
            raise errors.missing_publish()
        if not await self._recordings.set_published(ids, publish == "true"):
            raise errors.recordings_not_found()
        return [("published", publish == "true")]

    async def delete_recordings(self, ctx: CallContext) -> Answer:
        ids = _record_ids(ctx.params)
        if not await self._recordings.delete(ids):
            raise errors.recordings_not_found()
        return [("deleted", True)]

    async def update_recordings(self, ctx: CallContext) -> Answer:
        ids = _record_ids(ctx.params)
        if not await self._recordings.update_metadata(ids, ctx.params.metadata()):
            raise errors.recordings_not_found()
        return [("updated", True)]
