"""Settings: one frozen object built from options, a config file and the environment.

Only ``meetplatform.tap`` and ``meetplatform.cli`` build a :class:`Settings`; everything else
receives it through its constructor.

Configuration comes from four places; for each key the strongest one that sets it wins:

1. the command line (``twistd meetplatform --listen tcp:8080 ...``),
2. ``MEETPLATFORM_*`` environment variables (``MEETPLATFORM_LISTEN``),
3. a TOML config file (``--config`` or ``MEETPLATFORM_CONFIG``),
4. the embedded defaults.

:func:`load_config` merges and validates them into a :class:`ServiceConfig` (everything but
the secret, which lives in a file: see :mod:`meetplatform.secret`) and reports every problem
at once in a :class:`ConfigError`. :class:`ConfigOptions` is the ``usage.Options`` that
``twistd meetplatform`` and ``meetplatform check`` share. ``docs/operations.md`` lists every
key; keep it in step with :data:`KEYS`.

Why one module of this size: every setting is declared here once (its :class:`Settings`
field, its converter, its :class:`Key` with flag, environment variable, TOML key and help,
and for a repeatable one its ``opt_`` method). Split by topic, one setting's parts would
stand in several files; kept together, adding a setting is one edit in one file, and
``docs/operations.md`` mirrors one table.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

ALL_CHECKSUM_ALGORITHMS: tuple[str, ...] = ("sha1", "sha256", "sha384", "sha512")

#: Every environment variable that configures the service starts with this.
ENV_PREFIX = "MEETPLATFORM_"
#: Names the config file; not a key of the file itself.
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DEFAULT_LISTEN: tuple[str, ...] = ("tcp:8080",)
DEFAULT_DATA_DIR = Path("meetplatform-data")
#: The generated secret's file name inside the data directory.
SECRET_FILE_NAME = "secret"
#: A config file larger than this is refused unread.
MAX_CONFIG_FILE_BYTES = 1024 * 1024


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
    listen: tuple[str, ...] = DEFAULT_LISTEN
    data_dir: Path = DEFAULT_DATA_DIR
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
    #: Networks (CIDR) that client apps' webhook endpoints may reach although they are
    #: loopback, private, link-local or otherwise not public (e.g. ``127.0.0.0/8``).
    allow_webhook_networks: tuple[str, ...] = ()
    #: Days the meeting history keeps ended meetings; 0 keeps them forever.
    history_retention_days: int = 365
    # --- the HTTP edge (issue 13) ---
    #: Networks (CIDR) of reverse proxies whose X-Forwarded-For / Forwarded headers say
    #: who the client is (meetplatform.clientaddr); none by default.
    trusted_proxies: tuple[str, ...] = ()
    #: Seconds a client has to send a whole request head (request line and headers).
    request_head_timeout: float = 30.0
    #: A Janus binary the service runs as media node ``local`` (``--janus-local``).
    janus_local: Path | None = None
    # --- TURN (issue 11) ---
    #: ``turn:``/``turns:`` URIs of a TURN server sharing ``turn_secret`` (coturn's
    #: ``use-auth-secret``): every participant gets credentials minted for it.
    turn_uris: tuple[str, ...] = ()
    #: The shared secret (read from ``--turn-secret-file``); never logged, never sent.
    turn_secret: str | None = field(default=None, repr=False)
    #: Seconds minted TURN credentials stay valid.
    turn_ttl: int = 3600
    #: RTCIceTransportPolicy handed to pages: ``all``, or ``relay`` (only TURN).
    ice_transport_policy: str = "all"
    #: Where composed recordings live (None: ``<data_dir>/recordings``; issue 12).
    recordings_dir: Path | None = None
    #: Seconds a signed playback link is valid; 0: playback links are not signed.
    protected_recordings: int = 0

    @property
    def recordings_path(self) -> Path:
        """The recordings directory (``--recordings-dir`` or ``<data_dir>/recordings``)."""
        return self.recordings_dir if self.recordings_dir is not None else (
            self.data_dir / "recordings")

    @property
    def api_url(self) -> str:
        """The BigBlueButton API endpoint integrations are configured with."""
        return self.public_url.rstrip("/") + "/bigbluebutton/api/"


# --- errors -------------------------------------------------------------------------------


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says why, one line each."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("\n".join(self.problems))


class ConfigUsageError(usage.UsageError):
    """A ``usage.UsageError`` (what twistd reports) that keeps the list of problems."""

    def __init__(self, error: ConfigError) -> None:
        self.problems = error.problems
        super().__init__(str(error))


class _Invalid(Exception):
    """One value is wrong; the loader prefixes where it came from."""


# --- where a value came from --------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    #: "cli", "env" or "file"
    kind: str
    #: How an operator finds it: "--listen", "MEETPLATFORM_LISTEN", "config file x, key 'listen'"
    label: str
    #: Relative paths are taken from here (the working directory, or the file's directory).
    base: Path


# --- listen endpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """What an endpoint description says about the URL it serves, when it says anything."""

    description: str
    #: The endpoint type: "tcp", "tcp6", "ssl", "unix", "systemd", ...
    kind: str
    #: "https" for TLS listeners, "http" for plain TCP, None when it is not a TCP port.
    scheme: str | None
    host: str | None
    port: int | None


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split as Twisted's endpoint parser does: a backslash escapes the next character."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_listener(description: str) -> Listener:
    """Validate one Twisted endpoint description and read its scheme, interface and port.

    Raises ``ValueError`` with a readable message when Twisted would refuse it.
    """
    if not description.strip():
        raise ValueError("an empty endpoint description")
    try:
        # Parsing builds an endpoint object without binding anything; TLS endpoints load
        # their key and certificate here, so a missing file is reported now, not at start.
        serverFromString(_NO_REACTOR, description)
    except Exception as error:  # noqa: BLE001 - any parser error becomes one clear message
        message = str(error) or type(error).__name__
        if description.lower().startswith("ssl:") and not isinstance(error, ValueError):
            message = f"cannot load the TLS key or certificate: {message}"
        if message.startswith("Unknown endpoint type"):
            message += " (use e.g. tcp:8080, tcp:8080:interface=127.0.0.1, ssl:443:...)"
        raise ValueError(message) from None
    tokens = _split_unescaped(description, ":")
    kind = tokens[0].lower()
    positional = [t for t in tokens[1:] if "=" not in t]
    named = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
    backlog = named.get("backlog")
    position = _BACKLOG_POSITION.get(kind)
    if backlog is None and position is not None and len(positional) > position:
        backlog = positional[position]
    if backlog is not None and not (backlog.isascii() and backlog.isdigit()
                                    and 1 <= int(backlog) <= MAX_BACKLOG):
        raise ValueError(f"backlog must be a whole number from 1 to {MAX_BACKLOG}, "
                         f"not {backlog!r}")
    if kind not in ("tcp", "tcp6", "ssl"):
        return Listener(description, kind, None, None, None)
    port_text = named.get("port", positional[0] if positional else "")
    # Where each parser takes the interface positionally, and its default.
    index, default = {"tcp": (1, ""), "tcp6": (2, "::"), "ssl": (4, "")}[kind]
    interface = named.get(
        "interface", positional[index] if len(positional) > index else default
    )
    return Listener(
        description,
        kind,
        "https" if kind == "ssl" else "http",
        interface,
        int(port_text),
    )


#: The listen queue of TCP and TLS listeners when the description names none. Twisted's
#: default is 50: a lecture hall of a thousand opening their sockets in the same second
#: overflows it, and each refused SYN costs its browser a one-second retransmission.
#: The kernel caps the value at ``net.core.somaxconn`` (4096 on current Linux).
DEFAULT_BACKLOG = 1024


#: The largest listen queue an endpoint may ask for (Linux caps it at
#: ``net.core.somaxconn`` anyway); Twisted itself takes any integer, and a huge one
#: failed only when binding ("Python int too large to convert to C long").
MAX_BACKLOG = 65535
#: Where each endpoint type takes its listen queue positionally (Twisted's parsers).
_BACKLOG_POSITION = {"tcp": 2, "tcp6": 1, "ssl": 5, "unix": 2}


def with_backlog(description: str) -> str:
    """``description`` with ``backlog=DEFAULT_BACKLOG`` added to a TCP, TLS or UNIX socket
    endpoint that does not set its own; every other description is returned unchanged."""
    tokens = _split_unescaped(description, ":")
    if tokens[0].lower() not in ("tcp", "tcp6", "ssl", "unix"):
        return description
    if any(token.split("=", 1)[0] == "backlog" for token in tokens[1:] if "=" in token):
        return description
    return f"{description}:backlog={DEFAULT_BACKLOG}"


class _NoReactor:
    """Stands in for a reactor while endpoint descriptions are only parsed, never used."""


_NO_REACTOR: Any = _NoReactor()


def url_for(scheme: str, host: str, port: int) -> str:
    """``http://HOST:PORT`` with IPv6 hosts bracketed and default ports left out."""
    if ":" in host:
        host = f"[{host}]"
    if (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def public_host(interface: str | None, kind: str = "tcp") -> str:
    """The host a local browser reaches a listener on: loopback for "any interface"."""
    if not interface or interface == "0.0.0.0":
        return "::1" if kind == "tcp6" else "127.0.0.1"
    if interface in ("::", "::0"):
        return "::1"
    return interface


# --- value converters ---------------------------------------------------------------------


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"expected a string, got {_type_name(raw)}")
    return raw.strip()


