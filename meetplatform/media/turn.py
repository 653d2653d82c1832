"""Short-lived TURN credentials for browsers (coturn's ``use-auth-secret`` scheme).

A TURN server (coturn with ``use-auth-secret`` and ``static-auth-secret``) shares one
secret with meetplatform. Browsers never see that secret: each participant gets its own
username and password, minted when it joins (and again when it resumes or asks with
``iceRefresh`` before an ICE restart), valid for ``--turn-ttl`` seconds:

- username = ``<expiry as Unix seconds>:<user id>``;
- credential = ``base64(HMAC-SHA1(secret, username))``.

coturn recomputes the HMAC from the username and refuses the allocation once the expiry
has passed. It only checks the expiry when an allocation is created, so a call in
progress outlives its credentials; a new peer connection or an ICE restart needs fresh
ones, which is why the page refreshes them before the TTL runs out (docs/media.md).

Nothing here logs the secret or the credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from meetplatform.config import Settings

#: coturn's default ``rest-api-separator``.
SEPARATOR = ":"


def mint(secret: str, user_id: str, expiry: int) -> tuple[str, str]:
    """``(username, credential)`` valid until ``expiry`` (Unix seconds) for ``user_id``."""
    username = f"{expiry}{SEPARATOR}{user_id}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class IceConfig:
    """What a participant's page puts in its RTCPeerConnection configuration."""

    ice_servers: list[dict[str, Any]]
    #: ``all`` or ``relay`` (RTCIceTransportPolicy).
    transport_policy: str
    #: Seconds the minted TURN credentials stay valid; None without minted TURN.
    ttl: int | None

    def as_json(self) -> dict[str, Any]:
        """The fields of ``joined`` and of the ``iceRefresh`` ack."""
        out: dict[str, Any] = {"iceServers": self.ice_servers,
                               "iceTransportPolicy": self.transport_policy}
        if self.ttl is not None:
            out["iceServersTtl"] = self.ttl
        return out


class IceServers:
    """The ICE servers of each participant: the static ones plus freshly minted TURN."""

    def __init__(self, clock: IReactorTime, settings: Settings) -> None:
        self._clock = clock
        self._static = [server.as_json() for server in settings.ice_servers]
        self._turn_uris = list(settings.turn_uris)
        self._secret = settings.turn_secret
        self._ttl = settings.turn_ttl
        self._policy = settings.ice_transport_policy

    @property
    def minting(self) -> bool:
        return bool(self._turn_uris) and self._secret is not None

    def for_user(self, user_id: str) -> IceConfig:
        """A new configuration for ``user_id``, with TURN credentials minted now."""
        servers = list(self._static)
        if self._secret is not None and self._turn_uris:
            expiry = int(self._clock.seconds()) + self._ttl
            username, credential = mint(self._secret, user_id, expiry)
            servers.append({"urls": list(self._turn_uris), "username": username,
                            "credential": credential})
            return IceConfig(servers, self._policy, self._ttl)
        return IceConfig(servers, self._policy, None)
