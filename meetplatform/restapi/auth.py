"""Who is calling: OAuth 2.0 bearer tokens, HMAC-SHA256 signed requests, client credentials.

Three ways to authenticate to the JSON:API:

* ``Authorization: Bearer mpat_...``: an access token from ``POST /oauth/token``
  (client credentials grant, RFC 6749 §4.4), or ``Bearer mpua_...``: the token an
  invited user received on activation (user-level, scoped to a room or space and a role).
* ``Authorization: MP-HMAC-SHA256 clientId=..., timestamp=..., nonce=..., signature=...``:
  a request signed with the client's signing key; safe over plain HTTP because no
  credential travels and each signature is usable once. The signed string is::

      MP-HMAC-SHA256\\n<METHOD>\\n<path>\\n<query>\\n<timestamp>\\n<nonce>\\n<hex sha256(body)>

  where METHOD is the method executed (after ``X-HTTP-Method-Override``/``_method``),
  path and query are canonical (:func:`canonical_path`, :func:`canonical_query`: decoded,
  sorted, re-encoded), timestamp is Unix seconds and the key is ``HMAC-SHA256(key=client_secret, msg="meetplatform request
  signing v1")``. The server accepts timestamps within ±300 s of its clock, never before
  it started, and remembers nonces for that window: a replay is refused.
* ``Authorization: Basic base64(client_id:client_secret)`` or ``client_id`` and
  ``client_secret`` in the body: only on the OAuth endpoints (token, revoke, introspect).

Secrets are compared in constant time; the store keeps only their hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from twisted.internet.interfaces import IReactorTime

from meetplatform.restapi.jsonapi import ApiError
from meetplatform.store import AccessTokenRecord, ClientRecord, Store
from meetplatform.store.database import ACCESS_TOKEN_PREFIX, USER_ACCESS_TOKEN_PREFIX
from meetplatform.text import BadText, check

#: Every scope a client may hold; a token gets them all unless it asks for fewer.
CLIENT_SCOPES: tuple[str, ...] = (
    "spaces:read", "spaces:write", "rooms:read", "rooms:write", "rooms:join",
    "userTokens:read", "userTokens:write", "participants:read", "participants:moderate",
    "meetings:read", "meetings:write", "documents:read", "documents:write",
)
SCOPE_DESCRIPTIONS = {
    "spaces:read": "read the client's space",
    "spaces:write": "change the space (name, visibility, embedding origins)",
    "rooms:read": "list and read rooms",
    "rooms:write": "create, change and delete rooms",
    "rooms:join": "get a seat in a room (a conference URL)",
    "userTokens:read": "list and read invitations",
    "userTokens:write": "create and revoke invitations",
    "participants:read": "list the live participants of a room",
    "participants:moderate": "mute and remove participants",
    "meetings:read": "list live meetings and read their details",
    "meetings:write": "create, join and end meetings",
    "documents:read": "list the documents of a room's live meeting and their conversion",
    "documents:write": "add documents to a room's live meeting and choose the page shown",
}
assert set(SCOPE_DESCRIPTIONS) == set(CLIENT_SCOPES)

ACCESS_TOKEN_TTL_S = 3600
SIGNATURE_SCHEME = "MP-HMAC-SHA256"
SIGNATURE_WINDOW_S = 300
REALM = 'realm="meetplatform"'
CHALLENGES = f'Bearer {REALM}, {SIGNATURE_SCHEME} {REALM}'

#: A cached bearer token is checked against the database again after this many seconds:
#: the bound for a revocation made by another process (the operator's ``meetplatform
#: clients revoke``). Revocations through this process's store take effect at once.
TOKEN_RECHECK_S = 1.0
TOKEN_CACHE_ENTRIES = 50_000

_NONCE_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{1,200}")
_PARAM_RE = re.compile(r'\s*([A-Za-z]+)\s*=\s*("([^"]*)"|[^,\s]*)\s*(?:,|$)')


@dataclass(frozen=True)
class Caller:
    """An authenticated caller of the JSON:API."""

    #: ``client`` (an application) or ``user`` (an invited user's token).
    kind: str
    client_id: str
    space_id: str
    scopes: frozenset[str]
    #: ``bearer`` or ``signature``.
    method: str
    token_id: str | None = None
    room_id: str | None = None
    role: str | None = None
    user_token_id: str | None = None

    @property
    def rate_key(self) -> str:
        if self.kind == "client":
            return "client:" + self.client_id
        return "user:" + (self.user_token_id or self.token_id or "")


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers, as received."""

    method: str
    path: str
    query: str
    body: bytes