def _type_name(raw: object) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a table",
    }.get(type(raw), type(raw).__name__)


def _string_list(raw: object, origin: _Origin, *, split_commas: bool = True) -> list[str]:
    """A list from a TOML array, repeated command-line flags or a separated string.

    With ``split_commas`` every string is split on commas and whitespace (algorithm
    names, origins). Without it (endpoint descriptions, which may contain commas) only an
    environment variable is split, on whitespace; any other string is one item.
    """
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise _Invalid(f"expected a list of strings, got {_type_name(raw)}")
    items: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise _Invalid(f"expected a list of strings, found {_type_name(item)}")
        if split_commas:
            items.extend(re.split(r"[\s,]+", item))
        elif origin.kind == "env":
            items.extend(item.split())
        else:
            items.append(item.strip())
    return [item for item in items if item]


def _listen(raw: object, origin: _Origin) -> tuple[str, ...]:
    items = _string_list(raw, origin, split_commas=False)
    if not items:
        raise _Invalid("needs at least one endpoint, e.g. tcp:8080")
    problems = []
    for item in items:
        try:
            parse_listener(item)
        except ValueError as error:
            problems.append(f"invalid endpoint {item!r}: {error}")
    if problems:
        raise _Invalid("; ".join(problems))
    return tuple(dict.fromkeys(items))


