"""Contacting a node the way the service will, step by step, for ``meetplatform nodes check``.

Each step names what it proved; the first that fails raises a
:class:`~meetplatform.media.janus.JanusError` whose message says what to check (the URL,
a secret). A wrong ``admin_secret``, ``api_secret`` or ``admin_key`` is told apart.
"""

from __future__ import annotations

import secrets
from typing import Any

from meetplatform.media.janus import (
    JanusAdmin,
    JanusAuthError,
    JanusConnection,
    JanusError,
    VideoRoom,
)
from meetplatform.media.nodes import PROBE_ROOM
from meetplatform.store.nodes_db import NodeRecord


async def probe_node(reactor: Any, node: NodeRecord, *, timeout: float = 5.0) -> list[str]:
    """The steps that worked; raises at the first that does not."""
    done: list[str] = []
    admin = JanusAdmin(reactor, node.admin_url, node.secrets.admin_secret, timeout=timeout)
    await admin.ping()
    done.append(f"Admin API answers at {node.admin_url}")
    try:
        await admin.get_status()
    except JanusAuthError:
        raise JanusAuthError(f"the Admin API at {node.admin_url} refused the admin secret: "
                             "install the files of `meetplatform nodes janus-config "
                             f"{node.name}` on the node, or fix the secret file") from None
    info = await admin.info()
    done.append(f"admin secret accepted (Janus {info.get('version_string', '?')})")
    if "janus.plugin.videoroom" not in (info.get("plugins") or {}):
        raise JanusError(f"Janus at {node.admin_url} has no VideoRoom plugin loaded")
    connection = await JanusConnection.connect(reactor, node.ws_url, node.secrets.api_secret,
                                               timeout=timeout)
    try:
        try:
            session = await connection.create_session(keepalive_interval=0)
        except JanusAuthError:
            raise JanusAuthError(f"Janus at {node.ws_url} refused the API secret") from None
        await session.destroy()
    finally:
        connection.close()
    done.append(f"Janus API session opened at {node.ws_url} with the API secret")
    rooms = VideoRoom.over_admin(admin, node.secrets.admin_key)
    room_secret = secrets.token_urlsafe(16)
    try:
        await rooms.create_room(PROBE_ROOM, secret=room_secret, publishers=1,
                                description="meetplatform nodes check")
    except JanusAuthError:
        raise JanusAuthError(f"the VideoRoom plugin at {node.admin_url} refused the admin "
                             "key") from None
    await rooms.destroy_room(PROBE_ROOM, secret=room_secret)
    done.append("VideoRoom admin key accepted (test room created and destroyed)")
    return done
