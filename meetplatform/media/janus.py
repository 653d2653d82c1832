"""A small Twisted client for the Janus WebRTC Server: the Janus API over WebSocket and the
Admin/monitor API over HTTP.

**Janus API** (:class:`JanusConnection`): one Autobahn WebSocket (subprotocol
``janus-protocol``) per node carries many sessions. Every request gets a transaction id
and a Deferred; the answer (``success``/``error``/``ack``, or for an asynchronous plugin
request the ``event`` carrying the same transaction) fires it. Every request has a timeout,
so no caller ever waits for a node that went silent: it gets :class:`JanusTimeout`.
Messages without a pending transaction (plugin events, ``webrtcup``, ``hangup``,
``media``, ``detached``, ...) are delivered to the subscribers of the handle, of the
session and of the connection (:meth:`JanusHandle.subscribe` etc.). A session keeps itself
alive (``keepalive`` every ``keepalive_interval`` seconds, below Janus's 60 s
``session_timeout``); a keepalive answered "no such session" or a dropped connection marks
it lost and tells its ``on_lost`` listeners (a Janus restart loses every session).

Usage (relaying a browser's media, the second helper's part)::

    conn = await JanusConnection.connect(reactor, "ws://10.0.0.5:8188", api_secret)
    session = await conn.create_session()
    handle = await session.attach(VIDEOROOM)
    handle.subscribe(lambda message: ...)           # plugin events, webrtcup, hangup...
    reply = await handle.message({"request": "join", "ptype": "publisher", "room": 1234})
    # reply.data: the plugin's answer ("joined"); reply.jsep: an SDP offer/answer, if any

**VideoRoom** (:class:`VideoRoom`): typed synchronous requests (create/destroy/list rooms,
exists, listparticipants, kick, moderate) with the node's ``admin_key`` and each room's
secret; created rooms always have ``lock_record`` (clients cannot change recording). It
sends through a handle (``VideoRoom.over_handle``) or the Admin API's ``message_plugin``
(``VideoRoom.over_admin``), which needs no session.

**Admin API** (:class:`JanusAdmin`, treq): ``ping`` (no secret), ``info``,
``get_status``, ``list_sessions``, ``message_plugin``, with the node's ``admin_secret``.

Errors are all :class:`JanusError`: :class:`JanusUnreachable` (connection refused, DNS,
handshake failed), :class:`JanusTimeout`, :class:`JanusAuthError` (Janus error 403: wrong
api/admin secret; VideoRoom 427/428-ish "unauthorized": wrong admin_key or room secret),
:class:`JanusConnectionLost` (the WebSocket closed while waiting), :class:`JanusPluginError`
(the plugin answered ``error_code``) and plain :class:`JanusError` for Janus's own error
answers. Their messages name the node URL and say what to check.

Why one module of this size: one client for one server's two APIs, which share the error
types, the timeouts and the transaction bookkeeping; the VideoRoom requests are thin
typed wrappers over the same transport.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseNeverReceived,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers

_log = Logger()

VIDEOROOM = "janus.plugin.videoroom"
#: Seconds a request may take before it fails with :class:`JanusTimeout`.
DEFAULT_TIMEOUT = 5.0
#: Seconds between keepalives of a session (Janus drops sessions idle for 60 s).
DEFAULT_KEEPALIVE = 25.0
#: Janus error codes (``janus.h``).
ERROR_UNAUTHORIZED = 403
ERROR_UNAUTHORIZED_PLUGIN = 405
ERROR_SESSION_NOT_FOUND = 458
ERROR_HANDLE_NOT_FOUND = 459
#: VideoRoom error codes (``janus_videoroom.c``).
VIDEOROOM_NO_SUCH_ROOM = 426
VIDEOROOM_ROOM_EXISTS = 427
VIDEOROOM_UNAUTHORIZED = 433

Subscriber = Callable[[dict[str, Any]], None]


# --- errors ---------------------------------------------------------------------------------


class JanusError(Exception):
    """Janus refused or failed a request; ``code`` is Janus's error code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class JanusUnreachable(JanusError):
    """Nothing answers at the node's URL (refused, unknown host, not Janus)."""


