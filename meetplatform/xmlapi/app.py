"""The BigBlueButton XML API surface, mounted at ``/bigbluebutton``: the pipeline with the
built-in call families registered.

:class:`XmlApi` is an :class:`~meetplatform.xmlapi.pipeline.ApiPipeline` (routing,
checksums, formats, errors: no call) on which these families register themselves:

- :class:`~meetplatform.xmlapi.meeting_calls.MeetingCalls`: create, join, end,
  isMeetingRunning, getMeetingInfo, getMeetings (rendered by
  :class:`~meetplatform.xmlapi.meeting_xml.MeetingRenderer`);
- :class:`~meetplatform.xmlapi.recording_calls.RecordingCalls`: the recording calls;
- :class:`~meetplatform.xmlapi.config_calls.ConfigCalls`: getDefaultConfigXML, setConfigXML;
- :class:`~meetplatform.xmlapi.misc_calls.MiscCalls`: getSessions, getStats,
  sendChatMessage, insertDocument.

Families that need other parts of the service (``hooks/*``, the durable ``getStats`` and
``getMeetingEvents``) are registered by the composition root the same way.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from meetplatform.config import Settings
from meetplatform.recordings import InMemoryRecordings, RecordingCatalogue
from meetplatform.registry import Registry
from meetplatform.xmlapi.config_calls import ConfigCalls
from meetplatform.xmlapi.meeting_calls import MeetingCalls
from meetplatform.xmlapi.meeting_xml import MeetingRenderer
from meetplatform.xmlapi.misc_calls import MiscCalls
from meetplatform.xmlapi.pipeline import ApiPipeline, CallContext
from meetplatform.xmlapi.recording_calls import RecordingCalls

__all__ = ["CallContext", "XmlApi"]


class XmlApi(ApiPipeline):
    """``/bigbluebutton/api/<call>``: BigBlueButton's API over the live registry."""

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 recordings: RecordingCatalogue | None = None, *,
                 revision: str | None = None) -> None:
        super().__init__(settings, revision=revision)
        self._clock = clock
        #: Renders live meetings for getMeetingInfo and getMeetings (and keeps their caches).
        self.renderer = MeetingRenderer(registry)
        #: The config.xml documents setConfigXML stored.
        self.configs = ConfigCalls(settings, registry)
        MeetingCalls(settings, registry, self.renderer, self.configs.config_xml).register(self)
        MiscCalls(registry).register(self)
        RecordingCalls(recordings if recordings is not None else InMemoryRecordings()
                       ).register(self)
        self.configs.register(self)
