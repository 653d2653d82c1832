"""Building the media parts for the composition root (``meetplatform.build``).

:func:`build_media` makes the :class:`~meetplatform.media.nodes.MediaNodes` watching the
store's nodes and placing every meeting the registry creates; :func:`local_janus` the
supervised Janus of ``--janus-local`` (None without it). The composition root also
registers :class:`~meetplatform.xmlapi.media_calls.MediaCalls` on the XML API and mounts
:class:`~meetplatform.media.events.JanusEventsResource` at ``/janus-events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meetplatform.config import Settings
from meetplatform.media.local import LOCAL_NODE, LocalJanus
from meetplatform.media.node_settings import events_url
from meetplatform.media.nodes import MediaNodes
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import nodes_db as ndb
from meetplatform.store.nodes_db import NodeRecord, NodeSecrets


def build_media(clock: Any, store: Store, registry: Registry) -> MediaNodes:
    """The media nodes of the store, following the registry's meetings; not started."""

    async def load() -> Sequence[NodeRecord]:
        return await store.run(ndb.list_nodes)

    media = MediaNodes(clock, load)
    media.follow(registry)
    return media


def local_janus(reactor: Any, settings: Settings, store: Store,
                media: MediaNodes) -> LocalJanus | None:
    """The local Janus of ``--janus-local`` as node ``local``, or None; not started."""
    if settings.janus_local is None:
        return None

    async def register(name: str, admin_url: str, ws_url: str, secrets: NodeSecrets,
                       capacity: int) -> object:
        now = int(reactor.seconds() * 1000)
        node = await store.run(lambda db: ndb.put_node(
            db, name, admin_url=admin_url, ws_url=ws_url, secrets=secrets,
            capacity=capacity, now=now))
        await media.tick()  # known at once: its first events are accepted
        return node

    return LocalJanus(reactor, settings.janus_local, settings.data_dir / "janus", register,
                      events_url=events_url(settings.public_url, LOCAL_NODE))
