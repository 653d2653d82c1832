"""Wiring of the media nodes into the service (called once from the composition root).

:func:`attach_media` builds the :class:`~meetplatform.media.nodes.MediaNodes` watching the
store's nodes, makes it place every meeting the registry creates, registers ``getServers``
on the XML API and, with ``--janus-local``, the supervised local Janus. Kept here so that
the composition root (``meetplatform.tap``) needs one call (and one ``putChild`` for
:class:`~meetplatform.media.events.JanusEventsResource`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application.service import IServiceCollection

from meetplatform.config import Settings
from meetplatform.media.local import LOCAL_NODE, LocalJanus
from meetplatform.media.node_settings import events_url
from meetplatform.media.nodes import MediaNodes
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import nodes_db as ndb
from meetplatform.store.nodes_db import NodeRecord, NodeSecrets
from meetplatform.xmlapi.app import XmlApi
from meetplatform.xmlapi.media_calls import MediaCalls


def attach_media(reactor: Any, settings: Settings, registry: Registry, store: Store,
                 xml_api: XmlApi, parent: IServiceCollection | None) -> MediaNodes:
    """The media nodes, wired; started with ``parent`` (the running service) if given."""

    async def load() -> Sequence[NodeRecord]:
        return await store.run(ndb.list_nodes)

    media = MediaNodes(reactor, load)
    media.follow(registry)
    MediaCalls(settings, media).register(xml_api)
    if parent is None:
        return media
    if settings.janus_local is not None:
        async def register(name: str, admin_url: str, ws_url: str, secrets: NodeSecrets,
                           capacity: int) -> object:
            now = int(reactor.seconds() * 1000)
            node = await store.run(lambda db: ndb.put_node(
                db, name, admin_url=admin_url, ws_url=ws_url, secrets=secrets,
                capacity=capacity, now=now))
            await media.tick()  # known at once: its first events are accepted
            return node

        LocalJanus(reactor, settings.janus_local, settings.data_dir / "janus", register,
                   events_url=events_url(settings.public_url, LOCAL_NODE),
                   ).setServiceParent(parent)
    media.setServiceParent(parent)
    return media