class JanusTimeout(JanusError):
    """The node did not answer in time."""


class JanusAuthError(JanusError):
    """A secret was refused: api_secret, admin_secret, admin_key or a room secret."""


class JanusConnectionLost(JanusError):
    """The WebSocket to the node closed (Janus stopped, restarted or the network broke)."""


class JanusPluginError(JanusError):
    """The plugin answered with ``error_code`` (e.g. no such room)."""


def _janus_error(url: str, message: Mapping[str, Any]) -> JanusError:
    err = message.get("error") or {}
    code = err.get("code")
    reason = str(err.get("reason") or "unknown error")
    if code == ERROR_UNAUTHORIZED:
        return JanusAuthError(
            f"Janus at {url} refused the secret ({reason}): check the node's secrets "
            "(meetplatform nodes janus-config prints the ones Janus must have)", code)
    return JanusError(f"Janus at {url} answered error {code}: {reason}", code)


def _plugin_error(url: str, data: Mapping[str, Any]) -> JanusError:
    code = data.get("error_code")
    reason = str(data.get("error") or "unknown error")
    cls = JanusAuthError if code == VIDEOROOM_UNAUTHORIZED else JanusPluginError
    return cls(f"Janus at {url}: plugin error {code}: {reason}", code)


def _transport_error(url: str, what: str, failure: Failure, timeout: float) -> JanusError:
    """A readable error for a failed connection or request."""
    if failure.check(JanusError):
        return failure.value  # type: ignore[return-value]
    if failure.check(TimeoutError, CancelledError, net_error.TimeoutError):
        return JanusTimeout(f"{what}: no answer from {url} within {timeout:g} s")
    if failure.check(net_error.ConnectionRefusedError):
        return JanusUnreachable(f"{what}: {url} refused the connection (is Janus running "
                                "and listening there?)")
    if failure.check(net_error.DNSLookupError):
        return JanusUnreachable(f"{what}: cannot resolve the host of {url}")
    if failure.check(ResponseNeverReceived, net_error.ConnectionLost, net_error.ConnectionDone):
        return JanusUnreachable(f"{what}: {url} closed the connection without answering")
    return JanusUnreachable(f"{what}: cannot reach {url}: {failure.getErrorMessage()}")


async def _bounded(reactor: Any, work: Deferred[Any], timeout: float, url: str,
                   what: str) -> Any:
    """``await work``, cancelled after ``timeout`` seconds; every failure a JanusError.

    Whatever a cancelled request fails with (treq reports ``ResponseNeverReceived``, a
    connection attempt ``ConnectingCancelledError``), a call that ran out of time is
    reported as :class:`JanusTimeout`."""
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        work.cancel()

    call = reactor.callLater(timeout, expire)
    try:
        return await work
    except Exception:  # noqa: BLE001 - translated into one clear JanusError
        failure = Failure()
        if timed_out:
            raise JanusTimeout(f"{what}: no answer from {url} within {timeout:g} s") from None
        raise _transport_error(url, what, failure, timeout) from None
    finally:
        if call.active():
            call.cancel()


def new_transaction() -> str:
    return secrets.token_hex(8)


# --- the Admin API over HTTP ----------------------------------------------------------------


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


def _quiet_pool(reactor: Any) -> HTTPConnectionPool:
    """A non-persistent pool whose connections do not log "Starting factory" lines: a
    health check every 2 s per node would fill the log with them. (The factory class is
    a private attribute of the pool; Synapse and others set it the same way.)"""
    pool = HTTPConnectionPool(reactor, persistent=False)
    pool._factory = _QuietClientFactory  # type: ignore[assignment]
    return pool



