"""Downloading a document from the URL a ``create`` or ``insertDocument`` caller gave.

Those URLs come from whoever holds a meeting's creation rights (an LMS, a client app), so
the download goes through the same SSRF guard as webhooks to client apps' endpoints
(:mod:`meetplatform.webhooks.guard`): the URL is checked (:func:`check_url`) and every
connection goes through :class:`GuardedEndpointFactory`, which resolves the name and
connects only to an address the :class:`AddressPolicy` allows (the operator's
``allow_webhook_networks`` setting widens it, as for webhooks).

Redirects are followed by hand, up to a limit, each new URL checked again; treq's own
redirect agent is not used since it knows no limit but its default and would check
nothing. The body is streamed and counted: a ``Content-Length`` over the size limit is
refused before any byte is read, and a body that grows past it is cut off there. One
deadline (on the injected clock) covers the whole exchange, redirects included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH

from meetplatform import __version__
from meetplatform.documents.sniff import DocumentRefused
from meetplatform.webhooks.guard import (
    AddressPolicy,
    AddressRefused,
    GuardedEndpointFactory,
    UrlRefused,
    check_url,
)

log = Logger()

USER_AGENT = f"meetplatform/{__version__} (documents)"
REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 30 * 1024 * 1024
    #: Seconds for the whole download, redirects included.
    timeout: float = 60.0
    max_redirects: int = 5


def guarded_client(reactor: Any, policy: AddressPolicy, *,
                   connect_timeout: float = 10.0) -> Any:
    """A treq client whose every connection goes through ``policy`` (as the webhooks'
    guarded client in :func:`meetplatform.webhooks.http.default_clients`), with no
    kept-alive connections: documents are fetched once, from anywhere."""
    import treq

    from meetplatform.webhooks.http import _no_cookies

    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent.usingEndpointFactory(
        reactor, GuardedEndpointFactory(reactor, policy, connect_timeout=connect_timeout),
        pool=pool)
    return treq.client.HTTPClient(agent, cookiejar=_no_cookies())  # type: ignore[arg-type]


def too_large(limit: int) -> DocumentRefused:
    return DocumentRefused(f"The document is larger than {limit // (1024 * 1024)} MB")


class _Body(Protocol):
    """Collects a response body up to ``limit`` bytes, then drops the connection."""

    def __init__(self, limit: int, done: Deferred[bytes]) -> None:
        self._limit = limit
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.abort(too_large(self._limit))
            return
        self._chunks.append(data)

    def abort(self, error: Exception) -> None:
        if not self._done.called:
            self._done.errback(error)
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._chunks))
        else:
            self._done.errback(DocumentRefused("The document's download was interrupted"))


class Fetcher:
    """Downloads documents with an injected treq-like client (see the module)."""

    def __init__(self, reactor: Any, client: Any, policy: AddressPolicy,
                 limits: FetchLimits = FetchLimits()) -> None:
        self._reactor = reactor
        self._client = client
        self._policy = policy
        self.limits = limits

    def fetch(self, url: str) -> Deferred[bytes]:
        """The document's bytes; fails with :class:`DocumentRefused` (a human message)."""
        attempt = Deferred.fromCoroutine(self._fetch(url))
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            attempt.cancel()

        deadline = self._reactor.callLater(self.limits.timeout, expire)

        def settle(result: Any) -> Any:
            if deadline.active():
                deadline.cancel()
            if isinstance(result, Failure) and timed_out:
                return Failure(DocumentRefused(
                    f"The document could not be downloaded within "
                    f"{self.limits.timeout:g} seconds"))
            return result

        return attempt.addBoth(settle)

    async def _fetch(self, url: str) -> bytes:
        for _ in range(self.limits.max_redirects + 1):
            try:
                check_url(url, self._policy)
            except UrlRefused as error:
                raise DocumentRefused(f"The document URL was refused: {error}") from None
            try:
                response = await self._client.request(
                    "GET", url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
                    allow_redirects=False, unbuffered=True)
            except AddressRefused as error:
                raise DocumentRefused(_refused(error)) from None
            except CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - told to the user, and logged
                if _cancelled(error):  # (treq wraps it in ResponseNeverReceived)
                    raise CancelledError() from None
                log.info("document download from {url} failed: {error!r}", url=url,
                         error=error)
                raise DocumentRefused(_connect_failure(error)) from None
            code = int(response.code)
            if code in REDIRECTS:
                location = response.headers.getRawHeaders(b"location", [b""])[0]
                self._discard(response)
                if not location:
                    raise DocumentRefused(
                        f"The document could not be downloaded (HTTP {code} without "
                        "a location)")
                url = urljoin(url, location.decode("latin-1"))
                continue
            if not 200 <= code < 300:
                self._discard(response)
                raise DocumentRefused(f"The document could not be downloaded (HTTP {code})")
            length = response.length
            if length is not UNKNOWN_LENGTH and length > self.limits.max_bytes:
                self._discard(response)
                raise too_large(self.limits.max_bytes)
            done: Deferred[bytes] = Deferred()
            body = _Body(self.limits.max_bytes, done)
            response.deliverBody(body)
            try:
                return await done
            except CancelledError:
                body.abort(CancelledError())
                raise
        raise DocumentRefused(
            f"The document URL redirects more than {self.limits.max_redirects} times")

    @staticmethod
    def _discard(response: Any) -> None:
        done: Deferred[bytes] = Deferred()
        body = _Body(0, done)
        done.addErrback(lambda _: None)
        response.deliverBody(body)
        body.abort(DocumentRefused("discarded"))


def _cancelled(error: Exception) -> bool:
    reasons = getattr(error, "reasons", None) or []
    return any(isinstance(r, Failure) and r.check(CancelledError) for r in reasons)


def _refused(error: Any) -> str:
    """The guard's own words: :class:`AddressRefused` is a ConnectError, which keeps its
    first argument as ``osError`` and wraps it in a generic sentence in ``str()``."""
    detail = getattr(error, "osError", None)
    if not isinstance(detail, str) or not detail:
        detail = str(error)
    return f"The document URL was refused: {detail}"


def _connect_failure(error: Exception) -> str:
    from twisted.internet import error as net

    if isinstance(error, net.DNSLookupError):
        return "The document could not be downloaded: host name not found"
    if isinstance(error, net.ConnectionRefusedError):
        return "The document could not be downloaded: connection refused"
    reasons = getattr(error, "reasons", None) or []
    for reason in reasons:
        if isinstance(reason, Failure) and reason.check(AddressRefused):
            return _refused(reason.value)
    return "The document could not be downloaded"
