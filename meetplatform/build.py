"""Building the parts, apart from mounting them and from running them.

Three steps, each in one function, so that the service and the tests put together the
same thing:

* :func:`build_parts` constructs every part once, all over one clock, one
  :class:`Settings`, one registry and one store, and returns them as :class:`Parts`.
  Each part is built by one plain constructor call (add a part with one line here and
  one field in :class:`Parts`). Its keyword arguments are what tests inject instead of
  patching: the webhook sender (an in-memory one instead of real HTTP clients), the
  delivery policy and its random source, the REST rate limits, the recordings and the
  revision the XML API reports;
* :func:`mount` puts their resources in a fresh resource tree (one ``putChild`` per
  surface) and returns its root;
* :func:`attach` makes the parts with a lifecycle children of the running service: the
  meeting history and the webhook delivery (they write what they hold before the store
  closes) and the signalling (it closes its sockets on shutdown), and starts the
  history's recovery of meetings a killed process left open.

:class:`~meetplatform.tap.MeetplatformService` calls all three once it knows its public
URL; tests call :func:`build_parts` and :func:`mount` (and start the services they need
themselves).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from twisted.application.service import IServiceCollection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource

from meetplatform.config import Settings
from meetplatform.documents import DocumentService
from meetplatform.documents.meetings import MeetingDocuments
from meetplatform.history import History
from meetplatform.invitations import Invitations
from meetplatform.media.backend import SFU
from meetplatform.media.events import JanusEventsResource
from meetplatform.media.nodes import MediaNodes
from meetplatform.media.service import build_media, local_janus
from meetplatform.media.sfu import SfuBackend
from meetplatform.recording.jobs import RetryPolicy
from meetplatform.recording.notify import RecordingNotifier
from meetplatform.recording.playback import PlaybackResource
from meetplatform.recording.service import RecordingService
from meetplatform.recordings import RecordingCatalogue
from meetplatform.registry import Registry
from meetplatform.restapi import RateLimits, RestApi
from meetplatform.signalling import SignallingService
from meetplatform.site import HealthResource, LandingPage, RootResource, UpgradeOnly
from meetplatform.store import Store
from meetplatform.web.embed import EmbedPages
from meetplatform.web.invite import MAX_BODY_BYTES as PAGE_BODY_BYTES
from meetplatform.web.invite import InvitePages
from meetplatform.web.pages import WebPages
from meetplatform.web.presentations import PresentationFiles
from meetplatform.webhooks import DeliveryPolicy, Sender, WebhookService
from meetplatform.xmlapi import XmlApi
from meetplatform.xmlapi.history_calls import HistoryCalls
from meetplatform.xmlapi.hooks import HookCalls
from meetplatform.xmlapi.media_calls import MediaCalls, ServerBlock

_log = Logger()


@dataclass(frozen=True)
class Parts:
    """Every part of one meetplatform, built by :func:`build_parts`."""

    clock: IReactorTime
    settings: Settings
    registry: Registry
    store: Store
    #: Shared by the REST API, the invitation pages and the embed pages.
    invitations: Invitations
    history: History
    webhooks: WebhookService
    #: The BigBlueButton API with every call family registered.
    xml_api: XmlApi
    #: The conference page and the static assets (the other pages render with them).
    pages: WebPages
    embed: EmbedPages
    invite: InvitePages
    signalling: SignallingService
    rest_api: RestApi
    #: The media nodes (Janus): health, placement, getServers.
    media: MediaNodes
    #: Converts documents in worker processes (a service: stopping it kills them).
    documents: DocumentService
    #: Hands every meeting's documents to ``documents`` and reports their progress.
    meeting_documents: MeetingDocuments
    #: ``/presentations``: converted pages, originals, uploads.
    presentation_files: PresentationFiles
    #: Recordings: start/stop, the durable processing queue, playback (issue 12).
    recording: RecordingService


def build_parts(
    clock: IReactorTime,
    settings: Settings,
    registry: Registry,
    store: Store,
    *,
    webhook_sender: Sender | None = None,
    delivery_policy: DeliveryPolicy | None = None,
    rng: random.Random | None = None,
    rate_limits: RateLimits | None = None,
    recordings: RecordingCatalogue | None = None,
    revision: str | None = None,
    documents: DocumentService | None = None,
    recording_policy: RetryPolicy | None = None,
) -> Parts:
    """Every part, wired to its collaborators; nothing mounted, nothing started.

    The keyword arguments default to what the service runs with (real HTTP clients for
    webhooks, the default policies, the revision of the installed code).
    """
    invitations = Invitations(clock, settings, registry, store)
    documents = documents or DocumentService.from_settings(clock, settings)
    meeting_documents = MeetingDocuments(clock, registry, documents)
    presentation_files = PresentationFiles(registry, meeting_documents,
                                           base_path=urlsplit(settings.public_url).path)
    history = History(clock, settings, registry, store)
    webhooks = WebhookService(clock, settings, registry, store, sender=webhook_sender,
                              policy=delivery_policy, rng=rng)
    media = build_media(clock, store, registry)
    recording = RecordingService(clock, settings, registry, store, media=media,
                                 policy=recording_policy)
    recording.stage_listeners.append(
        RecordingNotifier(webhooks, settings.secret, lambda: clock.seconds() * 1000).stage)
    xml_api = XmlApi(clock, settings, registry,
                     recordings if recordings is not None else recording.catalogue,
                     revision=revision)
    HistoryCalls(clock, settings, history).register(xml_api)
    HookCalls(clock, settings, store, webhooks).register(xml_api)
    MediaCalls(settings, media).register(xml_api)
    xml_api.renderer.server = ServerBlock(settings, media)
    pages = WebPages(clock, settings, registry)
    embed = EmbedPages(clock, settings, registry, store, invitations=invitations, pages=pages)
    invite = InvitePages(clock, settings, registry, store, invitations=invitations,
                         pages=pages)
    sfu = SfuBackend(clock, media, registry)
    sfu.on_moved.append(xml_api.renderer.invalidate)
    # Recordings are made on media nodes: a meeting records only while its media go
    # through one (a mesh meeting cannot, docs/recordings.md). ``mode_for`` places a
    # meeting on its first join, as joining would a moment later; a move (a node lost,
    # a fall-back to mesh, a node back) may change the answer, which the page is told.
    registry.can_record = lambda meeting: sfu.mode_for(meeting) == SFU
    sfu.on_moved.append(registry.recording_availability_changed)
    sfu.on_streams.append(recording.streams_changed)  # screens for the recording layout
    signalling = SignallingService(clock, settings, registry,
                                   extra_origins_for=embed.origins_for_seat, media=sfu)
    rest_api = RestApi(clock, settings, registry, store, invitations=invitations,
                       rate_limits=rate_limits, history=history, webhooks=webhooks,
                       documents=meeting_documents,
                       recordings=recording.catalogue)
    return Parts(clock=clock, settings=settings, registry=registry, store=store,
                 invitations=invitations, history=history, webhooks=webhooks,
                 xml_api=xml_api, pages=pages, embed=embed, invite=invite,
                 signalling=signalling, rest_api=rest_api, media=media,
                 documents=documents, meeting_documents=meeting_documents,
                 presentation_files=presentation_files,
                 recording=recording)


def mount(parts: Parts) -> Resource:
    """A new resource tree serving ``parts``: one child per surface under the root."""
    root = RootResource()
    root.putChild(b"", LandingPage(parts.settings))
    root.putChild(b"healthz", HealthResource(parts.clock, parts.registry, parts.media,
                                             recordings=parts.recording.health))
    root.putChild(b"playback", PlaybackResource(parts.recording.catalogue,
                                                parts.recording.directory))
    # A node's event handler posts batches of events (SDPs included): up to 1 MiB.
    root.mount(b"janus-events", JanusEventsResource(parts.media), max_body_bytes=1 << 20)
    # Surfaces that read a body say how large; the others get the root's small default.
    root.mount(b"bigbluebutton", parts.xml_api.resource(),
               max_body_bytes=parts.settings.max_body_bytes)
    root.putChild(b"client", parts.pages.resource())
    root.putChild(b"static", parts.pages.static_resource())
    root.mount(b"embed", parts.embed.resource(), max_body_bytes=PAGE_BODY_BYTES)
    root.mount(b"j", parts.invite.resource(), max_body_bytes=PAGE_BODY_BYTES)
    root.putChild(b"ws", UpgradeOnly(parts.signalling.resource(),
                                     factory=parts.signalling.factory))
    # Uploads from the conference page carry a file (see web/presentations.py).
    root.mount(b"presentations", parts.presentation_files,
               max_body_bytes=parts.settings.max_body_bytes)
    api = Resource()
    api.putChild(b"v2", parts.rest_api.resource())
    root.mount(b"api", api, max_body_bytes=parts.rest_api.max_body_bytes)
    return root


def attach(parts: Parts, parent: IServiceCollection) -> None:
    """Make the parts with a lifecycle children of ``parent`` and start the recovery.

    Children stop in the reverse order: the signalling closes its sockets first, then
    the webhook delivery and the history write what they still hold.
    """
    parts.history.setServiceParent(parent)
    parts.webhooks.setServiceParent(parent)
    recovered = Deferred.fromCoroutine(parts.history.recover())
    recovered.addCallback(parts.webhooks.meetings_interrupted)
    recovered.addErrback(lambda f: _log.failure("recovering the meeting history failed", f))
    parts.meeting_documents.sweep()
    parts.documents.setServiceParent(parent)
    parts.signalling.setServiceParent(parent)
    local = local_janus(parts.clock, parts.settings, parts.store, parts.media)
    if local is not None:
        local.setServiceParent(parent)
    parts.media.setServiceParent(parent)
    parts.recording.setServiceParent(parent)


def build_site(clock: IReactorTime, settings: Settings, registry: Registry,
               store: Store) -> Resource:
    """The resource tree of a default build, for scripts that only serve it (the
    benchmarks); nothing is attached to a service."""
    return mount(build_parts(clock, settings, registry, store))