def _public_url(raw: object, origin: _Origin) -> str | None:
    text = _text(raw)
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise _Invalid(f"{text!r} must start with http:// or https://")
    if not parts.hostname:
        raise _Invalid(f"{text!r} has no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _Invalid(f"{text!r} must not have a query, a fragment or credentials")
    try:
        _ = parts.port
    except ValueError:
        raise _Invalid(f"{text!r} has an invalid port") from None
    return text.rstrip("/")


def _path(raw: object, origin: _Origin) -> Path | None:
    text = _text(raw)
    if not text:
        return None
    if "\0" in text:
        raise _Invalid("a path cannot contain a NUL character")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = origin.base / path
    return Path(os.path.normpath(path))


def _checksum_algorithms(raw: object, origin: _Origin) -> tuple[str, ...]:
    names = [name.lower() for name in _string_list(raw, origin)]
    if not names:
        raise _Invalid(f"needs at least one of {', '.join(ALL_CHECKSUM_ALGORITHMS)}")
    unknown = [name for name in names if name not in ALL_CHECKSUM_ALGORITHMS]
    if unknown:
        raise _Invalid(
            f"unknown checksum algorithm {', '.join(map(repr, unknown))} "
            f"(choose from {', '.join(ALL_CHECKSUM_ALGORITHMS)})"
        )
    return tuple(dict.fromkeys(names))


def _server_name(raw: object, origin: _Origin) -> str:
    text = _text(raw)
    if not text:
        raise _Invalid("must not be empty")
    if len(text) > 100 or not text.isprintable():
        raise _Invalid("must be at most 100 printable characters")
    return text


def _number(
    raw: object, *, integer: bool, minimum: float, maximum: float
) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _Invalid(f"expected a number, got {_type_name(raw)}")
    value: float | int
    if isinstance(raw, str):
        text = raw.strip().replace("_", "")
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise _Invalid(f"expected {kind}, got {raw!r}") from None
    elif integer and isinstance(raw, float):
        raise _Invalid(f"expected a whole number, got {raw!r}")
    else:
        value = raw
    if not (isinstance(value, int) or math.isfinite(value)):
        raise _Invalid(f"expected a finite number, got {raw!r}")
    if not minimum <= value <= maximum:
        raise _Invalid(f"must be between {minimum:g} and {maximum:g}, got {value:g}")
    return value


def _grace(raw: object, origin: _Origin) -> float:
    return float(_number(raw, integer=False, minimum=0, maximum=3600))


def _query_bytes(raw: object, origin: _Origin) -> int:
    return int(_number(raw, integer=True, minimum=1024, maximum=1024 * 1024))


def _body_bytes(raw: object, origin: _Origin) -> int:
    return int(_number(raw, integer=True, minimum=1024, maximum=1024 * 1024 * 1024))


def _origin_value(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{text!r} is not an origin like https://www.example.org")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise _Invalid(f"{text!r} is not an origin (no path, query or credentials)")
    try:
        port = parts.port
    except ValueError:
        raise _Invalid(f"{text!r} has an invalid port") from None
    host = parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return url_for(parts.scheme, host, port if port is not None else default)


def _extra_origins(raw: object, origin: _Origin) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_origin_value(item) for item in _string_list(raw, origin)))


