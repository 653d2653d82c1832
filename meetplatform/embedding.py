"""Origins and embedding: what the embed page, the JSON:API and the signalling socket agree on.

The embed page (``meetplatform.web.embed``) sends ``frame-ancestors`` built from a space's
``embedOrigins``; the JSON:API (``GET /rooms/{roomId}/embed``) tells integrators the same
policy and hands out the iframe snippet; the signalling socket compares a browser's
``Origin`` with the same normalised origins. They live here, below all three surfaces and
importing only the standard library, so that none of those surfaces imports another.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit

__all__ = ["ALLOW", "EmbedSnippet", "embed_snippet", "frame_ancestors", "normalise_origin"]

#: What the parent page's iframe must allow (the page asks for nothing else).
ALLOW = "camera; microphone; display-capture; autoplay; fullscreen; clipboard-write"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: What a normalised origin may look like in a CSP source list (nothing that ends it).
_SOURCE_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


class EmbeddingSpace(Protocol):
    """What :func:`frame_ancestors` reads of a space (``store.SpaceRecord`` has it)."""

    @property
    def embed_origins(self) -> Iterable[str]: ...


class EmbeddedRoom(Protocol):
    """What :func:`embed_snippet` reads of a room (``store.RoomRecord`` has it)."""

    @property
    def alias(self) -> str: ...

    @property
    def name(self) -> str: ...


def normalise_origin(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or ``None``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def frame_ancestors(space: EmbeddingSpace | None) -> str:
    """``'self'`` plus the space's embedding origins (normalised, each once)."""
    values = ["'self'"]
    for origin in space.embed_origins if space is not None else ():
        normal = normalise_origin(origin)
        if normal is not None and _SOURCE_RE.match(normal) and normal not in values:
            values.append(normal)
    return " ".join(values)


@dataclass(frozen=True)
class EmbedSnippet:
    """How a site embeds a room: the URL, the iframe's ``allow`` and ready-made markup."""

    url: str
    allow: str
    html: str
    script_url: str
    script: str


def embed_snippet(public_url: str, room: EmbeddedRoom) -> EmbedSnippet:
    """The iframe markup (and the ``embed.js`` equivalent) for ``room``."""
    base = public_url.rstrip("/")
    url = f"{base}/embed/{quote(room.alias, safe='')}"
    title = html.escape(room.name, quote=True)
    markup = (f'<iframe src="{html.escape(url)}" allow="{ALLOW}" allowfullscreen '
              f'referrerpolicy="strict-origin-when-cross-origin" title="{title}" '
              'style="border:0;width:100%;height:100%;min-height:480px"></iframe>')
    script_url = f"{base}/static/embed.js"
    script = (f'<div id="meeting" style="height:600px"></div>\n'
              f'<script src="{html.escape(script_url)}"></script>\n'
              "<script>\n"
              "  const meeting = MeetplatformEmbed.create({\n"
              "    parentNode: document.getElementById(\"meeting\"),\n"
              f"    url: {json.dumps(url)},\n"
              "    token: \"<invitation or session token>\",\n"
              "  });\n"
              "  meeting.on(\"readyToClose\", () => meeting.dispose());\n"
              "</script>")
    return EmbedSnippet(url=url, allow=ALLOW, html=markup, script_url=script_url,
                        script=script)