def _encode(text: str, safe: str) -> str:
    return quote(text, safe=safe, encoding="utf-8", errors="surrogateescape")


def canonical_path(path: str) -> str:
    """The path percent-decoded and re-encoded: everything but ``A-Z a-z 0-9 - _ . ~ /``
    as ``%XX`` (so that clients and proxies may encode differently)."""
    return _encode(unquote(path, errors="surrogateescape"), "/-_.~")


def canonical_query(query: str) -> str:
    """The query's parameters decoded, sorted (by name, then value) and re-encoded like
    the path (``/`` encoded too), joined by ``&``; empty without parameters."""
    pairs = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
    return "&".join(f"{_encode(k, '-_.~')}={_encode(v, '-_.~')}" for k, v in sorted(pairs))


def string_to_sign(method: str, path: str, query: str, timestamp: str, nonce: str,
                   body: bytes) -> bytes:
    return "\n".join([SIGNATURE_SCHEME, method.upper(), canonical_path(path),
                      canonical_query(query), timestamp, nonce,
                      hashlib.sha256(body).hexdigest()]).encode("utf-8", "surrogateescape")


def sign(key: bytes, method: str, path: str, query: str, timestamp: str, nonce: str,
         body: bytes) -> str:
    """The hex signature a client sends (also used by tests and docs examples)."""
    return hmac.new(key, string_to_sign(method, path, query, timestamp, nonce, body),
                    hashlib.sha256).hexdigest()


def parse_params(text: str) -> dict[str, str]:
    """``a=1, b="2"`` -> ``{"a": "1", "b": "2"}``; raises ValueError when malformed."""
    out: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError("malformed parameters")
        name = match.group(1)
        value = match.group(3) if match.group(3) is not None else match.group(2)
        if name in out:
            raise ValueError(f"{name} given twice")
        out[name] = value
        pos = match.end()
    return out