class JanusAdmin:
    """The Admin/monitor API of one node, over HTTP (``POST <admin_url>``).

    ``admin_url`` is the full endpoint, e.g. ``http://10.0.0.5:7088/admin``. Stateless:
    every call is one POST with its own timeout.
    """

    def __init__(self, reactor: Any, admin_url: str, admin_secret: str, *,
                 timeout: float = DEFAULT_TIMEOUT, client: Any = None) -> None:
        self._reactor = reactor
        self.url = admin_url
        self._secret = admin_secret
        self.timeout = timeout
        self._client = client if client is not None else treq.client.HTTPClient(
            Agent(reactor, connectTimeout=timeout, pool=_quiet_pool(reactor)))

    async def request(self, janus: str, *, timeout: float | None = None,
                      with_secret: bool = True, **fields: Any) -> dict[str, Any]:
        """Send ``{"janus": janus, ...fields}``; the answer, or a :class:`JanusError`."""
        timeout = self.timeout if timeout is None else timeout
        body: dict[str, Any] = {"janus": janus, "transaction": new_transaction(), **fields}
        if with_secret:
            body["admin_secret"] = self._secret
        what = f"Janus admin {janus}"

        async def post() -> dict[str, Any]:
            response = await self._client.post(
                self.url, data=json.dumps(body).encode("utf-8"),
                headers=Headers({b"content-type": [b"application/json"]}))
            raw = await response.content()
            if response.code != 200:
                raise JanusUnreachable(
                    f"{what}: {self.url} answered HTTP {response.code} (is this the admin "
                    "API endpoint, e.g. http://host:7088/admin?)")
            try:
                answer = json.loads(raw)
            except ValueError:
                raise JanusUnreachable(f"{what}: {self.url} did not answer JSON") from None
            if not isinstance(answer, dict):
                raise JanusUnreachable(f"{what}: {self.url} did not answer a JSON object")
            return answer

        answer: dict[str, Any] = await _bounded(
            self._reactor, Deferred.fromCoroutine(post()), timeout, self.url, what)
        if answer.get("janus") == "error":
            raise _janus_error(self.url, answer)
        return answer

    async def ping(self, *, timeout: float | None = None) -> None:
        """``pong`` or an error (needs no secret: liveness only)."""
        answer = await self.request("ping", timeout=timeout, with_secret=False)
        if answer.get("janus") != "pong":
            raise JanusError(f"Janus admin ping: {self.url} answered {answer.get('janus')!r}")

    async def info(self) -> dict[str, Any]:
        """``server_info``: version, server name, whether it accepts new sessions..."""
        return await self.request("info")

    async def get_status(self) -> dict[str, Any]:
        answer = await self.request("get_status")
        status: dict[str, Any] = answer.get("status") or {}
        return status

    async def list_sessions(self) -> list[int]:
        answer = await self.request("list_sessions")
        return [int(s) for s in answer.get("sessions") or []]

    async def message_plugin(self, plugin: str, request: Mapping[str, Any], *,
                             timeout: float | None = None) -> dict[str, Any]:
        """A synchronous plugin request without a session; the plugin's ``data``."""
        answer = await self.request("message_plugin", plugin=plugin, request=dict(request),
                                    timeout=timeout)
        data: dict[str, Any] = (answer.get("response") or {})
        if "error_code" in data:
            raise _plugin_error(self.url, data)
        return data


# --- the Janus API over WebSocket -----------------------------------------------------------


@dataclass
class PluginReply:
    """A plugin's answer: its ``data``, and the JSEP (SDP) that came with it, if any."""

    data: dict[str, Any]
    jsep: dict[str, Any] | None = None
    #: The whole Janus message.
    message: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    deferred: Deferred[dict[str, Any]]
    #: "message" waits past the ``ack`` for the plugin's ``event``.
    kind: str


