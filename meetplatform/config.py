"""Settings: one frozen object built from options, a config file and the environment.

Only ``meetplatform.tap`` and ``meetplatform.cli`` build a :class:`Settings`; everything else
receives it through its constructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ALL_CHECKSUM_ALGORITHMS: tuple[str, ...] = ("sha1", "sha256", "sha384", "sha512")


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server handed to browsers (RTCIceServer)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class Settings:
    """Everything the running service needs to know, validated."""

    secret: str
    public_url: str = "http://127.0.0.1:8080"
    listen: tuple[str, ...] = ("tcp:8080",)
    data_dir: Path = Path("meetplatform-data")
    secret_file: Path | None = None
    checksum_algorithms: tuple[str, ...] = ALL_CHECKSUM_ALGORITHMS
    ice_servers: tuple[IceServer, ...] = ()
    #: Name shown in the API root's ``<custom>`` block and in page titles.
    server_name: str = "meetplatform"
    #: Seconds a participant whose socket dropped keeps its place (reload, network blip).
    resume_grace_seconds: float = 20.0
    #: Largest raw query string accepted on any call, in bytes.
    max_query_bytes: int = 64 * 1024
    #: Largest request body accepted on any call, in bytes (BBB's default is about 2 MB).
    max_body_bytes: int = 2 * 1024 * 1024
    #: Extra origins allowed to open the signalling socket (embedding sites come later).
    extra_origins: tuple[str, ...] = field(default=())

    @property
    def api_url(self) -> str:
        """The BigBlueButton API endpoint integrations are configured with."""
        return self.public_url.rstrip("/") + "/bigbluebutton/api/"
