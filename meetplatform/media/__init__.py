"""Media nodes: Janus instances meetplatform places meetings on and controls.

- :mod:`meetplatform.media.janus`: the Twisted Janus client (Janus API over WebSocket,
  Admin API over HTTP, VideoRoom requests);
- :mod:`meetplatform.media.janus_config`: the Janus configuration files a node needs;
- :mod:`meetplatform.media.nodes`: :class:`~meetplatform.media.nodes.MediaNodes`, the
  service that watches every node's health and places meetings on them;
- :mod:`meetplatform.media.local`: the local Janus ``--janus-local`` supervises.

Docs for operators: ``docs/media.md``.
"""