def _networks(raw: object, origin: _Origin) -> tuple[str, ...]:
    networks = []
    for item in _string_list(raw, origin):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _Invalid(f"{item!r} is not a network such as 127.0.0.0/8 or fd00::/8") from None
        networks.append(str(network))
    return tuple(dict.fromkeys(networks))


def _head_timeout(raw: object, origin: _Origin) -> float:
    return float(_number(raw, integer=False, minimum=1, maximum=3600))
def _executable(raw: object, origin: _Origin) -> Path | None:
    path = _path(raw, origin)
    if path is not None and not (path.is_file() and os.access(path, os.X_OK)):
        raise _Invalid(f"{path} is not an executable file (Debian's janus package installs "
                       "/usr/bin/janus)")
    return path


def _turn_ttl(raw: object, origin: _Origin) -> int:
    return int(_number(raw, integer=True, minimum=60, maximum=7 * 86400))


ICE_TRANSPORT_POLICIES: tuple[str, ...] = ("all", "relay")


def _ice_transport_policy(raw: object, origin: _Origin) -> str:
    text = _text(raw).lower()
    if text not in ICE_TRANSPORT_POLICIES:
        raise _Invalid(f"unknown ICE transport policy {text!r} (choose from "
                       f"{', '.join(ICE_TRANSPORT_POLICIES)})")
    return text


#: ``turn:host[:port][?transport=udp|tcp]`` (and ``turns:``), RFC 7065.
_TURN_URI = re.compile(
    r"turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(:[0-9]{1,5})?(\?transport=(udp|tcp))?",
    re.IGNORECASE)


def _turn_uris(raw: object, origin: _Origin) -> tuple[str, ...]:
    uris = _string_list(raw, origin)
    for uri in uris:
        match = _TURN_URI.fullmatch(uri)
        if match is None:
            raise _Invalid(f"{uri!r} is not a TURN URI such as "
                           "turn:turn.example.org:3478?transport=udp or "
                           "turns:turn.example.org:5349?transport=tcp")
        if match.group(2) and not 0 < int(match.group(2)[1:]) < 65536:
            raise _Invalid(f"{uri!r} has an invalid port")
    return tuple(dict.fromkeys(uris))


#: A TURN secret shorter than this is refused (HMAC keys must not be guessable).
MIN_TURN_SECRET_CHARS = 16
#: Token files are one line; anything larger is not one.
MAX_TOKEN_FILE_BYTES = 4096