def parse_basic(value: str) -> tuple[str, str]:
    """Client id and secret from a Basic credential (form-urlencoded, RFC 6749 §2.3.1)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(401, "auth.invalidClient", "the Basic credentials are not base64",
                       header="Authorization", oauth_error="invalid_client",
                       headers={"WWW-Authenticate": f"Basic {REALM}"}) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ApiError(401, "auth.invalidClient", "Basic credentials must be id:secret",
                       header="Authorization", oauth_error="invalid_client",
                       headers={"WWW-Authenticate": f"Basic {REALM}"})
    try:  # percent-decoded as a form: UTF-8 or refused (meetplatform.text), not replaced
        return (check(unquote(client_id, errors="surrogateescape")),
                check(unquote(secret, errors="surrogateescape")))
    except BadText:
        raise ApiError(401, "auth.invalidClient", "the Basic credentials are not UTF-8",
                       header="Authorization", oauth_error="invalid_client",
                       headers={"WWW-Authenticate": f"Basic {REALM}"}) from None


class NonceCache:
    """Nonces seen per client within the signature window (bounded)."""

    def __init__(self, clock: IReactorTime, window_s: float, max_entries: int = 1_000_000) -> None:
        self._clock = clock
        self._window = window_s
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _prune(self, now: float) -> None:
        while self._seen:
            _, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            self._seen.popitem(last=False)

    def check_and_add(self, client_id: str, nonce: str) -> bool:
        """True if the nonce is new (and remember it), false for a replay."""
        now = self._clock.seconds()
        self._prune(now)
        key = (client_id, nonce)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            return False  # full: refuse rather than forget nonces that could be replayed
        # a signature is usable while its timestamp is in the window: twice the window
        # after now covers the latest timestamp that could still be accepted
        self._seen[key] = now + 2 * self._window
        return True


class TokenCache:
    """Bearer tokens verified recently, keyed by the SHA-256 of the token (no token is kept).

    Every request with a bearer token would otherwise pay a round trip to the store's
    thread and a query. An entry is used only while (a) the store's
    :attr:`~meetplatform.store.Store.credentials_epoch` has not moved since the lookup began
    (any revocation, rotation or deletion through this process's store moves it, so a
    revoked token is refused at once), (b) it is younger than ``recheck_s`` (a revocation
    by another process is seen within that bound), and (c) the record says the token is
    still active (expiry). Only active tokens are cached; unknown ones always go to the
    store.
    """

    def __init__(self, clock: IReactorTime, store: Store, *,
                 recheck_s: float = TOKEN_RECHECK_S,
                 max_entries: int = TOKEN_CACHE_ENTRIES) -> None:
        self._clock = clock
        self._store = store
        self._recheck = recheck_s
        self._max = max_entries
        self._epoch = store.credentials_epoch
        self._entries: dict[bytes, tuple[AccessTokenRecord, float]] = {}

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8")).digest()

    def get(self, key: bytes, now_ms: int) -> AccessTokenRecord | None:
        """The cached record of an active token, or ``None`` (then ask the store)."""
        if self._store.credentials_epoch != self._epoch:
            self._entries.clear()
            self._epoch = self._store.credentials_epoch
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        record, checked_at = entry
        if self._clock.seconds() - checked_at >= self._recheck or not record.active(now_ms):
            del self._entries[key]
            return None
        return record

    def put(self, key: bytes, record: AccessTokenRecord, epoch: int, checked_at: float) -> None:
        """Remember ``record``, read from the store when the epoch was ``epoch`` and the
        clock ``checked_at``; dropped if a revocation finished since (it may predate it)."""
        if epoch != self._store.credentials_epoch:
            return
        if epoch != self._epoch:
            self._entries.clear()
            self._epoch = epoch
        if len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]  # the oldest insertion
        self._entries[key] = (record, checked_at)


def _unauthorized(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, header="Authorization",
                    headers={"WWW-Authenticate": CHALLENGES})


class Authenticator:
    """Turns request credentials into a :class:`Caller` (or a 401/403 :class:`ApiError`)."""

    def __init__(self, clock: IReactorTime, store: Store, *,
                 window_s: float = SIGNATURE_WINDOW_S) -> None:
        self._clock = clock
        self._store = store
        self._window = window_s
        #: Signed requests stamped before this are refused: the nonce cache is in memory,
        #: so a replay across a restart is stopped this way.
        self.started_at = clock.seconds()
        self.nonces = NonceCache(clock, window_s)
        self.tokens = TokenCache(clock, store)

    def now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    async def authenticate(self, authorization: str | None, signed: SignedRequest, *,
                           allow_user: bool) -> Caller:
        if authorization is None or not authorization.strip():
            raise _unauthorized("auth.missingCredentials",
                                "send an access token (Authorization: Bearer ...) or sign "
                                f"the request ({SIGNATURE_SCHEME})")
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return await self._bearer(rest.strip(), allow_user=allow_user)
        if scheme.upper() == SIGNATURE_SCHEME:
            return await self._signature(rest, signed)
        raise _unauthorized("auth.unsupportedScheme",
                            f"use Bearer or {SIGNATURE_SCHEME} authorization")

    async def _bearer(self, token: str, *, allow_user: bool) -> Caller:
        if not _TOKEN_RE.fullmatch(token) or not token.startswith(
                (ACCESS_TOKEN_PREFIX, USER_ACCESS_TOKEN_PREFIX)):
            raise _unauthorized("auth.invalidToken", "the access token is not valid")
        key = TokenCache.key(token)
        record = self.tokens.get(key, self.now_ms())
        if record is None:
            epoch, checked_at = self._store.credentials_epoch, self._clock.seconds()
            record = await self._store.find_access_token(token)
            if record is not None and record.active(self.now_ms()):
                self.tokens.put(key, record, epoch, checked_at)
        if record is None or not record.active(self.now_ms()):
            raise _unauthorized("auth.invalidToken",
                                "the access token is unknown, expired or revoked")
        if record.kind == "user" and not allow_user:
            raise ApiError(403, "auth.clientTokenRequired",
                           "this call needs the client's own credentials, not a user token")
        return Caller(kind=record.kind, client_id=record.client_id, space_id=record.space_id,
                      scopes=frozenset(record.scope), method="bearer", token_id=record.id,
                      room_id=record.room_id, role=record.role,
                      user_token_id=record.user_token_id)

    async def _signature(self, text: str, signed: SignedRequest) -> Caller:
        try:
            params = parse_params(text)
        except ValueError as e:
            raise _unauthorized("auth.invalidSignature",
                                f"malformed {SIGNATURE_SCHEME} authorization: {e}") from None
        missing = [n for n in ("clientId", "timestamp", "nonce", "signature") if n not in params]
        if missing:
            raise _unauthorized("auth.invalidSignature",
                                f"the {SIGNATURE_SCHEME} authorization lacks "
                                + ", ".join(missing))
        timestamp, nonce = params["timestamp"], params["nonce"]
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise _unauthorized("auth.invalidSignature", "timestamp must be Unix seconds")
        now = self._clock.seconds()
        stamp = int(timestamp)
        if abs(now - stamp) > self._window:
            raise ApiError(401, "auth.staleRequest",
                           f"the timestamp is more than {int(self._window)} s from the "
                           "server's time; sign with the current time",
                           header="Authorization", meta={"serverTime": int(now)},
                           headers={"WWW-Authenticate": CHALLENGES})
        if stamp < int(self.started_at):
            raise ApiError(401, "auth.staleRequest",
                           "the request was signed before the server started; sign it again",
                           header="Authorization", meta={"serverTime": int(now)},
                           headers={"WWW-Authenticate": CHALLENGES})
        if not _NONCE_RE.fullmatch(nonce):
            raise _unauthorized("auth.invalidSignature",
                                "nonce must be 8 to 128 characters of A-Z a-z 0-9 . _ ~ -")
        client_id = params["clientId"]
        found = None
        if 0 < len(client_id) <= 100:
            found = await self._store.client_signing_key(client_id)
        expected = sign(found[1] if found else b"\0" * 32, signed.method, signed.path,
                        signed.query, timestamp, nonce, signed.body)
        given = params["signature"].lower().encode("utf-8")
        if not hmac.compare_digest(expected.encode("ascii"), given) or found is None:
            raise _unauthorized("auth.invalidSignature",
                                "the signature does not match (wrong key, or the request "
                                "differs from what was signed)")
        if not self.nonces.check_and_add(client_id, nonce):
            raise _unauthorized("auth.replayedRequest",
                                "this nonce was used already; sign each request anew")
        client, _ = found
        space = await self._store.space_of_client(client.id)
        if space is None:  # pragma: no cover - a client always has its space
            raise _unauthorized("auth.invalidClient", "the client has no space")
        return Caller(kind="client", client_id=client.id, space_id=space.id,
                      scopes=frozenset(CLIENT_SCOPES), method="signature")

    async def client_credentials(self, authorization: str | None,
                                 form: dict[str, str]) -> ClientRecord:
        """The client of the OAuth endpoints' Basic or body credentials (RFC 6749 §2.3.1)."""
        basic = None
        if authorization and authorization.strip().lower().startswith("basic "):
            basic = parse_basic(authorization.strip()[6:])
        body_id, body_secret = form.get("client_id"), form.get("client_secret")
        if basic and (body_id or body_secret):
            raise ApiError(400, "auth.tooManyMethods",
                           "authenticate with Basic or with the body, not both",
                           oauth_error="invalid_request")
        if basic:
            client_id, secret = basic
        elif body_id and body_secret:
            client_id, secret = body_id, body_secret
        else:
            raise ApiError(401, "auth.invalidClient",
                           "client authentication is required (HTTP Basic, or client_id "
                           "and client_secret in the body)", oauth_error="invalid_client",
                           headers={"WWW-Authenticate": f"Basic {REALM}"})
        client = None
        if 0 < len(client_id) <= 100 and 0 < len(secret) <= 200:
            client = await self._store.check_client_secret(client_id, secret)
        if client is None:
            raise ApiError(401, "auth.invalidClient",
                           "unknown client, wrong secret, or the client was revoked",
                           oauth_error="invalid_client",
                           headers={"WWW-Authenticate": f"Basic {REALM}"})
        return client