class _Protocol(WebSocketClientProtocol):
    connection: JanusConnection | None = None

    def onOpen(self) -> None:
        factory: _Factory = self.factory  # type: ignore[assignment]
        factory.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.connection is None:
            return
        try:
            message = json.loads(payload)
        except ValueError:
            _log.warn("Janus at {url} sent something that is not JSON", url=self.connection.url)
            return
        if isinstance(message, dict):
            self.connection._received(message)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        factory: _Factory = self.factory  # type: ignore[assignment]
        factory.closed(self, reason or f"code {code}")


class _Factory(WebSocketClientFactory):
    protocol = _Protocol

    def __init__(self, url: str) -> None:
        super().__init__(url, protocols=["janus-protocol"])
        self.noisy = False
        self.ready: Deferred[_Protocol] = Deferred()

    def opened(self, proto: _Protocol) -> None:
        if not self.ready.called:
            self.ready.callback(proto)

    def closed(self, proto: _Protocol, reason: str) -> None:
        if not self.ready.called:
            self.ready.errback(JanusUnreachable(
                f"the WebSocket handshake with {self.url} failed ({reason}): is it the "
                "Janus WebSocket transport?"))
        elif proto.connection is not None:
            proto.connection._lost(reason)


class JanusConnection:
    """One WebSocket to a node's Janus API; see the module's documentation."""

    def __init__(self, reactor: Any, url: str, api_secret: str, proto: _Protocol, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._reactor = reactor
        self.url = url
        self._secret = api_secret
        self._proto = proto
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[int, JanusSession] = {}
        self._subscribers: list[Subscriber] = []
        self._close_listeners: list[Callable[[str], None]] = []
        self.closed = False
        proto.connection = self

    @classmethod
    async def connect(cls, reactor: Any, ws_url: str, api_secret: str, *,
                      timeout: float = DEFAULT_TIMEOUT) -> JanusConnection:
        """Open the WebSocket (raises :class:`JanusUnreachable` / :class:`JanusTimeout`)."""
        parts = urlsplit(ws_url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise JanusUnreachable(f"{ws_url!r} is not a ws:// or wss:// URL")
        if parts.scheme == "wss":
            raise JanusUnreachable(f"{ws_url}: wss:// is not supported; reach Janus over "
                                   "a private network with ws://")
        factory = _Factory(ws_url)
        # Our own timeout (below) reports a silent peer; Autobahn's is only a backstop.
        factory.setProtocolOptions(openHandshakeTimeout=timeout + 5, autoPingInterval=0)
        endpoint = HostnameEndpoint(reactor, parts.hostname, parts.port or 80,
                                    timeout=max(1, int(timeout)))
        what = "connecting to Janus"

        async def open_() -> _Protocol:
            await endpoint.connect(factory)
            proto: _Protocol = await factory.ready
            return proto

        proto: _Protocol = await _bounded(reactor, Deferred.fromCoroutine(open_()), timeout,
                                          ws_url, what)
        return cls(reactor, ws_url, api_secret, proto, timeout=timeout)

    # --- requests ----------------------------------------------------------------------

    def request(self, janus: str, *, timeout: float | None = None, kind: str = "",
                **fields: Any) -> Deferred[dict[str, Any]]:
        """Send one request; fires with the answer (``success``/``ack``/``event``...)."""
        if self.closed:
            return Deferred.fromCoroutine(self._raise(JanusConnectionLost(
                f"the connection to Janus at {self.url} is closed")))
        transaction = new_transaction()
        message = {"janus": janus, "transaction": transaction, "apisecret": self._secret,
                   **fields}
        timeout = self.timeout if timeout is None else timeout
        url = self.url

        def cancel(d: Deferred[Any]) -> None:
            self._pending.pop(transaction, None)

        d: Deferred[dict[str, Any]] = Deferred(cancel)
        self._pending[transaction] = _Pending(d, kind or janus)
        self._proto.sendMessage(json.dumps(message).encode("utf-8"))

        def timed_out(failure: Failure) -> Failure:
            if failure.check(TimeoutError):
                raise JanusTimeout(f"Janus {janus}: no answer from {url} within {timeout:g} s")
            return failure

        d.addTimeout(timeout, self._reactor)
        d.addErrback(timed_out)
        return d

    @staticmethod
    async def _raise(error: Exception) -> dict[str, Any]:
        raise error

    def _received(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        transaction = message.get("transaction")
        pending = self._pending.get(transaction) if isinstance(transaction, str) else None
        if pending is not None and not (kind == "ack" and pending.kind == "message"):
            del self._pending[transaction]  # type: ignore[arg-type]
            if kind == "error":
                pending.deferred.errback(_janus_error(self.url, message))
            else:
                pending.deferred.callback(message)
            return
        if pending is not None:
            return  # the ack of an asynchronous request: its event follows
        self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        session = self._sessions.get(message.get("session_id") or 0)
        targets: list[Subscriber] = []
        if session is not None:
            handle = session._handles.get(message.get("sender") or 0)
            if handle is not None:
                targets += handle._subscribers
                if message.get("janus") == "detached":
                    session._handles.pop(handle.id, None)
            targets += session._subscribers
        targets += self._subscribers
        for subscriber in list(targets):
            try:
                subscriber(message)
            except Exception:  # noqa: BLE001 - one subscriber's bug must not stop the others
                _log.failure("Janus event subscriber {s!r} failed", s=subscriber)

    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        _log.info("connection to Janus at {url} closed: {reason}", url=self.url, reason=reason)
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.deferred.errback(JanusConnectionLost(
                f"the connection to Janus at {self.url} closed: {reason}"))
        for session in list(self._sessions.values()):
            session._mark_lost("connection closed")
        for listener in list(self._close_listeners):
            try:
                listener(reason)
            except Exception:  # noqa: BLE001 - logged; the others still hear of it
                _log.failure("Janus close listener failed")

    # --- subscriptions -----------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Every message of this connection that answers no request."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if (
            subscriber in self._subscribers) else None

    def on_close(self, listener: Callable[[str], None]) -> None:
        """``listener(reason)`` once the WebSocket closes (not after :meth:`close`)."""
        self._close_listeners.append(listener)

    # --- sessions ----------------------------------------------------------------------

    async def create_session(self, *, keepalive_interval: float = DEFAULT_KEEPALIVE
                             ) -> JanusSession:
        answer = await self.request("create")
        session_id = int(answer["data"]["id"])
        session = JanusSession(self, session_id, keepalive_interval)
        self._sessions[session_id] = session
        session._start_keepalive()
        return session

    async def info(self) -> dict[str, Any]:
        """``server_info`` over the Janus API."""
        return await self.request("info")

    def close(self) -> None:
        """Close the WebSocket (Janus destroys this connection's sessions)."""
        if self.closed:
            return
        # Closed on purpose: nobody is told the connection or its sessions were "lost".
        self._close_listeners.clear()
        for session in list(self._sessions.values()):
            session._lost_listeners.clear()
            session._stop_keepalive()
        self._proto.sendClose()
        self._lost("closed by meetplatform")


class JanusSession:
    """A Janus session on a :class:`JanusConnection`, kept alive until destroyed or lost."""

    def __init__(self, connection: JanusConnection, session_id: int,
                 keepalive_interval: float) -> None:
        self.connection = connection
        self.id = session_id
        self._interval = keepalive_interval
        self._handles: dict[int, JanusHandle] = {}
        self._subscribers: list[Subscriber] = []
        self._lost_listeners: list[Callable[[str], None]] = []
        self._keepalive: LoopingCall | None = None
        self.lost = False
        self.destroyed = False

    def _start_keepalive(self) -> None:
        if self._interval <= 0:
            return
        loop = LoopingCall(self._send_keepalive)
        loop.clock = self.connection._reactor
        self._keepalive = loop
        loop.start(self._interval, now=False).addErrback(
            lambda f: _log.failure("Janus keepalive loop failed", f))

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None

    def _send_keepalive(self) -> None:
        d = self.request("keepalive")

        def failed(failure: Failure) -> None:
            if failure.check(JanusError) and failure.value.code == ERROR_SESSION_NOT_FOUND:  # type: ignore[union-attr]
                self._mark_lost("Janus no longer knows the session (restarted?)")
            elif failure.check(JanusConnectionLost):
                pass  # reported by the connection
            else:
                _log.warn("keepalive of Janus session {id} at {url} failed: {error}",
                          id=self.id, url=self.connection.url, error=failure.getErrorMessage())

        d.addErrback(failed)

    def _mark_lost(self, reason: str) -> None:
        if self.lost or self.destroyed:
            return
        self.lost = True
        self._stop_keepalive()
        self.connection._sessions.pop(self.id, None)
        for listener in list(self._lost_listeners):
            try:
                listener(reason)
            except Exception:  # noqa: BLE001 - logged; the others still hear of it
                _log.failure("Janus session-lost listener failed")

    def request(self, janus: str, **fields: Any) -> Deferred[dict[str, Any]]:
        return self.connection.request(janus, session_id=self.id, **fields)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Every unsolicited message of this session (its handles' included)."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if (
            subscriber in self._subscribers) else None

    def on_lost(self, listener: Callable[[str], None]) -> None:
        """``listener(reason)`` when the session is gone without :meth:`destroy`."""
        self._lost_listeners.append(listener)

    async def attach(self, plugin: str = VIDEOROOM) -> JanusHandle:
        answer = await self.request("attach", plugin=plugin)
        handle = JanusHandle(self, int(answer["data"]["id"]), plugin)
        self._handles[handle.id] = handle
        return handle

    async def destroy(self) -> None:
        """Destroy the session on Janus (its handles go with it)."""
        if self.destroyed:
            return
        self.destroyed = True
        self._stop_keepalive()
        self.connection._sessions.pop(self.id, None)
        if not self.lost and not self.connection.closed:
            await self.request("destroy")


class JanusHandle:
    """A plugin handle: requests to the plugin, and the plugin's events."""

    def __init__(self, session: JanusSession, handle_id: int, plugin: str) -> None:
        self.session = session
        self.id = handle_id
        self.plugin = plugin
        self._subscribers: list[Subscriber] = []

    @property
    def url(self) -> str:
        return self.session.connection.url

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """The handle's unsolicited messages: plugin ``event``s, ``webrtcup``, ``media``,
        ``hangup``, ``slowlink``, ``detached``, ``trickle``."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if (
            subscriber in self._subscribers) else None

    def _reply(self, message: dict[str, Any]) -> PluginReply:
        data: dict[str, Any] = (message.get("plugindata") or {}).get("data") or {}
        if "error_code" in data:
            raise _plugin_error(self.url, data)
        return PluginReply(data, message.get("jsep"), message)

    async def message(self, body: Mapping[str, Any], jsep: Mapping[str, Any] | None = None,
                      *, timeout: float | None = None) -> PluginReply:
        """Send a plugin request. Synchronous requests (``create``, ``list``...) answer at
        once; asynchronous ones (``join``, ``configure``, ``start``...) with their event,
        which this waits for."""
        fields: dict[str, Any] = {"handle_id": self.id, "body": dict(body)}
        if jsep is not None:
            fields["jsep"] = dict(jsep)
        answer = await self.session.request("message", timeout=timeout, kind="message",
                                            **fields)
        return self._reply(answer)

    async def trickle(self, candidate: Mapping[str, Any] | None) -> None:
        """Relay one ICE candidate (``None``: gathering completed)."""
        value: Any = dict(candidate) if candidate is not None else {"completed": True}
        await self.session.request("trickle", handle_id=self.id, candidate=value)

    async def hangup(self) -> None:
        await self.session.request("hangup", handle_id=self.id)

    async def detach(self) -> None:
        self.session._handles.pop(self.id, None)
        await self.session.request("detach", handle_id=self.id)


# --- VideoRoom --------------------------------------------------------------------------------


Sender = Callable[[dict[str, Any]], "Deferred[dict[str, Any]]"]


@dataclass(frozen=True)
class RoomInfo:
    """One room as ``list`` shows it (``participants`` counts publishers only)."""

    room: int
    description: str
    participants: int
    max_publishers: int
    record: bool
    lock_record: bool


class VideoRoom:
    """Synchronous VideoRoom requests with the node's ``admin_key``.

    Build it with :meth:`over_admin` (Admin API ``message_plugin``: no session, the
    control plane's choice) or :meth:`over_handle` (a VideoRoom handle of a session).
    """

    def __init__(self, send: Sender, admin_key: str) -> None:
        self._send = send
        self._admin_key = admin_key

    @classmethod
    def over_admin(cls, admin: JanusAdmin, admin_key: str) -> VideoRoom:
        def send(request: dict[str, Any]) -> Deferred[dict[str, Any]]:
            return Deferred.fromCoroutine(admin.message_plugin(VIDEOROOM, request))
        return cls(send, admin_key)

    @classmethod
    def over_handle(cls, handle: JanusHandle, admin_key: str) -> VideoRoom:
        async def send_async(request: dict[str, Any]) -> dict[str, Any]:
            return (await handle.message(request)).data

        def send(request: dict[str, Any]) -> Deferred[dict[str, Any]]:
            return Deferred.fromCoroutine(send_async(request))
        return cls(send, admin_key)

    async def create_room(self, room: int, *, secret: str, description: str = "",
                          publishers: int = 100, bitrate: int = 512_000, fir_freq: int = 10,
                          record: bool = False, rec_dir: str | None = None,
                          notify_joining: bool = True, audiolevel_event: bool = True,
                          videocodec: str | None = None,
                          extra: Mapping[str, Any] | None = None) -> int:
        """Create room ``room`` (not permanent: it lives until destroyed or Janus restarts).

        ``lock_record`` is always set: only the room secret (held by the service) may
        change recording, never a client's ``configure``.
        """
        request: dict[str, Any] = {
            "request": "create", "room": int(room), "admin_key": self._admin_key,
            "secret": secret, "description": description or f"room {room}",
            "publishers": publishers, "bitrate": bitrate, "fir_freq": fir_freq,
            "record": record, "lock_record": True, "notify_joining": notify_joining,
            "audiolevel_event": audiolevel_event, "permanent": False,
        }
        if rec_dir is not None:
            request["rec_dir"] = rec_dir
        if videocodec is not None:
            request["videocodec"] = videocodec
        if extra:
            request.update(extra)
        data = await self._send(request)
        return int(data.get("room", room))

    async def destroy_room(self, room: int, *, secret: str) -> None:
        await self._send({"request": "destroy", "room": int(room), "secret": secret,
                          "permanent": False})

    async def exists(self, room: int) -> bool:
        data = await self._send({"request": "exists", "room": int(room)})
        return bool(data.get("exists"))

    async def list_rooms(self) -> list[RoomInfo]:
        data = await self._send({"request": "list", "admin_key": self._admin_key})
        return [RoomInfo(room=int(r["room"]), description=str(r.get("description", "")),
                         participants=int(r.get("num_participants", 0)),
                         max_publishers=int(r.get("max_publishers", 0)),
                         record=bool(r.get("record")), lock_record=bool(r.get("lock_record")))
                for r in data.get("list") or []]

    async def list_participants(self, room: int) -> list[dict[str, Any]]:
        data = await self._send({"request": "listparticipants", "room": int(room)})
        participants: list[dict[str, Any]] = data.get("participants") or []
        return participants

    async def kick(self, room: int, participant: int, *, secret: str) -> None:
        await self._send({"request": "kick", "room": int(room), "secret": secret,
                          "id": int(participant)})

    async def moderate(self, room: int, participant: int, mid: str, mute: bool, *,
                       secret: str) -> None:
        await self._send({"request": "moderate", "room": int(room), "secret": secret,
                          "id": int(participant), "mid": mid, "mute": mute})