def read_token_file(path: Path, what: str, minimum: int, hint: str = "") -> str:
    """The secret token in ``path``: one line, surrounding whitespace removed, at least
    ``minimum`` printable characters and no space; ``ConfigError`` naming ``what`` and
    the file otherwise. The message never quotes the token. Shared by every option that
    names a token file (TURN secret, metrics token)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
        token = data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what} file {path}: cannot read it: {error}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"{what} file {path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
    if (len(token) < minimum or not token.isprintable()
            or any(c.isspace() for c in token)):
        raise ConfigError(
            f"{what} file {path}: the {what.split()[-1]} must be one line of at least "
            f"{minimum} printable characters without spaces{hint}")
    return token


def read_turn_secret(path: Path) -> str:
    """The TURN shared secret in ``path`` (see :func:`read_token_file`)."""
    return read_token_file(path, "TURN secret", MIN_TURN_SECRET_CHARS,
                           " (the static-auth-secret of coturn)")


def _link_seconds(raw: object, origin: _Origin) -> int:
    if isinstance(raw, str) and raw.strip().lower() in ("off", ""):
        return 0
    return int(_number(raw, integer=True, minimum=0, maximum=7 * 86400))


def _retention_days(raw: object, origin: _Origin) -> int:
    return int(_number(raw, integer=True, minimum=0, maximum=100 * 366))


_ICE_SCHEMES = ("stun", "stuns", "turn", "turns")


def _ice_server(raw: object) -> IceServer:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except ValueError as error:
                raise _Invalid(f"invalid JSON {text!r}: {error}") from None
        else:
            raw = {"urls": [text]}
    if not isinstance(raw, dict):
        raise _Invalid(f"expected a URL or a table with urls, got {_type_name(raw)}")
    unknown = set(raw) - {"urls", "username", "credential"}
    if unknown:
        raise _Invalid(f"unknown ICE server field(s) {', '.join(sorted(unknown))}")
    urls = raw.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise _Invalid("an ICE server needs 'urls': one URL or a list of URLs")
    for url in urls:
        if url.split(":", 1)[0].lower() not in _ICE_SCHEMES or ":" not in url:
            raise _Invalid(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
    username, credential = raw.get("username"), raw.get("credential")
    for name, value in (("username", username), ("credential", credential)):
        if value is not None and not isinstance(value, str):
            raise _Invalid(f"ICE server {name} must be a string")
    if any(u.lower().startswith("turn") for u in urls) and not (username and credential):
        raise _Invalid(f"TURN server {urls[0]!r} needs a username and a credential")
    return IceServer(tuple(urls), username, credential)


def _ice_servers(raw: object, origin: _Origin) -> tuple[IceServer, ...]:
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return ()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError as error:
                raise _Invalid(f"invalid JSON: {error}") from None
        elif text.startswith("{"):
            raw = [text]
        else:
            raw = text.split()
    if not isinstance(raw, (list, tuple)):
        raise _Invalid(f"expected a list of ICE servers, got {_type_name(raw)}")
    return tuple(_ice_server(item) for item in raw)


# --- operations: log level and format, metrics -------------------------------------------

#: Twisted's log level names (``twist --log-level`` takes the same), least severe first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error", "critical")
LOG_FORMATS: tuple[str, ...] = ("text", "json")
_NAMESPACE = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*")
#: A metrics bearer token shorter than this is refused (it would be guessable).
MIN_METRICS_TOKEN_CHARS = 16


def _log_level(raw: object, origin: _Origin) -> tuple[tuple[str, str], ...]:
    """``LEVEL`` (the default) and ``NAMESPACE=LEVEL`` items, as ``(namespace, level)``
    pairs with ``""`` for the default; a later item for the same namespace wins."""
    levels: dict[str, str] = {}
    for item in _string_list(raw, origin):
        namespace, equals, name = item.rpartition("=")
        name = name.lower()
        if name not in LOG_LEVELS:
            raise _Invalid(f"unknown log level {name!r} in {item!r} "
                           f"(choose from {', '.join(LOG_LEVELS)})")
        if equals and not _NAMESPACE.fullmatch(namespace):
            raise _Invalid(f"{namespace!r} is not a log namespace such as "
                           "meetplatform.signalling")
        levels[namespace] = name
    return tuple(levels.items())


def _log_format(raw: object, origin: _Origin) -> str:
    text = _text(raw).lower()
    if text not in LOG_FORMATS:
        raise _Invalid(f"unknown log format {text!r} (choose from {', '.join(LOG_FORMATS)})")
    return text


def _endpoint(raw: object, origin: _Origin) -> str | None:
    text = _text(raw)
    if not text:
        return None
    try:
        parse_listener(text)
    except ValueError as error:
        raise _Invalid(f"invalid endpoint {text!r}: {error}") from None
    return text


def read_metrics_token(path: Path) -> str:
    """The bearer token in ``path`` (see :func:`read_token_file`)."""
    return read_token_file(path, "metrics token", MIN_METRICS_TOKEN_CHARS)



# --- the keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One configuration key: its names in every source, its converter and its help."""

    #: Attribute of ServiceConfig and key of the config file.
    name: str
    convert: Callable[[object, _Origin], object]
    help: str
    default: str
    #: The command-line flag names one item and may be repeated.
    repeatable: bool = False
    flag_name: str | None = None

    @property
    def flag(self) -> str:
        return self.flag_name or self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


