"""What an operator gives for a media node, validated: names, URLs, secret files.

Shared by ``meetplatform nodes`` (:mod:`meetplatform.nodes_cli`), ``meetplatform check``
and the service, so that all three accept and refuse the same things with the same words.

A node's **secret file** holds either

- one line: a secret of at least 16 characters, from which the node's Janus
  ``api_secret``, ``admin_secret``, VideoRoom ``admin_key`` and event-handler password are
  derived (HMAC-SHA256 with a label each; ``meetplatform nodes janus-config`` prints them
  for the node), or
- ``name = value`` lines (``#`` comments allowed) naming ``api_secret``,
  ``admin_secret`` and ``admin_key`` of an existing Janus, and optionally
  ``event_secret`` (derived from the three otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from meetplatform.media.janus_config import JanusConfig
from meetplatform.store.nodes_db import NodeRecord, NodeSecrets

#: Streams (publishers + subscriptions) a node takes when ``--capacity`` is not given.
DEFAULT_CAPACITY = 500
MAX_CAPACITY = 1_000_000
MIN_SECRET_LENGTH = 16
MAX_SECRET_FILE_BYTES = 64 * 1024
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_SECRET_NAMES = ("api_secret", "admin_secret", "admin_key", "event_secret")


class NodeSettingError(ValueError):
    """A node setting is unusable; the message says which and why."""


def check_name(name: str) -> str:
    """Node names are what ``preferredServer`` and ``getServers`` use: lower case DNS-ish."""
    if not _NAME.fullmatch(name):
        raise NodeSettingError(
            f"invalid node name {name!r}: use 1-63 lower-case letters, digits, '.' and '-' "
            "(starting with a letter or digit)")
    return name


def _url(url: str, schemes: tuple[str, ...], what: str, example: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise NodeSettingError(f"invalid {what} {url!r}: expected a URL like {example}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise NodeSettingError(f"invalid {what} {url!r}: no credentials, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise NodeSettingError(f"invalid {what} {url!r}: bad port") from None
    if port is None:
        raise NodeSettingError(f"invalid {what} {url!r}: give the port, e.g. {example}")
    return url.strip()


def check_admin_url(url: str) -> str:
    return _url(url, ("http",), "admin URL", "http://10.0.0.5:7088/admin")


def check_ws_url(url: str) -> str:
    return _url(url, ("ws",), "WebSocket URL", "ws://10.0.0.5:8188")


def check_capacity(text: str | int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise NodeSettingError(f"invalid capacity {text!r}: expected a whole number") from None
    if not 1 <= value <= MAX_CAPACITY:
        raise NodeSettingError(f"invalid capacity {value}: must be 1 to {MAX_CAPACITY}")
    return value


def derive(secret: str, label: str) -> str:
    return hmac.new(secret.encode(), f"meetplatform media node {label}".encode(),
                    hashlib.sha256).hexdigest()


def secrets_from_master(secret: str) -> NodeSecrets:
    """The node's secrets derived from one master secret."""
    return NodeSecrets(*(derive(secret, name) for name in _SECRET_NAMES))


def read_secret_file(path: Path) -> NodeSecrets:
    """Parse a node's secret file (see the module's documentation)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        raise NodeSettingError(f"cannot read secret file {path}: "
                               f"{error.strerror or error}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise NodeSettingError(f"secret file {path} is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NodeSettingError(f"secret file {path} is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if len(lines) == 1 and "=" not in lines[0]:
        if len(lines[0]) < MIN_SECRET_LENGTH:
            raise NodeSettingError(f"the secret in {path} is shorter than "
                                   f"{MIN_SECRET_LENGTH} characters")
        return secrets_from_master(lines[0])
    values: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if not sep or name not in _SECRET_NAMES:
            raise NodeSettingError(
                f"secret file {path}: expected one secret, or lines 'name = value' with "
                f"names {', '.join(_SECRET_NAMES)}; got {name!r}")
        if not value:
            raise NodeSettingError(f"secret file {path}: {name} is empty")
        values[name] = value
    missing = [n for n in _SECRET_NAMES[:3] if n not in values]
    if missing:
        raise NodeSettingError(f"secret file {path}: missing {', '.join(missing)}")
    if "event_secret" not in values:
        joined = values["api_secret"] + values["admin_secret"] + values["admin_key"]
        values["event_secret"] = derive(joined, "event_secret")
    return NodeSecrets(**values)


def _host(url: str) -> tuple[str | None, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, parts.port or 0  # a host name: Janus binds every interface
    return host, parts.port or 0


def events_url(public_url: str, node: str) -> str:
    """Where a node's Janus posts its events (the service authenticates the node there)."""
    return f"{public_url.rstrip('/')}/janus-events/{node}"


def janus_config_for(node: NodeRecord, *, public_url: str | None,
                     configs_folder: Path = Path("/etc/janus"),
                     rtp_port_range: str = "20000-40000",
                     recordings_dir: Path = Path("/srv/janus-recordings"),
                     nat_1_1_mapping: str | None = None,
                     ice_enforce_list: str | None = None) -> JanusConfig:
    """The Janus configuration matching a stored node."""
    ws_host, ws_port = _host(node.ws_url)
    admin_host, admin_port = _host(node.admin_url)
    return JanusConfig(
        name=node.name, api_secret=node.secrets.api_secret,
        admin_secret=node.secrets.admin_secret, admin_key=node.secrets.admin_key,
        ws_host=ws_host, ws_port=ws_port, admin_host=admin_host, admin_port=admin_port,
        events_url=events_url(public_url, node.name) if public_url else None,
        event_secret=node.secrets.event_secret, configs_folder=configs_folder,
        admin_base_path=urlsplit(node.admin_url).path.rstrip("/") or "/admin",
        rtp_port_range=rtp_port_range, recordings_dir=recordings_dir,
        nat_1_1_mapping=nat_1_1_mapping, ice_enforce_list=ice_enforce_list)


def check_rtp_range(text: str) -> str:
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", text.strip())
    if not match or not 1024 <= int(match[1]) < int(match[2]) <= 65535:
        raise NodeSettingError(f"invalid RTP port range {text!r}: expected e.g. 20000-40000")
    return text.strip()
