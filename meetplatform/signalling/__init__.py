"""WebSocket signalling (``/ws``): presence, chat, moderation, the lobby and the WebRTC relay.

The site mounts :meth:`SignallingService.resource` at ``/ws``; ``meetplatform.build`` adds the
service to the application so that stopping the process closes every socket with 1001.
The wire protocol is specified in ``docs/signalling-protocol.md``.
"""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from meetplatform.config import Settings
from meetplatform.media.sfu import SfuBackend
from meetplatform.registry import Registry
from meetplatform.signalling.hub import Hub
from meetplatform.signalling.media_messages import MediaRequests
from meetplatform.signalling.protocol import ExtraOrigins, SignallingFactory, SignallingProtocol

__all__ = ["Hub", "SignallingFactory", "SignallingProtocol", "SignallingService"]


class SignallingService(Service):
    """The signalling surface: one Autobahn factory and its room hub over the registry.

    Events are subscribed to from construction on, so mounting :meth:`resource` is enough
    for a working ``/ws``; adding the service to the application (``setServiceParent``)
    makes shutdown close every socket with 1001. ``extra_origins_for(seat)`` (optional)
    names more origins allowed to open a socket for that seat: the sites allowed to
    embed its room.
    """

    name = "signalling"

    def __init__(
        self,
        clock: IReactorTime,
        settings: Settings,
        registry: Registry,
        *,
        auto_ping_interval: float = 20.0,
        auto_ping_timeout: float = 20.0,
        open_handshake_timeout: float = 10.0,
        close_handshake_timeout: float = 5.0,
        extra_origins_for: ExtraOrigins | None = None,
        media: SfuBackend | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.registry = registry
        self.hub = Hub(clock, settings, registry, MediaRequests(media))
        if media is not None:
            media.send = self.hub.send_to
        self.factory = SignallingFactory(
            self.hub,
            clock,
            auto_ping_interval=auto_ping_interval,
            auto_ping_timeout=auto_ping_timeout,
            open_handshake_timeout=open_handshake_timeout,
            close_handshake_timeout=close_handshake_timeout,
            extra_origins_for=extra_origins_for,
        )
        self._close_timeout = close_handshake_timeout + 1.0
        self._resource = WebSocketResource(self.factory)

    def resource(self) -> WebSocketResource:
        """The resource the site mounts at ``/ws``."""
        return self._resource

    def stopService(self) -> Deferred[None]:
        """Close every socket with 1001 ("server shutting down"); fires when all closed."""
        super().stopService()
        return self.hub.shutdown(self._close_timeout)