KEYS: tuple[Key, ...] = (
    Key("listen", _listen, "Twisted endpoint to listen on; repeat for several",
        "tcp:8080", repeatable=True),
    Key("public_url", _public_url,
        "URL browsers and integrations reach the service at (join redirects, links)",
        "derived from the first listener"),
    Key("data_dir", _path, "directory for the generated secret and stored data",
        "./meetplatform-data"),
    Key("secret_file", _path, "file holding the shared API secret",
        "<data-dir>/secret, generated on first start"),
    Key("checksum_algorithms", _checksum_algorithms,
        "checksum algorithms the BBB API accepts, comma-separated",
        ",".join(ALL_CHECKSUM_ALGORITHMS)),
    Key("server_name", _server_name, "name shown in the API root and page titles",
        "meetplatform"),
    Key("resume_grace_seconds", _grace,
        "seconds a participant whose connection dropped keeps its place", "20"),
    Key("max_query_bytes", _query_bytes, "largest query string accepted, in bytes", "65536"),
    Key("max_body_bytes", _body_bytes, "largest request body accepted, in bytes", "2097152"),
    Key("extra_origins", _extra_origins,
        "another origin (https://host) allowed to open the signalling socket; repeatable",
        "none", repeatable=True, flag_name="extra-origin"),
    Key("ice_servers", _ice_servers,
        "STUN/TURN server for browsers: a URL or a JSON RTCIceServer; repeatable",
        "none", repeatable=True, flag_name="ice-server"),
    Key("access_log", _path, "write an HTTP access log (combined format) to this file",
        "off"),
    Key("allow_webhook_networks", _networks,
        "a network (CIDR) client apps' webhook endpoints may reach although it is not "
        "public (loopback, private, link-local); repeatable",
        "none", repeatable=True, flag_name="allow-webhook-network"),
    Key("history_retention_days", _retention_days,
        "days the meeting history keeps ended meetings (0: forever)", "365"),
    # The HTTP edge (issue 13).
    Key("trusted_proxies", _networks,
        "a reverse proxy's network (CIDR) whose X-Forwarded-For/Forwarded headers name "
        "the client; repeatable", "none", repeatable=True, flag_name="trusted-proxy"),
    Key("request_head_timeout", _head_timeout,
        "seconds a client has to send a request's line and headers", "30"),
    Key("janus_local", _executable,
        "run, supervise and stop a local Janus (this binary) as media node 'local'", "off"),
    # TURN (issue 11).
    Key("turn_uris", _turn_uris,
        "a turn: or turns: URI of a TURN server that shares --turn-secret-file (coturn "
        "use-auth-secret); participants get credentials minted per join; repeatable",
        "none", repeatable=True, flag_name="turn-uri"),
    Key("turn_secret_file", _path,
        "file holding the TURN server's static-auth-secret", "none"),
    Key("turn_ttl", _turn_ttl, "seconds minted TURN credentials stay valid", "3600"),
    Key("ice_transport_policy", _ice_transport_policy,
        "ICE transport policy of browsers: all, or relay (media only through TURN)", "all"),
    # Recordings (issue 12).
    Key("recordings_dir", _path, "directory of the composed recordings (playback files)",
        "<data-dir>/recordings"),
    Key("protected_recordings", _link_seconds,
        "sign playback links, valid this many seconds; unsigned links answer 403", "off"),
)
#: The operations keys (meetplatform.logs, meetplatform.metrics), kept together.
OPERATIONS_KEYS: tuple[Key, ...] = (
    Key("log_level", _log_level,
        "log events at this level and above: debug, info, warn, error, critical; "
        "NAMESPACE=LEVEL sets one namespace and those under it; repeatable",
        "info", repeatable=True),
    Key("log_format", _log_format, "log format: text, or json (one object per line)",
        "text"),
    Key("metrics_listen", _endpoint,
        "serve /metrics (Prometheus) on this separate Twisted endpoint", "off"),
    Key("metrics_token_file", _path,
        "serve /metrics on the public listeners too, to requests bearing the token in "
        "this file", "off"),
)
KEYS += OPERATIONS_KEYS
KEYS_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}


