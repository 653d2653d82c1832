"""The Mconf load balancer's server calls over media nodes: ``getServers`` and ``<server>``.

Registered on :class:`~meetplatform.xmlapi.app.XmlApi` with ``add_call`` (BBB checksum,
JSON/JSONP and errors as every call). Seed 002 (Mconf-LB API) describes both:

``getServers`` lists the media nodes (:class:`~meetplatform.media.nodes.MediaNodes`), one
``<server>`` each, with the seed's fields

- ``name`` (what ``preferredServer`` takes), ``address`` (the node's host), ``url`` (its
  Janus WebSocket URL: a media node has no BBB API, so there is no ``apiUrl``),
- ``status``: ``1`` pending (not checked yet), ``2`` up, ``3`` down (refused), ``4``
  unreachable (timed out), as the seed's nagios-style codes,
- ``disableState``: ``3`` automatic (enabled: taken out automatically while offline or
  full), ``1`` forcibly disabled (disabled or draining by the operator),
- ``geoloc`` with empty nested tags (no GeoIP here; the seed allows any to be empty),
- ``isDisabled``: true when the node takes no new meetings (disabled, draining, offline
  or full),

and, added here for operators and scripts: ``state`` (enabled/disabled/draining),
``online``, ``meetings``, ``publishers``, ``subscriptions``, ``capacity`` and ``load``
(share of the capacity in use, 0 to 1). ``preferredServer`` on ``create`` is honoured by
:meth:`MediaNodes.follow`, which reads it from the create parameters.

:class:`ServerBlock` (:func:`server_nodes` / :func:`server_xml`) gives the ``<server>``
block of a meeting in ``getMeetings``/``getMeetingInfo`` (``name``, ``address``,
``url``), last in the meeting: the node it is placed on, or this meetplatform server
itself for a mesh meeting.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from meetplatform.config import Settings
from meetplatform.media.nodes import MediaNodes, NodeStatus
from meetplatform.model import Meeting
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext, Nodes
from meetplatform.xmlapi.render import Items, escape

#: ``status`` codes of the seed (nagios host states).
STATUS_PENDING, STATUS_UP, STATUS_DOWN, STATUS_UNREACHABLE = 1, 2, 3, 4
#: ``disableState`` codes of the seed.
FORCIBLY_DISABLED, AUTOMATIC = 1, 3
_GEOLOC = ("address", "ip", "countryCode", "countryCode3", "countryName", "city", "latitude",
           "longitude", "continentCode")


def _status_code(status: NodeStatus) -> int:
    if status.health == "online":
        return STATUS_UP
    if status.health == "offline":
        return STATUS_UNREACHABLE if status.unreachable else STATUS_DOWN
    return STATUS_PENDING


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


class MediaCalls:
    """``getServers``; :meth:`register` adds it to the XML API."""

    def __init__(self, settings: Settings, nodes: MediaNodes) -> None:
        self._settings = settings
        self._nodes = nodes

    def register(self, api: ApiPipeline) -> None:
        api.add_call("getServers", self.get_servers)

    def get_servers(self, ctx: CallContext) -> Answer:
        return [("servers", Items("server", [self._server(s) for s in self._nodes.status()]))]

    @staticmethod
    def _server(status: NodeStatus) -> Nodes:
        address = _host(status.ws_url)
        return [
            ("name", status.name),
            ("address", address),
            ("url", status.ws_url),
            ("status", _status_code(status)),
            ("disableState", AUTOMATIC if status.state == "enabled" else FORCIBLY_DISABLED),
            ("geoloc", [(tag, address if tag == "address" else None) for tag in _GEOLOC]),
            ("isDisabled", not status.usable),
            ("state", status.state),
            ("online", status.online),
            ("meetings", status.meetings),
            ("publishers", status.publishers),
            ("subscriptions", status.subscriptions),
            ("capacity", status.capacity),
            ("load", f"{status.load:.3f}"),
        ]


def _server_fields(settings: Settings, nodes: MediaNodes | None,
                   internal_id: str) -> tuple[str, str, str]:
    placement = nodes.placement(internal_id) if nodes is not None else None
    if placement is not None:
        url = placement.node.ws_url
        return placement.node.name, _host(url), url
    url = settings.public_url.rstrip("/")
    return settings.server_name, _host(url), url


class ServerBlock:
    """The ``<server>`` block of getMeetings/getMeetingInfo; the composition root sets
    it as the meeting renderer's ``server``."""

    def __init__(self, settings: Settings, nodes: MediaNodes) -> None:
        self._settings = settings
        self._nodes = nodes

    def nodes(self, meeting: Meeting) -> Nodes:
        return server_nodes(self._settings, self._nodes, meeting.internal_id)

    def xml(self, meeting: Meeting) -> str:
        return server_xml(self._settings, self._nodes, meeting.internal_id)


def server_nodes(settings: Settings, nodes: MediaNodes | None, internal_id: str) -> Nodes:
    """The ``<server>`` block of a meeting (by internal id), as node pairs (JSON path)."""
    name, address, url = _server_fields(settings, nodes, internal_id)
    return [("server", [("name", name), ("address", address), ("url", url)])]


def server_xml(settings: Settings, nodes: MediaNodes | None, internal_id: str) -> str:
    """The same block as XML text, for the renderer's fast path (byte for byte equal)."""
    name, address, url = _server_fields(settings, nodes, internal_id)
    return (f"<server><name>{escape(name)}</name><address>{escape(address)}</address>"
            f"<url>{escape(url)}</url></server>")