# --- the loaded configuration -------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """The validated configuration, before the secret is read and the listeners bound."""

    listen: tuple[str, ...] = DEFAULT_LISTEN
    #: None: derived from the first listener once it is bound.
    public_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    #: None: ``<data_dir>/secret``, generated on first start.
    secret_file: Path | None = None
    # The defaults are the Settings' own (one place for each).
    checksum_algorithms: tuple[str, ...] = Settings.checksum_algorithms
    ice_servers: tuple[IceServer, ...] = Settings.ice_servers
    server_name: str = Settings.server_name
    resume_grace_seconds: float = Settings.resume_grace_seconds
    max_query_bytes: int = Settings.max_query_bytes
    max_body_bytes: int = Settings.max_body_bytes
    extra_origins: tuple[str, ...] = Settings.extra_origins
    access_log: Path | None = None
    allow_webhook_networks: tuple[str, ...] = Settings.allow_webhook_networks
    history_retention_days: int = Settings.history_retention_days
    janus_local: Path | None = None
    turn_uris: tuple[str, ...] = Settings.turn_uris
    turn_secret_file: Path | None = None
    turn_ttl: int = Settings.turn_ttl
    ice_transport_policy: str = Settings.ice_transport_policy
    recordings_dir: Path | None = None
    protected_recordings: int = 0
    # Operations (meetplatform.logs, meetplatform.metrics): not part of the Settings.
    #: ``(namespace, level)`` pairs, ``""`` for the default level (info when absent).
    log_level: tuple[tuple[str, str], ...] = ()
    log_format: str = "text"
    metrics_listen: str | None = None
    metrics_token_file: Path | None = None
    trusted_proxies: tuple[str, ...] = Settings.trusted_proxies
    request_head_timeout: float = Settings.request_head_timeout
    #: The TOML file read, if any.
    config_file: Path | None = None
    #: Key name -> where its value came from ("--listen", "MEETPLATFORM_LISTEN", ...).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Things worth telling the operator that do not stop the service.
    warnings: tuple[str, ...] = ()

    @property
    def secret_path(self) -> Path:
        """Where the shared secret is read from (and generated into, by default)."""
        return self.secret_file if self.secret_file is not None else (
            self.data_dir / SECRET_FILE_NAME
        )

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(parse_listener(description) for description in self.listen)

    def derived_public_url(self, port: int | None = None) -> str | None:
        """The public URL: the configured one, else derived from the first listener.

        ``port`` is the first listener's real port once bound (it matters for ``tcp:0``).
        Returns None when it cannot be known yet (a port 0 not yet bound, or a
        listener such as a UNIX socket that has no URL of its own).
        """
        if self.public_url is not None:
            return self.public_url
        first = self.listeners[0]
        if first.scheme is None:
            return None
        port = first.port if port is None else port
        if not port:
            return None
        return url_for(first.scheme, public_host(first.host, first.kind), port)

    def settings(self, secret: str, public_url: str,
                 turn_secret: str | None = None) -> Settings:
        """The frozen Settings handed to every surface (``turn_secret``: the content of
        ``turn_secret_file``, read by the caller with :func:`read_turn_secret`)."""
        return Settings(
            secret=secret,
            public_url=public_url,
            listen=self.listen,
            data_dir=self.data_dir,
            secret_file=self.secret_path,
            checksum_algorithms=self.checksum_algorithms,
            ice_servers=self.ice_servers,
            server_name=self.server_name,
            resume_grace_seconds=self.resume_grace_seconds,
            max_query_bytes=self.max_query_bytes,
            max_body_bytes=self.max_body_bytes,
            extra_origins=self.extra_origins,
            allow_webhook_networks=self.allow_webhook_networks,
            history_retention_days=self.history_retention_days,
            trusted_proxies=self.trusted_proxies,
            request_head_timeout=self.request_head_timeout,
            janus_local=self.janus_local,
            turn_uris=self.turn_uris,
            turn_secret=turn_secret,
            turn_ttl=self.turn_ttl,
            ice_transport_policy=self.ice_transport_policy,
            recordings_dir=self.recordings_dir,
            protected_recordings=self.protected_recordings,
        )


def _read_config_file(path: Path) -> dict[str, Any]:
    label = f"config file {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{label}: cannot read it: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{label}: larger than {MAX_CONFIG_FILE_BYTES} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{label}: invalid TOML: {error}") from None


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _turn_problems(config: ServiceConfig) -> list[str]:
    """TURN settings that only make sense together."""
    problems = []
    if config.turn_uris and config.turn_secret_file is None:
        problems.append("--turn-uri needs --turn-secret-file (the TURN server's "
                        "static-auth-secret)")
    if config.turn_secret_file is not None and not config.turn_uris:
        problems.append("--turn-secret-file needs at least one --turn-uri")
    static_turn = any(url.lower().startswith("turn") for server in config.ice_servers
                      for url in server.urls)
    if config.ice_transport_policy == "relay" and not (config.turn_uris or static_turn):
        problems.append("--ice-transport-policy relay needs a TURN server (--turn-uri, or "
                        "a turn: --ice-server)")
    return problems


def load_config(
    cli: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
) -> ServiceConfig:
    """Merge command line, environment, config file and defaults; validate everything.

    ``cli`` maps key names (and ``config``) to what the command line gave: a string, or
    a list of strings for repeatable flags; absent or None when not given. Raises
    :class:`ConfigError` listing every problem found.
    """
    cli = dict(cli or {})
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    problems: list[str] = []
    warnings: list[str] = []

    config_file: Path | None = None
    file_values: dict[str, Any] = {}
    for raw, label in ((cli.get("config"), "--config"), (environ.get(CONFIG_ENV), CONFIG_ENV)):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        config_file = _path(raw, _Origin("cli", label, cwd))
        break
    if config_file is not None:
        file_values = _read_config_file(config_file)
        for name in file_values:
            if name not in KEYS_BY_NAME:
                problems.append(
                    f"config file {config_file}: unknown key {name!r}"
                    + _suggest(name, list(KEYS_BY_NAME))
                )

    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        candidates: list[tuple[object, _Origin]] = [
            (cli.get(key.name), _Origin("cli", f"--{key.flag}", cwd)),
            (environ.get(key.env), _Origin("env", key.env, cwd)),
        ]
        if config_file is not None:
            candidates.append((
                file_values.get(key.name),
                _Origin("file", f"config file {config_file}, key {key.name!r}",
                        config_file.parent),
            ))
        for raw, origin in candidates:
            if raw is None or (origin.kind == "cli" and raw == []):
                continue
            if origin.kind == "env" and not str(raw).strip():
                # An empty variable means "not set" (compose files pass empty values).
                continue
            try:
                value = key.convert(raw, origin)
            except _Invalid as error:
                problems.append(f"{origin.label}: {error}")
            else:
                if value is not None:
                    values[key.name] = value
                    sources[key.name] = origin.label
            break

    known_env = {key.env for key in KEYS} | {CONFIG_ENV}
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known_env:
            warnings.append(
                f"environment variable {name} is not a meetplatform setting and is ignored"
                + _suggest(name, sorted(known_env))
            )

    values.setdefault("data_dir", Path(os.path.normpath(cwd / DEFAULT_DATA_DIR)))
    config = ServiceConfig(
        **values,  # type: ignore[arg-type]
        config_file=config_file,
        sources=sources,
    )
    if not problems:
        problems.extend(_turn_problems(config))
    if not problems:
        first = config.listeners[0]
        if config.public_url is None and first.scheme is None:
            problems.append(
                f"the first listener {first.description!r} has no URL of its own: "
                "set --public-url (or MEETPLATFORM_PUBLIC_URL)"
            )
        url = config.derived_public_url()
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
                warnings.append(
                    f"public URL {url} is plain http on a non-loopback host: browsers only "
                    "allow camera and microphone on https:// pages (or localhost)"
                )
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(config, warnings=tuple(warnings))


# --- command-line options -------------------------------------------------------------------


def _help(key: Key) -> str:
    return f"{key.help} [env {key.env}; default: {key.default}]"


class ConfigOptions(usage.Options):
    """The service's options, shared by ``twistd meetplatform`` and ``meetplatform check``.

    After parsing, ``self.configuration`` holds the merged, validated
    :class:`ServiceConfig`; problems become a ``usage.UsageError``.
    """

    optParameters: list[list[Any]] = [
        ["config", "c", None, f"read settings from this TOML file [env {CONFIG_ENV}]"],
    ] + [[key.flag, None, None, _help(key)] for key in KEYS if not key.repeatable]

    configuration: ServiceConfig

    def __init__(
        self, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        super().__init__()
        self._environ = environ
        self._cwd = cwd
        for key in KEYS:
            if key.repeatable:
                self[key.name] = []

    def opt_listen(self, description: str) -> None:
        self["listen"].append(description)

    def opt_extra_origin(self, origin: str) -> None:
        self["extra_origins"].append(origin)

    def opt_ice_server(self, server: str) -> None:
        self["ice_servers"].append(server)

    def opt_allow_webhook_network(self, network: str) -> None:
        self["allow_webhook_networks"].append(network)

    def opt_log_level(self, level: str) -> None:
        self["log_level"].append(level)
    def opt_trusted_proxy(self, network: str) -> None:
        self["trusted_proxies"].append(network)

    def opt_turn_uri(self, uri: str) -> None:
        self["turn_uris"].append(uri)

    opt_listen.__doc__ = _help(KEYS_BY_NAME["listen"])
    opt_extra_origin.__doc__ = _help(KEYS_BY_NAME["extra_origins"])
    opt_ice_server.__doc__ = _help(KEYS_BY_NAME["ice_servers"])
    opt_allow_webhook_network.__doc__ = _help(KEYS_BY_NAME["allow_webhook_networks"])
    opt_log_level.__doc__ = _help(KEYS_BY_NAME["log_level"])
    opt_trusted_proxy.__doc__ = _help(KEYS_BY_NAME["trusted_proxies"])
    opt_turn_uri.__doc__ = _help(KEYS_BY_NAME["turn_uris"])

    def cli_values(self) -> dict[str, object]:
        """What the command line set, by key name."""
        out: dict[str, object] = {"config": self["config"]}
        for key in KEYS:
            out[key.name] = self[key.name] if key.repeatable else self[key.flag]
        return out

    def postOptions(self) -> None:
        try:
            self.configuration = load_config(self.cli_values(), self._environ, cwd=self._cwd)
        except ConfigError as error:
            raise ConfigUsageError(error) from None
